//! One sentence of advice per server endpoint with findings.

use super::endpoints::EndpointTally;
use crate::report::schema::{Kind, Outcome};

/// The advice for an endpoint, given the median of its idle closes; `None` without findings.
pub(super) fn recommend(ep: &EndpointTally, median_idle_close: Option<f64>) -> Option<String> {
    let n = |k: Kind| ep.by_kind.get(k.as_str()).copied().unwrap_or(0);
    let crossed = n(Kind::CrossedFin);
    let after = n(Kind::AfterFin);
    let idle_resets = ep.idle_resets;
    let resets = (n(Kind::AfterRst) + n(Kind::ResetUnanswered)).saturating_sub(idle_resets);
    if crossed + idle_resets > 0 {
        let close =
            median_idle_close.map_or("an idle timeout".to_string(), |m| format!("about {m:.1} s"));
        let reuse = ep
            .race_idle_max
            .or(ep.max_reuse_idle)
            .map_or(String::new(), |m| {
                format!(" while clients reuse them after up to {m:.2} s")
            });
        let raced = match (crossed, idle_resets) {
            (c, 0) => format!("{c} request(s) crossed its FIN"),
            (0, r) => format!(
                "{r} request(s) reached a connection it was closing idle (its kernel answered with RST)"
            ),
            (c, r) => format!(
                "{c} request(s) crossed its FIN and {r} reached a connection it was closing idle (answered with RST)"
            ),
        };
        return Some(format!(
            "{} closes idle keep-alive connections after {}{}, so {}{}: make the upstream's idle timeout longer than the client's (proxy's) keep-alive timeout, or the client's shorter.",
            ep.server,
            close,
            reuse,
            raced,
            outcomes(ep)
        ));
    }
    if after > 0 {
        return Some(format!(
            "Clients sent {} request(s) to {} on connections whose FIN they had already acknowledged: the client's connection pool reuses closed connections (check that it detects a closed connection before reuse, and retries idempotent requests).",
            after, ep.server
        ));
    }
    if resets > 0 {
        return Some(format!(
            "{} reset {} connection(s) with requests outstanding: look for an abortive close (SO_LINGER 0, a crash) or a middlebox (firewall, load balancer idle timeout) between client and server.",
            ep.server, resets
        ));
    }
    if n(Kind::ClosedUnanswered) > 0 {
        return Some(format!(
            "{} received {} request(s) and closed without answering: check its request timeouts and error logs.",
            ep.server,
            n(Kind::ClosedUnanswered)
        ));
    }
    None
}

/// The outcomes of the findings, when some could not be decided (counted apart): " (lost L,
/// retried R, ambiguous A)"; empty otherwise.
fn outcomes(ep: &EndpointTally) -> String {
    let n = |o: Outcome| ep.by_outcome.get(o.as_str()).copied().unwrap_or(0);
    match n(Outcome::Ambiguous) {
        0 => String::new(),
        a => format!(
            " (lost {}, retried {}, ambiguous {a}: not telling a retry from a fresh request)",
            n(Outcome::Lost),
            n(Outcome::Retried)
        ),
    }
}
