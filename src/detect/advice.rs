//! What to change for an endpoint with races, in the words of the software on both ends: who
//! closes the idle connections (told by the `Server` header, the `Keep-Alive` header or the
//! way it closes), who reuses them (told by the client leg, when the capture holds it), the
//! settings with values derived from the measured idle closes, and what the suggested client
//! timeout would have avoided among the reuses measured.

use super::endpoints::EndpointTally;
use crate::report::schema::{Advice, Setting, Software, WhatIf};

/// A server that closes idle keep-alive connections: how to recognise it in a `Server` header
/// (lowercase), its name, and its idle-timeout setting for a value in seconds.
struct ServerKind {
    pattern: &'static str,
    name: &'static str,
    setting: SettingFor,
}

const SERVERS: &[ServerKind] = &[
    ServerKind {
        pattern: "gunicorn",
        name: "gunicorn",
        setting: |s| format!("--keep-alive {}", whole(s)),
    },
    ServerKind {
        pattern: "uvicorn",
        name: "uvicorn",
        setting: |s| format!("--timeout-keep-alive {}", whole(s)),
    },
    ServerKind {
        pattern: "apache",
        name: "Apache httpd",
        setting: |s| format!("KeepAliveTimeout {}", whole(s)),
    },
    ServerKind {
        pattern: "nginx",
        name: "nginx",
        setting: |s| format!("keepalive_timeout {}s; (http or server block)", whole(s)),
    },
    ServerKind {
        pattern: "caddy",
        name: "Caddy",
        setting: |s| format!("servers {{ timeouts {{ idle {}s }} }}", whole(s)),
    },
    ServerKind {
        pattern: "envoy",
        name: "Envoy",
        setting: |s| {
            format!(
                "common_http_protocol_options: {{ idle_timeout: {}s }} (HTTP connection manager)",
                whole(s)
            )
        },
    },
];

/// Node's http server: no `Server` header; it closes about 1 s after the `Keep-Alive` timeout
/// it announces (measured in the lab with Node 20).
fn node_setting(s: f64) -> String {
    format!(
        "server.keepAliveTimeout = {}; (ms; Node closes about 1 s later)",
        whole(s) * 1000
    )
}

/// A proxy's idle timeout for its pooled upstream connections, for a value in seconds.
struct ClientKind {
    pattern: &'static str,
    name: &'static str,
    setting: fn(f64) -> String,
    /// Its default, when it has one (seconds).
    default_s: Option<f64>,
}

const CLIENTS: &[ClientKind] = &[
    ClientKind {
        pattern: "nginx",
        name: "nginx",
        setting: |s| format!("keepalive_timeout {}; (in the upstream block)", duration(s)),
        default_s: Some(60.0),
    },
    ClientKind {
        pattern: "haproxy",
        name: "HAProxy",
        setting: |s| format!("timeout http-keep-alive {}", duration(s)),
        default_s: None,
    },
    ClientKind {
        pattern: "envoy",
        name: "Envoy",
        setting: |s| {
            format!(
                "common_http_protocol_options: {{ idle_timeout: {}s }} (cluster)",
                trim(s)
            )
        },
        default_s: Some(3600.0),
    },
    ClientKind {
        pattern: "caddy",
        name: "Caddy",
        setting: |s| format!("transport http {{ keepalive {} }}", duration(s)),
        default_s: Some(120.0),
    },
    ClientKind {
        pattern: "go-http-client",
        name: "Go net/http",
        setting: |s| {
            format!(
                "Transport.IdleConnTimeout = {} * time.Millisecond",
                (s * 1000.0).round()
            )
        },
        default_s: Some(90.0),
    },
];

/// Whole seconds, rounded up (settings that take integers).
fn whole(s: f64) -> u64 {
    s.ceil().max(1.0) as u64
}

fn trim(s: f64) -> String {
    let t = format!("{s:.3}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A duration as nginx, HAProxy and Caddy write it: "750ms", "45s".
fn duration(s: f64) -> String {
    if s >= 10.0 || s.fract() == 0.0 {
        format!("{}s", s.round())
    } else {
        format!("{}ms", (s * 1000.0).round())
    }
}

/// The client idle timeout to suggest: below the shortest idle close by a quarter of it (at
/// least 0.2 s), rounded down (to 50 ms below 10 s, whole seconds above).
pub(crate) fn client_timeout(idle_close_min: f64) -> f64 {
    let t = (idle_close_min - (0.25 * idle_close_min).max(0.2)).max(0.05);
    if t < 10.0 {
        ((t * 20.0).floor() / 20.0).max(0.05)
    } else {
        t.floor()
    }
}

/// Who closes the idle connections, from the endpoint's headers and its idle closes.
/// A setting for a value in seconds.
type SettingFor = fn(f64) -> String;

fn server_software(ep: &EndpointTally, median: f64) -> Option<(Software, SettingFor)> {
    for value in &ep.server_software {
        let lower = value.to_ascii_lowercase();
        if let Some(k) = SERVERS.iter().find(|k| lower.contains(k.pattern)) {
            let sw = Software {
                name: k.name,
                evidence: format!("Server: {value}"),
            };
            return Some((sw, k.setting));
        }
    }
    let announced = ep.keep_alive.iter().find_map(|v| keep_alive_timeout(v))?;
    if ep.server_software.is_empty() && (median - (announced + 1.0)).abs() <= 0.15 {
        let sw = Software {
            name: "Node.js http",
            evidence: format!(
                "no Server header, announces Keep-Alive: timeout={announced} and closes idle connections {median:.2} s after a response, 1 s later, as Node's http server does"
            ),
        };
        return Some((sw, node_setting));
    }
    None
}

/// The `timeout=N` of a `Keep-Alive` header value.
fn keep_alive_timeout(v: &str) -> Option<f64> {
    v.split(',').find_map(|p| {
        let (k, n) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("timeout"))
            .then(|| n.trim().trim_matches('"').parse::<f64>().ok())?
    })
}

/// Who reuses the connections: from the `Server` header of the proxy's own responses to its
/// clients (`proxy_servers`), or its behaviour towards them.
fn client_software(
    proxy_servers: &[String],
    closed_clients: bool,
) -> Option<(Software, &'static ClientKind)> {
    for value in proxy_servers {
        let lower = value.to_ascii_lowercase();
        if let Some(k) = CLIENTS.iter().find(|k| lower.contains(k.pattern)) {
            let sw = Software {
                name: k.name,
                evidence: format!("the proxy answers its clients with Server: {value}"),
            };
            return Some((sw, k));
        }
    }
    if closed_clients {
        let k = &CLIENTS[1];
        let sw = Software {
            name: k.name,
            evidence: "the proxy closed its client's connection without any response when the upstream request failed, as HAProxy does".into(),
        };
        return Some((sw, k));
    }
    None
}

/// What the proxy's side showed, for the advice.
#[derive(Debug, Default)]
pub(crate) struct ClientSide {
    /// `Server` headers of the proxy's responses to its clients.
    pub proxy_servers: Vec<String>,
    /// The proxy closed a client's connection without a response after a failure.
    pub closed_clients: bool,
    /// Idle times before the race findings' requests.
    pub race_idles: Vec<f64>,
}

/// The advice for an endpoint with races and measured idle closes.
pub(crate) fn advise(
    ep: &EndpointTally,
    median: Option<f64>,
    reuse: &crate::report::schema::Histogram,
    side: &ClientSide,
) -> Option<Advice> {
    let min = ep.idle.min()?;
    if side.race_idles.is_empty() {
        return None;
    }
    let client_t = client_timeout(min);
    let server = server_software(ep, median.unwrap_or(min));
    let client = client_software(&side.proxy_servers, side.closed_clients);
    let reuse_max = ep.max_reuse_idle.unwrap_or(min).max(min);
    let server_t = match client.as_ref().and_then(|(_, k)| k.default_s) {
        Some(d) => (d + (0.25 * d).max(5.0)).ceil(),
        None => (2.0 * reuse_max).ceil().max(min.ceil() + 1.0),
    };
    let mut settings = Vec::new();
    match &client {
        Some((_, k)) => settings.push(client_setting(k, client_t)),
        None => settings.extend(CLIENTS.iter().map(|k| client_setting(k, client_t))),
    }
    match &server {
        Some((sw, f)) => settings.push(Setting {
            side: "server",
            software: sw.name,
            setting: f(server_t),
        }),
        None => {
            settings.extend(SERVERS.iter().take(4).map(|k| Setting {
                side: "server",
                software: k.name,
                setting: (k.setting)(server_t),
            }));
            settings.push(Setting {
                side: "server",
                software: "Node.js http",
                setting: node_setting(server_t),
            });
        }
    }
    let races_avoided = side.race_idles.iter().filter(|&&i| i >= client_t).count() as u64;
    Some(Advice {
        server_software: server.map(|s| s.0),
        client_software: client.map(|c| c.0),
        idle_close_min_s: min,
        client_idle_timeout_s: client_t,
        server_idle_timeout_s: server_t,
        settings,
        what_if: WhatIf {
            client_idle_timeout_s: client_t,
            reuses: reuse.total(),
            reuses_avoided: reuse.at_least(client_t),
            races: side.race_idles.len() as u64,
            races_avoided,
        },
    })
}

fn client_setting(k: &ClientKind, t: f64) -> Setting {
    Setting {
        side: "client",
        software: k.name,
        setting: (k.setting)(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_formats() {
        assert_eq!(client_timeout(1.0), 0.75);
        assert_eq!(client_timeout(2.0), 1.5);
        assert_eq!(client_timeout(60.0), 45.0);
        assert_eq!(client_timeout(0.1), 0.05);
        assert_eq!(duration(0.75), "750ms");
        assert_eq!(duration(45.0), "45s");
        assert_eq!(keep_alive_timeout("timeout=5, max=100"), Some(5.0));
        assert_eq!(keep_alive_timeout("max=100"), None);
    }

    #[test]
    fn software_from_headers_and_behaviour() {
        let mut ep = EndpointTally::new("10.0.0.2:80".parse().unwrap());
        ep.server_software.insert("gunicorn".into());
        let (sw, f) = server_software(&ep, 1.0).unwrap();
        assert_eq!(sw.name, "gunicorn");
        assert_eq!(f(75.0), "--keep-alive 75");
        let mut node = EndpointTally::new("10.0.0.2:80".parse().unwrap());
        node.keep_alive.insert("timeout=1".into());
        assert_eq!(
            server_software(&node, 2.001).unwrap().0.name,
            "Node.js http"
        );
        assert!(server_software(&node, 1.0).is_none());
        let (c, k) = client_software(&["nginx/1.22.1".into()], false).unwrap();
        assert_eq!(c.name, "nginx");
        assert_eq!(
            (k.setting)(0.75),
            "keepalive_timeout 750ms; (in the upstream block)"
        );
        assert_eq!(client_software(&[], true).unwrap().0.name, "HAProxy");
        assert!(client_software(&[], false).is_none());
    }
}
