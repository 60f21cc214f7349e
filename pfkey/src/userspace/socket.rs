//! Raw ESP sockets (IP protocol 50) for SAs without UDP encapsulation.
//!
//! One socket per family receives every ESP packet the host gets (the
//! kernel has no ESP handler to consume them) and sends ours. The outer
//! source address is set per packet with `IP_PKTINFO` / `IPV6_PKTINFO`
//! ancillary data, so one socket serves every local address; the kernel
//! writes the outer header. (`IP_HDRINCL`, the datapath writing the IPv4
//! header itself, saved the kernel's checksum over each raw payload but
//! cost a quarter of the bulk TCP throughput through the tunnel: see
//! bench/README.md, "ESP throughput".) The control
//! message bytes are laid out here by hand (native endianness, `cmsghdr`
//! alignment), which keeps this file free of `unsafe`; registering the
//! socket with tokio is in `crate::sys`.
//!
//! Both raw sockets carry [`BYPASS_MARK`], as must every socket that talks
//! IKE or ESP-in-UDP to a peer ([`mark_socket`]): see [`super::route`].

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};

use socket2::{Domain, MsgHdr, Protocol, SockAddr, SockRef, Socket, Type};
use tokio::io::unix::AsyncFd;

/// The firewall mark (`SO_MARK`) of sockets whose packets must not be
/// routed into the userspace datapath's TUN device: its own raw ESP
/// sockets, the port-4500 sockets it sends ESP-in-UDP from, and the IKE
/// sockets of the daemons (ports 500 and 4500).
///
/// The routing rule of the datapath is `not fwmark BYPASS_MARK lookup
/// 3948`: marked packets skip the table that routes protected destinations
/// into the TUN device and use the main table, so IKE and ESP reach a peer
/// whose own address is inside an SA's selectors (transport mode,
/// host-to-host tunnels). strongSwan's libipsec does the same with
/// `socket-default.fwmark` and table 220. Other software on the host must
/// not use this mark value for other purposes.
pub const BYPASS_MARK: u32 = 0x3948;

/// Marks `sock` with [`BYPASS_MARK`] (`setsockopt(SO_MARK)`), so that its
/// packets bypass the userspace datapath's routes.
///
/// Daemons call this on every IKE socket (ports 500 and 4500) before
/// sending from it; [`super::UserspaceKernel::attach_nat_t_socket`] calls
/// it on the sockets it is given.
///
/// # Errors
/// The `setsockopt` error: `EPERM` without `CAP_NET_ADMIN` (or, since
/// Linux 5.17, `CAP_NET_RAW`).
pub fn mark_socket(sock: impl AsFd) -> io::Result<()> {
    SockRef::from(&sock).set_mark(BYPASS_MARK)
}

/// Receive buffer of the raw ESP sockets, in bytes.
const RAW_RCVBUF: usize = 4 << 20;

/// IP protocol number of ESP.
pub(crate) const IPPROTO_ESP: i32 = 50;

/// Opens a non-blocking raw ESP socket of `domain`, marked with
/// [`BYPASS_MARK`].
pub(crate) fn open(domain: Domain) -> io::Result<AsyncFd<Socket>> {
    let sock = Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_ESP)))?;
    sock.set_nonblocking(true)?;
    sock.set_mark(BYPASS_MARK)?;
    enlarge_receive_buffer(&sock);
    crate::sys::register(sock)
}

/// Room for the bursts a GSO-sized send of the peer brings (the default
/// queue overflows under bulk TCP, and a coalesced UDP read counts whole):
/// beyond `rmem_max` as root (`SO_RCVBUFFORCE`), else as much as allowed.
pub(crate) fn enlarge_receive_buffer(sock: &impl AsFd) {
    if nix::sys::socket::setsockopt(sock, nix::sys::socket::sockopt::RcvBufForce, &RAW_RCVBUF)
        .is_err()
    {
        let _ = SockRef::from(sock).set_recv_buffer_size(RAW_RCVBUF);
    }
}

/// Reads up to as many datagrams as `bufs` yields buffers, one into each,
/// with a single non-blocking `recvmmsg`; `lens[i]` becomes the length of
/// the one in the `i`th buffer. Returns how many were read (`WouldBlock`
/// if none).
///
/// Allocates per call (the headers), never per packet.
pub(crate) fn recv_batch<'a>(
    sock: &Socket,
    bufs: impl Iterator<Item = &'a mut [u8]>,
    lens: &mut [usize],
) -> io::Result<usize> {
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};
    let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
        .take(lens.len())
        .map(|b| [IoSliceMut::new(b)])
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(iovs.len(), None);
    let got = recvmmsg(
        sock.as_raw_fd(),
        &mut headers,
        iovs.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )?;
    let mut n = 0;
    for (msg, len) in got.zip(lens.iter_mut()) {
        *len = msg.bytes;
        n += 1;
    }
    Ok(n)
}

/// Where the ESP packet starts in a datagram read from the IPv4 raw
/// socket, and where it ends (the IPv4 Total Length), if it is ESP.
#[must_use]
pub(crate) fn ipv4_esp_payload(packet: &[u8]) -> Option<std::ops::Range<usize>> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    let proto = *packet.get(9)?;
    let ok = packet[0] >> 4 == 4 && ihl >= 20 && total >= ihl && total <= packet.len();
    (ok && i32::from(proto) == IPPROTO_ESP).then_some(ihl..total)
}

/// Sends `payload` as ESP from `src` to `dst`; the kernel writes the IP
/// header (and fragments a packet too big for the path).
pub(crate) fn send(sock: &Socket, src: IpAddr, dst: IpAddr, payload: &[u8]) -> io::Result<usize> {
    let addr = SockAddr::from(SocketAddr::new(dst, 0));
    let mut control = [0u8; 64];
    let len = pktinfo(src, &mut control);
    let bufs = [IoSlice::new(payload)];
    let msg = MsgHdr::new()
        .with_addr(&addr)
        .with_buffers(&bufs)
        .with_control(&control[..len]);
    sock.sendmsg(&msg, 0)
}

/// Sends each of `packets` as one datagram to `dst` with a single
/// `sendmmsg`: from `src` (an `IP_PKTINFO` / `IPV6_PKTINFO` control message
/// on each) on a raw ESP socket, or from the socket's own address when
/// `src` is `None` (a bound UDP socket). Returns how many went out; the
/// kernel stops at the first that fails.
///
/// Allocates per call (the headers), never per packet.
pub(crate) fn send_batch<'a>(
    sock: &impl AsRawFd,
    src: Option<IpAddr>,
    dst: SocketAddr,
    packets: impl Iterator<Item = &'a [u8]>,
) -> io::Result<usize> {
    use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
    let iovs: Vec<[IoSlice<'a>; 1]> = packets.map(|p| [IoSlice::new(p)]).collect();
    let n = iovs.len();
    let addrs = vec![Some(SockaddrStorage::from(dst)); n];
    let info4;
    let info6;
    let (cmsgs, space) = match src {
        None => (Vec::new(), None),
        Some(IpAddr::V4(a)) => {
            info4 = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.octets()),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            (
                vec![ControlMessage::Ipv4PacketInfo(&info4)],
                Some(nix::cmsg_space!(libc::in_pktinfo)),
            )
        }
        Some(IpAddr::V6(a)) => {
            info6 = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: a.octets(),
                },
                ipi6_ifindex: 0,
            };
            (
                vec![ControlMessage::Ipv6PacketInfo(&info6)],
                Some(nix::cmsg_space!(libc::in6_pktinfo)),
            )
        }
    };
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(n, space);
    let sent = sendmmsg(
        sock.as_raw_fd(),
        &mut headers,
        &iovs,
        &addrs,
        &cmsgs,
        MsgFlags::empty(),
    )?;
    Ok(sent.count())
}

/// Most segments the kernel accepts in one UDP GSO send (`UDP_MAX_SEGMENTS`
/// is 64 before Linux 6.9).
pub(crate) const GSO_MAX_SEGMENTS: usize = 64;
/// Most payload bytes of one UDP GSO send: what fits in one IPv4 datagram
/// (65535 minus the IPv4 and UDP headers).
pub(crate) const GSO_MAX_BYTES: usize = 65_535 - 20 - 8;

/// How many of `lens` (at least one, if any) go out as one UDP GSO send:
/// a run of equal lengths, then at most one shorter, within
/// [`GSO_MAX_SEGMENTS`] and [`GSO_MAX_BYTES`] (the kernel's `UDP_SEGMENT`
/// layout: every segment `lens[0]` bytes but the last).
pub(crate) fn gso_run(lens: impl Iterator<Item = usize>) -> usize {
    let mut lens = lens.peekable();
    let Some(&size) = lens.peek() else {
        return 0;
    };
    let (mut n, mut bytes) = (0, 0);
    for len in lens {
        if n == GSO_MAX_SEGMENTS || bytes + len > GSO_MAX_BYTES || len > size || len == 0 {
            break;
        }
        n += 1;
        bytes += len;
        if len < size {
            break;
        }
    }
    n.max(1)
}

/// Sends `packets` (each `segment` bytes but the last, which may be
/// shorter) to `dst` with one `sendmsg` carrying a `UDP_SEGMENT` control
/// message: the kernel builds one GSO super-datagram and splits it into
/// one UDP datagram per packet as late as possible (in the driver, or for
/// a veth at the peer's receive, where UDP GRO keeps it whole).
///
/// # Errors
/// The `sendmsg` error; `EINVAL` or `EIO` mean the kernel or device cannot
/// do UDP GSO here (callers fall back to one datagram per packet).
pub(crate) fn send_gso<'a>(
    sock: &impl AsRawFd,
    dst: SocketAddr,
    segment: u16,
    packets: impl Iterator<Item = &'a [u8]>,
) -> io::Result<usize> {
    use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
    let iovs: Vec<IoSlice<'a>> = packets.map(IoSlice::new).collect();
    let addr = SockaddrStorage::from(dst);
    let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
    sendmsg(
        sock.as_raw_fd(),
        &iovs,
        &cmsg,
        MsgFlags::empty(),
        Some(&addr),
    )?;
    Ok(iovs.len())
}

/// Writes one `IP_PKTINFO` (`struct in_pktinfo { ifindex, spec_dst, addr }`)
/// or `IPV6_PKTINFO` (`struct in6_pktinfo { addr, ifindex }`) control
/// message selecting `src`; returns its space in bytes.
fn pktinfo(src: IpAddr, out: &mut [u8; 64]) -> usize {
    let mut data = [0u8; 20];
    let (level, kind, data_len) = match src {
        IpAddr::V4(a) => {
            // ipi_ifindex = 0, ipi_spec_dst = src, ipi_addr = 0.
            data[4..8].copy_from_slice(&a.octets());
            (libc::IPPROTO_IP, libc::IP_PKTINFO, 12)
        }
        IpAddr::V6(a) => {
            // ipi6_addr = src, ipi6_ifindex = 0.
            data[..16].copy_from_slice(&a.octets());
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, 20)
        }
    };
    let header = cmsg_align(size_of::<libc::cmsghdr>());
    let cmsg_len = header + data_len;
    let word = size_of::<usize>();
    out[..word].copy_from_slice(&cmsg_len.to_ne_bytes());
    out[word..word + 4].copy_from_slice(&level.to_ne_bytes());
    out[word + 4..word + 8].copy_from_slice(&kind.to_ne_bytes());
    out[header..header + data_len].copy_from_slice(&data[..data_len]);
    cmsg_align(cmsg_len)
}

/// `CMSG_ALIGN`: control messages are aligned to `size_t`.
fn cmsg_align(len: usize) -> usize {
    len.next_multiple_of(size_of::<usize>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmsghdr_layout_is_size_t_then_two_ints() {
        // The hand-built header must match libc's struct.
        assert_eq!(size_of::<libc::cmsghdr>(), size_of::<usize>() + 8);
    }

    #[test]
    fn pktinfo_v4_is_a_16_byte_header_and_12_bytes_of_data() {
        let mut buf = [0u8; 64];
        let n = pktinfo("192.0.2.1".parse().expect("v4"), &mut buf);
        assert_eq!(n, 32);
        assert_eq!(usize::from_ne_bytes(buf[..8].try_into().expect("8")), 28);
        assert_eq!(
            i32::from_ne_bytes(buf[12..16].try_into().expect("4")),
            libc::IP_PKTINFO
        );
        assert_eq!(&buf[20..24], &[192, 0, 2, 1]);
    }

    #[test]
    fn pktinfo_v6_carries_the_address_first() {
        let mut buf = [0u8; 64];
        let n = pktinfo("2001:db8::1".parse().expect("v6"), &mut buf);
        assert_eq!(n, 40);
        assert_eq!(usize::from_ne_bytes(buf[..8].try_into().expect("8")), 36);
        assert_eq!(&buf[16..20], &[0x20, 0x01, 0x0d, 0xb8]);
    }

    #[test]
    fn gso_runs_are_equal_lengths_then_at_most_one_shorter() {
        assert_eq!(gso_run([].into_iter()), 0);
        assert_eq!(gso_run([1400].into_iter()), 1);
        assert_eq!(gso_run([1400, 1400, 1400, 900, 1400].into_iter()), 4);
        assert_eq!(
            gso_run([1400, 1400, 1500, 1400].into_iter()),
            2,
            "longer ends it"
        );
        assert_eq!(gso_run([900, 1400].into_iter()), 1);
        assert_eq!(gso_run(std::iter::repeat_n(100, 100)), GSO_MAX_SEGMENTS);
        let n = gso_run(std::iter::repeat_n(1438, 64));
        assert_eq!(n, GSO_MAX_BYTES / 1438, "bounded by one datagram's bytes");
        assert_eq!(gso_run([0, 0].into_iter()), 1, "never stuck");
    }

    #[test]
    fn a_gso_send_arrives_as_one_datagram_per_packet() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .expect("timeout");
        let packets: [&[u8]; 3] = [&[1; 300], &[2; 300], &[3; 120]];
        match send_gso(
            &tx,
            rx.local_addr().expect("addr"),
            300,
            packets.into_iter(),
        ) {
            Ok(n) => assert_eq!(n, 3),
            // A kernel without UDP GSO: the datapath falls back.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::EIO | libc::ENOPROTOOPT)
                ) =>
            {
                return;
            }
            Err(e) => panic!("{e}"),
        }
        let mut buf = [0u8; 2048];
        for want in packets {
            let n = rx.recv(&mut buf).expect("recv");
            assert_eq!(&buf[..n], want);
        }
    }

    #[test]
    fn esp_payload_of_an_ipv4_datagram() {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&36u16.to_be_bytes());
        p[9] = 50;
        assert_eq!(ipv4_esp_payload(&p), Some(20..36));
        p[9] = 17;
        assert_eq!(ipv4_esp_payload(&p), None);
        p[9] = 50;
        p[2..4].copy_from_slice(&41u16.to_be_bytes());
        assert_eq!(ipv4_esp_payload(&p), None);
        assert_eq!(ipv4_esp_payload(&[]), None);
    }
}
