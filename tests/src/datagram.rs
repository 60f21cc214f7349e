//! UDP datagrams seen and forged inside a test namespace: [`Capture`] records
//! what arrives at a host (an `AF_PACKET` socket, so it sees datagrams before
//! any socket or firewall does, whether or not something listens), and
//! [`inject_udp_v4`] sends a datagram with any source address and port (a raw
//! `IPPROTO_RAW` socket), e.g. a captured KINK message replayed "from" its
//! original sender, or a tampered copy of it.
//!
//! Sockets are created on a short-lived thread that has entered the
//! namespace (`setns(2)` changes only the calling thread's network
//! namespace); a socket stays in the namespace it was created in, so the test
//! thread then uses it directly. No process is started, so nothing needs
//! cleaning up but the sockets, which close on drop. Root is needed.
//!
//! IPv4 only: the KINK failure tests run over IPv4.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketType, eth, ipproto, recv, sendto, socket,
    sockopt::{Timeout, set_socket_timeout},
};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use crate::netns::Netns;
use crate::{Error, Result, io_context};

/// One UDP datagram as seen on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Source address and port from the IP and UDP headers.
    pub src: SocketAddrV4,
    /// Destination address and port.
    pub dst: SocketAddrV4,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// Runs `make` on a thread inside `netns` and returns the socket it made.
///
/// # Errors
/// The namespace cannot be entered (not root?) or `make` fails.
pub fn socket_in(
    netns: &Netns,
    make: impl FnOnce() -> io::Result<OwnedFd> + Send + 'static,
) -> Result<OwnedFd> {
    let path = Path::new("/run/netns").join(netns.name());
    let name = netns.name().to_owned();
    let worker = thread::spawn(move || -> Result<OwnedFd> {
        let ns = File::open(&path).map_err(io_context(format!("open {}", path.display())))?;
        move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
            .map_err(|e| io_context(format!("setns into {name}"))(e.into()))?;
        make().map_err(io_context(format!("socket in netns {name}")))
    });
    worker
        .join()
        .unwrap_or_else(|_| Err(Error::Daemon("socket thread panicked".into())))
}

/// Records UDP/IPv4 datagrams arriving in a namespace that match a filter,
/// until stopped or dropped.
#[derive(Debug)]
pub struct Capture {
    seen: Arc<Mutex<Vec<Datagram>>>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

/// What a [`Capture`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureFilter {
    /// Only datagrams from this source address.
    pub src: Ipv4Addr,
    /// Only datagrams to this destination port.
    pub dst_port: u16,
}

impl Capture {
    /// Starts capturing in `netns` (all interfaces, both directions; the
    /// filter keeps what the test wants).
    ///
    /// # Errors
    /// The packet socket cannot be made.
    pub fn start(netns: &Netns, filter: CaptureFilter) -> Result<Self> {
        let fd = socket_in(netns, || {
            let fd = socket(AddressFamily::PACKET, SocketType::DGRAM, Some(eth::IP))?;
            set_socket_timeout(&fd, Timeout::Recv, Some(Duration::from_millis(50)))?;
            Ok(fd)
        })?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, _)) = recv(&fd, &mut buf[..], RecvFlags::empty()) else {
                        continue; // timeout (EAGAIN) or EINTR: check the stop flag
                    };
                    if let Some(d) = parse_udp_v4(&buf[..n.min(buf.len())])
                        && *d.src.ip() == filter.src
                        && d.dst.port() == filter.dst_port
                    {
                        seen.lock().unwrap_or_else(|p| p.into_inner()).push(d);
                    }
                }
            })
        };
        Ok(Self {
            seen,
            stop,
            worker: Some(worker),
        })
    }

    /// What was captured so far, oldest first.
    pub fn datagrams(&self) -> Vec<Datagram> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops capturing; returns everything captured.
    pub fn stop(mut self) -> Vec<Datagram> {
        self.halt();
        self.datagrams()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.halt();
    }
}

/// racoon3's bypass mark (`pfkey::userspace::BYPASS_MARK`): spmd's userspace
/// datapath routes protected destinations into its TUN device for every
/// packet without this mark (`not fwmark 0x3948 lookup 3948`). kinkd marks
/// its KINK socket with it, so a forged KINK datagram must carry it too, or
/// a transport-mode policy towards the peer would swallow it.
pub const BYPASS_MARK: u32 = 0x3948;

/// Sends `d` from inside `netns` with exactly its source address and port
/// (a raw socket writes the IP header), e.g. a captured datagram replayed
/// from its original sender's namespace. The socket carries
/// [`BYPASS_MARK`], as kinkd's own does.
///
/// The source address must be one the namespace may send from; the kernel
/// fills in the IP checksum and ID, the UDP checksum is left 0 (allowed over
/// IPv4).
///
/// # Errors
/// The raw socket cannot be made or the send fails.
pub fn inject_udp_v4(netns: &Netns, d: &Datagram) -> Result<()> {
    let fd = socket_in(netns, || {
        let fd = socket(AddressFamily::INET, SocketType::RAW, Some(ipproto::RAW))?;
        let sock = socket2::Socket::from(fd);
        sock.set_mark(BYPASS_MARK)?;
        Ok(OwnedFd::from(sock))
    })?;
    let packet = build_udp_v4(d)
        .ok_or_else(|| Error::Daemon(format!("datagram too long: {} bytes", d.payload.len())))?;
    sendto(&fd, &packet, SendFlags::empty(), &SocketAddr::V4(d.dst))
        .map_err(|e| io_context(format!("send to {}", d.dst))(e.into()))?;
    Ok(())
}

/// The IPv4 + UDP packet carrying `d` (TTL 64, no options, UDP checksum 0);
/// `None` when it would exceed 65535 octets.
pub fn build_udp_v4(d: &Datagram) -> Option<Vec<u8>> {
    let udp_len = u16::try_from(8 + d.payload.len()).ok()?;
    let total = u16::try_from(20 + usize::from(udp_len)).ok()?;
    let mut p = Vec::with_capacity(usize::from(total));
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0]); // ID (kernel fills), DF
    p.extend_from_slice(&[64, 17, 0, 0]); // TTL, UDP, checksum (kernel fills)
    p.extend_from_slice(&d.src.ip().octets());
    p.extend_from_slice(&d.dst.ip().octets());
    p.extend_from_slice(&d.src.port().to_be_bytes());
    p.extend_from_slice(&d.dst.port().to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&d.payload);
    Some(p)
}

/// The UDP datagram in an IPv4 packet (as a cooked packet socket delivers
/// it); `None` for anything else, fragments and truncated packets included.
pub fn parse_udp_v4(packet: &[u8]) -> Option<Datagram> {
    let (&vihl, _) = packet.split_first()?;
    if vihl >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(vihl & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    let frag = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]);
    if ihl < 20 || total < ihl + 8 || total > packet.len() || *packet.get(9)? != 17 {
        return None;
    }
    if frag & 0x3fff != 0 {
        return None; // a fragment: MF set or an offset
    }
    let ip = |at: usize| -> Option<Ipv4Addr> {
        let o: [u8; 4] = packet.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(o))
    };
    let udp = packet.get(ihl..total)?;
    let port =
        |at: usize| -> Option<u16> { Some(u16::from_be_bytes([*udp.get(at)?, *udp.get(at + 1)?])) };
    let udp_len = usize::from(port(4)?);
    if udp_len < 8 || udp_len > udp.len() {
        return None;
    }
    Some(Datagram {
        src: SocketAddrV4::new(ip(12)?, port(0)?),
        dst: SocketAddrV4::new(ip(16)?, port(2)?),
        payload: udp.get(8..udp_len)?.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Datagram {
        Datagram {
            src: "192.0.2.1:910".parse().expect("addr"),
            dst: "192.0.2.2:910".parse().expect("addr"),
            payload: b"\x01\x10\x00\x10kink".to_vec(),
        }
    }

    #[test]
    fn built_packets_parse_back() {
        let d = sample();
        let p = build_udp_v4(&d).expect("fits");
        assert_eq!(p.len(), 20 + 8 + d.payload.len());
        assert_eq!(p[9], 17);
        assert_eq!(parse_udp_v4(&p), Some(d));
    }

    #[test]
    fn parse_refuses_what_is_not_a_whole_udp_v4_datagram() {
        let p = build_udp_v4(&sample()).expect("fits");
        assert_eq!(parse_udp_v4(&p[..p.len() - 1]), None, "truncated");
        assert_eq!(parse_udp_v4(&[]), None);
        let mut tcp = p.clone();
        tcp[9] = 6;
        assert_eq!(parse_udp_v4(&tcp), None, "not UDP");
        let mut frag = p.clone();
        frag[6] = 0x20; // MF
        assert_eq!(parse_udp_v4(&frag), None, "fragment");
        let mut v6 = p;
        v6[0] = 0x60;
        assert_eq!(parse_udp_v4(&v6), None, "not IPv4");
    }
}
