//! MOS numbers: decimal text, or hexadecimal written `0xFF55` or `xFF55`.
//!
//! The spec (§2.2) allows decimal or hex text in every numeric field. On receive these
//! parsers are lenient: surrounding whitespace is ignored, the `x` prefix and hex digits are
//! case-insensitive, and [`parse_time_base`] also takes the decimal comma some ENPS
//! installations send (`59,94`). [`is_spec_number`] tells whether a text is in an exact spec
//! form, for strict-mode checks.

/// Why a MOS number could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// The text was empty or only whitespace.
    #[error("expected a decimal or 0x-hex number, got empty text")]
    Empty,
    /// The text is not a number in any accepted form.
    #[error("expected a decimal or 0x-hex number, got {text:?}")]
    NotANumber {
        /// The text as received.
        text: String,
    },
    /// The text is a number, but does not fit the field's type.
    #[error("expected a number within the field's range, got {text:?}")]
    OutOfRange {
        /// The text as received.
        text: String,
    },
    /// A fractional number was given where an integer is required.
    #[error("expected an integer (decimal or 0x-hex), got {text:?}")]
    NotAnInteger {
        /// The text as received.
        text: String,
    },
    /// A time base that is zero or negative.
    #[error("expected a time base greater than zero, got {text:?}")]
    NotPositive {
        /// The text as received.
        text: String,
    },
}

/// A number split into its parts: sign, radix and digit strings (ASCII only).
struct Lexed<'a> {
    negative: bool,
    hex: bool,
    int_digits: &'a str,
    /// Digits after a `.` or `,` (decimal only); `None` when there was no separator.
    frac_digits: Option<&'a str>,
}

/// Splits trimmed text into a [`Lexed`] number, or reports why it is not one.
fn lex(text: &str) -> Result<Lexed<'_>, NumberError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(NumberError::Empty);
    }
    let not_a_number = || NumberError::NotANumber {
        text: text.to_owned(),
    };
    let (negative, rest) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let hex_body = rest
        .strip_prefix("0x")
        .or_else(|| rest.strip_prefix("0X"))
        .or_else(|| rest.strip_prefix('x'))
        .or_else(|| rest.strip_prefix('X'));
    if let Some(body) = hex_body {
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_a_number());
        }
        return Ok(Lexed {
            negative,
            hex: true,
            int_digits: body,
            frac_digits: None,
        });
    }
    let (int_digits, frac_digits) = match rest.find(['.', ',']) {
        Some(pos) => {
            // `.` and `,` are ASCII, so `pos + 1` is a char boundary.
            let (i, f) = (&rest[..pos], &rest[pos + 1..]);
            (i, Some(f))
        }
        None => (rest, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let frac_ok = frac_digits.is_none_or(all_digits);
    let has_digit = !int_digits.is_empty() || frac_digits.is_some_and(|f| !f.is_empty());
    if !all_digits(int_digits) || !frac_ok || !has_digit {
        return Err(not_a_number());
    }
    Ok(Lexed {
        negative,
        hex: false,
        int_digits,
        frac_digits,
    })
}

/// Accumulates ASCII digits in the given radix; `None` on overflow of `u64`.
fn magnitude(digits: &str, radix: u32) -> Option<u64> {
    digits.bytes().try_fold(0u64, |acc, b| {
        let d = char::from(b).to_digit(radix)?;
        acc.checked_mul(u64::from(radix))?.checked_add(u64::from(d))
    })
}

/// Lexes an integer field: signed magnitude, or the matching error.
fn lex_integer(text: &str) -> Result<(bool, u64), NumberError> {
    let lexed = lex(text)?;
    // "12." or "12,0" still state a fraction; integer fields take none.
    if lexed.frac_digits.is_some() {
        return Err(NumberError::NotAnInteger {
            text: text.to_owned(),
        });
    }
    let radix = if lexed.hex { 16 } else { 10 };
    let value = magnitude(lexed.int_digits, radix).ok_or_else(|| NumberError::OutOfRange {
        text: text.to_owned(),
    })?;
    Ok((lexed.negative, value))
}

/// Parses an unsigned 32-bit MOS number (sample counts such as objDur, itemEdStart,
/// itemEdDur, itemUserTimingDur; objRev).
///
/// Accepts decimal or hex (`0xFF55`, `xFF55`, any case) with surrounding whitespace.
/// Negative values (other than `-0`) and values above `u32::MAX` are [`NumberError::OutOfRange`].
pub fn parse_u32(text: &str) -> Result<u32, NumberError> {
    let (negative, value) = lex_integer(text)?;
    let out_of_range = || NumberError::OutOfRange {
        text: text.to_owned(),
    };
    if negative && value != 0 {
        return Err(out_of_range());
    }
    u32::try_from(value).map_err(|_| out_of_range())
}

/// Parses a signed 32-bit MOS number (messageID).
///
/// Accepts decimal or hex with an optional leading `-`. Hex text is read as a magnitude, not
/// as a two's-complement bit pattern: `0xFFFFFFFF` is out of range rather than `-1`.
pub fn parse_i32(text: &str) -> Result<i32, NumberError> {
    let (negative, value) = lex_integer(text)?;
    let signed = i64::try_from(value)
        .ok()
        .map(|v| if negative { -v } else { v });
    signed
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| NumberError::OutOfRange {
            text: text.to_owned(),
        })
}

/// Parses a time base (objTB): samples per second, finite and greater than zero.
///
/// Accepts decimal with an optional fraction after `.` or `,` (`59.94`, `59,94`, `50`),
/// or a hex integer. Zero or negative values are [`NumberError::NotPositive`]; values too
/// large for `f64` are [`NumberError::OutOfRange`]. Exponents (`1e3`) are not accepted.
pub fn parse_time_base(text: &str) -> Result<f64, NumberError> {
    let lexed = lex(text)?;
    let magnitude_value = if lexed.hex {
        let v = magnitude(lexed.int_digits, 16).ok_or_else(|| NumberError::OutOfRange {
            text: text.to_owned(),
        })?;
        // u64 -> f64 may round, which is fine for a rate.
        v as f64
    } else {
        let int = if lexed.int_digits.is_empty() {
            "0"
        } else {
            lexed.int_digits
        };
        let normalized = match lexed.frac_digits {
            Some(f) if !f.is_empty() => format!("{int}.{f}"),
            _ => int.to_owned(),
        };
        normalized
            .parse::<f64>()
            .map_err(|_| NumberError::NotANumber {
                text: text.to_owned(),
            })?
    };
    if !magnitude_value.is_finite() {
        return Err(NumberError::OutOfRange {
            text: text.to_owned(),
        });
    }
    if lexed.negative || magnitude_value <= 0.0 {
        return Err(NumberError::NotPositive {
            text: text.to_owned(),
        });
    }
    Ok(magnitude_value)
}

/// True only for the exact spec forms: decimal digits (`1234`), decimal digits with a `.`
/// fraction (`59.94`, as objTB allows), or hex with a `0x` / `x` prefix (any case).
/// No sign, no whitespace, no decimal comma.
pub fn is_spec_number(text: &str) -> bool {
    let digits = |s: &str, hex: bool| {
        !s.is_empty()
            && s.bytes().all(|b| {
                if hex {
                    b.is_ascii_hexdigit()
                } else {
                    b.is_ascii_digit()
                }
            })
    };
    let hex_body = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .or_else(|| text.strip_prefix('x'))
        .or_else(|| text.strip_prefix('X'));
    if let Some(body) = hex_body {
        return digits(body, true);
    }
    match text.split_once('.') {
        Some((int, frac)) => digits(int, false) && digits(frac, false),
        None => digits(text, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nan(s: &str) -> NumberError {
        NumberError::NotANumber { text: s.into() }
    }
    fn oor(s: &str) -> NumberError {
        NumberError::OutOfRange { text: s.into() }
    }
    fn nai(s: &str) -> NumberError {
        NumberError::NotAnInteger { text: s.into() }
    }
    fn npos(s: &str) -> NumberError {
        NumberError::NotPositive { text: s.into() }
    }

    #[test]
    fn u32_table() {
        let cases: &[(&str, Result<u32, NumberError>)] = &[
            ("0", Ok(0)),
            ("1234", Ok(1234)),
            ("007", Ok(7)),
            ("4294967295", Ok(u32::MAX)),
            ("0xFF55", Ok(0xFF55)),
            ("xFF55", Ok(0xFF55)),
            ("0Xff55", Ok(0xFF55)),
            ("XfF55", Ok(0xFF55)),
            ("0xFFFFFFFF", Ok(u32::MAX)),
            ("0x0000000000000001", Ok(1)),
            ("  42\t", Ok(42)),
            ("\r\n0x10 ", Ok(16)),
            ("-0", Ok(0)),
            ("", Err(NumberError::Empty)),
            ("   ", Err(NumberError::Empty)),
            ("abc", Err(nan("abc"))),
            ("0x", Err(nan("0x"))),
            ("x", Err(nan("x"))),
            ("0xG1", Err(nan("0xG1"))),
            ("+5", Err(nan("+5"))),
            ("1 2", Err(nan("1 2"))),
            ("12a", Err(nan("12a"))),
            ("1e3", Err(nan("1e3"))),
            ("--1", Err(nan("--1"))),
            ("٣", Err(nan("٣"))),
            ("12.5", Err(nai("12.5"))),
            ("12,0", Err(nai("12,0"))),
            ("4294967296", Err(oor("4294967296"))),
            ("0x100000000", Err(oor("0x100000000"))),
            (
                "99999999999999999999999",
                Err(oor("99999999999999999999999")),
            ),
            ("-1", Err(oor("-1"))),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_u32(text), want, "input {text:?}");
        }
    }

    #[test]
    fn i32_table() {
        let cases: &[(&str, Result<i32, NumberError>)] = &[
            ("1", Ok(1)),
            ("2147483647", Ok(i32::MAX)),
            ("-2147483648", Ok(i32::MIN)),
            ("0x7FFFFFFF", Ok(i32::MAX)),
            ("x10", Ok(16)),
            ("-0x10", Ok(-16)),
            (" 17 ", Ok(17)),
            ("2147483648", Err(oor("2147483648"))),
            ("-2147483649", Err(oor("-2147483649"))),
            ("0xFFFFFFFF", Err(oor("0xFFFFFFFF"))),
            ("0xFFFFFFFFFFFFFFFFFF", Err(oor("0xFFFFFFFFFFFFFFFFFF"))),
            ("", Err(NumberError::Empty)),
            ("-", Err(nan("-"))),
            ("1.0", Err(nai("1.0"))),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_i32(text), want, "input {text:?}");
        }
    }

    #[test]
    fn time_base_table() {
        let ok: &[(&str, f64)] = &[
            ("50", 50.0),
            ("59.94", 59.94),
            ("59,94", 59.94),
            (" 29.97 ", 29.97),
            ("1", 1.0),
            ("25.", 25.0),
            (".5", 0.5),
            ("0x32", 50.0),
            ("x19", 25.0),
        ];
        for (text, want) in ok {
            assert_eq!(parse_time_base(text), Ok(*want), "input {text:?}");
        }
        let long = "9".repeat(400);
        let err: &[(&str, NumberError)] = &[
            ("", NumberError::Empty),
            (" ", NumberError::Empty),
            ("0", npos("0")),
            ("0.0", npos("0.0")),
            ("-25", npos("-25")),
            ("0x0", npos("0x0")),
            (".", nan(".")),
            ("59.94.1", nan("59.94.1")),
            ("59,9.4", nan("59,9.4")),
            ("1e3", nan("1e3")),
            ("inf", nan("inf")),
            ("NaN", nan("NaN")),
            ("fifty", nan("fifty")),
            ("0x1.8", nan("0x1.8")),
            (long.as_str(), oor(&long)),
        ];
        for (text, want) in err {
            assert_eq!(parse_time_base(text), Err(want.clone()), "input {text:?}");
        }
    }

    #[test]
    fn spec_forms() {
        for s in [
            "0", "1234", "0xFF55", "xFF55", "0Xff", "Xab", "59.94", "007",
        ] {
            assert!(is_spec_number(s), "{s:?} should be spec");
        }
        for s in [
            "", " 1", "1 ", "59,94", "-1", "+1", "0x", "x", "1.", ".5", "1e3", "0x1.5", "abc",
        ] {
            assert!(!is_spec_number(s), "{s:?} should not be spec");
        }
    }

    #[test]
    fn display_messages_say_what_was_expected() {
        assert_eq!(
            parse_u32("abc").unwrap_err().to_string(),
            "expected a decimal or 0x-hex number, got \"abc\""
        );
        assert_eq!(
            parse_u32("").unwrap_err().to_string(),
            "expected a decimal or 0x-hex number, got empty text"
        );
        assert_eq!(
            parse_time_base("0").unwrap_err().to_string(),
            "expected a time base greater than zero, got \"0\""
        );
    }

    proptest! {
        #[test]
        fn any_u32_round_trips(n in any::<u32>()) {
            prop_assert_eq!(parse_u32(&n.to_string()), Ok(n));
            prop_assert_eq!(parse_u32(&format!("0x{n:X}")), Ok(n));
            prop_assert_eq!(parse_u32(&format!("0x{n:x}")), Ok(n));
            prop_assert_eq!(parse_u32(&format!("x{n:X}")), Ok(n));
            prop_assert_eq!(parse_u32(&format!(" {n} ")), Ok(n));
            prop_assert!(is_spec_number(&n.to_string()));
            let hex = format!("0x{n:X}");
            prop_assert!(is_spec_number(&hex));
        }

        #[test]
        fn any_i32_round_trips(n in any::<i32>()) {
            prop_assert_eq!(parse_i32(&n.to_string()), Ok(n));
        }

        #[test]
        fn arbitrary_text_never_panics(s in any::<String>()) {
            let _ = parse_u32(&s);
            let _ = parse_i32(&s);
            let _ = is_spec_number(&s);
            if let Ok(v) = parse_time_base(&s) {
                prop_assert!(v.is_finite() && v > 0.0);
            }
        }

        #[test]
        fn numberish_text_never_panics(s in "[ 0-9xXa-fA-F.,+-]{0,24}") {
            let _ = parse_u32(&s);
            let _ = parse_i32(&s);
            let _ = is_spec_number(&s);
            if let Ok(v) = parse_time_base(&s) {
                prop_assert!(v.is_finite() && v > 0.0);
            }
        }
    }
}
