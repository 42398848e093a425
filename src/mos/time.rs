//! MOS time and duration values.
//!
//! MOS 2.8.1 (§2.2) writes times as `YYYY-MM-DD'T'hh:mm:ss[,ddd]['Z' | ±hh:mm]` and running
//! order durations (roEdDur) as `hh:mm:ss`. Real NCSes deviate: `.` instead of `,`, other
//! fraction lengths, compact offsets, no zone at all (sender's local time), or empty elements
//! (OpenMedia's `<time></time>`). Octopus can be configured to omit milliseconds, omit the
//! zone, or use UTC, so the format varies per installation.
//!
//! [`MosTime`] and [`RoDuration`] therefore keep the text exactly as received, so it can be
//! echoed back unchanged, together with the parsed value and a [`TimeConformance`] grade.
//! Parsing never fails; an unrecognised text simply has no value.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use std::fmt;
use std::time::Duration;

/// How closely a received time or duration text follows the MOS 2.8.1 format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeConformance {
    /// Exactly the spec format.
    Spec,
    /// A known real-world variant; the value was parsed.
    Variant,
    /// Empty or whitespace-only text; there is no value.
    Empty,
    /// Non-empty text that is not a recognised form; there is no value.
    Unparseable,
}

/// How [`MosTime`] constructors format outgoing times. The default is the full spec form,
/// `2009-04-11T14:22:07,125Z`. The fields mirror Octopus's `omitMilliseconds` and
/// `omitTimezone` options; choose UTC or a local offset by picking
/// [`MosTime::from_datetime_styled`] or [`MosTime::from_fixed_styled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeStyle {
    /// Leave out the `,ddd` fraction (the time is truncated to whole seconds).
    pub omit_milliseconds: bool,
    /// Leave out the zone; the text then states wall-clock time only.
    pub omit_timezone: bool,
}

/// A MOS time value as it appeared on the wire, with its parsed meaning.
///
/// Equality compares the text too: `…Z` and `…+00:00` are different values here even though
/// they denote the same instant; compare [`MosTime::to_utc`] for instants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosTime {
    text: String,
    conformance: TimeConformance,
    naive: Option<NaiveDateTime>,
    offset: Option<FixedOffset>,
}

impl MosTime {
    /// Wraps received text. Never fails: the text is kept verbatim and a trimmed copy is parsed.
    pub fn from_wire(text: &str) -> MosTime {
        let trimmed = text.trim();
        let (conformance, naive, offset) = if trimmed.is_empty() {
            (TimeConformance::Empty, None, None)
        } else {
            match parse_time(trimmed) {
                Some(p) => {
                    let conformance = if p.spec && trimmed.len() == text.len() {
                        TimeConformance::Spec
                    } else {
                        TimeConformance::Variant
                    };
                    (conformance, Some(p.naive), p.offset)
                }
                None => (TimeConformance::Unparseable, None, None),
            }
        };
        MosTime {
            text: text.to_owned(),
            conformance,
            naive,
            offset,
        }
    }

    /// Formats a UTC instant in spec style, `2009-04-11T14:22:07,125Z` (truncated to
    /// milliseconds).
    ///
    /// Years outside 0000–9999 have no MOS form; such a value comes out `Unparseable`.
    pub fn from_datetime(dt: DateTime<Utc>) -> MosTime {
        MosTime::from_datetime_styled(dt, TimeStyle::default())
    }

    /// Like [`MosTime::from_datetime`], formatted according to `style`.
    pub fn from_datetime_styled(dt: DateTime<Utc>, style: TimeStyle) -> MosTime {
        MosTime::from_wire(&format_time(dt.naive_utc(), Zone::Utc, style))
    }

    /// Formats a time with its offset in spec style, `2009-04-11T14:22:07,125-05:00`.
    ///
    /// The offset is written as given, so `+00:00` stays `+00:00` (use
    /// [`MosTime::from_datetime`] for `Z`). An offset with a seconds part cannot be written in
    /// MOS format; such a time is converted to UTC and written with `Z`.
    pub fn from_fixed(dt: DateTime<FixedOffset>) -> MosTime {
        MosTime::from_fixed_styled(dt, TimeStyle::default())
    }

    /// Like [`MosTime::from_fixed`], formatted according to `style`.
    pub fn from_fixed_styled(dt: DateTime<FixedOffset>, style: TimeStyle) -> MosTime {
        let offset = *dt.offset();
        if offset.local_minus_utc() % 60 != 0 {
            return MosTime::from_datetime_styled(dt.with_timezone(&Utc), style);
        }
        MosTime::from_wire(&format_time(dt.naive_local(), Zone::Offset(offset), style))
    }

    /// The current time in UTC, spec style.
    pub fn now() -> MosTime {
        MosTime::from_datetime(Utc::now())
    }

    /// The text exactly as received (or as formatted by a constructor).
    pub fn as_wire(&self) -> &str {
        &self.text
    }

    /// How closely the text follows the spec format.
    pub fn conformance(&self) -> TimeConformance {
        self.conformance
    }

    /// The wall-clock date and time written in the text, whatever its zone.
    pub fn naive(&self) -> Option<NaiveDateTime> {
        self.naive
    }

    /// The zone written in the text (`Z` is `+00:00`); `None` when the text had no zone
    /// (the sender's local time) or no value.
    pub fn offset(&self) -> Option<FixedOffset> {
        self.offset
    }

    /// The value with its offset; `None` when unparseable, empty, or zone-less.
    pub fn to_fixed(&self) -> Option<DateTime<FixedOffset>> {
        let (naive, offset) = (self.naive?, self.offset?);
        let utc = naive.checked_sub_signed(TimeDelta::seconds(offset.local_minus_utc().into()))?;
        Some(DateTime::from_naive_utc_and_offset(utc, offset))
    }

    /// The instant in UTC; `None` when unparseable, empty, or zone-less.
    pub fn to_utc(&self) -> Option<DateTime<Utc>> {
        self.to_fixed().map(|dt| dt.with_timezone(&Utc))
    }

    /// The instant in UTC, reading a zone-less text as local time at `local`.
    /// A text with its own zone uses that zone.
    pub fn to_utc_assuming(&self, local: FixedOffset) -> Option<DateTime<Utc>> {
        let offset = self.offset.unwrap_or(local);
        let utc = self
            .naive?
            .checked_sub_signed(TimeDelta::seconds(offset.local_minus_utc().into()))?;
        Some(utc.and_utc())
    }

    /// True for empty or whitespace-only text (OpenMedia sends `<time></time>`).
    pub fn is_empty(&self) -> bool {
        self.conformance == TimeConformance::Empty
    }
}

impl fmt::Display for MosTime {
    /// Writes [`MosTime::as_wire`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A running order duration (roEdDur) as it appeared on the wire, with its parsed meaning.
///
/// Spec form is `hh:mm:ss` with at least two hour digits (hours may exceed 24). Accepted
/// variants: a single hour digit, one-digit minutes or seconds, `mm:ss` (minutes unbounded),
/// a bare number of seconds, a `.` or `,` fraction of 1–9 digits on the seconds, and
/// surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoDuration {
    text: String,
    conformance: TimeConformance,
    value: Option<Duration>,
}

impl RoDuration {
    /// Wraps received text. Never fails: the text is kept verbatim and a trimmed copy is parsed.
    pub fn from_wire(text: &str) -> RoDuration {
        let trimmed = text.trim();
        let (conformance, value) = if trimmed.is_empty() {
            (TimeConformance::Empty, None)
        } else {
            match parse_duration(trimmed) {
                Some((d, spec)) => {
                    let conformance = if spec && trimmed.len() == text.len() {
                        TimeConformance::Spec
                    } else {
                        TimeConformance::Variant
                    };
                    (conformance, Some(d))
                }
                None => (TimeConformance::Unparseable, None),
            }
        };
        RoDuration {
            text: text.to_owned(),
            conformance,
            value,
        }
    }

    /// Formats whole seconds as `hh:mm:ss` (more hour digits when needed).
    pub fn from_seconds(seconds: u64) -> RoDuration {
        let text = format!(
            "{:02}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        );
        RoDuration::from_wire(&text)
    }

    /// The text exactly as received (or as formatted by [`RoDuration::from_seconds`]).
    pub fn as_wire(&self) -> &str {
        &self.text
    }

    /// How closely the text follows the spec format.
    pub fn conformance(&self) -> TimeConformance {
        self.conformance
    }

    /// The duration; `None` when empty or unparseable.
    pub fn as_duration(&self) -> Option<Duration> {
        self.value
    }

    /// The duration in seconds; `None` when empty or unparseable.
    pub fn seconds(&self) -> Option<f64> {
        self.value.map(|d| d.as_secs_f64())
    }

    /// True for empty or whitespace-only text.
    pub fn is_empty(&self) -> bool {
        self.conformance == TimeConformance::Empty
    }
}

impl fmt::Display for RoDuration {
    /// Writes [`RoDuration::as_wire`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting

/// The zone to write after a formatted time.
enum Zone {
    Utc,
    Offset(FixedOffset),
}

/// Writes `YYYY-MM-DDThh:mm:ss[,ddd][Z|±hh:mm]`. A chrono leap second is written as `:60`.
fn format_time(naive: NaiveDateTime, zone: Zone, style: TimeStyle) -> String {
    use chrono::{Datelike, Timelike};
    let nanos = naive.nanosecond();
    let (second, nanos) = if nanos >= 1_000_000_000 {
        (naive.second() + 1, nanos - 1_000_000_000)
    } else {
        (naive.second(), nanos)
    };
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        naive.year(),
        naive.month(),
        naive.day(),
        naive.hour(),
        naive.minute(),
        second
    );
    if !style.omit_milliseconds {
        out.push_str(&format!(",{:03}", nanos / 1_000_000));
    }
    if !style.omit_timezone {
        match zone {
            Zone::Utc => out.push('Z'),
            Zone::Offset(offset) => {
                let secs = offset.local_minus_utc();
                let sign = if secs < 0 { '-' } else { '+' };
                let abs = secs.unsigned_abs();
                out.push_str(&format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// A byte cursor over ASCII text; non-ASCII bytes simply never match.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor {
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Consumes `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes the next byte if it is one of `set`, returning it.
    fn eat_any(&mut self, set: &[u8]) -> Option<u8> {
        let b = self.peek().filter(|b| set.contains(b))?;
        self.pos += 1;
        Some(b)
    }

    /// Consumes a run of ASCII digits; returns (value, digit count). The value is `None` when
    /// it overflows `u64`; the run is consumed either way.
    fn digits(&mut self) -> (Option<u64>, usize) {
        let mut value = Some(0u64);
        let mut count = 0;
        while let Some(b) = self.peek().filter(u8::is_ascii_digit) {
            value = value
                .and_then(|v| v.checked_mul(10))
                .and_then(|v| v.checked_add(u64::from(b - b'0')));
            count += 1;
            self.pos += 1;
        }
        (value, count)
    }

    /// Consumes exactly `n` digits (no more follow); returns their value.
    fn fixed(&mut self, n: usize) -> Option<u32> {
        let (value, count) = self.digits();
        if count != n {
            return None;
        }
        u32::try_from(value?).ok()
    }

    /// Consumes an optional fraction: `,` or `.` then 1–9 digits. Returns
    /// (nanoseconds, spec-conformant); no fraction yields (0, true).
    fn fraction(&mut self) -> Option<(u32, bool)> {
        let Some(sep) = self.eat_any(b",.") else {
            return Some((0, true));
        };
        let (value, count) = self.digits();
        if !(1..=9).contains(&count) {
            return None;
        }
        let scale = 10u64.checked_pow(u32::try_from(9 - count).ok()?)?;
        let nanos = u32::try_from(value?.checked_mul(scale)?).ok()?;
        Some((nanos, sep == b',' && count == 3))
    }
}

/// A successfully parsed time text.
struct ParsedTime {
    naive: NaiveDateTime,
    offset: Option<FixedOffset>,
    /// True when every part used the spec spelling.
    spec: bool,
}

/// Parses trimmed time text; `None` when it is not an accepted form.
fn parse_time(text: &str) -> Option<ParsedTime> {
    let mut c = Cursor::new(text);
    let year = c.fixed(4)?;
    c.eat(b'-').then_some(())?;
    let month = c.fixed(2)?;
    c.eat(b'-').then_some(())?;
    let day = c.fixed(2)?;
    let sep = c.eat_any(b"Tt ")?;
    let hour = c.fixed(2)?;
    c.eat(b':').then_some(())?;
    let minute = c.fixed(2)?;
    c.eat(b':').then_some(())?;
    let second = c.fixed(2)?;
    let (nanos, frac_spec) = c.fraction()?;
    let (offset, zone_spec) = parse_zone(&mut c)?;
    if !c.at_end() {
        return None;
    }

    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    // `:60` is a leap second; chrono represents it as :59 with nanos past one second.
    let time = if second == 60 {
        NaiveTime::from_hms_nano_opt(hour, minute, 59, nanos.checked_add(1_000_000_000)?)?
    } else {
        NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?
    };
    Some(ParsedTime {
        naive: NaiveDateTime::new(date, time),
        offset,
        spec: sep == b'T' && frac_spec && zone_spec,
    })
}

/// Parses the optional zone: `Z`, `±hh:mm` (spec), or `z`, `±hhmm`, `±hh`, `±h:mm`.
/// Returns (offset, spec-conformant); `None` when malformed.
fn parse_zone(c: &mut Cursor<'_>) -> Option<(Option<FixedOffset>, bool)> {
    if c.at_end() {
        return Some((None, true));
    }
    if let Some(z) = c.eat_any(b"Zz") {
        return Some((Some(FixedOffset::east_opt(0)?), z == b'Z'));
    }
    let sign = c.eat_any(b"+-")?;
    let (value, count) = c.digits();
    let value = u32::try_from(value?).ok()?;
    let (hours, minutes, spec) = match count {
        1 | 2 if c.eat(b':') => (value, c.fixed(2)?, count == 2),
        2 => (value, 0, false),
        4 => (value / 100, value % 100, false),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    let secs = i32::try_from(hours * 3600 + minutes * 60).ok()?;
    let secs = if sign == b'-' { -secs } else { secs };
    Some((Some(FixedOffset::east_opt(secs)?), spec))
}

/// Parses trimmed duration text into (duration, spec-conformant); `None` when not accepted.
fn parse_duration(text: &str) -> Option<(Duration, bool)> {
    let mut c = Cursor::new(text);
    let mut groups: Vec<(u64, usize)> = Vec::with_capacity(3);
    loop {
        let (value, count) = c.digits();
        if count == 0 {
            return None;
        }
        groups.push((value?, count));
        if groups.len() == 3 || !c.eat(b':') {
            break;
        }
    }
    let (nanos, _) = c.fraction()?;
    if !c.at_end() {
        return None;
    }
    // Any fraction makes the text a variant, even `,000`.
    let had_fraction = text.contains([',', '.']);
    // Every group after the first is a sexagesimal field of one or two digits.
    let sub_ok = |&(v, n): &(u64, usize)| (1..=2).contains(&n) && v < 60;
    let (seconds, spec) = match groups.as_slice() {
        [(secs, _)] => (*secs, false),
        [(m, _), s] if sub_ok(s) => (m.checked_mul(60)?.checked_add(s.0)?, false),
        [(h, hn), m, s] if sub_ok(m) && sub_ok(s) => {
            let total = h
                .checked_mul(3600)?
                .checked_add(m.0 * 60)?
                .checked_add(s.0)?;
            let spec = *hn >= 2 && m.1 == 2 && s.1 == 2 && !had_fraction;
            (total, spec)
        }
        _ => return None,
    };
    Some((Duration::new(seconds, nanos), spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ndt(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|date| date.and_hms_nano_opt(h, mi, s, nanos))
            .expect("valid test date")
    }

    fn off(secs: i32) -> Option<FixedOffset> {
        FixedOffset::east_opt(secs)
    }

    use TimeConformance::{Empty, Spec, Unparseable, Variant};

    #[test]
    fn time_accepted_forms() {
        const H: i32 = 3600;
        let base = |nanos| ndt(2009, 4, 11, 14, 22, 7, nanos);
        let cases: &[(&str, TimeConformance, NaiveDateTime, Option<FixedOffset>)] = &[
            // Spec forms.
            ("2009-04-11T14:22:07,125Z", Spec, base(125_000_000), off(0)),
            (
                "2009-04-11T14:22:07,125-05:00",
                Spec,
                base(125_000_000),
                off(-5 * H),
            ),
            (
                "2009-04-11T14:22:07+05:30",
                Spec,
                base(0),
                off(5 * H + 1800),
            ),
            ("2009-04-11T14:22:07", Spec, base(0), None),
            ("2009-04-11T14:22:07,000", Spec, base(0), None),
            ("2009-04-11T14:22:07-00:00", Spec, base(0), off(0)),
            (
                "2009-04-11T14:22:07+23:59",
                Spec,
                base(0),
                off(23 * H + 59 * 60),
            ),
            // Variants.
            (
                "2009-04-11T14:22:07.125Z",
                Variant,
                base(125_000_000),
                off(0),
            ),
            ("2009-04-11T14:22:07,1Z", Variant, base(100_000_000), off(0)),
            ("2009-04-11T14:22:07,12", Variant, base(120_000_000), None),
            (
                "2009-04-11T14:22:07.123456789",
                Variant,
                base(123_456_789),
                None,
            ),
            (
                "2009-04-11T14:22:07,123456",
                Variant,
                base(123_456_000),
                None,
            ),
            (
                "2009-04-11T14:22:07+0530",
                Variant,
                base(0),
                off(5 * H + 1800),
            ),
            ("2009-04-11T14:22:07-05", Variant, base(0), off(-5 * H)),
            ("2009-04-11T14:22:07-5:00", Variant, base(0), off(-5 * H)),
            ("2009-04-11T14:22:07+1:30", Variant, base(0), off(H + 1800)),
            ("2009-04-11t14:22:07z", Variant, base(0), off(0)),
            ("2009-04-11 14:22:07", Variant, base(0), None),
            (
                "  2009-04-11T14:22:07,125Z\n",
                Variant,
                base(125_000_000),
                off(0),
            ),
            ("\t2009-04-11T14:22:07", Variant, base(0), None),
            // Calendar edges.
            (
                "2000-02-29T00:00:00Z",
                Spec,
                ndt(2000, 2, 29, 0, 0, 0, 0),
                off(0),
            ),
            (
                "2024-02-29T23:59:59,999Z",
                Spec,
                ndt(2024, 2, 29, 23, 59, 59, 999_000_000),
                off(0),
            ),
            (
                "1999-12-31T23:59:59",
                Spec,
                ndt(1999, 12, 31, 23, 59, 59, 0),
                None,
            ),
            ("0000-01-01T00:00:00", Spec, ndt(0, 1, 1, 0, 0, 0, 0), None),
            (
                "9999-12-31T23:59:59,999+14:00",
                Spec,
                ndt(9999, 12, 31, 23, 59, 59, 999_000_000),
                off(14 * H),
            ),
            // Leap second: chrono keeps it as :59 plus one second of nanos.
            (
                "2016-12-31T23:59:60Z",
                Spec,
                ndt(2016, 12, 31, 23, 59, 59, 1_000_000_000),
                off(0),
            ),
        ];
        for (text, conf, naive, offset) in cases {
            let t = MosTime::from_wire(text);
            assert_eq!(t.as_wire(), *text);
            assert_eq!(t.conformance(), *conf, "conformance of {text:?}");
            assert_eq!(t.naive(), Some(*naive), "value of {text:?}");
            assert_eq!(t.offset(), *offset, "offset of {text:?}");
            assert!(!t.is_empty());
        }
    }

    #[test]
    fn time_to_utc() {
        let utc = |s: &str| MosTime::from_wire(s).to_utc();
        let want = Some(ndt(2009, 4, 11, 19, 22, 7, 125_000_000).and_utc());
        assert_eq!(utc("2009-04-11T14:22:07,125-05:00"), want);
        assert_eq!(utc("2009-04-11T19:22:07,125Z"), want);
        assert_eq!(utc("2009-04-11T21:22:07.125+0200"), want);
        // Crossing midnight and a leap day.
        assert_eq!(
            utc("2024-03-01T01:30:00+02:00"),
            Some(ndt(2024, 2, 29, 23, 30, 0, 0).and_utc())
        );
        assert_eq!(
            utc("2023-12-31T22:00:00-03:00"),
            Some(ndt(2024, 1, 1, 1, 0, 0, 0).and_utc())
        );
        // Zone-less, empty, unparseable.
        assert_eq!(utc("2009-04-11T14:22:07"), None);
        assert_eq!(utc(""), None);
        assert_eq!(utc("garbage"), None);
        // Zone-less read as local time at an assumed offset.
        let t = MosTime::from_wire("2009-04-11T14:22:07");
        assert_eq!(
            t.to_utc_assuming(FixedOffset::east_opt(3600).expect("offset")),
            Some(ndt(2009, 4, 11, 13, 22, 7, 0).and_utc())
        );
        let z = MosTime::from_wire("2009-04-11T14:22:07Z");
        assert_eq!(
            z.to_utc_assuming(FixedOffset::east_opt(3600).expect("offset")),
            z.to_utc()
        );
        assert_eq!(
            MosTime::from_wire("2009-04-11T14:22:07-05:00")
                .to_fixed()
                .map(|d| d.to_rfc3339()),
            Some("2009-04-11T14:22:07-05:00".to_owned())
        );
    }

    #[test]
    fn time_rejected_forms() {
        let bad = [
            "garbage",
            "12/9/2019 3:18:18 PM",
            "2009-04-11",
            "2009-04-11T14:22",
            "2009-04-11T14:22:07,",
            "2009-04-11T14:22:07,1234567890",
            "2009-04-11T14:22:07,12a",
            "2009-04-11T14:22:07+",
            "2009-04-11T14:22:07+5",
            "2009-04-11T14:22:07+053",
            "2009-04-11T14:22:07+05:3",
            "2009-04-11T14:22:07+24:00",
            "2009-04-11T14:22:07+05:60",
            "2009-04-11T14:22:07+123456",
            "2009-04-11T14:22:07ZZ",
            "2009-04-11T14:22:07 Z",
            "2009-04-11T14:22:07Z extra",
            "2009-04-11X14:22:07",
            "2009-04-11  14:22:07",
            "2009-4-11T14:22:07",
            "09-04-11T14:22:07",
            "2009-13-01T00:00:00",
            "2009-00-01T00:00:00",
            "2009-02-29T00:00:00",
            "1900-02-29T00:00:00",
            "2009-04-31T00:00:00",
            "2009-04-11T24:00:00",
            "2009-04-11T14:60:00",
            "2009-04-11T14:22:61",
            "2009-04-11T14:22:07,125+05:00:00",
            "２００９-04-11T14:22:07",
            "2009-04-11T14:22:07,１２５",
            "+2009-04-11T14:22:07",
        ];
        for text in bad {
            let t = MosTime::from_wire(text);
            assert_eq!(t.conformance(), Unparseable, "{text:?}");
            assert_eq!(t.as_wire(), text);
            assert_eq!(t.naive(), None);
            assert_eq!(t.offset(), None);
            assert_eq!(t.to_utc(), None);
            assert!(!t.is_empty());
        }
    }

    #[test]
    fn time_empty() {
        for text in ["", " ", "\r\n\t "] {
            let t = MosTime::from_wire(text);
            assert_eq!(t.conformance(), Empty);
            assert!(t.is_empty());
            assert_eq!(t.as_wire(), text);
            assert_eq!(t.naive(), None);
            assert_eq!(t.to_utc(), None);
            assert_eq!(t.to_string(), text);
        }
    }

    #[test]
    fn time_formatting() {
        let dt = ndt(2009, 4, 11, 14, 22, 7, 125_999_999).and_utc();
        let t = MosTime::from_datetime(dt);
        assert_eq!(t.as_wire(), "2009-04-11T14:22:07,125Z");
        assert_eq!(t.conformance(), Spec);
        assert_eq!(
            t.to_utc(),
            Some(ndt(2009, 4, 11, 14, 22, 7, 125_000_000).and_utc())
        );
        assert_eq!(t.to_string(), "2009-04-11T14:22:07,125Z");

        let fixed = |secs: i32| FixedOffset::east_opt(secs).expect("offset");
        let local = dt.with_timezone(&fixed(-5 * 3600));
        let t = MosTime::from_fixed(local);
        assert_eq!(t.as_wire(), "2009-04-11T09:22:07,125-05:00");
        assert_eq!(t.conformance(), Spec);
        assert_eq!(t.to_utc(), MosTime::from_datetime(dt).to_utc());
        assert_eq!(
            MosTime::from_fixed(dt.with_timezone(&fixed(0))).as_wire(),
            "2009-04-11T14:22:07,125+00:00"
        );
        assert_eq!(
            MosTime::from_fixed(dt.with_timezone(&fixed(5 * 3600 + 45 * 60))).as_wire(),
            "2009-04-11T20:07:07,125+05:45"
        );
        // An offset with seconds has no MOS spelling: written as UTC.
        assert_eq!(
            MosTime::from_fixed(dt.with_timezone(&fixed(3601))).as_wire(),
            "2009-04-11T14:22:07,125Z"
        );

        // Octopus-style options.
        let no_ms = TimeStyle {
            omit_milliseconds: true,
            ..TimeStyle::default()
        };
        let no_tz = TimeStyle {
            omit_timezone: true,
            ..TimeStyle::default()
        };
        let neither = TimeStyle {
            omit_milliseconds: true,
            omit_timezone: true,
        };
        assert_eq!(
            MosTime::from_datetime_styled(dt, no_ms).as_wire(),
            "2009-04-11T14:22:07Z"
        );
        assert_eq!(
            MosTime::from_fixed_styled(local, no_tz).as_wire(),
            "2009-04-11T09:22:07,125"
        );
        let t = MosTime::from_fixed_styled(local, neither);
        assert_eq!(t.as_wire(), "2009-04-11T09:22:07");
        assert_eq!(t.conformance(), Spec);
        assert_eq!(t.offset(), None);
        assert_eq!(t.naive(), Some(ndt(2009, 4, 11, 9, 22, 7, 0)));

        // Leap second survives formatting.
        let leap = ndt(2016, 12, 31, 23, 59, 59, 1_500_000_000).and_utc();
        let t = MosTime::from_datetime(leap);
        assert_eq!(t.as_wire(), "2016-12-31T23:59:60,500Z");
        assert_eq!(t.to_utc(), Some(leap));

        // Years without a four-digit form.
        let far = ndt(10000, 1, 1, 0, 0, 0, 0).and_utc();
        assert_eq!(MosTime::from_datetime(far).conformance(), Unparseable);

        let now = MosTime::now();
        assert_eq!(now.conformance(), Spec);
        assert!(now.as_wire().ends_with('Z'));
    }

    #[test]
    fn duration_forms() {
        let cases: &[(&str, TimeConformance, u64, u32)] = &[
            ("00:58:25", Spec, 58 * 60 + 25, 0),
            ("01:30:00", Spec, 5400, 0),
            ("00:00:00", Spec, 0, 0),
            ("25:00:00", Spec, 90_000, 0),
            ("123:04:05", Spec, 123 * 3600 + 245, 0),
            ("1:30:00", Variant, 5400, 0),
            ("1:02:03.5", Variant, 3723, 500_000_000),
            ("0:00:01,250", Variant, 1, 250_000_000),
            ("00:58:25.000", Variant, 3505, 0),
            ("01:2:3", Variant, 3723, 0),
            ("58:25", Variant, 3505, 0),
            ("90:00", Variant, 5400, 0),
            ("5:07", Variant, 307, 0),
            ("3505", Variant, 3505, 0),
            ("12.75", Variant, 12, 750_000_000),
            ("0", Variant, 0, 0),
            (" 00:58:25 ", Variant, 3505, 0),
            ("\t01:00:00\r\n", Variant, 3600, 0),
        ];
        for (text, conf, secs, nanos) in cases {
            let d = RoDuration::from_wire(text);
            assert_eq!(d.as_wire(), *text);
            assert_eq!(d.conformance(), *conf, "conformance of {text:?}");
            assert_eq!(
                d.as_duration(),
                Some(Duration::new(*secs, *nanos)),
                "value of {text:?}"
            );
            let want = *secs as f64 + f64::from(*nanos) / 1e9;
            assert_eq!(d.seconds(), Some(want));
            assert!(!d.is_empty());
        }
        let bad = [
            "abc",
            "00:60:00",
            "00:00:60",
            "00:000:00",
            "1:2:3:4",
            ":30",
            "30:",
            "00:58:25.",
            "00:58:25.1234567890",
            "-00:00:01",
            "+5",
            "1e3",
            "00 58 25",
            "99999999999999999999999",
            "99999999999999999:00:00",
            "５",
        ];
        for text in bad {
            let d = RoDuration::from_wire(text);
            assert_eq!(d.conformance(), Unparseable, "{text:?}");
            assert_eq!(d.as_wire(), text);
            assert_eq!(d.as_duration(), None);
            assert_eq!(d.seconds(), None);
        }
        for text in ["", "  "] {
            let d = RoDuration::from_wire(text);
            assert_eq!(d.conformance(), Empty);
            assert!(d.is_empty());
            assert_eq!(d.as_duration(), None);
        }
    }

    #[test]
    fn duration_formatting() {
        let cases: &[(u64, &str)] = &[
            (0, "00:00:00"),
            (3505, "00:58:25"),
            (5400, "01:30:00"),
            (90_000, "25:00:00"),
            (360_000, "100:00:00"),
        ];
        for (secs, text) in cases {
            let d = RoDuration::from_seconds(*secs);
            assert_eq!(d.as_wire(), *text);
            assert_eq!(d.to_string(), *text);
            assert_eq!(d.conformance(), Spec);
            assert_eq!(d.as_duration(), Some(Duration::from_secs(*secs)));
        }
        let max = RoDuration::from_seconds(u64::MAX);
        assert_eq!(max.as_duration(), Some(Duration::from_secs(u64::MAX)));
    }

    proptest! {
        #[test]
        fn arbitrary_text_round_trips(s in any::<String>()) {
            let t = MosTime::from_wire(&s);
            prop_assert_eq!(t.as_wire(), s.as_str());
            prop_assert_eq!(t.to_string(), s.clone());
            let _ = (t.to_utc(), t.to_fixed(), t.conformance());
            let d = RoDuration::from_wire(&s);
            prop_assert_eq!(d.as_wire(), s.as_str());
            let _ = (d.seconds(), d.conformance());
        }

        #[test]
        fn timeish_text_round_trips(s in "[ 0-9Tt:,.+Zz-]{0,32}") {
            let t = MosTime::from_wire(&s);
            prop_assert_eq!(t.as_wire(), s.as_str());
            prop_assert_eq!(t.naive().is_some(), matches!(t.conformance(), Spec | Variant));
            let d = RoDuration::from_wire(&s);
            prop_assert_eq!(d.as_wire(), s.as_str());
            prop_assert_eq!(d.as_duration().is_some(), matches!(d.conformance(), Spec | Variant));
        }

        #[test]
        fn formatted_instants_parse_back(
            secs in -62_167_219_200i64..253_402_300_799i64,
            millis in 0u32..1000,
            offset_min in -(23 * 60 + 59)..=(23 * 60 + 59),
        ) {
            let Some(dt) = DateTime::from_timestamp(secs, millis * 1_000_000) else {
                return Ok(());
            };
            let t = MosTime::from_datetime(dt);
            prop_assert_eq!(t.conformance(), Spec);
            prop_assert_eq!(t.to_utc(), Some(dt));
            let Some(offset) = FixedOffset::east_opt(offset_min * 60) else { return Ok(()) };
            let local = dt.with_timezone(&offset);
            let t = MosTime::from_fixed(local);
            // Local wall clock may leave 0000–9999 near the ends of the range.
            if t.conformance() == Spec {
                prop_assert_eq!(t.to_utc(), Some(dt));
                prop_assert_eq!(t.offset(), Some(offset));
            }
        }

        #[test]
        fn formatted_durations_parse_back(secs in any::<u64>()) {
            let d = RoDuration::from_seconds(secs);
            prop_assert_eq!(d.conformance(), Spec);
            prop_assert_eq!(d.as_duration(), Some(Duration::from_secs(secs)));
        }
    }
}
