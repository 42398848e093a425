//! Pure NMOS pieces: TAI timestamps and the IS-08 map check.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use mos_gateway::nmos::is08_check::{
    ChannelMap, Is08Input, Is08Output, MapEntry, Violation, check,
};
use mos_gateway::nmos::tai::{TaiParseError, TaiTime};
use proptest::prelude::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_opt(h, mi, s)
        .unwrap()
        .and_utc()
}

fn tai(s: &str) -> TaiTime {
    TaiTime::parse(s).unwrap()
}

// ---------------------------------------------------------------- TAI

#[test]
fn parse_and_display() {
    for (s, secs, nanos, shown) in [
        ("0:0", 0, 0, "0:0"),
        ("1439299836:10", 1439299836, 10, "1439299836:10"),
        ("1:999999999", 1, 999_999_999, "1:999999999"),
        ("007:000000010", 7, 10, "7:10"),
        (
            "18446744073709551615:0",
            u64::MAX,
            0,
            "18446744073709551615:0",
        ),
    ] {
        let t = tai(s);
        assert_eq!((t.seconds, t.nanoseconds), (secs, nanos), "{s}");
        assert_eq!(t.to_string(), shown);
        assert_eq!(s.parse::<TaiTime>().unwrap(), t);
    }
    assert!(TaiTime::ZERO.is_zero());
    assert_eq!(tai("0:0"), TaiTime::ZERO);
}

#[test]
fn parse_rejects() {
    for s in [
        "", ":", "1", "1:", ":1", "1.5", "1:2:3", "-1:0", "+1:0", "1:-0", " 1:0", "1:0 ", "1 :0",
        "a:0", "1:0x1", "1:1e3", "١:0",
    ] {
        assert!(TaiTime::parse(s).is_err(), "{s:?} accepted");
    }
    assert!(matches!(
        TaiTime::parse("1:1000000000"),
        Err(TaiParseError::NanosecondsOutOfRange(_))
    ));
    assert!(matches!(
        TaiTime::parse("18446744073709551616:0"),
        Err(TaiParseError::SecondsOutOfRange(_))
    ));
    assert!(matches!(
        TaiTime::parse("12"),
        Err(TaiParseError::MissingColon(_))
    ));
    let msg = TaiTime::parse("1:x").unwrap_err().to_string();
    assert!(
        msg.contains("nanoseconds") && msg.contains("\"1:x\""),
        "{msg}"
    );
}

#[test]
fn ordering_is_tuple_not_string() {
    assert!(tai("2:0") < tai("10:0"));
    assert!(tai("1:10") > tai("1:9"));
    assert!(tai("1:999999999") < tai("2:0"));
}

#[test]
fn serde_as_string() {
    let t: TaiTime = serde_json::from_str("\"1544448739:5\"").unwrap();
    assert_eq!(t, TaiTime::new(1544448739, 5).unwrap());
    assert_eq!(serde_json::to_string(&t).unwrap(), "\"1544448739:5\"");
    assert!(serde_json::from_str::<TaiTime>("\"1:1000000000\"").is_err());
}

#[test]
fn utc_to_tai_across_leap_seconds() {
    let cases = [
        // (UTC, TAI seconds) ; TAI = unix + offset
        (utc(1970, 1, 1, 0, 0, 0), 10),
        (utc(1971, 12, 31, 23, 59, 59), 63_072_000 - 1 + 10),
        (utc(1972, 1, 1, 0, 0, 0), 63_072_000 + 10),
        (utc(1972, 6, 30, 23, 59, 59), 78_796_800 - 1 + 10),
        (utc(1972, 7, 1, 0, 0, 0), 78_796_800 + 11),
        (utc(2008, 12, 31, 23, 59, 59), 1_230_768_000 - 1 + 33),
        (utc(2009, 1, 1, 0, 0, 0), 1_230_768_000 + 34),
        (utc(2016, 12, 31, 23, 59, 59), 1_483_228_799 + 36),
        (utc(2017, 1, 1, 0, 0, 0), 1_483_228_800 + 37),
        (utc(2024, 6, 1, 12, 0, 0), 1_717_243_200 + 37),
    ];
    for (u, secs) in cases {
        let t = TaiTime::from_utc(u);
        assert_eq!(t, TaiTime::new(secs, 0).unwrap(), "{u}");
        assert_eq!(t.to_utc(), u, "{u}");
    }
}

#[test]
fn inserted_leap_second_is_its_own_tai_second() {
    // 2016-12-31T23:59:60.5 UTC: chrono represents it as :59 with 1.5e9 ns.
    let leap = DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap();
    let t = TaiTime::from_utc(leap);
    assert_eq!(t, TaiTime::new(1_483_228_836, 500_000_000).unwrap());
    assert_eq!(t.to_utc(), leap);
    // The TAI seconds around it are consecutive.
    assert_eq!(tai("1483228835:0").to_utc(), utc(2016, 12, 31, 23, 59, 59));
    assert_eq!(tai("1483228837:0").to_utc(), utc(2017, 1, 1, 0, 0, 0));
    assert_eq!(
        tai("1483228836:0").to_utc().to_rfc3339(),
        "2016-12-31T23:59:60+00:00"
    );
}

#[test]
fn before_epoch_saturates_and_now_is_sane() {
    assert_eq!(TaiTime::from_utc(utc(1969, 12, 31, 0, 0, 0)), TaiTime::ZERO);
    assert_eq!(TaiTime::ZERO.to_utc(), utc(1969, 12, 31, 23, 59, 50));
    let now = TaiTime::now();
    let unix = Utc::now().timestamp() as u64;
    assert!(now.seconds >= unix + 36 && now.seconds <= unix + 38);
}

proptest! {
    #[test]
    fn utc_round_trip(secs in 0i64..8_000_000_000, nanos in 0u32..1_000_000_000) {
        let u = DateTime::from_timestamp(secs, nanos).unwrap();
        prop_assert_eq!(TaiTime::from_utc(u).to_utc(), u);
    }

    #[test]
    fn tai_round_trip(secs in 0u64..8_000_000_000, nanos in 0u32..1_000_000_000) {
        let t = TaiTime::new(secs, nanos).unwrap();
        prop_assert_eq!(TaiTime::from_utc(t.to_utc()), t);
        prop_assert_eq!(TaiTime::parse(&t.to_string()).unwrap(), t);
    }
}

// ---------------------------------------------------------------- IS-08

fn input(channels: usize, block_size: usize, reordering: bool) -> Is08Input {
    Is08Input {
        channels,
        block_size,
        reordering,
    }
}

fn output(channels: usize, routable: Option<&[Option<&str>]>) -> Is08Output {
    Is08Output {
        channels,
        routable_inputs: routable.map(|l| l.iter().map(|x| x.map(str::to_owned)).collect()),
    }
}

fn inputs() -> BTreeMap<String, Is08Input> {
    [
        ("FREE", input(8, 1, true)),
        ("B2", input(8, 2, true)),
        ("NOREORD", input(8, 1, false)),
        ("B2NOREORD", input(8, 2, false)),
        ("B2ODD", input(3, 2, true)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn outputs() -> BTreeMap<String, Is08Output> {
    [
        ("OUT1", output(2, None)),
        ("OUT4", output(4, None)),
        ("ONLYFREE", output(2, Some(&[Some("FREE")]))),
        ("FREEORMUTE", output(2, Some(&[Some("FREE"), None]))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn r(input: &str, index: usize) -> MapEntry {
    MapEntry::routed(input, index)
}

fn m() -> MapEntry {
    MapEntry::unrouted()
}

fn run(out: &str, entries: Vec<MapEntry>) -> Result<(), Vec<Violation>> {
    let map: ChannelMap = [(out.to_owned(), entries)].into_iter().collect();
    check(&map, &inputs(), &outputs())
}

fn texts(res: Result<(), Vec<Violation>>) -> Vec<String> {
    res.unwrap_err().iter().map(ToString::to_string).collect()
}

#[test]
fn free_input_anything_goes() {
    assert_eq!(run("OUT1", vec![r("FREE", 1), r("FREE", 0)]), Ok(()));
    assert_eq!(run("OUT1", vec![r("FREE", 3), r("FREE", 3)]), Ok(()));
    assert_eq!(run("OUT1", vec![m(), m()]), Ok(()));
    assert_eq!(
        run("OUT4", vec![r("FREE", 0), r("B2", 4), r("B2", 5), m()]),
        Ok(())
    );
}

#[test]
fn shape_errors() {
    assert_eq!(
        texts(run("OUT1", vec![r("FREE", 0), r("FREE", 1), r("FREE", 2)])),
        ["output OUT1 has 2 channels, map gives 3"]
    );
    assert_eq!(
        texts(run("OUT1", vec![r("FREE", 0)])),
        ["output OUT1 has 2 channels, map gives 1"]
    );
    assert_eq!(texts(run("NOPE", vec![m()])), ["unknown output NOPE"]);
    assert_eq!(
        texts(run("OUT1", vec![r("IN9", 0), r("FREE", 8)])),
        [
            "output OUT1 channel 0: unknown input IN9",
            "output OUT1 channel 1: input FREE has 8 channels, no channel 8",
        ]
    );
    let half = MapEntry {
        input: Some("FREE".into()),
        channel_index: None,
    };
    let other_half = MapEntry {
        input: None,
        channel_index: Some(0),
    };
    assert_eq!(
        run("OUT1", vec![half, other_half]).unwrap_err(),
        [
            Violation::HalfNull {
                output: "OUT1".into(),
                channel: 0
            },
            Violation::HalfNull {
                output: "OUT1".into(),
                channel: 1
            },
        ]
    );
}

#[test]
fn routable_inputs() {
    assert_eq!(run("ONLYFREE", vec![r("FREE", 0), r("FREE", 1)]), Ok(()));
    assert_eq!(
        texts(run("ONLYFREE", vec![r("FREE", 0), r("NOREORD", 1)])),
        ["output ONLYFREE channel 1: input NOREORD not routable to ONLYFREE"]
    );
    // No null in the list: unrouted channels are not allowed.
    assert_eq!(
        texts(run("ONLYFREE", vec![r("FREE", 0), m()])),
        ["output ONLYFREE channel 1: ONLYFREE does not allow unrouted channels"]
    );
    assert_eq!(run("FREEORMUTE", vec![m(), r("FREE", 5)]), Ok(()));
    assert_eq!(
        texts(run("FREEORMUTE", vec![m(), r("B2", 0)])).len(),
        2 // not routable, and a lone channel of a block
    );
}

#[test]
fn block_size() {
    // Whole blocks, any position, any order inside the block (reordering allowed).
    assert_eq!(
        run("OUT4", vec![r("B2", 2), r("B2", 3), r("B2", 0), r("B2", 1)]),
        Ok(())
    );
    assert_eq!(run("OUT4", vec![m(), r("B2", 7), r("B2", 6), m()]), Ok(()));
    let msg = "output OUT4 channel 0: input B2 block size 2: channels must be taken in blocks of 2 starting at a multiple of 2";
    // Straddles two blocks.
    assert_eq!(
        texts(run("OUT4", vec![r("B2", 1), r("B2", 2), m(), m()])),
        [msg]
    );
    // Half a block.
    assert_eq!(texts(run("OUT4", vec![r("B2", 0), m(), m(), m()])), [msg]);
    // A channel repeated inside the run.
    assert_eq!(
        texts(run("OUT4", vec![r("B2", 0), r("B2", 0), m(), m()])),
        [msg]
    );
    // Split by another input.
    assert_eq!(
        texts(run("OUT4", vec![r("B2", 0), r("FREE", 0), r("B2", 1), m()])).len(),
        2
    );
    // Runs off the end of the output.
    assert_eq!(
        texts(run("OUT4", vec![r("B2", 0), r("B2", 1), m(), r("B2", 2)])),
        [
            "output OUT4 channel 3: input B2 block size 2: channels must be taken in blocks of 2 starting at a multiple of 2"
        ]
    );
    // A trailing partial block (channel 2 of a 3-channel input) can never be routed.
    assert!(run("OUT1", vec![r("B2ODD", 2), m()]).is_err());
    assert_eq!(run("OUT1", vec![r("B2ODD", 0), r("B2ODD", 1)]), Ok(()));
}

#[test]
fn reordering() {
    assert_eq!(
        run(
            "OUT4",
            vec![r("NOREORD", 2), r("NOREORD", 3), m(), r("NOREORD", 5)]
        ),
        Ok(())
    );
    assert_eq!(
        texts(run("OUT1", vec![r("NOREORD", 1), r("NOREORD", 0)])),
        ["output OUT1 channel 1: input NOREORD does not allow reordering"]
    );
    // Gap in the input channels (separation not preserved).
    assert!(run("OUT1", vec![r("NOREORD", 0), r("NOREORD", 2)]).is_err());
    // Duplicate.
    assert!(run("OUT1", vec![r("NOREORD", 0), r("NOREORD", 0)]).is_err());
    // Different offsets on different outputs are fine.
    let map: ChannelMap = [
        ("OUT1".to_owned(), vec![r("NOREORD", 0), r("NOREORD", 1)]),
        (
            "OUT4".to_owned(),
            vec![m(), r("NOREORD", 6), r("NOREORD", 7), m()],
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(check(&map, &inputs(), &outputs()), Ok(()));
}

#[test]
fn blocks_without_reordering() {
    assert_eq!(
        run("OUT4", vec![r("B2NOREORD", 4), r("B2NOREORD", 5), m(), m()]),
        Ok(())
    );
    // Swapped inside a block: whole block, but reordered.
    assert_eq!(
        texts(run("OUT1", vec![r("B2NOREORD", 1), r("B2NOREORD", 0)])),
        ["output OUT1 channel 1: input B2NOREORD does not allow reordering"]
    );
    // Two whole blocks, swapped.
    assert_eq!(
        texts(run(
            "OUT4",
            vec![
                r("B2NOREORD", 2),
                r("B2NOREORD", 3),
                r("B2NOREORD", 0),
                r("B2NOREORD", 1)
            ]
        )),
        ["output OUT4 channel 2: input B2NOREORD does not allow reordering"]
    );
}

#[test]
fn every_violation_is_reported() {
    let map: ChannelMap = [
        (
            "OUT1".to_owned(),
            vec![r("NOREORD", 1), r("NOREORD", 0), m()],
        ),
        ("ONLYFREE".to_owned(), vec![r("B2", 0), r("B2", 1)]),
        ("GONE".to_owned(), vec![]),
    ]
    .into_iter()
    .collect();
    let v = texts(check(&map, &inputs(), &outputs()));
    assert_eq!(
        v,
        [
            "unknown output GONE",
            "output ONLYFREE channel 0: input B2 not routable to ONLYFREE",
            "output ONLYFREE channel 1: input B2 not routable to ONLYFREE",
            "output OUT1 has 2 channels, map gives 3",
            "output OUT1 channel 1: input NOREORD does not allow reordering",
        ]
    );
}

#[test]
fn types_deserialize_from_json() {
    let o: Is08Output = serde_json::from_str(r#"{"channels": 2}"#).unwrap();
    assert_eq!(o.routable_inputs, None);
    let o: Is08Output =
        serde_json::from_str(r#"{"channels": 2, "routable_inputs": ["in1", null]}"#).unwrap();
    assert_eq!(o.routable_inputs, Some(vec![Some("in1".into()), None]));
    let e: MapEntry = serde_json::from_str(r#"{"input": null, "channel_index": null}"#).unwrap();
    assert_eq!(e, MapEntry::unrouted());
}
