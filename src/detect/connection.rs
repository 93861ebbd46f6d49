//! How a finding names its connection: its addresses, those on the other side of a NAT when it
//! was captured on both, the tunnel it was captured in, and the sentences that say so in the
//! evidence. A finding decided while its connection goes on (a refused HTTP/2 stream) learns
//! that at the connection's end ([`OpenConnections`]).

use crate::decode::{Tunnel, TunnelKind};
use crate::flow::{ConnEnd, Dir};
use crate::report::schema::{ConnectionInfo, Finding, NatInfo, TunnelInfo, TunnelLayerInfo};
use rustc_hash::FxHashMap;

/// Findings held back at most per connection (beyond, they go out without the capture's
/// tunnel and NAT).
const MAX_HELD: usize = 1024;

/// Connections that have findings decided before their end, by connection id: the direction
/// their client sent, and the findings already final, held until the end says where the
/// connection was captured (its tunnel and other side of a NAT are known only then).
#[derive(Debug, Default)]
pub(super) struct OpenConnections {
    by_conn: FxHashMap<u64, (Dir, Vec<Finding>)>,
}

impl OpenConnections {
    /// Connection `conn`, whose client sent `client`, has a finding before its end.
    pub fn open(&mut self, conn: u64, client: Dir) {
        self.by_conn.entry(conn).or_insert((client, Vec::new()));
    }

    /// A final finding: held when its connection goes on (`None`), else given back.
    pub fn hold(&mut self, f: Finding) -> Option<Finding> {
        match self.by_conn.get_mut(&f.connection.id) {
            Some((_, held)) if held.len() < MAX_HELD => {
                held.push(f);
                None
            }
            _ => Some(f),
        }
    }

    /// Connection `end` ended: completes `waiting` (its findings not yet final) and returns
    /// those held, completed; `None` when it had none before its end.
    pub fn end<'a>(
        &mut self,
        end: &ConnEnd,
        waiting: impl Iterator<Item = &'a mut Finding>,
    ) -> Option<Vec<Finding>> {
        let (client, mut held) = self.by_conn.remove(&end.conn.id)?;
        for f in waiting {
            complete(f, end, client);
        }
        for f in &mut held {
            complete(f, end, client);
        }
        Some(held)
    }

    /// End of the analysis: every finding still held (each connection has ended by now).
    pub fn drain(&mut self) -> impl Iterator<Item = Finding> + '_ {
        self.by_conn.drain().flat_map(|(_, (_, held))| held)
    }
}

/// Name in `f` where its connection, ended with `end`, was captured: its addresses on both
/// sides of a NAT and its tunnel, in the connection and in the evidence.
pub(super) fn complete(f: &mut Finding, end: &ConnEnd, client: Dir) {
    f.connection = connection_info(end, client);
    let tunnel = end.tunnel.as_ref().map(|(_, t)| t);
    f.evidence
        .push_str(&describe_capture(&f.connection, tunnel));
}

fn role(d: Dir, client: Dir) -> &'static str {
    if d == client { "client" } else { "server" }
}

/// The report's description of a finished connection whose client sent direction `client`.
fn connection_info(end: &ConnEnd, client: Dir) -> ConnectionInfo {
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
fn describe_capture(c: &ConnectionInfo, tunnel: Option<&Tunnel>) -> String {
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
