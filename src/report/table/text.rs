//! Text for a terminal: tones (colours when they are on), and wrapping to a width that never
//! breaks inside a word, so numbers and addresses stay whole.

use anstyle::{AnsiColor, Style};
use comfy_table::{Attribute, Cell, Color};
use unicode_width::UnicodeWidthStr;

/// What a piece of text looks like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Tone {
    #[default]
    Plain,
    /// Section titles, finding numbers.
    Strong,
    /// Finding kinds, lost requests.
    Bad,
    /// Retried requests, warnings.
    Warn,
    /// Informational kinds.
    Dim,
}

impl Tone {
    fn style(self) -> Style {
        match self {
            Tone::Plain => Style::new(),
            Tone::Strong => Style::new().bold(),
            Tone::Bad => AnsiColor::Red.on_default().bold(),
            Tone::Warn => AnsiColor::Yellow.on_default(),
            Tone::Dim => AnsiColor::Cyan.on_default(),
        }
    }

    /// A table cell of `text` in this tone (coloured when `color`).
    pub(super) fn cell(self, text: &str, color: bool) -> Cell {
        let cell = Cell::new(text);
        if !color {
            return cell;
        }
        match self {
            Tone::Plain => cell,
            Tone::Strong => cell.add_attribute(Attribute::Bold),
            Tone::Bad => cell.fg(Color::Red).add_attribute(Attribute::Bold),
            Tone::Warn => cell.fg(Color::Yellow),
            Tone::Dim => cell.fg(Color::Cyan),
        }
    }
}

/// Paints text in tones, or leaves it plain when colours are off.
#[derive(Clone, Copy, Debug)]
pub(super) struct Painter {
    pub color: bool,
}

impl Painter {
    pub(super) fn paint(&self, tone: Tone, text: &str) -> String {
        if !self.color || tone == Tone::Plain {
            return text.to_string();
        }
        let s = tone.style();
        format!("{s}{text}{s:#}")
    }
}

/// A piece of a line kept whole when it fits on a line: a label with its value, or a word.
#[derive(Clone, Debug)]
pub(super) struct Unit {
    pub text: String,
    pub tone: Tone,
}

impl Unit {
    pub(super) fn new(text: impl Into<String>) -> Unit {
        Unit {
            text: text.into(),
            tone: Tone::Plain,
        }
    }

    pub(super) fn toned(text: impl Into<String>, tone: Tone) -> Unit {
        Unit {
            text: text.into(),
            tone,
        }
    }

    /// The words of a paragraph, each a unit; a unit of time ("s", "ms") stays with its
    /// number.
    pub(super) fn words(text: &str) -> Vec<Unit> {
        let mut units: Vec<Unit> = Vec::new();
        for w in text.split_whitespace() {
            let bare = w.trim_end_matches([')', ',', ';', ':', '.']);
            match units.last_mut() {
                Some(last) if bare == "s" || bare == "ms" => {
                    last.text.push(' ');
                    last.text.push_str(w);
                }
                _ => units.push(Unit::new(w)),
            }
        }
        units
    }
}

/// The items of a list ("a 1, b 2"), each a unit ending with its comma.
pub(super) fn list_units(text: &str) -> Vec<Unit> {
    let items: Vec<&str> = text.split(", ").collect();
    let last = items.len().saturating_sub(1);
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            Unit::new(if i < last {
                format!("{item},")
            } else {
                item.to_string()
            })
        })
        .collect()
}

/// Seconds with three decimals, "-" for none.
pub(super) fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{s:.3}"))
}

/// Display width of `s` in terminal columns.
pub(super) fn width_of(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// Lines being filled up to a width.
struct Lines<'a> {
    done: Vec<String>,
    line: String,
    used: usize,
    empty: bool,
    indent: &'a str,
    limit: usize,
    painter: Painter,
}

impl Lines<'_> {
    /// Add `text` after `sep` if it fits on the current line (or the line is empty).
    fn fits(&self, sep: &str, text: &str) -> bool {
        let extra = if self.empty { 0 } else { width_of(sep) };
        self.used + extra + width_of(text) <= self.limit
    }

    fn push(&mut self, sep: &str, text: &str, tone: Tone) {
        if !self.empty {
            self.line.push_str(sep);
            self.used += width_of(sep);
        }
        self.line.push_str(&self.painter.paint(tone, text));
        self.used += width_of(text);
        self.empty = false;
    }

    fn break_line(&mut self) {
        let next = self.indent.to_string();
        self.done.push(std::mem::replace(&mut self.line, next));
        self.used = width_of(self.indent);
        self.empty = true;
    }
}

/// `units` in lines of at most `width` columns (`None`: all on one line), separated by `sep`;
/// the first line starts with `first`, the others with `indent`. A unit too long for a line
/// of its own is broken between its words; a word is never broken (it overflows instead).
pub(super) fn wrap(
    units: &[Unit],
    sep: &str,
    (first, indent): (&str, &str),
    width: Option<usize>,
    painter: Painter,
) -> String {
    let mut lines = Lines {
        done: Vec::new(),
        line: first.to_string(),
        used: width_of(first),
        empty: true,
        indent,
        limit: width.unwrap_or(usize::MAX),
        painter,
    };
    for u in units {
        if lines.fits(sep, &u.text) {
            lines.push(sep, &u.text, u.tone);
            continue;
        }
        if width_of(indent) + width_of(&u.text) <= lines.limit {
            lines.break_line();
            lines.push(sep, &u.text, u.tone);
            continue;
        }
        // longer than a line: word by word, from here
        for (i, word) in Unit::words(&u.text).iter().enumerate() {
            let s = if i == 0 { sep } else { " " };
            if !lines.fits(s, &word.text) && !lines.empty {
                lines.break_line();
            }
            lines.push(s, &word.text, u.tone);
        }
    }
    lines.done.push(lines.line);
    lines.done.join("\n")
}

/// A paragraph wrapped to `width` with a hanging indent.
pub(super) fn paragraph(
    text: &str,
    (first, indent): (&str, &str),
    width: Option<usize>,
    painter: Painter,
) -> String {
    wrap(&Unit::words(text), " ", (first, indent), width, painter)
}
