//! A point-to-point Ethernet link between two guests, and a reader for its capture.
//!
//! qemu (7.2 and later) joins two guests with `-netdev stream` over a unix socket: one guest
//! listens, the other connects, and neither the host nor the guests get any other path out.
//! Each guest sees the link as `eth0` (virtio-net). `-object filter-dump` writes what crosses
//! it to a pcap file, so a test can prove that only ESP was on the wire.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::lab::LabDir;

/// A unix socket path for a link; the directory is removed when the last user drops.
#[derive(Clone, Debug)]
pub struct Link {
    socket: PathBuf,
    _dir: LabDir,
}

/// Which end of a [`Link`] a guest is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkEnd {
    /// Listens on the socket; start this guest first.
    Listen,
    /// Connects to the socket; [`super::Guest::start`] waits until the socket exists.
    Connect,
}

impl Link {
    /// A fresh link in its own scratch directory.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn new() -> Result<Self> {
        let dir = LabDir::new("link")?;
        Ok(Self {
            socket: dir.path().join("link.sock"),
            _dir: dir,
        })
    }

    /// The unix socket qemu listens on or connects to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// qemu arguments for one end: the stream netdev, a virtio NIC with a fixed MAC
    /// (`52:54:00:00:00:01` listening, `..:02` connecting; no option ROM, so no iPXE), and,
    /// if `pcap` is given, a dump of the link.
    pub fn qemu_args(&self, end: LinkEnd, pcap: Option<&Path>) -> Vec<String> {
        let (server, mac) = match end {
            LinkEnd::Listen => ("on", "52:54:00:00:00:01"),
            LinkEnd::Connect => ("off", "52:54:00:00:00:02"),
        };
        let mut args = vec![
            "-netdev".to_owned(),
            format!(
                "stream,id=n0,server={server},addr.type=unix,addr.path={}",
                self.socket.display()
            ),
            "-device".to_owned(),
            format!("virtio-net-pci,netdev=n0,mac={mac},romfile="),
        ];
        if let Some(pcap) = pcap {
            args.push("-object".to_owned());
            args.push(format!(
                "filter-dump,id=d0,netdev=n0,file={}",
                pcap.display()
            ));
        }
        args
    }
}

/// The IP protocol numbers of the IPv4 and IPv6 packets in an Ethernet pcap, in order
/// (50 = ESP, 1 = ICMP, 58 = ICMPv6). Truncated records end the list; other frames are skipped.
pub fn pcap_ip_protocols(pcap: &[u8]) -> Vec<u8> {
    const GLOBAL_HEADER: usize = 24;
    const RECORD_HEADER: usize = 16;
    let little = pcap.get(..4) == Some(&[0xd4, 0xc3, 0xb2, 0xa1]);
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = pcap.get(at..at + 4)?.try_into().ok()?;
        let v = if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        };
        usize::try_from(v).ok()
    };
    let mut protocols = Vec::new();
    let mut at = GLOBAL_HEADER;
    while let Some(caplen) = u32_at(at + 8) {
        let Some(frame) = pcap.get(at + RECORD_HEADER..at + RECORD_HEADER + caplen) else {
            break;
        };
        at += RECORD_HEADER + caplen;
        match frame.get(12..14) {
            Some([0x08, 0x00]) => protocols.extend(frame.get(14 + 9)),
            Some([0x86, 0xdd]) => protocols.extend(frame.get(14 + 6)),
            _ => {}
        }
    }
    protocols
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(frame: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; 8];
        r.extend((frame.len() as u32).to_le_bytes());
        r.extend((frame.len() as u32).to_le_bytes());
        r.extend(frame);
        r
    }

    #[test]
    fn pcap_protocols_of_ipv4_and_ipv6_frames() {
        let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1];
        pcap.resize(24, 0);
        let mut v4 = vec![0u8; 34];
        v4[12..14].copy_from_slice(&[0x08, 0x00]);
        v4[23] = 50;
        let mut v6 = vec![0u8; 54];
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        v6[20] = 58;
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        for frame in [&v4, &arp, &v6] {
            pcap.extend(record(frame));
        }
        pcap.extend(&record(&v4)[..20]); // truncated
        assert_eq!(pcap_ip_protocols(&pcap), [50, 58]);
        assert!(pcap_ip_protocols(&[]).is_empty());
    }

    #[test]
    fn link_args_name_the_socket_and_dump() {
        let link = Link::new().expect("link");
        let args = link.qemu_args(LinkEnd::Listen, Some(Path::new("/tmp/x.pcap")));
        assert!(args[1].contains("server=on") && args[1].contains("link.sock"));
        assert!(args[3].ends_with("mac=52:54:00:00:00:01,romfile="));
        assert_eq!(args[5], "filter-dump,id=d0,netdev=n0,file=/tmp/x.pcap");
        assert_eq!(link.qemu_args(LinkEnd::Connect, None).len(), 4);
    }
}
