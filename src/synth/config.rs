//! How a simulated conversation is set up: endpoints, ISNs, delay, vantage point, MSS.

use super::segment::{RstReplyForm, Vantage};
use std::net::SocketAddr;
use std::time::Duration;

/// Configuration of one conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvConfig {
    /// Written into [`PacketTag::conv`] of every packet.
    pub id: u32,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub client_isn: u32,
    pub server_isn: u32,
    /// One-way delay between the endpoints.
    pub delay: Duration,
    pub vantage: Vantage,
    /// Maximum payload per segment for [`Conversation::send`].
    pub mss: u16,
    pub client_window: u16,
    pub server_window: u16,
    /// Automatic pure ACKs: when a segment carrying data or FIN arrives, the receiver sends an
    /// ACK after this delay unless it has sent a segment acknowledging everything by then
    /// (so a prompt response piggybacks the ACK). `None` (default): no automatic ACKs.
    /// A side that has sent its FIN does not ACK arriving *data* (a closed socket answers data
    /// with a reset; the scenario decides that), and a reset side sends nothing.
    pub auto_ack: Option<Duration>,
    pub rst_reply: RstReplyForm,
    pub ttl: u8,
}

impl ConvConfig {
    /// Defaults: d = 10 ms, client vantage, MSS 1460, no automatic ACKs, bare RST replies, ISNs
    /// derived from the ports.
    pub fn new(client: SocketAddr, server: SocketAddr) -> Self {
        assert_eq!(
            client.is_ipv4(),
            server.is_ipv4(),
            "client and server must use the same IP version"
        );
        let cp = u32::from(client.port());
        let sp = u32::from(server.port());
        ConvConfig {
            id: 0,
            client,
            server,
            client_isn: 0x3a00_0000u32.wrapping_add(cp.wrapping_mul(2_654_435_761)),
            server_isn: 0x9c00_0000u32.wrapping_add((cp ^ sp).wrapping_mul(40_503)),
            delay: Duration::from_millis(10),
            vantage: Vantage::Client,
            mss: 1460,
            client_window: 64_240,
            server_window: 65_160,
            auto_ack: None,
            rst_reply: RstReplyForm::Bare,
            ttl: 64,
        }
    }

    pub fn id(mut self, id: u32) -> Self {
        self.id = id;
        self
    }

    pub fn isn(mut self, client_isn: u32, server_isn: u32) -> Self {
        self.client_isn = client_isn;
        self.server_isn = server_isn;
        self
    }

    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    pub fn vantage(mut self, v: Vantage) -> Self {
        self.vantage = v;
        self
    }

    pub fn mss(mut self, mss: u16) -> Self {
        self.mss = mss;
        self
    }

    pub fn auto_ack(mut self, delay: Option<Duration>) -> Self {
        self.auto_ack = delay;
        self
    }

    pub fn rst_reply(mut self, form: RstReplyForm) -> Self {
        self.rst_reply = form;
        self
    }
}
