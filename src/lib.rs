//! tcprace: finds HTTP keep-alive races (requests sent on connections the peer had already
//! closed) in packet captures.
//!
//! Data flows one way: capture -> decode -> flow -> app -> detect -> report, driven by the
//! engine; the command line is a thin layer over it.

pub mod app;
pub mod capture;
pub mod cli;
pub mod decode;
pub mod detect;
pub mod engine;
pub mod flow;
pub mod report;
pub mod synth;
pub mod time;
