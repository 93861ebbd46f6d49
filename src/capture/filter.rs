//! The BPF filter (`-f`): compiled by libpcap, one program per link type (lazily), and applied to
//! packets read from files as well.

use super::{InputError, Next, Packet, PacketRef, PacketSource, Warning, linktype};
use std::collections::{HashMap, HashSet};

/// A BPF filter compiled by libpcap, one program per link type.
pub struct Filter {
    expr: String,
    /// Compiled programs (or the compile error) by link type.
    programs: HashMap<u32, Result<pcap::BpfProgram, String>>,
}

/// libpcap's `pcap_open_dead` takes a DLT_ value, which differs from the LINKTYPE_ value for a
/// few old link types (libpcap's own `linktype_to_dlt` is not exported).
fn linktype_to_dlt(linktype: u32) -> i32 {
    const DLT_RAW: i32 = if cfg!(target_os = "openbsd") { 14 } else { 12 };
    match linktype {
        100 => 11, // ATM_RFC1483
        101 => DLT_RAW,
        102 => 15, // SLIP_BSDOS
        103 => 16, // PPP_BSDOS
        lt => lt as i32,
    }
}

fn compile(expr: &str, linktype: u32) -> Result<pcap::BpfProgram, String> {
    let dead = pcap::Capture::dead(pcap::Linktype(linktype_to_dlt(linktype)))
        .map_err(|e| e.to_string())?;
    dead.compile(expr, true).map_err(|e| match e {
        pcap::Error::PcapError(m) => m,
        other => other.to_string(),
    })
}

impl Filter {
    /// Compile `expr` (checked against Ethernet); the error is libpcap's message with the expression.
    pub fn new(expr: &str) -> Result<Filter, String> {
        let program = compile(expr, linktype::ETHERNET)
            .map_err(|m| format!("invalid filter \"{expr}\": {m}"))?;
        let mut programs = HashMap::new();
        programs.insert(linktype::ETHERNET, Ok(program));
        Ok(Filter {
            expr: expr.to_string(),
            programs,
        })
    }

    /// The expression as given.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Does the packet match? Err when the expression cannot be compiled for this link type.
    pub fn matches(&mut self, pkt: &Packet) -> Result<bool, String> {
        self.matches_ref(&pkt.as_ref())
    }

    /// `matches` for a borrowed packet.
    pub fn matches_ref(&mut self, pkt: &PacketRef<'_>) -> Result<bool, String> {
        let expr = &self.expr;
        let program = self.programs.entry(pkt.linktype).or_insert_with(|| {
            compile(expr, pkt.linktype).map_err(|m| {
                format!(
                    "filter \"{expr}\" cannot be used on link type {}: {m}",
                    pkt.linktype
                )
            })
        });
        match program {
            Ok(p) => Ok(p.filter(pkt.data)),
            Err(m) => Err(m.clone()),
        }
    }
}

/// A packet source whose packets pass a [`Filter`] (in user space: for files; a live capture
/// sets its filter on the handle). A filter that matched none of the packets is a warning at
/// the end.
pub struct Filtered<S> {
    inner: S,
    names: Vec<String>,
    filter: Filter,
    /// Link types the filter does not apply to (warned once each).
    unsupported: HashSet<u32>,
    tally: Tally,
}

/// Packets read and those that matched; whether the end was reported.
#[derive(Default)]
struct Tally {
    seen: u64,
    matched: u64,
    ended: bool,
}

impl Tally {
    /// At the end of the input: the warning when nothing matched, then the end.
    fn end(&mut self, names: &[String], expr: &str) -> Next<'static> {
        if self.ended || self.seen == 0 || self.matched > 0 {
            return Next::End;
        }
        self.ended = true;
        Next::Warning(Box::new(Warning {
            file: names.join(", "),
            frame: None,
            message: format!(
                "the filter \"{expr}\" matched none of the {} packets",
                self.seen
            ),
        }))
    }
}

impl<S: PacketSource> Filtered<S> {
    pub fn new(inner: S, filter: Filter) -> Self {
        Filtered {
            names: inner.inputs().to_vec(),
            inner,
            filter,
            unsupported: HashSet::new(),
            tally: Tally::default(),
        }
    }
}

impl<S: PacketSource> PacketSource for Filtered<S> {
    fn next(&mut self) -> Result<Next<'_>, InputError> {
        if self.tally.ended {
            return Ok(Next::End);
        }
        let pkt = match self.inner.next()? {
            Next::Packet(p) => p,
            Next::End => return Ok(self.tally.end(&self.names, self.filter.expr())),
            other => return Ok(other),
        };
        self.tally.seen += 1;
        Ok(match self.filter.matches_ref(&pkt) {
            Ok(true) => {
                self.tally.matched += 1;
                Next::Packet(pkt)
            }
            Ok(false) => Next::Skipped("filtered_out", None),
            Err(e) => {
                let warning = self.unsupported.insert(pkt.linktype).then(|| {
                    Box::new(Warning {
                        file: self.names[pkt.input].clone(),
                        frame: Some(pkt.frame),
                        message: format!(
                            "filter does not apply to link type {}: {e}; such packets are skipped",
                            pkt.linktype
                        ),
                    })
                });
                Next::Skipped("filter_unsupported_link_type", warning)
            }
        })
    }

    fn inputs(&self) -> &[String] {
        &self.names
    }

    fn progress(&self) -> (u64, Option<u64>) {
        self.inner.progress()
    }
}
