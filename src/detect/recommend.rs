//! Advice per server endpoint: one sentence for every kind of finding it had.

use super::endpoints::EndpointTally;
use crate::report::schema::{GoAwayStats, Kind, Outcome};

/// A duration for people: milliseconds under a second, else seconds (to the hundredth under
/// ten seconds, where idle timeouts and reuse times differ by little).
fn duration(s: f64) -> String {
    if s < 0.01 {
        format!("{:.1} ms", s * 1000.0)
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

/// The advice for an endpoint, one sentence per kind of finding (in the order of
/// [`Kind::ALL`]), given the median of its idle closes and its HTTP/2 GOAWAYs; empty without
/// findings. The `reset_unanswered` findings that were the keep-alive race (the server's
/// kernel answered a request on a socket closed idle) join the crossed FINs in the
/// idle-timeout advice.
pub(super) fn recommend(
    ep: &EndpointTally,
    median_idle_close: Option<f64>,
    goaways: Option<&GoAwayStats>,
) -> Vec<String> {
    let n = |k: Kind| ep.by_kind.get(k.as_str()).copied().unwrap_or(0);
    Kind::ALL
        .iter()
        .filter(|k| k.is_finding())
        .filter_map(|&k| {
            let count = match k {
                Kind::CrossedFin => n(k) + ep.idle_resets,
                Kind::ResetUnanswered => n(k).saturating_sub(ep.idle_resets),
                _ => n(k),
            };
            (count > 0).then(|| match k {
                Kind::CrossedGoaway => goaway_advice(ep, count, goaways),
                _ => sentence(ep, k, count, median_idle_close),
            })
        })
        .collect()
}

/// The advice on the idle timeout: the server closes idle connections the clients still use.
fn idle_timeout_advice(ep: &EndpointTally, median_idle_close: Option<f64>) -> String {
    let close = median_idle_close.map_or("an idle timeout".to_string(), |m| {
        format!("about {}", duration(m))
    });
    let reuse = ep
        .race_idle_max
        .or(ep.max_reuse_idle)
        .map_or(String::new(), |m| {
            format!(" while clients reuse them after up to {}", duration(m))
        });
    let crossed = ep
        .by_kind
        .get(Kind::CrossedFin.as_str())
        .copied()
        .unwrap_or(0);
    let raced = match (crossed, ep.idle_resets) {
        (c, 0) => format!("{c} request(s) crossed its FIN"),
        (0, r) => format!(
            "{r} request(s) reached a connection it was closing idle (its kernel answered with RST)"
        ),
        (c, r) => format!(
            "{c} request(s) crossed its FIN and {r} reached a connection it was closing idle (answered with RST)"
        ),
    };
    format!(
        "{} closes idle keep-alive connections after {close}{reuse}, so {raced}{}: make the upstream's idle timeout longer than the client's (proxy's) keep-alive timeout, or the client's shorter.",
        ep.server,
        outcomes(ep)
    )
}

fn sentence(ep: &EndpointTally, kind: Kind, n: u64, median_idle_close: Option<f64>) -> String {
    let server = ep.server;
    match kind {
        Kind::CrossedFin => idle_timeout_advice(ep, median_idle_close),
        Kind::AfterFin => format!(
            "Clients sent {n} request(s) to {server} on connections whose FIN they had already acknowledged: the client's connection pool reuses closed connections (check that it detects a closed connection before reuse, and retries idempotent requests)."
        ),
        Kind::AfterRst => format!(
            "Clients sent {n} request(s) to {server} on connections it had already reset: the client's connection pool reuses reset connections (check that it detects a closed connection before reuse, and retries idempotent requests)."
        ),
        Kind::ResetUnanswered => format!(
            "{server} reset {n} connection(s) with requests outstanding: look for an abortive close (SO_LINGER 0, a crash) or a middlebox (firewall, load balancer idle timeout) between client and server."
        ),
        Kind::ClosedUnanswered => format!(
            "{server} received {n} request(s) and closed without answering: check its request timeouts and error logs."
        ),
        Kind::AfterGoaway => format!(
            "Clients opened {n} HTTP/2 stream(s) to {server} on connections whose GOAWAY they had already acknowledged: the client's connection pool keeps using connections that are going away (a client bug: no stream may be opened above a GOAWAY's last stream id)."
        ),
        Kind::RefusedStream => format!(
            "{server} refused {n} HTTP/2 stream(s) with RST_STREAM REFUSED_STREAM (more streams than its SETTINGS_MAX_CONCURRENT_STREAMS, or shutting down): they were not processed and are safe to retry; check that the client retries them and keeps to the stream limit."
        ),
        other => format!(
            "{server} had {n} request(s) of kind {}: see their evidence.",
            other.as_str()
        ),
    }
}

/// The advice on the server's GOAWAYs that `n` requests crossed, naming their cause.
fn goaway_advice(ep: &EndpointTally, n: u64, g: Option<&GoAwayStats>) -> String {
    let cause = |c: &str| g.and_then(|g| g.by_cause.get(c)).copied().unwrap_or(0);
    let total = g.map_or(0, |g| g.count);
    let limit = g.and_then(|g| g.requests_per_connection);
    let (what, fix) = match (limit, g) {
        (Some(limit), _) if cause("request_limit") >= cause("idle") => (
            format!(
                "sends GOAWAY after {limit} requests per connection ({} of its {total} GOAWAYs)",
                cause("request_limit")
            ),
            "the streams above a GOAWAY's last stream id were never processed (RFC 9113 6.8): let the client (proxy) retry them, or raise the server's limit",
        ),
        (_, Some(g)) if cause("idle") > 0 => (
            format!(
                "sends GOAWAY on idle HTTP/2 connections after about {} ({} of its {total} GOAWAYs)",
                g.idle.median_s.map_or("an idle timeout".into(), duration),
                cause("idle")
            ),
            "make the upstream's idle timeout longer than the client's (proxy's) idle timeout for its HTTP/2 connections, or the client's shorter; the streams above the GOAWAY's last stream id were never processed and are safe to retry",
        ),
        _ => (
            format!("sends GOAWAY ({total} seen)"),
            "the streams above a GOAWAY's last stream id were never processed and are safe to retry: let the client (proxy) retry them",
        ),
    };
    format!(
        "{} {what}, so {n} request(s) opened streams that crossed it{}: {fix}.",
        ep.server,
        outcomes(ep)
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sentence_for_every_kind_of_finding() {
        let mut ep = EndpointTally::new("10.0.0.1:80".parse().unwrap());
        assert!(recommend(&ep, None, None).is_empty());
        for k in Kind::ALL {
            ep.by_kind.insert(k.as_str(), 2);
        }
        ep.race_idle_max = Some(0.04);
        let advice = recommend(&ep, Some(0.05), None);
        let findings = Kind::ALL.iter().filter(|k| k.is_finding()).count();
        assert_eq!(advice.len(), findings, "{advice:#?}");
        let has = |advice: &[String], i: usize, s: &str| {
            assert!(advice[i].contains(s), "{}", advice[i]);
        };
        has(
            &advice,
            0,
            "after about 50 ms while clients reuse them after up to 40 ms",
        );
        has(&advice, 1, "already acknowledged");
        has(&advice, 2, "already reset");
        has(&advice, 3, "abortive close");
        has(&advice, 4, "closed without answering");
        // resets that were the idle race join the idle-timeout advice
        ep.idle_resets = 2;
        let advice = recommend(&ep, Some(0.05), None);
        assert_eq!(advice.len(), findings - 1, "{advice:#?}");
        has(
            &advice,
            0,
            "2 request(s) crossed its FIN and 2 reached a connection it was closing idle",
        );
    }

    #[test]
    fn durations_under_a_second_are_in_milliseconds() {
        assert_eq!(duration(0.04), "40 ms");
        assert_eq!(duration(0.992), "992 ms");
        assert_eq!(duration(0.0004), "0.4 ms");
        assert_eq!(duration(1.0), "1.00 s");
        assert_eq!(duration(1.011), "1.01 s");
        assert_eq!(duration(75.04), "75.0 s");
    }
}
