//! The HTTP endpoint of the metrics: `GET /metrics` answers the exposition (tiny_http, on a
//! thread of its own; a scrape encodes the families under their locks and never waits for the
//! analysis).

use super::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use tiny_http::{Header, Method, Response, Server};

/// OpenMetrics text, which prometheus-client writes and Prometheus negotiates.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The running endpoint; stopped when dropped.
pub struct MetricsServer {
    server: Arc<Server>,
    addr: Option<SocketAddr>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address it listens on (the port chosen when `:0` was asked for).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Listen on `addr` (e.g. `127.0.0.1:9464`) and answer scrapes from `metrics`.
pub fn serve(addr: &str, metrics: Arc<Metrics>) -> Result<MetricsServer, String> {
    let server = Server::http(addr).map_err(|e| format!("--metrics {addr}: cannot listen: {e}"))?;
    let server = Arc::new(server);
    let bound = server.server_addr().to_ip();
    let worker = Arc::clone(&server);
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || answer(&worker, &metrics))
        .map_err(|e| format!("--metrics: cannot start its thread: {e}"))?;
    Ok(MetricsServer {
        server,
        addr: bound,
        thread: Some(thread),
    })
}

/// Answer requests until the server is unblocked.
fn answer(server: &Server, metrics: &Metrics) {
    for req in server.incoming_requests() {
        let path = req.url().split('?').next().unwrap_or_default();
        let response = match (req.method(), path) {
            (Method::Get | Method::Head, "/metrics") => {
                Response::from_string(metrics.encode()).with_header(header(CONTENT_TYPE))
            }
            (Method::Get | Method::Head, "/") => Response::from_string(
                "tcprace: the metrics are at /metrics (Prometheus exposition format)\n",
            )
            .with_header(header("text/plain; charset=utf-8")),
            _ => Response::from_string("not found: try /metrics\n")
                .with_status_code(404)
                .with_header(header("text/plain; charset=utf-8")),
        };
        // a scraper that went away is not our problem
        let _ = req.respond(response);
    }
}

fn header(content_type: &str) -> Header {
    Header::from_bytes("Content-Type", content_type).expect("a valid header")
}
