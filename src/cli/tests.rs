use super::args::Args;
use super::validate::{Command, Terminal, split_words};
use crate::report::TableOptions;
use clap::Parser;

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

#[test]
fn files_then_the_filter_expression() {
    let is_file = |w: &str| w.ends_with(".pcap");
    let w = split_words(
        &words(&["a.pcap", "b.pcap", "tcp", "port", "80"]),
        false,
        false,
        is_file,
    );
    assert_eq!(w.files, ["a.pcap", "b.pcap"]);
    assert_eq!(w.expr.as_deref(), Some("tcp port 80"));
    assert!(w.note.unwrap().contains("\"tcp\" is not a file"));
    // standard input is a file
    let w = split_words(&words(&["-", "host", "h"]), false, false, is_file);
    assert_eq!(
        (w.files, w.expr.as_deref()),
        (words(&["-"]), Some("host h"))
    );
    // with -r, every word may be the expression
    let w = split_words(&words(&["tcp", "port", "80"]), true, false, is_file);
    assert!(w.files.is_empty());
    assert_eq!(w.expr.as_deref(), Some("tcp port 80"));
    // without -r and without a file, the first word is a (missing) file
    let w = split_words(&words(&["missing", "tcp"]), false, false, is_file);
    assert_eq!(
        (w.files, w.expr.as_deref()),
        (words(&["missing"]), Some("tcp"))
    );
    // live: all words are the expression
    let w = split_words(&words(&["a.pcap", "port", "80"]), false, true, is_file);
    assert!(w.files.is_empty());
    assert_eq!(w.expr.as_deref(), Some("a.pcap port 80"));
    assert_eq!(split_words(&[], false, false, is_file), Default::default());
}

fn table_of(args: &[&str], term: &Terminal) -> TableOptions {
    let mut all = vec!["tcprace"];
    all.extend(args);
    all.push("Cargo.toml");
    match Args::try_parse_from(all).unwrap().validate(term).unwrap() {
        Command::Files(f) => f.table,
        other => panic!("{other:?}"),
    }
}

#[test]
fn width_from_the_option_then_columns_then_the_terminal() {
    let tty = Terminal {
        stdout_tty: true,
        columns: Some(100),
        utf8: true,
        ..Terminal::default()
    };
    assert_eq!(table_of(&[], &tty).width, Some(100));
    let env = Terminal {
        columns_env: Some("90".into()),
        ..tty.clone()
    };
    assert_eq!(table_of(&[], &env).width, Some(90));
    assert_eq!(table_of(&["--width", "150"], &env).width, Some(150));
    assert_eq!(table_of(&["--width", "0"], &env).width, None);
    // not a terminal, no COLUMNS: no limit
    assert_eq!(table_of(&[], &Terminal::default()).width, None);
    // a tiny COLUMNS is taken as the narrowest layout
    let tiny = Terminal {
        columns_env: Some("10".into()),
        ..Terminal::default()
    };
    assert_eq!(table_of(&[], &tiny).width, Some(40));
}

#[test]
fn colours_and_borders_from_the_terminal() {
    let tty = Terminal {
        stdout_tty: true,
        utf8: true,
        ..Terminal::default()
    };
    assert!(table_of(&[], &tty).color);
    assert!(!table_of(&["--color", "never"], &tty).color);
    let no_color = Terminal {
        no_color: true,
        ..tty.clone()
    };
    assert!(!table_of(&[], &no_color).color);
    assert!(table_of(&["--color", "always"], &no_color).color);
    let dumb = Terminal {
        dumb: true,
        ..tty.clone()
    };
    assert!(!table_of(&[], &dumb).color);
    assert!(!table_of(&[], &Terminal::default()).color);
    assert!(!table_of(&[], &tty).ascii);
    assert!(table_of(&["--ascii"], &tty).ascii);
    assert!(table_of(&[], &Terminal::default()).ascii);
    assert!(table_of(&["-v"], &tty).verbose);
}
