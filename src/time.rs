//! Capture timestamps: nanoseconds since the Unix epoch, UTC.

use std::fmt;

/// A packet timestamp in nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_nanos(ns: i64) -> Self {
        Timestamp(ns)
    }

    pub fn from_secs_nanos(secs: i64, nanos: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
    }

    pub fn from_secs_f64(secs: f64) -> Self {
        Timestamp((secs * 1e9).round() as i64)
    }

    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// Seconds since the epoch as a float (for display and arithmetic only).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// `self - earlier` in seconds (negative when `earlier` is later); exact over the whole
    /// range (the difference of two extreme timestamps does not overflow).
    pub fn secs_since(self, earlier: Timestamp) -> f64 {
        match self.0.checked_sub(earlier.0) {
            // the common case, without the cost of an i128 conversion on every packet
            Some(d) => d as f64 / 1e9,
            None => (i128::from(self.0) - i128::from(earlier.0)) as f64 / 1e9,
        }
    }

    /// Add a duration given in seconds.
    pub fn add_secs(self, secs: f64) -> Timestamp {
        Timestamp(self.0.saturating_add((secs * 1e9).round() as i64))
    }

    /// The time in UTC formatted with `chrono`'s strftime `fmt` (e.g. `%H:%M:%S%.3f`).
    pub fn format_utc(self, fmt: &str) -> String {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000) as u32;
        match chrono::DateTime::from_timestamp(secs, nanos) {
            Some(dt) => dt.format(fmt).to_string(),
            None => format!("{:.6}", self.as_secs_f64()),
        }
    }

    /// ISO 8601 UTC with microseconds, e.g. `2026-11-24T22:59:33.123456Z`.
    pub fn to_iso8601(self) -> String {
        self.format_utc("%Y-%m-%dT%H:%M:%S%.6fZ")
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso8601())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_iso8601())
    }
}

/// In the JSON Schema: an RFC 3339 date-time in UTC with microseconds.
impl schemars::JsonSchema for Timestamp {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
            "pattern": "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{6}Z$",
            "description": "UTC, ISO 8601 with microseconds, e.g. 2026-01-01T00:00:01.134000Z"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_format_has_microseconds_and_z() {
        let t = Timestamp::from_secs_nanos(1_700_000_000, 123_456_789);
        assert_eq!(t.to_iso8601(), "2023-11-14T22:13:20.123456Z");
        assert_eq!(Timestamp(0).to_iso8601(), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn differences_of_extreme_timestamps_do_not_overflow() {
        let (lo, hi) = (Timestamp(i64::MIN), Timestamp(i64::MAX));
        assert!(hi.secs_since(lo) > 1.8e10);
        assert!(lo.secs_since(hi) < -1.8e10);
        assert_eq!(hi.add_secs(1e12), hi);
        assert_eq!(lo.add_secs(-1e12), lo);
    }

    #[test]
    fn differences_are_signed() {
        let a = Timestamp::from_secs_nanos(10, 0);
        let b = Timestamp::from_secs_nanos(9, 500_000_000);
        assert_eq!(a.secs_since(b), 0.5);
        assert_eq!(b.secs_since(a), -0.5);
        assert_eq!(b.add_secs(0.5), a);
    }
}
