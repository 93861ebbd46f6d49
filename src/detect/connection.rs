//! How a finding names its connection: its addresses, those on the other side of a NAT when it
//! was captured on both, the tunnel it was captured in, and the sentences that say so in the
//! evidence. A finding decided while its connection goes on (a refused HTTP/2 stream) learns
//! that at the connection's end (the verdict stage holds it until then).

use crate::decode::{Tunnel, TunnelKind};
use crate::flow::{ConnEnd, Dir};
use crate::report::schema::{ConnectionInfo, NatInfo, TunnelInfo, TunnelLayerInfo};

fn role(d: Dir, client: Dir) -> &'static str {
    if d == client { "client" } else { "server" }
}

/// The report's description of a finished connection whose client sent direction `client`.
pub(super) fn connection_info(end: &ConnEnd, client: Dir) -> ConnectionInfo {
    let server = client.other();
    let conn = &end.conn;
    ConnectionInfo {
        nat: end.twin.map(|t| NatInfo {
            client: t.addrs[client].to_string(),
            server: t.addrs[server].to_string(),
            // the connection's own addresses were captured nearer to `near`'s sender
            side: role(t.near.other(), client),
        }),
        tunnel: end.tunnel.map(|(d, t)| tunnel_info(&t, role(d, client))),
        ..ConnectionInfo::new(conn.id, conn.addrs[client], conn.addrs[server])
    }
}

fn tunnel_info(t: &Tunnel, sent_by: &'static str) -> TunnelInfo {
    TunnelInfo {
        kind: t.outer.kind.as_str(),
        id: t.outer.id,
        outer_src: t.outer.outer.map(|(s, _)| s.to_string()),
        outer_dst: t.outer.outer.map(|(_, d)| d.to_string()),
        sent_by,
        layers: t.layers,
        inner: t.inner.map(|(kind, id)| TunnelLayerInfo {
            kind: kind.as_str(),
            id,
        }),
    }
}

/// "VXLAN (VNI 42)".
fn layer_name(kind: TunnelKind, id: Option<u32>) -> String {
    match id {
        Some(id) => format!("{} ({} {id})", kind.display_name(), kind.id_name()),
        None => kind.display_name().to_string(),
    }
}

/// Sentences on where the connection was captured (a NAT's both sides, a tunnel), to follow
/// the verdict's evidence; empty when it was captured plainly.
pub(super) fn describe_capture(c: &ConnectionInfo, tunnel: Option<&Tunnel>) -> String {
    let mut text = String::new();
    if c.nat.is_some() {
        text.push_str(&format!(
            " The connection was captured on both sides of a NAT: {}; each segment counts once.",
            c.route()
        ));
    }
    if let Some(t) = tunnel {
        text.push_str(&format!(
            " Captured inside {}",
            layer_name(t.outer.kind, t.outer.id)
        ));
        if let Some((src, dst)) = t.outer.outer {
            text.push_str(&format!(" from {src} to {dst}"));
        }
        if let Some((kind, id)) = t.inner {
            text.push_str(&format!(
                ", {} layers deep (the innermost {})",
                t.layers,
                layer_name(kind, id)
            ));
        }
        text.push('.');
    }
    text
}
