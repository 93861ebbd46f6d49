//! The connection of a finding: its addresses, the NAT and the tunnel it was captured in.

use schemars::JsonSchema;
use serde::Serialize;
use std::net::SocketAddr;

/// The connection of a finding, as the report names it.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ConnectionInfo {
    /// Position of the connection's first packet in the input.
    pub id: u64,
    /// `"IP:port"` (`"[IPv6]:port"`).
    pub client: String,
    pub server: String,
    pub client_ip: String,
    pub client_port: u16,
    pub server_ip: String,
    pub server_port: u16,
    /// The same connection captured on the other side of a NAT, under other addresses.
    pub nat: Option<NatInfo>,
    /// The tunnel the connection was captured in.
    pub tunnel: Option<TunnelInfo>,
}

impl ConnectionInfo {
    pub fn new(id: u64, client: SocketAddr, server: SocketAddr) -> ConnectionInfo {
        ConnectionInfo {
            id,
            client: client.to_string(),
            server: server.to_string(),
            client_ip: client.ip().to_string(),
            client_port: client.port(),
            server_ip: server.ip().to_string(),
            server_port: server.port(),
            nat: None,
            tunnel: None,
        }
    }

    /// `client -> server`, with the addresses on the other side of a NAT.
    pub fn route(&self) -> String {
        let Some(nat) = &self.nat else {
            return format!("{} -> {}", self.client, self.server);
        };
        let (own, other) = ((&self.client, &self.server), (&nat.client, &nat.server));
        let (before, after) = if nat.side == "server" {
            (own, other)
        } else {
            (other, own)
        };
        if before.0 == after.0 {
            format!("{} -> {} (DNAT to {})", before.0, before.1, after.1)
        } else if before.1 == after.1 {
            format!("{} (SNAT to {}) -> {}", before.0, after.0, before.1)
        } else {
            format!(
                "{} -> {} (NAT to {} -> {})",
                before.0, before.1, after.0, after.1
            )
        }
    }
}

/// A connection's addresses on the other side of a NAT.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct NatInfo {
    /// `"IP:port"` (`"[IPv6]:port"`).
    pub client: String,
    pub server: String,
    /// On which side of the NAT these addresses were captured: "client" (before the
    /// translation of the client's packets) or "server" (after it).
    #[schemars(extend("enum" = ["client", "server"]))]
    pub side: &'static str,
}

/// The encapsulation a connection was captured in (its first encapsulated packet's).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct TunnelInfo {
    /// The outermost layer.
    #[schemars(extend("enum" = ["vxlan", "geneve", "gre", "gre_in_udp", "erspan1", "erspan2", "erspan3", "ip_in_ip", "mpls", "pppoe"]))]
    pub kind: &'static str,
    /// VNI, GRE key, ERSPAN or PPPoE session, MPLS label.
    pub id: Option<u32>,
    /// The outer IP addresses of that packet (none for MPLS and PPPoE).
    pub outer_src: Option<String>,
    pub outer_dst: Option<String>,
    /// Who sent that packet.
    #[schemars(extend("enum" = ["client", "server"]))]
    pub sent_by: &'static str,
    /// Encapsulation layers.
    pub layers: u8,
    /// The innermost layer, when there were several.
    pub inner: Option<TunnelLayerInfo>,
}

/// The innermost of several encapsulations.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct TunnelLayerInfo {
    #[schemars(extend("enum" = ["vxlan", "geneve", "gre", "gre_in_udp", "erspan1", "erspan2", "erspan3", "ip_in_ip", "mpls", "pppoe"]))]
    pub kind: &'static str,
    pub id: Option<u32>,
}
