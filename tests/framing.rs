//! Framing through the public API: chunking independence, garbage, truncation, bounds, speed.

use bytes::BytesMut;
use mos_gateway::mos::codec::{
    CodecConfig, Frame, FrameError, MosCodec, WireEncoding, decode_bytes, encode_text,
};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

type Item = Result<Frame, FrameError>;

const ENCODINGS: [WireEncoding; 3] = [
    WireEncoding::Utf16Be,
    WireEncoding::Utf16Le,
    WireEncoding::Utf8,
];

/// Comparable view of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Frame(String),
    Error(&'static str),
}

fn view(item: Item) -> Out {
    match item {
        Ok(f) => Out::Frame(f.text),
        Err(FrameError::TooLarge { .. }) => Out::Error("too large"),
        Err(FrameError::NotAMessage { .. }) => Out::Error("not a message"),
        Err(FrameError::InvalidEncoding { .. }) => Out::Error("invalid encoding"),
        Err(FrameError::Malformed { .. }) => Out::Error("malformed"),
        Err(_) => Out::Error("other"),
    }
}

/// Feeds the chunks like `FramedRead`, then end of stream. Returns the items and the largest
/// buffer length seen after a `decode` call returned `None`.
fn feed<'a>(config: CodecConfig, chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<Out>, usize) {
    let mut codec = MosCodec::new(config);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut max_buf = 0;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(item) = codec.decode(&mut buf).expect("decode never fails") {
            out.push(view(item));
        }
        max_buf = max_buf.max(buf.len());
    }
    while let Some(item) = codec.decode_eof(&mut buf).expect("decode_eof never fails") {
        out.push(view(item));
    }
    (out, max_buf)
}

fn split_at_sizes<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = bytes;
    let mut k = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(k % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .clamp(1, rest.len());
        let (a, b) = rest.split_at(n);
        chunks.push(a);
        rest = b;
        k += 1;
    }
    chunks
}

/// Text of one message with varied content.
fn message() -> impl Strategy<Value = String> {
    let text = prop_oneof![
        "[a-zA-Z0-9 ]{0,12}",
        Just("Привет 世界 مرحبا".to_owned()),
        Just("𝄞 😀 &#160; &amp;".to_owned()),
        Just("<!-- </mos> -->".to_owned()),
        Just("<![CDATA[ </mos> <mos> ]]>".to_owned()),
        Just("<mos><x/></mos>".to_owned()),
        Just("<a k=\"</mos>\" j='>'/>".to_owned()),
        Just("<mosID>x</mosID>".to_owned()),
    ];
    (proptest::collection::vec(text, 0..5), any::<bool>()).prop_map(|(parts, attrs)| {
        let open = if attrs {
            "<mos version=\"2.8.1\">"
        } else {
            "<mos>"
        };
        format!("{open}<p>{}</p></mos>", parts.join("</p><p>"))
    })
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(""),
        Just("\r\n"),
        Just("\u{FEFF}"),
        Just(" \t\n"),
        Just("<!-- c -->"),
        Just("<?xml version=\"1.0\"?>\n"),
    ]
}

fn stream() -> impl Strategy<Value = (Vec<String>, String)> {
    proptest::collection::vec((separator(), message()), 1..5).prop_map(|parts| {
        let messages = parts.iter().map(|(_, m)| m.clone()).collect();
        let text = parts.iter().map(|(s, m)| format!("{s}{m}")).collect();
        (messages, text)
    })
}

fn encoding() -> impl Strategy<Value = WireEncoding> {
    prop_oneof![
        Just(WireEncoding::Utf16Be),
        Just(WireEncoding::Utf16Le),
        Just(WireEncoding::Utf8),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_chunking_yields_the_same_messages(
        (messages, text) in stream(),
        enc in encoding(),
        sizes in proptest::collection::vec(1usize..64, 1..8),
        configured in any::<bool>(),
    ) {
        let wire = encode_text(&text, enc);
        let config = CodecConfig {
            encoding: configured.then_some(enc),
            ..CodecConfig::default()
        };
        let expected: Vec<Out> = messages.into_iter().map(Out::Frame).collect();
        let (whole, _) = feed(config.clone(), [wire.as_slice()]);
        prop_assert_eq!(&whole, &expected);
        let (random, _) = feed(config.clone(), split_at_sizes(&wire, &sizes));
        prop_assert_eq!(&random, &expected);
        let (bytewise, _) = feed(config.clone(), wire.chunks(1));
        prop_assert_eq!(&bytewise, &expected);
        let cut = sizes[0] * 7 % (wire.len() + 1);
        let (split, _) = feed(config, [&wire[..cut], &wire[cut..]]);
        prop_assert_eq!(&split, &expected);
    }

    #[test]
    fn garbage_never_panics_and_a_message_follows(
        garbage in proptest::collection::vec(any::<u8>(), 0..400),
        enc in encoding(),
        sizes in proptest::collection::vec(1usize..50, 1..6),
    ) {
        let config = CodecConfig { encoding: Some(enc), max_message_bytes: 256 };
        // Garbage, then a clean boundary (a stray end of anything), then a message.
        let mut wire = garbage.clone();
        if enc != WireEncoding::Utf8 && wire.len() % 2 == 1 {
            wire.push(b' ');
        }
        wire.extend(encode_text("-->]]>?>\"'></mos>\r\n<mos><ok/></mos>", enc));
        let (out, max_buf) = feed(config, split_at_sizes(&wire, &sizes));
        prop_assert!(max_buf <= 256 + 512, "buffer {max_buf}");
        let start_tag = encode_text("<mos", enc);
        if !garbage.windows(start_tag.len()).any(|w| w == start_tag.as_slice()) {
            prop_assert_eq!(out.last(), Some(&Out::Frame("<mos><ok/></mos>".to_owned())));
            prop_assert!(out[..out.len() - 1].iter().all(|o| matches!(o, Out::Error(_))));
        }
        // Pure garbage with auto-detection: never panics, only error items.
        let (out, _) = feed(CodecConfig::default(), split_at_sizes(&garbage, &sizes));
        prop_assert!(out.iter().all(|o| matches!(o, Out::Error(_) | Out::Frame(_))));
        let _ = decode_bytes(&garbage);
    }

    #[test]
    fn truncated_input_gives_at_most_one_error_at_eof(
        (messages, text) in stream(),
        enc in encoding(),
        cut_frac in 0.0f64..1.0,
    ) {
        let wire = encode_text(&text, enc);
        let cut = (wire.len() as f64 * cut_frac) as usize;
        let (out, _) = feed(CodecConfig::default(), [&wire[..cut]]);
        let frames: Vec<&Out> = out.iter().filter(|o| matches!(o, Out::Frame(_))).collect();
        prop_assert!(frames.len() <= messages.len());
        for (got, want) in frames.iter().zip(&messages) {
            prop_assert_eq!(*got, &Out::Frame(want.clone()));
        }
        prop_assert!(out.len() - frames.len() <= 1, "{:?}", out);
    }

    #[test]
    fn oversize_messages_are_errors_and_the_rest_decodes(
        (messages, text) in stream(),
        enc in encoding(),
        big in 300usize..3000,
        sizes in proptest::collection::vec(1usize..200, 1..6),
    ) {
        // The limit admits every message of the stream (with the whitespace before it).
        let limit = encode_text(&text, enc).len() + 16;
        let filler = format!("<mos><p>{}</p></mos>", "y".repeat(limit + big));
        let wire = encode_text(&format!("{filler}{text}{filler}"), enc);
        let config = CodecConfig { encoding: None, max_message_bytes: limit };
        let (out, max_buf) = feed(config, split_at_sizes(&wire, &sizes));
        prop_assert!(max_buf <= limit + 400, "buffer {max_buf}");
        let mut expected = vec![Out::Error("too large")];
        expected.extend(messages.into_iter().map(Out::Frame));
        expected.push(Out::Error("too large"));
        prop_assert_eq!(out, expected);
    }
}

#[test]
fn ten_megabytes_of_garbage_stay_bounded() {
    let limit = 64 * 1024;
    for enc in ENCODINGS {
        let config = CodecConfig {
            encoding: Some(enc),
            max_message_bytes: limit,
        };
        let mut codec = MosCodec::new(config);
        let mut buf = BytesMut::new();
        let mut errors = 0;
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut chunk = vec![0u8; 4096];
        for _ in 0..(10 << 20) / chunk.len() {
            for b in chunk.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // No '<' so that nothing can start a message or a comment.
                *b = (seed as u8) | 0x01;
                if *b == b'<' {
                    *b = b'#';
                }
            }
            buf.extend_from_slice(&chunk);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                assert!(item.is_err());
                errors += 1;
            }
            assert!(buf.len() <= limit + 64, "{enc}: buffer {}", buf.len());
        }
        assert!(errors >= 1);
        buf.extend_from_slice(&encode_text("\r\n<mos><ok/></mos>", enc));
        let item = codec.decode(&mut buf).unwrap().expect("a message");
        assert_eq!(item.unwrap().text, "<mos><ok/></mos>");
    }
}

#[test]
fn large_message_in_any_order_of_reads_is_an_oversize_with_small_buffer() {
    let limit = 64 * 1024;
    let big = format!("<mos>{}</mos>", "<item><a>x</a></item>".repeat(100_000));
    let wire = encode_text(&format!("{big}<mos/>"), WireEncoding::Utf16Be);
    let (out, max_buf) = feed(
        CodecConfig {
            encoding: None,
            max_message_bytes: limit,
        },
        wire.chunks(8192),
    );
    assert_eq!(
        out,
        vec![Out::Error("too large"), Out::Frame("<mos/>".to_owned())]
    );
    assert!(max_buf <= limit + 8192 + 64, "{max_buf}");
}

/// A roCreate with 2,000 stories × 10 items.
fn big_ro_create() -> String {
    let mut s = String::from(
        "<mos>\r\n<mosID>gateway.mos</mosID>\r\n<ncsID>ncs</ncsID>\r\n<messageID>1</messageID>\r\n\
         <roCreate>\r\n<roID>RO1</roID>\r\n<roSlug>Evening news – Привет</roSlug>\r\n",
    );
    for st in 0..2000 {
        s.push_str(&format!(
            "<story>\r\n<storyID>S{st}</storyID>\r\n<storySlug>Story {st}&#160;slug</storySlug>\r\n"
        ));
        for it in 0..10 {
            s.push_str(&format!(
                "<item>\r\n<itemID>{it}</itemID>\r\n<itemSlug>Item {it} 世界</itemSlug>\r\n\
                 <objID>OBJ-{st}-{it}</objID>\r\n<mosID>gateway.mos</mosID>\r\n\
                 <itemEdStart>0</itemEdStart>\r\n<itemEdDur>250</itemEdDur>\r\n\
                 <mosExternalMetadata><mosScope>PLAYLIST</mosScope><mosPayload>\
                 <source>CAM{it}</source><!-- </mos> --></mosPayload></mosExternalMetadata>\r\n</item>\r\n"
            ));
        }
        s.push_str("</story>\r\n");
    }
    s.push_str("</roCreate>\r\n</mos>");
    s
}

#[test]
fn big_ro_create_decodes_in_any_chunking() {
    let text = big_ro_create();
    for enc in ENCODINGS {
        let wire = encode_text(&text, enc);
        let config = CodecConfig::default();
        let start = std::time::Instant::now();
        let (out, _) = feed(config.clone(), [wire.as_slice()]);
        let one = start.elapsed();
        assert_eq!(out, vec![Out::Frame(text.clone())]);
        let start = std::time::Instant::now();
        let (out, _) = feed(config, wire.chunks(1460));
        let many = start.elapsed();
        assert_eq!(out, vec![Out::Frame(text.clone())]);
        eprintln!(
            "{enc}: {} MB in one read {one:?}, in 1460-byte reads {many:?}",
            wire.len() / 1_000_000
        );
    }
}

#[test]
#[ignore = "timing breakdown; run with --release --ignored --nocapture"]
fn timing_breakdown() {
    let text = big_ro_create();
    for enc in ENCODINGS {
        let start = std::time::Instant::now();
        let wire = encode_text(&text, enc);
        let enc_time = start.elapsed();
        let start = std::time::Instant::now();
        let (decoded, _) = decode_bytes(&wire).unwrap();
        let dec = start.elapsed();
        assert_eq!(decoded.len(), text.len());
        let mut codec = MosCodec::new(CodecConfig::default());
        let mut buf = BytesMut::from(&wire[..]);
        let start = std::time::Instant::now();
        let item = codec.decode(&mut buf).unwrap().unwrap().unwrap();
        let all = start.elapsed();
        assert_eq!(item.text.len(), text.len());
        eprintln!("{enc}: encode {enc_time:?}, transcode {dec:?}, decode total {all:?}");
    }
}

/// A caller that only ever calls `decode_eof` (a whole file at once) gets every message.
#[test]
fn decode_eof_alone_decodes_a_whole_buffer() {
    use mos_gateway::mos::codec::{CodecConfig, MosCodec};
    use tokio_util::codec::Decoder;
    let text = "<mos><mosID>m</mosID><ncsID>n</ncsID><heartbeat/></mos>\r\n<mos><mosID>m</mosID><ncsID>n</ncsID><reqMachInfo/></mos>";
    for enc in [
        WireEncoding::Utf16Be,
        WireEncoding::Utf16Le,
        WireEncoding::Utf8,
    ] {
        let mut codec = MosCodec::new(CodecConfig::default());
        let mut buf = bytes::BytesMut::from(&encode_text(text, enc)[..]);
        let mut n = 0;
        while let Some(item) = codec.decode_eof(&mut buf).unwrap() {
            assert!(item.is_ok(), "{enc:?}: {item:?}");
            n += 1;
        }
        assert_eq!(n, 2, "{enc:?}");
    }
}
