//! A finding's ladder diagram as inline SVG: the client's and the server's lanes, each segment
//! an arrow from its sender to its receiver. The capture point sees a segment at its capture
//! time; the far end is placed one one-way delay (from the handshake) before or after, so a
//! request and a FIN that crossed in flight cross on the drawing. Time runs down, long idle
//! periods are cut short (and labelled).

use super::esc;
use crate::report::schema::{Finding, Ladder, LadderSegment};
use std::fmt::Write;

const WIDTH: f64 = 860.0;
const CLIENT_X: f64 = 250.0;
const SERVER_X: f64 = 650.0;
const TOP: f64 = 56.0;
/// Pixels for one one-way delay; the most and the least between two successive times.
const DELAY_PX: f64 = 46.0;
const MAX_STEP: f64 = 70.0;
const MIN_STEP: f64 = 16.0;
/// The slant drawn when the delay is unknown, in seconds.
const DEFAULT_DELAY_S: f64 = 0.001;

/// An arrow: its capture, sender and receiver times (seconds since the first segment).
struct Arrow<'a> {
    seg: &'a LadderSegment,
    cap: f64,
    send: f64,
    recv: f64,
}

/// The times of the arrows' ends, seen from the capture point `near` ("client", "server" or
/// in between) with one-way delay `d`.
fn arrows<'a>(l: &'a Ladder, d: f64) -> Vec<Arrow<'a>> {
    let t0 = l.segments.first().map_or(0.0, |s| s.time.as_secs_f64());
    l.segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            // segments captured at the same instant are kept apart, in capture order
            let t = s.time.as_secs_f64() - t0 + i as f64 * 1e-9;
            let (send, recv) = match (l.captured_near, s.from_client) {
                (Some("client"), true) | (Some("server"), false) => (t, t + d),
                (Some("client"), false) | (Some("server"), true) => (t - d, t),
                _ => (t - d / 2.0, t + d / 2.0),
            };
            Arrow {
                seg: s,
                cap: t,
                send,
                recv,
            }
        })
        .collect()
}

/// Maps times to y: proportional to the delay, with long gaps cut short and successive times
/// kept apart; monotone, so arrows cross on the drawing exactly when they crossed in time.
struct Scale {
    times: Vec<f64>,
    ys: Vec<f64>,
    /// (y, seconds) of the gaps cut short.
    breaks: Vec<(f64, f64)>,
}

impl Scale {
    fn new(arrows: &[Arrow<'_>], d: f64) -> Scale {
        let mut times: Vec<f64> = arrows
            .iter()
            .flat_map(|a| [a.send, a.recv, a.cap])
            .collect();
        times.sort_by(f64::total_cmp);
        times.dedup_by(|a, b| (*a - *b).abs() < 1e-10);
        let unit = d / DELAY_PX;
        let mut ys = Vec::with_capacity(times.len());
        let mut breaks = Vec::new();
        let mut y = TOP;
        for (i, t) in times.iter().enumerate() {
            if i > 0 {
                let dt = t - times[i - 1];
                let step = (dt / unit).clamp(MIN_STEP, MAX_STEP);
                if dt / unit > MAX_STEP * 1.5 {
                    breaks.push((y + step / 2.0, dt));
                }
                y += step;
            }
            ys.push(y);
        }
        Scale { times, ys, breaks }
    }

    fn y(&self, t: f64) -> f64 {
        let i = self
            .times
            .partition_point(|&x| x < t - 1e-10)
            .min(self.ys.len().saturating_sub(1));
        self.ys.get(i).copied().unwrap_or(TOP)
    }

    fn bottom(&self) -> f64 {
        self.ys.last().copied().unwrap_or(TOP) + 40.0
    }
}

/// Where two segments (x1,y1)-(x2,y2) and (x3,y3)-(x4,y4) cross, if they do.
fn crossing(a: [f64; 4], b: [f64; 4]) -> Option<(f64, f64)> {
    let [x1, y1, x2, y2] = a;
    let [x3, y3, x4, y4] = b;
    let den = (x1 - x2) * (y3 - y4) - (y1 - y2) * (x3 - x4);
    if den.abs() < 1e-9 {
        return None;
    }
    let t = ((x1 - x3) * (y3 - y4) - (y1 - y3) * (x3 - x4)) / den;
    let u = -((x1 - x2) * (y1 - y3) - (y1 - y2) * (x1 - x3)) / den;
    ((0.0..=1.0).contains(&t) && (0.0..=1.0).contains(&u))
        .then_some((x1 + t * (x2 - x1), y1 + t * (y2 - y1)))
}

/// The ladder of finding `f` as an SVG element.
pub fn svg(f: &Finding, l: &Ladder) -> String {
    let d = l
        .far_delay_s
        .filter(|d| *d > 0.0)
        .unwrap_or(DEFAULT_DELAY_S);
    let arrows = arrows(l, d);
    let scale = Scale::new(&arrows, d);
    let height = scale.bottom();
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg class="ladder" viewBox="0 0 {WIDTH} {height:.0}" width="{WIDTH}" height="{height:.0}" role="img" aria-label="ladder diagram of the connection">"##
    );
    s.push_str(r##"<defs><marker id="ah" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>"##);
    let near = |side: &str| l.captured_near == Some(side);
    for (x, name, addr, side) in [
        (CLIENT_X, "client", &f.connection.client, "client"),
        (SERVER_X, "server", &f.connection.server, "server"),
    ] {
        let _ = write!(
            s,
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{height:.0}" class="lane"/><text x="{x}" y="18" class="lanehead">{name} {}</text>"##,
            TOP - 20.0,
            esc(addr)
        );
        if near(side) {
            let _ = write!(
                s,
                r##"<text x="{x}" y="34" class="capnote">captured here</text>"##
            );
        }
    }
    for (y, dt) in &scale.breaks {
        let _ = write!(
            s,
            r##"<text x="{:.0}" y="{y:.1}" class="gap">&#8942; {dt:.3} s &#8942;</text>"##,
            (CLIENT_X + SERVER_X) / 2.0
        );
    }
    let mut lines = Vec::new();
    for a in &arrows {
        lines.push(arrow(&mut s, f, a, &scale));
    }
    mark_crossing(&mut s, f, &arrows, &lines);
    s.push_str("</svg>");
    s
}

/// Draw one arrow and its labels; returns its line.
fn arrow(s: &mut String, f: &Finding, a: &Arrow<'_>, scale: &Scale) -> [f64; 4] {
    let seg = a.seg;
    let (x1, x2) = if seg.from_client {
        (CLIENT_X, SERVER_X)
    } else {
        (SERVER_X, CLIENT_X)
    };
    let (y1, y2) = (scale.y(a.send), scale.y(a.recv));
    let class = class_of(f, seg);
    let _ = write!(
        s,
        r##"<line x1="{x1}" y1="{y1:.1}" x2="{x2}" y2="{y2:.1}" class="seg {class}" marker-end="url(#ah)"/>"##
    );
    let what = if seg.frame == f.request.frame && seg.from_client {
        format!("{} {} ", f.request.method, short(&f.request.target))
    } else {
        String::new()
    };
    let ack = seg.ack.map_or(String::new(), |a| format!(" ack={a}"));
    let label = format!("{what}[{}] seq={}{ack} len={}", seg.flags, seg.seq, seg.len);
    let (lx, anchor) = if seg.from_client {
        (x1 + 8.0, "start")
    } else {
        (x1 - 8.0, "end")
    };
    let _ = write!(
        s,
        r##"<text x="{lx}" y="{:.1}" text-anchor="{anchor}" class="seglabel {class}">{}</text>"##,
        y1 - 4.0,
        esc(&label)
    );
    let frame = match seg.flagged_frame {
        Some(g) => format!("#{} ({g})", seg.frame),
        None => format!("#{}", seg.frame),
    };
    let t = seg.time.to_iso8601();
    let _ = write!(
        s,
        r##"<text x="8" y="{:.1}" class="tlabel">{} {}</text>"##,
        scale.y(a.cap) + 4.0,
        esc(&frame),
        esc(t.get(11..26).unwrap_or(&t))
    );
    [x1, y1, x2, y2]
}

fn class_of(f: &Finding, seg: &LadderSegment) -> &'static str {
    let is = |frame: Option<u64>| frame == Some(seg.frame);
    if seg.from_client && seg.frame == f.request.frame {
        "req"
    } else if !seg.from_client
        && (is(f.peer_close.as_ref().map(|c| c.frame))
            || seg.flags.contains("FIN")
            || seg.flags.contains("RST"))
    {
        "close"
    } else {
        "other"
    }
}

/// Circle the point where the request crossed the server's close.
fn mark_crossing(s: &mut String, f: &Finding, arrows: &[Arrow<'_>], lines: &[[f64; 4]]) {
    let req = arrows
        .iter()
        .position(|a| a.seg.from_client && a.seg.frame == f.request.frame);
    let close = arrows
        .iter()
        .position(|a| !a.seg.from_client && a.seg.flags.contains("FIN"));
    if let (Some(r), Some(c)) = (req, close)
        && let Some((x, y)) = crossing(lines[r], lines[c])
    {
        let _ = write!(
            s,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="9" class="cross"/><text x="{x:.1}" y="{:.1}" class="crosslabel">crossed in flight</text>"##,
            y + 24.0
        );
    }
}

/// A target cut to fit a label.
fn short(t: &str) -> String {
    if t.chars().count() > 40 {
        let cut: String = t.chars().take(39).collect();
        format!("{cut}…")
    } else {
        t.to_string()
    }
}
