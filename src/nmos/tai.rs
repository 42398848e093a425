//! TAI timestamps as every NMOS API writes them: `"<seconds>:<nanoseconds>"`.
//!
//! Facts this module relies on (reference `nmos.md` §1.1 and the IS-08 behaviour text):
//!
//! - The wire form matches `^[0-9]+:[0-9]+$`. The colon is **not** a decimal point:
//!   `"1439299836:10"` is 1439299836 s plus 10 ns. Values are compared as `(seconds,
//!   nanoseconds)` tuples, which is what the derived [`Ord`] does.
//! - **Epoch.** Absolute times count TAI seconds since the PTP/SMPTE epoch
//!   1970-01-01T00:00:00 **TAI** (not UTC), which is written `"0:0"`. Because TAI ran 10 s ahead
//!   of UTC when leap seconds began in 1972 and 37 s ahead since 2017-01-01, a UTC (Unix) time
//!   converts as `tai = unix + (TAI − UTC)` with the offset taken from [`LEAP_SECONDS`].
//! - **`"0:0"`.** As an absolute time it is the epoch itself. As a *relative* time
//!   (`activate_scheduled_relative`) it is a duration measured from the moment the device
//!   receives the request, so `"0:0"` means "immediately" ([`TaiTime::ZERO`]).
//!
//! UTC before 1972 had no integral offset from TAI; this module uses the 1972 offset (10 s) for
//! every earlier instant, so conversions there are exact inverses of each other but not
//! historically exact. Instants that would fall before the TAI epoch saturate to
//! [`TaiTime::ZERO`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use thiserror::Error;

const NANOS_PER_SEC: u32 = 1_000_000_000;

/// TAI − UTC from each date on: `(Unix time of 00:00:00 UTC on the day the offset starts,
/// offset in seconds)`. Source: IERS Bulletin C / IETF `leap-seconds.list`. Every leap second so
/// far was positive and inserted as 23:59:60 on the last day before the listed date.
///
/// Maintenance: when IERS Bulletin C announces a new leap second, append a row. As of this
/// table, none has been announced after 2017-01-01 (offset 37 s). The unit test
/// `table_dates_match_calendar` checks each row against the calendar date in its comment.
pub const LEAP_SECONDS: &[(i64, i64)] = &[
    (63_072_000, 10),    // 1972-01-01
    (78_796_800, 11),    // 1972-07-01
    (94_694_400, 12),    // 1973-01-01
    (126_230_400, 13),   // 1974-01-01
    (157_766_400, 14),   // 1975-01-01
    (189_302_400, 15),   // 1976-01-01
    (220_924_800, 16),   // 1977-01-01
    (252_460_800, 17),   // 1978-01-01
    (283_996_800, 18),   // 1979-01-01
    (315_532_800, 19),   // 1980-01-01
    (362_793_600, 20),   // 1981-07-01
    (394_329_600, 21),   // 1982-07-01
    (425_865_600, 22),   // 1983-07-01
    (489_024_000, 23),   // 1985-07-01
    (567_993_600, 24),   // 1988-01-01
    (631_152_000, 25),   // 1990-01-01
    (662_688_000, 26),   // 1991-01-01
    (709_948_800, 27),   // 1992-07-01
    (741_484_800, 28),   // 1993-07-01
    (773_020_800, 29),   // 1994-07-01
    (820_454_400, 30),   // 1996-01-01
    (867_715_200, 31),   // 1997-07-01
    (915_148_800, 32),   // 1999-01-01
    (1_136_073_600, 33), // 2006-01-01
    (1_230_768_000, 34), // 2009-01-01
    (1_341_100_800, 35), // 2012-07-01
    (1_435_708_800, 36), // 2015-07-01
    (1_483_228_800, 37), // 2017-01-01
];

/// TAI − UTC in seconds at the given Unix (UTC) second. Before 1972 the 1972 value (10 s).
pub fn tai_minus_utc(unix_seconds: i64) -> i64 {
    LEAP_SECONDS
        .iter()
        .rev()
        .find(|(start, _)| *start <= unix_seconds)
        .map_or(LEAP_SECONDS[0].1, |(_, offset)| *offset)
}

/// Why a `"<seconds>:<nanoseconds>"` string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TaiParseError {
    /// No `:` separating seconds from nanoseconds.
    #[error("TAI timestamp {0:?} is not of the form <seconds>:<nanoseconds>")]
    MissingColon(String),
    /// A part is empty or has a character other than an ASCII digit (signs, spaces, dots...).
    #[error("TAI timestamp {input:?}: {part} must be one or more ASCII digits")]
    NotDigits {
        /// The whole input.
        input: String,
        /// `"seconds"` or `"nanoseconds"`.
        part: &'static str,
    },
    /// The seconds do not fit in 64 bits.
    #[error("TAI timestamp {0:?}: seconds out of range")]
    SecondsOutOfRange(String),
    /// The nanoseconds are 1 000 000 000 or more.
    #[error("TAI timestamp {0:?}: nanoseconds must be less than 1000000000")]
    NanosecondsOutOfRange(String),
}

/// An NMOS TAI time: absolute (since 1970-01-01T00:00:00 TAI) or relative (a duration), as the
/// field it comes from decides. Ordered as the tuple `(seconds, nanoseconds)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TaiTime {
    /// Whole seconds.
    pub seconds: u64,
    /// Nanoseconds, always below 1 000 000 000.
    pub nanoseconds: u32,
}

impl TaiTime {
    /// `"0:0"`: the TAI epoch as an absolute time; "immediately" as a relative time.
    pub const ZERO: TaiTime = TaiTime {
        seconds: 0,
        nanoseconds: 0,
    };

    /// A time from its parts, or `None` if `nanoseconds` is 1 000 000 000 or more.
    pub fn new(seconds: u64, nanoseconds: u32) -> Option<TaiTime> {
        (nanoseconds < NANOS_PER_SEC).then_some(TaiTime {
            seconds,
            nanoseconds,
        })
    }

    /// Parses `"<seconds>:<nanoseconds>"` strictly: ASCII digits only on both sides (leading
    /// zeros allowed, as the NMOS regex allows them), seconds within `u64`, nanoseconds below
    /// 1 000 000 000. No whitespace, signs or fractions.
    pub fn parse(s: &str) -> Result<TaiTime, TaiParseError> {
        let (secs, nanos) = s
            .split_once(':')
            .ok_or_else(|| TaiParseError::MissingColon(s.to_owned()))?;
        let digits = |part: &str, name: &'static str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                Err(TaiParseError::NotDigits {
                    input: s.to_owned(),
                    part: name,
                })
            } else {
                Ok(())
            }
        };
        digits(secs, "seconds")?;
        digits(nanos, "nanoseconds")?;
        let seconds: u64 = secs
            .parse()
            .map_err(|_| TaiParseError::SecondsOutOfRange(s.to_owned()))?;
        let nanoseconds = nanos
            .parse::<u64>()
            .ok()
            .filter(|n| *n < u64::from(NANOS_PER_SEC))
            .ok_or_else(|| TaiParseError::NanosecondsOutOfRange(s.to_owned()))?;
        Ok(TaiTime {
            seconds,
            nanoseconds: nanoseconds as u32,
        })
    }

    /// The TAI time of a UTC instant, applying [`LEAP_SECONDS`]. A chrono leap second
    /// (23:59:60, sub-second nanoseconds ≥ 1e9) maps to the TAI second between the two
    /// offsets, so UTC → TAI is one-to-one. Instants before the TAI epoch give [`TaiTime::ZERO`].
    pub fn from_utc(utc: DateTime<Utc>) -> TaiTime {
        let unix = i128::from(utc.timestamp());
        let sub = utc.timestamp_subsec_nanos();
        let carry = i128::from(sub / NANOS_PER_SEC);
        let nanoseconds = sub % NANOS_PER_SEC;
        let seconds = unix + i128::from(tai_minus_utc(utc.timestamp())) + carry;
        if seconds < 0 {
            return TaiTime::ZERO;
        }
        TaiTime {
            seconds: u64::try_from(seconds).unwrap_or(u64::MAX),
            nanoseconds,
        }
    }

    /// The UTC instant of this absolute TAI time. The TAI second inside an inserted leap second
    /// comes back as chrono's 23:59:60 representation. Times beyond chrono's range saturate to
    /// [`DateTime::<Utc>::MAX_UTC`].
    pub fn to_utc(&self) -> DateTime<Utc> {
        let Ok(tai) = i64::try_from(self.seconds) else {
            return DateTime::<Utc>::MAX_UTC;
        };
        let mut offset = LEAP_SECONDS[0].1;
        for pair in LEAP_SECONDS.windows(2) {
            let (prev, (start, next)) = (pair[0].1, pair[1]);
            if tai >= start.saturating_add(next) {
                offset = next;
            } else if next == prev + 1 && tai >= start.saturating_add(prev) {
                // The inserted second: chrono writes 23:59:60 of the day before `start` as the
                // previous second with sub-second nanoseconds of 1e9 or more.
                return DateTime::from_timestamp(start - 1, NANOS_PER_SEC + self.nanoseconds)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
            } else {
                break;
            }
        }
        DateTime::from_timestamp(tai - offset, self.nanoseconds).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The current TAI time, from the system's UTC clock and [`LEAP_SECONDS`].
    pub fn now() -> TaiTime {
        TaiTime::from_utc(Utc::now())
    }

    /// True for `"0:0"`.
    pub fn is_zero(&self) -> bool {
        *self == TaiTime::ZERO
    }

    /// This time as a duration (for relative times).
    pub fn as_duration(&self) -> Duration {
        Duration::new(self.seconds, self.nanoseconds)
    }
}

impl From<Duration> for TaiTime {
    fn from(d: Duration) -> TaiTime {
        TaiTime {
            seconds: d.as_secs(),
            nanoseconds: d.subsec_nanos(),
        }
    }
}

impl fmt::Display for TaiTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seconds, self.nanoseconds)
    }
}

impl FromStr for TaiTime {
    type Err = TaiParseError;
    fn from_str(s: &str) -> Result<TaiTime, TaiParseError> {
        TaiTime::parse(s)
    }
}

impl serde::Serialize for TaiTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TaiTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<TaiTime, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        TaiTime::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn table_dates_match_calendar() {
        let dates = [
            (1972, 1),
            (1972, 7),
            (1973, 1),
            (1974, 1),
            (1975, 1),
            (1976, 1),
            (1977, 1),
            (1978, 1),
            (1979, 1),
            (1980, 1),
            (1981, 7),
            (1982, 7),
            (1983, 7),
            (1985, 7),
            (1988, 1),
            (1990, 1),
            (1991, 1),
            (1992, 7),
            (1993, 7),
            (1994, 7),
            (1996, 1),
            (1997, 7),
            (1999, 1),
            (2006, 1),
            (2009, 1),
            (2012, 7),
            (2015, 7),
            (2017, 1),
        ];
        assert_eq!(dates.len(), LEAP_SECONDS.len());
        for (i, ((y, m), (unix, offset))) in dates.iter().zip(LEAP_SECONDS).enumerate() {
            let d = NaiveDate::from_ymd_opt(*y, *m, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc();
            assert_eq!(d.timestamp(), *unix, "{y}-{m}");
            assert_eq!(*offset, 10 + i as i64);
        }
    }
}
