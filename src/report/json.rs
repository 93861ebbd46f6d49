//! JSON: the report as one document; JSON Lines: one `finding` record per finding as its
//! verdict becomes final, then one `summary` record with everything but the findings. Every
//! record carries `record` and `schema_version`. Floats (durations in seconds) are written
//! rounded to microseconds, the resolution of the timestamps.
//!
//! The JSON Schemas of the document and of both records ([`json_schemas`]) are generated from
//! the report's types, so they follow every field added to them.

use super::Renderer;
use super::schema::{Finding, Report, SCHEMA_VERSION};
use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use schemars::{JsonSchema, Schema};
use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};
use serde_json::{Value, json};
use std::io::{self, Write};

/// The report as one pretty-printed JSON document.
pub struct JsonRenderer<W: Write> {
    out: W,
}

impl<W: Write> JsonRenderer<W> {
    pub fn new(out: W) -> Self {
        JsonRenderer { out }
    }
}

impl<W: Write> Renderer for JsonRenderer<W> {
    fn finish(&mut self, r: &Report) -> io::Result<()> {
        write_json(&mut self.out, r, Micros(PrettyFormatter::new()))?;
        writeln!(self.out)?;
        self.out.flush()
    }
}

/// JSON Lines: findings as they become final, then the summary. The findings it wrote are
/// not kept: the summary record never lists them.
pub struct JsonLinesRenderer<W: Write> {
    out: W,
}

impl<W: Write> JsonLinesRenderer<W> {
    pub fn new(out: W) -> Self {
        JsonLinesRenderer { out }
    }

    fn write_line(&mut self, record: &Value) -> io::Result<()> {
        write_json(&mut self.out, record, Micros(CompactFormatter))?;
        writeln!(self.out)?;
        self.out.flush()
    }
}

impl<W: Write> Renderer for JsonLinesRenderer<W> {
    fn streams(&self) -> bool {
        true
    }

    fn keeps_findings(&self) -> bool {
        false
    }

    fn finding(&mut self, f: &Finding) -> io::Result<()> {
        self.write_line(&FINDING_RECORD.value(f)?)
    }

    /// The summary; `r.findings` are written first if the report was not streamed to it.
    fn finish(&mut self, r: &Report) -> io::Result<()> {
        for f in &r.findings {
            self.write_line(&FINDING_RECORD.value(f)?)?;
        }
        self.write_line(&SUMMARY_RECORD.value(r)?)
    }
}

fn write_json<W: Write, T: Serialize + ?Sized, F: Formatter>(
    out: &mut W,
    value: &T,
    formatter: F,
) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, formatter);
    value.serialize(&mut ser).map_err(io::Error::from)
}

/// `v` rounded to microseconds (finite values; -0 becomes 0).
pub(crate) fn round_micros(v: f64) -> f64 {
    let scaled = (v * 1e6).round();
    if !scaled.is_finite() {
        return v;
    }
    let r = scaled / 1e6;
    if r == 0.0 { 0.0 } else { r }
}

/// A serde_json formatter (compact or pretty) that writes floats rounded to microseconds.
struct Micros<F>(F);

impl<F: Formatter> Formatter for Micros<F> {
    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, v: f64) -> io::Result<()> {
        self.0.write_f64(w, round_micros(v))
    }
    fn write_f32<W: ?Sized + Write>(&mut self, w: &mut W, v: f32) -> io::Result<()> {
        self.0.write_f64(w, round_micros(f64::from(v)))
    }
    // the layout (indentation) is the inner formatter's
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// A JSON Lines record: an object of the report's types, with `record` and `schema_version`
/// set and maybe a field left out. The same description makes the record and its schema.
struct RecordShape {
    name: &'static str,
    /// The field left out (the summary record has no findings: they came before).
    without: Option<&'static str>,
}

const FINDING_RECORD: RecordShape = RecordShape {
    name: "finding",
    without: None,
};

const SUMMARY_RECORD: RecordShape = RecordShape {
    name: "summary",
    without: Some("findings"),
};

impl RecordShape {
    fn value<T: Serialize>(&self, v: &T) -> io::Result<Value> {
        let mut v = serde_json::to_value(v)?;
        if let Some(o) = v.as_object_mut() {
            if let Some(key) = self.without {
                o.remove(key);
            }
            o.insert("record".into(), self.name.into());
            o.insert("schema_version".into(), SCHEMA_VERSION.into());
        }
        Ok(v)
    }

    fn schema<T: JsonSchema>(&self, title: &str) -> Value {
        let mut s = schema_of::<T>(title);
        if let Some(key) = self.without {
            if let Some(p) = s["properties"].as_object_mut() {
                p.remove(key);
            }
            if let Some(r) = s["required"].as_array_mut() {
                r.retain(|k| k != key);
            }
        }
        let p = &mut s["properties"];
        p["record"] = json!({"description": "The kind of record.", "const": self.name});
        p["schema_version"] = version_schema();
        if let Some(r) = s["required"].as_array_mut() {
            for key in ["record", "schema_version"] {
                if !r.iter().any(|k| k == key) {
                    r.push(key.into());
                }
            }
        }
        s
    }
}

fn version_schema() -> Value {
    json!({
        "description": "Version of the schema; bumped on incompatible changes.",
        "type": "integer",
        "const": SCHEMA_VERSION
    })
}

/// Objects allow no property beyond those the types define.
fn no_other_properties(s: &mut Schema) {
    if let Some(o) = s.as_object_mut()
        && o.contains_key("properties")
    {
        o.entry("additionalProperties").or_insert(false.into());
    }
}

/// The JSON Schema (2020-12) of `T` as serialized, with a title.
fn schema_of<T: JsonSchema>(title: &str) -> Value {
    let generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .with_transform(RecursiveTransform(no_other_properties))
        .into_generator();
    let mut v = generator.into_root_schema_for::<T>().to_value();
    v["title"] = title.into();
    v
}

/// The JSON Schemas of the output, by file stem: `report` (`--format json`), `jsonl-finding`
/// and `jsonl-summary` (the two records of `--format jsonl`).
pub fn json_schemas() -> Vec<(&'static str, Value)> {
    let mut report = schema_of::<Report>("tcprace report (--format json)");
    report["properties"]["schema_version"] = version_schema();
    vec![
        ("report", report),
        (
            "jsonl-finding",
            FINDING_RECORD.schema::<Finding>("tcprace JSON Lines finding record (--format jsonl)"),
        ),
        (
            "jsonl-summary",
            SUMMARY_RECORD.schema::<Report>("tcprace JSON Lines summary record (--format jsonl)"),
        ),
    ]
}
