//! Port 4500 (RFC 3948): telling IKE from ESP, and reading the port with
//! `UDP_GRO`.
//!
//! iked and the datapath both read port-4500 sockets (the datapath while
//! iked has handed them over, iked otherwise; see `crate::handoff`), so
//! both use these.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// What a datagram read on port 4500 is (RFC 3948 §2.2, §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatTDatagram<'a> {
    /// IKE: the message after the four-zero non-ESP marker.
    Ike(&'a [u8]),
    /// A NAT keepalive (one 0xff octet): only keeps a NAT mapping open.
    Keepalive,
    /// ESP, starting at the SPI (never zero, hence the marker).
    Esp(&'a [u8]),
}

/// Classifies one datagram read on port 4500.
#[must_use]
pub fn classify(datagram: &[u8]) -> NatTDatagram<'_> {
    match datagram {
        [0, 0, 0, 0, ike @ ..] => NatTDatagram::Ike(ike),
        [0xff] => NatTDatagram::Keepalive,
        esp => NatTDatagram::Esp(esp),
    }
}

/// One read of a socket that may have `UDP_GRO` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroRead {
    /// Bytes read: one datagram, or several back to back.
    pub len: usize,
    /// The sender (all coalesced datagrams share it).
    pub remote: SocketAddr,
    /// Each datagram's size, the last possibly shorter (`len` itself when
    /// nothing was coalesced); never zero.
    pub segment: usize,
}

/// A control-message buffer for [`recv_gro`], allocated once per reader.
#[must_use]
pub fn gro_control_buffer() -> Vec<u8> {
    nix::cmsg_space!(libc::c_int)
}

/// One non-blocking `recvmsg` into `buf` (64 KiB holds any read, coalesced
/// or not), with `control` from [`gro_control_buffer`]; allocates nothing.
///
/// # Errors
/// The `recvmsg` error (`WouldBlock` when nothing is queued);
/// `InvalidData` for a read cut short by a too-small `buf` (the datagram
/// is gone) or a datagram without an IP sender address.
#[allow(
    clippy::ptr_arg,
    reason = "nix's recvmsg takes the control buffer as a Vec"
)]
pub fn recv_gro(sock: &impl AsRawFd, buf: &mut [u8], control: &mut Vec<u8>) -> io::Result<GroRead> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(control),
        MsgFlags::MSG_DONTWAIT,
    )?;
    if msg.flags.contains(MsgFlags::MSG_TRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram larger than the receive buffer; dropped",
        ));
    }
    let len = msg.bytes;
    let mut segment = len;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::UdpGroSegments(s) = c {
            segment = usize::try_from(s).unwrap_or(len).clamp(1, len.max(1));
        }
    }
    let remote = msg
        .address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
                .or_else(|| {
                    a.as_sockaddr_in6()
                        .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
                })
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "datagram without a sender address",
            )
        })?;
    Ok(GroRead {
        len,
        remote,
        segment: segment.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gro_reads_give_the_segment_size_and_the_sender() {
        let rx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let gro =
            nix::sys::socket::setsockopt(&rx, nix::sys::socket::sockopt::UdpGroSegment, &true)
                .is_ok();
        let tx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = rx.local_addr().unwrap();
        for _ in 0..3 {
            tx.send_to(&[7u8; 100], to).await.unwrap();
        }
        tx.send_to(&[7u8; 40], to).await.unwrap();
        let mut buf = vec![0u8; 65_535];
        let mut control = gro_control_buffer();
        let mut total = 0;
        while total < 340 {
            let got = rx
                .async_io(tokio::io::Interest::READABLE, || {
                    recv_gro(&rx, &mut buf, &mut control)
                })
                .await
                .unwrap();
            assert_eq!(got.remote, tx.local_addr().unwrap());
            assert!(got.segment == 100 || got.segment == got.len, "{got:?}");
            assert!(gro || got.segment == got.len);
            total += got.len;
        }
        assert_eq!(total, 340);
    }

    #[tokio::test]
    async fn a_datagram_larger_than_the_buffer_is_refused_not_cut() {
        let rx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        tx.send_to(&[1u8; 100], rx.local_addr().unwrap())
            .await
            .unwrap();
        let mut small = [0u8; 10];
        let mut control = gro_control_buffer();
        let err = rx
            .async_io(tokio::io::Interest::READABLE, || {
                recv_gro(&rx, &mut small, &mut control)
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    #[test]
    fn the_marker_separates_ike_from_esp_and_keepalives() {
        assert_eq!(
            classify(&[0, 0, 0, 0, 0x21, 0x20]),
            NatTDatagram::Ike(&[0x21, 0x20])
        );
        assert_eq!(classify(&[0xff]), NatTDatagram::Keepalive);
        let spi1 = [0, 0, 0, 1, 0, 0, 0, 1];
        assert_eq!(classify(&spi1), NatTDatagram::Esp(&spi1));
        assert_eq!(classify(&[0xff, 0xff]), NatTDatagram::Esp(&[0xff, 0xff]));
    }
}
