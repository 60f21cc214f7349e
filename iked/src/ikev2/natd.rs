//! NAT detection hashes ([RFC 7296 §2.23](https://www.rfc-editor.org/rfc/rfc7296#section-2.23)).

use std::net::SocketAddr;

/// `SHA-1(SPIi | SPIr | IP | Port)` for one endpoint.
pub fn natd_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> [u8; 20] {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    libracoon::crypto::sha1(&[
        &spi_i.to_be_bytes(),
        &spi_r.to_be_bytes(),
        &ip,
        &addr.port().to_be_bytes(),
    ])
}

/// A NAT_DETECTION_SOURCE_IP value that cannot match `local` as the peer
/// sees it (the hash of port 0, which no datagram carries): announces a NAT
/// where there is none, to force UDP encapsulation (`force_udp_encap`).
pub fn forced_source_hash(spi_i: u64, spi_r: u64, local: SocketAddr) -> [u8; 20] {
    natd_hash(spi_i, spi_r, SocketAddr::new(local.ip(), 0))
}

/// What the NAT-D notifies of a message say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatState {
    /// The peer's source address was rewritten (or the peer pretends so, as
    /// strongSwan's kernel-libipsec does to force UDP encapsulation).
    pub peer_behind_nat: bool,
    /// Our address as the peer saw it differs from ours.
    pub local_behind_nat: bool,
}

impl NatState {
    /// Whether IKE should move to port 4500 and ESP be UDP-encapsulated.
    pub fn any(self) -> bool {
        self.peer_behind_nat || self.local_behind_nat
    }
}

/// Compares received NAT-D data with the addresses the datagram carried.
///
/// `sources` are the NAT_DETECTION_SOURCE_IP values (any may match),
/// `destination` the NAT_DETECTION_DESTINATION_IP value.
pub fn detect(
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
    sources: &[&[u8]],
    destination: Option<&[u8]>,
) -> NatState {
    let want_src = natd_hash(spi_i, spi_r, remote);
    let want_dst = natd_hash(spi_i, spi_r, local);
    NatState {
        peer_behind_nat: !sources.is_empty() && !sources.iter().any(|s| *s == want_src),
        local_behind_nat: destination.is_some_and(|d| d != want_dst),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_hashes_mean_no_nat_and_a_changed_port_means_nat() {
        let a: SocketAddr = "192.0.2.1:500".parse().expect("addr");
        let b: SocketAddr = "192.0.2.2:500".parse().expect("addr");
        let src = natd_hash(1, 0, a);
        let dst = natd_hash(1, 0, b);
        assert!(!detect(1, 0, b, a, &[&src], Some(&dst)).any());
        let moved: SocketAddr = "192.0.2.1:1024".parse().expect("addr");
        let s = detect(1, 0, b, moved, &[&src], Some(&dst));
        assert!(s.peer_behind_nat && !s.local_behind_nat);
    }

    #[test]
    fn a_forced_source_hash_makes_the_peer_see_a_nat() {
        let a: SocketAddr = "192.0.2.1:500".parse().expect("addr");
        let b: SocketAddr = "192.0.2.2:500".parse().expect("addr");
        let src = forced_source_hash(7, 9, a);
        let dst = natd_hash(7, 9, b);
        let s = detect(7, 9, b, a, &[&src], Some(&dst));
        assert!(s.peer_behind_nat && !s.local_behind_nat);
    }
}
