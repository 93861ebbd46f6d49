//! The engine: drives packets through the stages (decode -> flow -> app -> detect) and
//! assembles the report.
//!
//! - [`Analyzer`] takes one packet at a time; [`ShardResult`]s of analyzers that each saw a
//!   shard of the input merge into the report ([`merge`]).
//! - [`run`] is the one driver loop, from a [`PacketSource`](crate::capture::PacketSource)
//!   (capture files and stdin, or a live interface) to a [`Renderer`](crate::report::Renderer),
//!   sharded over threads by `parallel` when the output is not streamed; [`live`] adds a live
//!   capture's stop conditions, running totals and statistics.

mod analyzer;
mod batch;
mod front;
pub mod live;
mod parallel;
mod recorder;
mod result;
mod run;
mod shard;
mod split;
#[cfg(test)]
mod tests;

pub use analyzer::Analyzer;
pub use recorder::{FlightRecorder, RecorderConfig};
pub use result::{ShardResult, WarningKey, merge};
pub use run::{RunError, RunHooks, RunOptions, run};
pub use split::shard_of;

pub use crate::app::tls::keylog::KeyLog;
pub use crate::detect::{DetectConfig, DetectObserver};
pub use crate::flow::TableConfig;

/// Settings of the analysis.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub detect: DetectConfig,
    pub table: TableConfig,
    /// UDP ports decoded as VXLAN besides 4789 and 8472.
    pub vxlan_ports: Vec<u16>,
    /// Secrets to decrypt TLS with (`--tls-keylog`), shared by the shards.
    pub tls_keys: Option<std::sync::Arc<KeyLog>>,
}

impl Config {
    pub(crate) fn decoder(&self) -> crate::decode::Decoder {
        crate::decode::Decoder::new(&self.vxlan_ports)
    }
}
