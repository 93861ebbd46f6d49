//! Advice per server endpoint: one sentence for every kind of finding it had.

use super::endpoints::EndpointTally;
use crate::report::schema::Kind;

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
/// [`Kind::ALL`]), given the median of its idle closes; empty without findings.
pub(super) fn recommend(ep: &EndpointTally, median_idle_close: Option<f64>) -> Vec<String> {
    Kind::ALL
        .iter()
        .filter(|k| k.is_finding())
        .filter_map(|&k| {
            let n = ep.by_kind.get(k.as_str()).copied().unwrap_or(0);
            (n > 0).then(|| sentence(ep, k, n, median_idle_close))
        })
        .collect()
}

fn sentence(ep: &EndpointTally, kind: Kind, n: u64, median_idle_close: Option<f64>) -> String {
    let server = ep.server;
    match kind {
        Kind::CrossedFin => {
            let close = median_idle_close.map_or("an idle timeout".to_string(), |m| {
                format!("about {}", duration(m))
            });
            let reuse = ep
                .race_idle_max
                .or(ep.max_reuse_idle)
                .map_or(String::new(), |m| {
                    format!(" while clients reuse them after up to {}", duration(m))
                });
            format!(
                "{server} closes idle keep-alive connections after {close}{reuse}, so {n} request(s) crossed its FIN: make the upstream's idle timeout longer than the client's (proxy's) keep-alive timeout, or the client's shorter."
            )
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sentence_for_every_kind_of_finding() {
        let mut ep = EndpointTally::new("10.0.0.1:80".parse().unwrap());
        assert!(recommend(&ep, None).is_empty());
        for k in Kind::ALL {
            ep.add_finding(k, Some(0.04));
        }
        let advice = recommend(&ep, Some(0.05));
        let findings = Kind::ALL.iter().filter(|k| k.is_finding()).count();
        assert_eq!(advice.len(), findings, "{advice:#?}");
        assert!(advice[0].contains("after about 50 ms while clients reuse them after up to 40 ms"));
        assert!(advice[1].contains("already acknowledged"), "{}", advice[1]);
        assert!(advice[2].contains("already reset"), "{}", advice[2]);
        assert!(advice[3].contains("abortive close"), "{}", advice[3]);
        assert!(
            advice[4].contains("closed without answering"),
            "{}",
            advice[4]
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
