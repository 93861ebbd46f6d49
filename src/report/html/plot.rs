//! An upstream's idle closes against the idle times after which clients reused its connections,
//! as inline SVG on one logarithmic time axis: where the two overlap, reuses met closes (the
//! race). The suggested client timeout is drawn as a line.

use crate::report::schema::{EndpointStats, Histogram};
use std::fmt::Write;

const WIDTH: f64 = 820.0;
const LEFT: f64 = 110.0;
const RIGHT: f64 = 20.0;
const ROW: f64 = 80.0;
const TOP: f64 = 20.0;

/// The x of `secs` on a log axis from `lo` to `hi`.
fn x_of(secs: f64, lo: f64, hi: f64) -> f64 {
    let f = (secs.max(lo).ln() - lo.ln()) / (hi.ln() - lo.ln()).max(1e-12);
    LEFT + f.clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
}

/// Tick values between `lo` and `hi`: 1, 2, 5 per decade, or finer steps on a short range.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut e = lo.log10().floor() as i32;
    while 10f64.powi(e) <= hi {
        for k in [1.0, 2.0, 5.0] {
            let v = k * 10f64.powi(e);
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        e += 1;
    }
    if out.len() < 3 {
        out.clear();
        let raw = (hi - lo) / 5.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|k| k * mag)
            .find(|s| *s >= raw)
            .unwrap_or(raw);
        let mut v = (lo / step).ceil() * step;
        while v <= hi {
            out.push(v);
            v += step;
        }
    }
    out
}

fn label(v: f64) -> String {
    if v >= 1.0 {
        format!("{} s", trim(v, 2))
    } else {
        format!("{} ms", trim(v * 1000.0, 1))
    }
}

fn trim(v: f64, digits: usize) -> String {
    let t = format!("{v:.digits$}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The range both histograms (and the suggested timeout) cover, with a margin.
fn range(e: &EndpointStats, marks: &[f64]) -> Option<(f64, f64)> {
    let h = [&e.idle_close_histogram, &e.reuse_idle_histogram];
    let lo = h
        .iter()
        .flat_map(|h| h.bins.first().map(|b| b.0))
        .chain(marks.iter().copied())
        .fold(f64::INFINITY, f64::min);
    let hi = h
        .iter()
        .flat_map(|h| h.bins.last().map(|b| h.upper(b.0)))
        .chain(marks.iter().copied())
        .fold(0.0, f64::max);
    (lo.is_finite() && hi > 0.0).then(|| (lo / 1.25, hi * 1.25))
}

/// One row of bars: `h` above the baseline `base` (downwards when `down`).
fn bars(s: &mut String, h: &Histogram, base: f64, down: bool, class: &str, lo: f64, hi: f64) {
    let max = h.bins.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    for &(lower, n) in &h.bins {
        let x1 = x_of(lower, lo, hi);
        let x2 = x_of(h.upper(lower), lo, hi).max(x1 + 1.5);
        let len = (n as f64 / max) * (ROW - 10.0);
        let y = if down { base } else { base - len };
        let _ = write!(
            s,
            r##"<rect x="{x1:.1}" y="{y:.1}" width="{:.1}" height="{len:.1}" class="{class}"><title>{n} at {}</title></rect>"##,
            x2 - x1,
            label(lower)
        );
    }
}

/// The plot of endpoint `e`, or `None` without idle closes or reuses.
pub fn svg(e: &EndpointStats) -> Option<String> {
    let suggested = e.advice.as_ref().map(|a| a.client_idle_timeout_s);
    let marks: Vec<f64> = suggested.into_iter().collect();
    let (lo, hi) = range(e, &marks)?;
    let base = TOP + ROW;
    let height = TOP + 2.0 * ROW + 46.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg class="plot" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="idle closes and reuse idle times of {}">"##,
        super::esc(&e.server)
    );
    let ic = &e.idle_close_histogram;
    if let (Some(first), Some(last)) = (ic.bins.first(), ic.bins.last()) {
        let (x1, x2) = (x_of(first.0, lo, hi), x_of(ic.upper(last.0), lo, hi));
        let _ = write!(
            s,
            r##"<rect x="{x1:.1}" y="{TOP}" width="{:.1}" height="{}" class="zone"/>"##,
            (x2 - x1).max(2.0),
            2.0 * ROW
        );
    }
    bars(&mut s, ic, base, false, "closes", lo, hi);
    bars(
        &mut s,
        &e.reuse_idle_histogram,
        base,
        true,
        "reuses",
        lo,
        hi,
    );
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{base}" x2="{}" y2="{base}" class="axis"/>"##,
        WIDTH - RIGHT
    );
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" class="rowlabel closes-t">server closed</text><text x="{}" y="{}" class="rowlabel">after idling</text><text x="{}" y="{}" class="rowlabel reuses-t">client reused</text><text x="{}" y="{}" class="rowlabel">after idling</text>"##,
        LEFT - 8.0,
        TOP + ROW / 2.0,
        LEFT - 8.0,
        TOP + ROW / 2.0 + 14.0,
        LEFT - 8.0,
        base + ROW / 2.0,
        LEFT - 8.0,
        base + ROW / 2.0 + 14.0
    );
    let axis_y = TOP + 2.0 * ROW;
    for t in ticks(lo, hi) {
        let x = x_of(t, lo, hi);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{axis_y}" x2="{x:.1}" y2="{:.1}" class="tick"/><text x="{x:.1}" y="{:.1}" class="ticklabel">{}</text>"##,
            axis_y + 5.0,
            axis_y + 18.0,
            label(t)
        );
    }
    if let Some(t) = suggested {
        let x = x_of(t, lo, hi);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{axis_y}" class="suggest"/><text x="{:.1}" y="{:.1}" class="suggestlabel">suggested client timeout {}</text>"##,
            x - 4.0,
            axis_y + 36.0,
            label(t)
        );
    }
    s.push_str("</svg>");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_short_and_long_ranges() {
        let t = ticks(0.7, 1.3);
        assert!(
            t.len() >= 3 && t.iter().all(|v| (0.7..=1.3).contains(v)),
            "{t:?}"
        );
        assert_eq!(ticks(0.001, 100.0).len(), 16);
        assert_eq!(label(0.75), "750 ms");
        assert_eq!(label(2.0), "2 s");
    }
}
