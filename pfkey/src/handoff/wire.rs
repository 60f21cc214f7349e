//! The hand-off messages: one per `SOCK_SEQPACKET` record.
//!
//! ```text
//! kind (1) | local: family (1) address (16) port (2) | remote: same (19) | payload
//! ```
//!
//! `kind` 1 attaches a port-4500 socket (its descriptor rides along as
//! `SCM_RIGHTS`, `remote` is unused), 2 carries one ESP datagram, 3 carries
//! the ESP datagrams UDP GRO coalesced into one read. The other way, spmd
//! to iked: 4 carries a datagram spmd's datapath read from an attached
//! socket that is not ESP (IKE behind its non-ESP marker), unchanged; 5
//! says the datapath now reads the socket bound to `local` (`remote`
//! unused), so iked may stop reading it. Kind 3's layout:
//!
//! ```text
//! kind 3 (1) | local (19) | remote (19) | segment size (2, big-endian) | payload
//! ```
//!
//! where the payload is datagrams of `segment size` bytes each, the last
//! possibly shorter (the kernel's `UDP_GRO` layout), so every record says
//! itself how to split it. IPv4 addresses are stored in the first four of
//! the sixteen address bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Attach a socket.
const KIND_ATTACH: u8 = 1;
/// Forward an ESP datagram.
const KIND_ESP: u8 = 2;
/// Forward GRO-coalesced ESP datagrams of one segment size.
const KIND_ESP_SEGMENTED: u8 = 3;
/// A non-ESP datagram the datapath read, for iked.
const KIND_FOR_IKED: u8 = 4;
/// The datapath reads an attached socket.
const KIND_READING: u8 = 5;
/// Bytes before the payload of a segmented record (GRO-coalesced ESP of one
/// segment size): the header and the 2-byte segment size.
pub const SEGMENTED_HEADER_LEN: usize = HEADER_LEN + 2;
const ENDPOINT_LEN: usize = 19;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 1 + 2 * ENDPOINT_LEN;

/// One decoded hand-off record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoffMessage<'a> {
    /// The sender's port-4500 socket bound to `local` follows as a
    /// descriptor.
    Attach {
        /// The socket's address.
        local: SocketAddr,
    },
    /// An ESP datagram that arrived on `local` from `remote`.
    Esp {
        /// Our address and port it arrived on.
        local: SocketAddr,
        /// The peer's address and port.
        remote: SocketAddr,
        /// The ESP packet (starting at the SPI).
        packet: &'a [u8],
    },
    /// ESP datagrams that arrived on `local` from `remote` and that UDP GRO
    /// coalesced: [`Self::datagrams`] splits them.
    Segmented {
        /// Our address and port they arrived on.
        local: SocketAddr,
        /// The peer's address and port.
        remote: SocketAddr,
        /// Each datagram's size (the last may be shorter); never zero.
        segment: u16,
        /// The datagrams, back to back.
        packets: &'a [u8],
    },
    /// A datagram that arrived on `local` from `remote` and is not ESP,
    /// which spmd passes back to iked as read (non-ESP marker included).
    ForIked {
        /// Our address and port it arrived on.
        local: SocketAddr,
        /// The peer's address and port.
        remote: SocketAddr,
        /// The UDP payload.
        datagram: &'a [u8],
    },
    /// spmd's datapath reads the socket bound to `local` that iked
    /// attached (sent once the reader is in place).
    Reading {
        /// The socket's address.
        local: SocketAddr,
    },
}

impl<'a> HandoffMessage<'a> {
    /// What the record is, for logs (never its payload).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Attach { .. } => "attach",
            Self::Esp { .. } => "ESP datagram",
            Self::Segmented { .. } => "coalesced ESP datagrams",
            Self::ForIked { .. } => "datagram for iked",
            Self::Reading { .. } => "datapath reading",
        }
    }

    /// The ESP datagrams an [`Esp`](Self::Esp) or
    /// [`Segmented`](Self::Segmented) record carries (none for the others).
    pub fn datagrams(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let (packets, size): (&'a [u8], usize) = match *self {
            Self::Attach { .. } | Self::ForIked { .. } | Self::Reading { .. } => (&[], 1),
            Self::Esp { packet, .. } => (packet, packet.len().max(1)),
            Self::Segmented {
                segment, packets, ..
            } => (packets, usize::from(segment).max(1)),
        };
        packets.chunks(size)
    }
}

/// Why a record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    /// Shorter than the header.
    #[error("hand-off record of {0} bytes is shorter than its header")]
    Truncated(usize),
    /// Unknown kind byte.
    #[error("hand-off record of unknown kind {0}")]
    UnknownKind(u8),
    /// Address family byte is neither 4 nor 6.
    #[error("hand-off record with address family {0}")]
    BadFamily(u8),
    /// A segmented record with a segment size of zero.
    #[error("hand-off record of coalesced datagrams with segment size 0")]
    ZeroSegment,
}

/// Writes an ESP record into `out` (cleared first).
pub fn encode_esp(out: &mut Vec<u8>, local: SocketAddr, remote: SocketAddr, packet: &[u8]) {
    out.clear();
    out.extend_from_slice(&esp_header(local, remote));
    out.extend_from_slice(packet);
}

/// The header of an ESP record, for a vectored send next to the packet.
pub fn esp_header(local: SocketAddr, remote: SocketAddr) -> [u8; HEADER_LEN] {
    header(KIND_ESP, local, remote)
}

/// The header every record starts with.
fn header(kind: u8, local: SocketAddr, remote: SocketAddr) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = kind;
    h[1..=ENDPOINT_LEN].copy_from_slice(&endpoint(local));
    h[1 + ENDPOINT_LEN..].copy_from_slice(&endpoint(remote));
    h
}

/// The header of a record of GRO-coalesced ESP datagrams of `segment`
/// bytes each (the last may be shorter), for a vectored send next to them.
pub fn segmented_header(
    local: SocketAddr,
    remote: SocketAddr,
    segment: u16,
) -> [u8; SEGMENTED_HEADER_LEN] {
    let mut h = [0u8; SEGMENTED_HEADER_LEN];
    h[..HEADER_LEN].copy_from_slice(&header(KIND_ESP_SEGMENTED, local, remote));
    h[HEADER_LEN..].copy_from_slice(&segment.to_be_bytes());
    h
}

/// The header of a record passing a non-ESP datagram back to iked, for a
/// vectored send next to it.
#[must_use]
pub fn for_iked_header(local: SocketAddr, remote: SocketAddr) -> [u8; HEADER_LEN] {
    header(KIND_FOR_IKED, local, remote)
}

/// The record announcing a socket bound to `local`.
#[must_use]
pub fn encode_attach(local: SocketAddr) -> Vec<u8> {
    header(
        KIND_ATTACH,
        local,
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
    )
    .to_vec()
}

/// The record saying the datapath reads the socket bound to `local`.
#[must_use]
pub fn encode_reading(local: SocketAddr) -> [u8; HEADER_LEN] {
    header(
        KIND_READING,
        local,
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
    )
}

/// Parses one record; never panics.
///
/// # Errors
/// [`HandoffError`] naming what is wrong.
pub fn decode(record: &[u8]) -> Result<HandoffMessage<'_>, HandoffError> {
    if record.len() < HEADER_LEN {
        return Err(HandoffError::Truncated(record.len()));
    }
    let (header, packet) = record.split_at(HEADER_LEN);
    let local = get(&header[1..=ENDPOINT_LEN])?;
    let remote = get(&header[1 + ENDPOINT_LEN..])?;
    match header[0] {
        KIND_ATTACH => Ok(HandoffMessage::Attach { local }),
        KIND_ESP => Ok(HandoffMessage::Esp {
            local,
            remote,
            packet,
        }),
        KIND_ESP_SEGMENTED => {
            let [a, b, ref packets @ ..] = *packet else {
                return Err(HandoffError::Truncated(record.len()));
            };
            let segment = u16::from_be_bytes([a, b]);
            if segment == 0 {
                return Err(HandoffError::ZeroSegment);
            }
            Ok(HandoffMessage::Segmented {
                local,
                remote,
                segment,
                packets,
            })
        }
        KIND_READING => Ok(HandoffMessage::Reading { local }),
        KIND_FOR_IKED => Ok(HandoffMessage::ForIked {
            local,
            remote,
            datagram: packet,
        }),
        k => Err(HandoffError::UnknownKind(k)),
    }
}

fn endpoint(a: SocketAddr) -> [u8; ENDPOINT_LEN] {
    let mut e = [0u8; ENDPOINT_LEN];
    match a.ip() {
        IpAddr::V4(v4) => {
            e[0] = 4;
            e[1..5].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            e[0] = 6;
            e[1..17].copy_from_slice(&v6.octets());
        }
    }
    e[17..].copy_from_slice(&a.port().to_be_bytes());
    e
}

fn get(b: &[u8]) -> Result<SocketAddr, HandoffError> {
    let mut addr = [0u8; 16];
    addr.copy_from_slice(&b[1..17]);
    let port = u16::from_be_bytes([b[17], b[18]]);
    let ip = match b[0] {
        4 => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        6 => IpAddr::V6(Ipv6Addr::from(addr)),
        f => return Err(HandoffError::BadFamily(f)),
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esp_records_round_trip_for_both_families() {
        let pairs = [
            ("192.0.2.1:4500", "198.51.100.7:34512"),
            ("[2001:db8::1]:4500", "[2001:db8:1::9]:4500"),
        ];
        for (l, r) in pairs {
            let (local, remote) = (l.parse().unwrap(), r.parse().unwrap());
            let mut rec = Vec::new();
            encode_esp(&mut rec, local, remote, b"\x00\x00\x10\x01payload");
            assert_eq!(
                decode(&rec),
                Ok(HandoffMessage::Esp {
                    local,
                    remote,
                    packet: b"\x00\x00\x10\x01payload"
                })
            );
        }
    }

    #[test]
    fn segmented_records_split_into_their_datagrams_the_last_shorter() {
        let local = "192.0.2.1:4500".parse().unwrap();
        let remote = "[2001:db8::9]:4500".parse().unwrap();
        let mut rec = segmented_header(local, remote, 4).to_vec();
        rec.extend_from_slice(b"aaaabbbbcc");
        let msg = decode(&rec).unwrap();
        assert_eq!(
            msg,
            HandoffMessage::Segmented {
                local,
                remote,
                segment: 4,
                packets: b"aaaabbbbcc"
            }
        );
        let parts: Vec<&[u8]> = msg.datagrams().collect();
        assert_eq!(parts, [&b"aaaa"[..], b"bbbb", b"cc"]);
        // An ESP record is one datagram, an attach none.
        let mut one = Vec::new();
        encode_esp(&mut one, local, remote, b"xyz");
        assert_eq!(decode(&one).unwrap().datagrams().count(), 1);
        assert_eq!(
            decode(&encode_attach(local)).unwrap().datagrams().count(),
            0
        );
    }

    #[test]
    fn segmented_records_without_a_valid_size_are_refused() {
        let local = "192.0.2.1:4500".parse().unwrap();
        let rec = segmented_header(local, local, 0);
        assert_eq!(decode(&rec), Err(HandoffError::ZeroSegment));
        assert_eq!(
            decode(&rec[..HEADER_LEN + 1]),
            Err(HandoffError::Truncated(HEADER_LEN + 1))
        );
    }

    #[test]
    fn records_for_iked_carry_the_datagram_as_read() {
        let local = "[2001:db8::1]:4500".parse().unwrap();
        let remote = "192.0.2.9:4500".parse().unwrap();
        let mut rec = for_iked_header(local, remote).to_vec();
        rec.extend_from_slice(b"\0\0\0\0ike");
        let msg = decode(&rec).unwrap();
        assert_eq!(
            msg,
            HandoffMessage::ForIked {
                local,
                remote,
                datagram: b"\0\0\0\0ike"
            }
        );
        assert_eq!(msg.datagrams().count(), 0, "not ESP for the datapath");
    }

    #[test]
    fn attach_and_reading_records_carry_the_local_address() {
        let local = "192.0.2.1:4500".parse().unwrap();
        assert_eq!(
            decode(&encode_attach(local)),
            Ok(HandoffMessage::Attach { local })
        );
        let v6 = "[2001:db8::1]:4500".parse().unwrap();
        assert_eq!(
            decode(&encode_reading(v6)),
            Ok(HandoffMessage::Reading { local: v6 })
        );
    }

    #[test]
    fn every_prefix_and_kind_of_a_record_decodes_or_is_refused_without_panic() {
        let mut rec = Vec::new();
        encode_esp(
            &mut rec,
            "[2001:db8::1]:4500".parse().unwrap(),
            "192.0.2.9:4500".parse().unwrap(),
            b"spi+payload",
        );
        for len in 0..=rec.len() {
            for kind in 0..=6 {
                let mut r = rec[..len].to_vec();
                if let Some(k) = r.first_mut() {
                    *k = kind;
                }
                let _ = decode(&r);
            }
        }
    }

    #[test]
    fn malformed_records_are_refused() {
        assert_eq!(decode(&[2; 10]), Err(HandoffError::Truncated(10)));
        let mut rec = encode_attach("192.0.2.1:4500".parse().unwrap());
        rec[0] = 9;
        assert_eq!(decode(&rec), Err(HandoffError::UnknownKind(9)));
        rec[1] = 5;
        assert_eq!(decode(&rec), Err(HandoffError::BadFamily(5)));
    }
}
