//! Advice per server endpoint: one sentence for every kind of finding it had.

use super::endpoints::EndpointTally;
use crate::report::schema::{Kind, Outcome};

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
/// [`Kind::ALL`]), given the median of its idle closes; empty without findings. The
/// `reset_unanswered` findings that were the keep-alive race (the server's kernel answered a
/// request on a socket closed idle) join the crossed FINs in the idle-timeout advice.
pub(super) fn recommend(ep: &EndpointTally, median_idle_close: Option<f64>) -> Vec<String> {
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
            (count > 0).then(|| sentence(ep, k, count, median_idle_close))
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
        other => format!(
            "{server} had {n} request(s) of kind {}: see their evidence.",
            other.as_str()
        ),
    }
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
        assert!(recommend(&ep, None).is_empty());
        for k in Kind::ALL {
            ep.by_kind.insert(k.as_str(), 2);
        }
        ep.race_idle_max = Some(0.04);
        let advice = recommend(&ep, Some(0.05));
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
        let advice = recommend(&ep, Some(0.05));
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
