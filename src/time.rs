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
        self.with_iso8601(str::to_string)
    }

    /// `f` of [`Timestamp::to_iso8601`]'s text, written on the stack (no heap string).
    fn with_iso8601<R>(self, f: impl FnOnce(&str) -> R) -> R {
        let mut buf = [0; ISO_LEN];
        match self.write_iso8601(&mut buf) {
            Some(s) => f(s),
            None => f(&self.format_utc(ISO_FORMAT)),
        }
    }

    /// [`Timestamp::to_iso8601`] written into `buf` from the calendar fields (`None` for a
    /// year outside 0-9999, which an i64 of nanoseconds cannot reach). A report writes a timestamp for every finding and event, and
    /// strftime reads its format string anew each time (~3,800 instructions a timestamp).
    fn write_iso8601(self, buf: &mut [u8; ISO_LEN]) -> Option<&str> {
        use chrono::{Datelike, Timelike};
        let micros = self.0.rem_euclid(1_000_000_000) as u32 / 1000;
        let dt = chrono::DateTime::from_timestamp(self.0.div_euclid(1_000_000_000), 0)?;
        let year = u32::try_from(dt.year()).ok().filter(|y| *y <= 9999)?;
        let fields = [
            (year, 4, b'-'),
            (dt.month(), 2, b'-'),
            (dt.day(), 2, b'T'),
            (dt.hour(), 2, b':'),
            (dt.minute(), 2, b':'),
            (dt.second(), 2, b'.'),
            (micros, 6, b'Z'),
        ];
        let mut at = 0;
        for (mut value, digits, after) in fields {
            for i in (at..at + digits).rev() {
                buf[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
            buf[at + digits] = after;
            at += digits + 1;
        }
        std::str::from_utf8(buf).ok()
    }
}

/// `strftime` format of [`Timestamp::to_iso8601`] (the fallback for years outside 0-9999).
const ISO_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";
/// Length of `2026-11-24T22:59:33.123456Z`.
const ISO_LEN: usize = 27;

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_iso8601(|s| f.write_str(s))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_iso8601(|t| s.serialize_str(t))
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
    fn iso_format_is_strftime_s_over_the_whole_range() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        // (nanoseconds in an i64 span the years 1677 to 2262)
        let mut cases = vec![i64::MIN, i64::MAX, -1, 0, 1, 999, 1_000, -1_000, -1_001];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(x as i64);
            // around today, in the range of the captures
            cases.push(1_600_000_000_000_000_000 + (x % 400_000_000_000_000_000) as i64);
        }
        for ns in cases {
            let t = Timestamp(ns);
            let want = t.format_utc(ISO_FORMAT);
            assert_eq!(t.to_iso8601(), want, "{ns}");
            assert_eq!(t.to_string(), want, "{ns}");
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("{want:?}"),
                "{ns}"
            );
        }
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
