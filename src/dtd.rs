//! A DTD reader and validator for MOS messages. (Placeholder until the real module lands.)

/// A parsed DTD.
pub struct Dtd;
/// Options.
#[derive(Debug, Clone, Default)]
pub struct ValidateOptions {
    /// Required root.
    pub root: Option<String>,
    /// Check undeclared elements in ANY content.
    pub strict_any: bool,
}
/// A violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Line.
    pub line: usize,
    /// Column.
    pub column: usize,
    /// Path.
    pub path: String,
    /// Message.
    pub message: String,
}
impl Dtd {
    /// The MOS DTD.
    pub fn mos_2_8_1() -> &'static Dtd {
        &Dtd
    }
    /// Validates.
    pub fn validate_with(&self, _xml: &str, _o: &ValidateOptions) -> Vec<Violation> {
        Vec::new()
    }
}
