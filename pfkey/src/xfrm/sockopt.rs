//! Socket options the daemons set on their own sockets when the kernel
//! carries ESP: a per-socket bypass policy, so IKE is never caught by the
//! policies it negotiates, and UDP encapsulation on port 4500.

use std::io;
use std::os::fd::BorrowedFd;

use socket2::{Domain, SockRef};

use super::structs::{
    AF_INET, AF_INET6, LifetimeCfg, POLICY_ALLOW, UDP_ENCAP_ESPINUDP, UserpolicyInfo, XfrmSelector,
    dir,
};
use crate::sys::setsockopt_bytes;

/// `SOL_UDP`.
const SOL_UDP: libc::c_int = 17;
/// `UDP_ENCAP` (`linux/udp.h`; the libc crate lacks it on glibc).
const UDP_ENCAP: libc::c_int = 100;

/// Exempts the socket `fd` from every IPsec policy, in and out, by
/// attaching a per-socket `XFRM_POLICY_ALLOW` policy with no templates
/// (`IP_XFRM_POLICY` or `IPV6_XFRM_POLICY`, chosen from the socket's
/// family). Per-socket policies take precedence over the SPD, so IKE
/// packets to a peer whose address lies inside a protected selector
/// (host-to-host tunnels, transport mode) still leave in the clear, as
/// RFC 7296 §2.23.1 needs; strongSwan and racoon2 do the same.
///
/// # Errors
/// `EPERM` without `CAP_NET_ADMIN`; `EOPNOTSUPP`/`EAFNOSUPPORT` for a
/// socket that is neither IPv4 nor IPv6; `ENOPROTOOPT` on a kernel
/// without XFRM.
pub fn bypass_socket(fd: BorrowedFd<'_>) -> io::Result<()> {
    let domain = SockRef::from(&fd).domain()?;
    let (level, name, family) = if domain == Domain::IPV6 {
        (libc::SOL_IPV6, libc::IPV6_XFRM_POLICY, AF_INET6)
    } else if domain == Domain::IPV4 {
        (libc::SOL_IP, libc::IP_XFRM_POLICY, AF_INET)
    } else {
        return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
    };
    for d in [dir::IN, dir::OUT] {
        setsockopt_bytes(fd, level, name, &bypass_policy(family, d))?;
    }
    Ok(())
}

/// The option value of [`bypass_socket`]: a `struct xfrm_userpolicy_info`
/// with an any-selector of `family`, direction `d`, action allow.
fn bypass_policy(family: u16, d: u8) -> Vec<u8> {
    let policy = UserpolicyInfo {
        sel: XfrmSelector {
            family,
            ..XfrmSelector::default()
        },
        lft: LifetimeCfg::default(),
        dir: d,
        action: POLICY_ALLOW,
        ..UserpolicyInfo::default()
    };
    let mut v = Vec::with_capacity(UserpolicyInfo::LEN);
    policy.emit(&mut v);
    v
}

/// Makes the kernel take ESP-in-UDP (RFC 3948) arriving on the UDP socket
/// `fd` (`UDP_ENCAP = UDP_ENCAP_ESPINUDP`): datagrams starting with a
/// non-zero SPI go to the kernel's ESP input, while IKE messages, which
/// start with the four-byte non-ESP marker, still reach the socket. Set it
/// on the port-4500 sockets of iked when SAs live in the kernel.
///
/// # Errors
/// The `setsockopt` error (`ENOPROTOOPT` for a non-UDP socket).
pub fn enable_udp_encap(fd: BorrowedFd<'_>) -> io::Result<()> {
    let value = libc::c_int::from(UDP_ENCAP_ESPINUDP);
    setsockopt_bytes(fd, SOL_UDP, UDP_ENCAP, &value.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::fd::AsFd;

    use socket2::{Socket, Type};

    use super::*;

    #[test]
    fn the_bypass_value_is_an_allow_policy_of_the_socket_family() {
        let v = bypass_policy(AF_INET6, dir::OUT);
        assert_eq!(v.len(), 168);
        assert_eq!(&v[40..42], AF_INET6.to_ne_bytes());
        assert_eq!(&v[160..162], [dir::OUT, POLICY_ALLOW]);
    }

    /// Needs no privilege: `UDP_ENCAP` is a plain UDP option.
    #[test]
    fn udp_encap_is_accepted_on_udp_and_refused_on_tcp() {
        let udp = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        enable_udp_encap(udp.as_fd()).expect("UDP_ENCAP on a UDP socket");
        let tcp = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        assert!(enable_udp_encap(tcp.as_fd()).is_err());
    }
}
