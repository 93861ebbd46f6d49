//! Writes a hostile capture (see `tcprace::synth::hostile`) for `bench/hostile.sh`:
//!
//! ```text
//! cargo run --release --example mkhostile -- CASE OUT [N]
//! ```
//!
//! CASE: `syn-flood N`, `pipelined N`, `retransmissions PENDING RETRANSMISSIONS`,
//! `endless-head BYTES` (header lines), `endless-line BYTES` (one header line),
//! `bad-lengths`, `pcapng-interfaces N`, `pcapng-offsets`.

use std::fs::File;
use std::io::BufWriter;
use tcprace::synth::hostile;

fn usage() -> ! {
    eprintln!(
        "usage: mkhostile CASE OUT [N [M]]\n  CASE: syn-flood N | pipelined N | retransmissions PENDING RETRANSMISSIONS | endless-head BYTES | endless-line BYTES | bad-lengths | pcapng-interfaces N | pcapng-offsets"
    );
    std::process::exit(2);
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(case), Some(out)) = (args.first(), args.get(1)) else {
        usage()
    };
    let num = |i: usize| -> u64 {
        args.get(i)
            .and_then(|v| v.replace('_', "").parse().ok())
            .unwrap_or_else(|| usage())
    };
    let w = BufWriter::with_capacity(1 << 20, File::create(out)?);
    let packets = match case.as_str() {
        "syn-flood" => hostile::syn_flood(w, num(2))?,
        "pipelined" => hostile::pipelined_unanswered(w, num(2))?,
        "retransmissions" => hostile::retransmissions_over_pending(w, num(2), num(3))?,
        "endless-head" => hostile::endless_head(w, num(2), false)?,
        "endless-line" => hostile::endless_head(w, num(2), true)?,
        "bad-lengths" => hostile::bad_lengths(w)?,
        "pcapng-interfaces" => hostile::pcapng_interfaces(w, num(2))?,
        "pcapng-offsets" => hostile::pcapng_extreme_offsets(w)?,
        _ => usage(),
    };
    eprintln!("{out}: {packets} packets");
    Ok(())
}
