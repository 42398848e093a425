//! MOS numbers. (Placeholder until the real module lands.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("empty")]
    Empty,
    #[error("expected a number, got {text:?}")]
    NotANumber { text: String },
    #[error("out of range: {text:?}")]
    OutOfRange { text: String },
}
pub fn parse_u32(text: &str) -> Result<u32, NumberError> {
    text.trim().parse().map_err(|_| NumberError::NotANumber { text: text.into() })
}
pub fn parse_i32(text: &str) -> Result<i32, NumberError> {
    text.trim().parse().map_err(|_| NumberError::NotANumber { text: text.into() })
}
pub fn parse_time_base(text: &str) -> Result<f64, NumberError> {
    text.trim().replace(',', ".").parse().map_err(|_| NumberError::NotANumber { text: text.into() })
}
pub fn is_spec_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}
