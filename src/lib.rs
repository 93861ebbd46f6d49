//! tcprace finds HTTP keep-alive races in packet captures: requests sent on connections the
//! peer had already closed, the cause of sporadic 502s behind reverse proxies.
//!
//! Data flows one way through the stages, each a module:
//!
//! ```text
//! capture -> decode -> flow -> app (http1) -> detect -> report
//! packets    segments  ordered bytes,  requests and    verdicts,     table, JSON,
//! (files,              gaps, closes    responses with  evidence,     JSON Lines
//!  stdin, live)        per direction   an identity     endpoints
//! ```
//!
//! The [`engine`] drives them: [`engine::run`] reads a [`capture::PacketSource`] (capture files
//! and stdin with [`capture::FileSource`], a live interface with [`capture::LiveSource`]),
//! analyses on one or more threads and hands findings to a [`report::Renderer`] as their
//! verdicts become final; [`cli`] is the command line over it.
//!
//! The public API is what the tools around the analysis need:
//!
//! ```no_run
//! use tcprace::capture::FileSource;
//! use tcprace::engine::{Config, RunOptions, run};
//! use tcprace::report::{Format, TableOptions, renderer};
//!
//! let mut source = FileSource::open(&["capture.pcap".to_string()]).unwrap();
//! let opts = RunOptions { config: Config::default(), threads: 2, max_warnings: 20, record: None };
//! let mut out = renderer(Format::Json, std::io::stdout(), false, &TableOptions::default());
//! let report = run(&mut source, &opts, out.as_mut(), &mut ()).unwrap();
//! out.finish(&report).unwrap();
//! std::process::exit(report.exit_code());
//! ```
//!
//! - [`capture`]: packet sources, the BPF filter, packets and input warnings.
//! - [`engine`]: the [`engine::Analyzer`] (one packet at a time), its settings, the driver loop.
//! - [`metrics`]: live metrics in Prometheus' exposition format (`--metrics`).
//! - [`report`]: the report's schema ([`report::schema`]) and its renderers.
//! - [`time`]: capture timestamps.
//! - `synth` (cargo feature `synth`): a TCP conversation simulator and pcap writer for tests,
//!   fixtures and benchmarks.
//!
//! The stages in between (`decode`, `flow`, `app`, `detect`) are internal.

pub(crate) mod app;
pub mod capture;
pub mod cli;
pub(crate) mod decode;
pub(crate) mod detect;
pub mod engine;
pub(crate) mod flow;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub(crate) mod mix;
pub mod report;
#[cfg(any(test, feature = "synth"))]
pub mod synth;
pub mod time;
