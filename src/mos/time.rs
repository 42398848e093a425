//! MOS time and duration values. (Placeholder until the real module lands.)

/// A MOS time as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosTime {
    raw: String,
}
/// How a time value conforms to the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeConformance {
    Spec,
    Variant,
    Empty,
    Unparseable,
}
impl MosTime {
    pub fn from_wire(text: &str) -> MosTime {
        MosTime { raw: text.to_string() }
    }
    pub fn from_datetime(dt: chrono::DateTime<chrono::Utc>) -> MosTime {
        MosTime { raw: dt.format("%Y-%m-%dT%H:%M:%S,%3fZ").to_string() }
    }
    pub fn now() -> MosTime {
        Self::from_datetime(chrono::Utc::now())
    }
    pub fn as_wire(&self) -> &str {
        &self.raw
    }
    pub fn conformance(&self) -> TimeConformance {
        if self.raw.trim().is_empty() { TimeConformance::Empty } else { TimeConformance::Spec }
    }
}
/// roEdDur.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoDuration {
    raw: String,
}
impl RoDuration {
    pub fn from_wire(text: &str) -> RoDuration {
        RoDuration { raw: text.to_string() }
    }
    pub fn as_wire(&self) -> &str {
        &self.raw
    }
    pub fn conformance(&self) -> TimeConformance {
        if self.raw.trim().is_empty() { TimeConformance::Empty } else { TimeConformance::Spec }
    }
}
