//! The engine: drives packets through the stages (decode -> flow -> app -> detect) and
//! assembles the report.
//!
//! - [`Analyzer`] takes one packet at a time; [`ShardResult`]s of analyzers that each saw a
//!   shard of the input merge into the report ([`merge`]).
//! - [`run`] is the one driver loop, from a [`Source`] (capture files and stdin, or a live
//!   interface, [`live`]) to a [`Renderer`](crate::report::Renderer), sharded over threads by
//!   [`parallel`] when the output is not streamed.

mod analyzer;
pub mod live;
pub mod parallel;
mod result;
mod run;
mod source;

pub use analyzer::Analyzer;
pub use result::{ShardResult, WarningKey, merge};
pub use run::{RunOptions, run};
pub use source::{FileInput, Next, Source, Status};

use crate::detect::DetectConfig;
use crate::flow::TableConfig;

/// Settings of the analysis.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub detect: DetectConfig,
    pub table: TableConfig,
}
