//! tcprace: finds HTTP keep-alive races (requests sent on connections the peer had already
//! closed) in packet captures.
//!
//! Data flows one way: capture -> decode -> flow -> http -> detect -> report.

pub mod analyzer;
pub mod capture;
pub mod cli;
pub mod decode;
pub mod detect;
pub mod flow;
pub mod http;
pub mod live;
pub mod parallel;
pub mod report;
pub mod seq;
pub mod synth;
pub mod time;
