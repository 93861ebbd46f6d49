//! The TCP header: ports, sequence numbers, flags, window and the window-scale option.

use super::{Decoded, Layer, Segment, SkipReason, TcpFlags, malformed};
use etherparse::{TcpHeaderSlice, TcpOptionElement};
use std::net::{IpAddr, SocketAddr};

/// `seg`: captured TCP bytes (padding already trimmed); `seg_wire`: TCP length from the IP header;
/// `ip_id`: the IPv4 identification or IPv6 flow label; `at`: the tunnel it was found in.
#[inline]
pub(super) fn decode_tcp<'a>(
    at: Layer<'_>,
    (src, dst): (IpAddr, IpAddr),
    ip_id: u32,
    seg: &'a [u8],
    seg_wire: usize,
) -> Decoded<'a> {
    use etherparse::err::tcp::HeaderSliceError;
    let t = match TcpHeaderSlice::from_slice(seg) {
        Ok(t) => t,
        Err(HeaderSliceError::Len(e)) => {
            let need = e.required_len;
            return if seg_wire >= need {
                Decoded::Skip(
                    SkipReason::Truncated,
                    Some(format!(
                        "TCP header cut by the snaplen ({} of {need} bytes captured)",
                        seg.len()
                    )),
                )
            } else {
                malformed(format!(
                    "TCP header length {need} > TCP segment length {seg_wire} from the IP header"
                ))
            };
        }
        Err(HeaderSliceError::Content(e)) => {
            let etherparse::err::tcp::HeaderError::DataOffsetTooSmall { data_offset } = e;
            return malformed(format!("TCP data offset {data_offset} < 5"));
        }
    };
    let hl = t.slice().len();
    let flags = TcpFlags(t.slice()[13]);
    // the window scale counts on SYN segments only: the options of the others are not read
    let wscale = if flags.syn() { window_scale(&t) } else { None };
    Decoded::Tcp(Segment {
        src: SocketAddr::new(src, t.source_port()),
        dst: SocketAddr::new(dst, t.destination_port()),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
        flags,
        window: t.window_size(),
        wscale,
        payload: &seg[hl..],
        payload_len: (seg_wire - hl) as u32,
        ip_id,
        options: &seg[20..hl],
        tunnel: at.tunnel,
        vnet: at.vnet,
    })
}

/// The window-scale option's shift, if the header has one.
fn window_scale(t: &TcpHeaderSlice<'_>) -> Option<u8> {
    for opt in t.options_iterator() {
        match opt {
            Ok(TcpOptionElement::WindowScale(s)) => return Some(s),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}
