//! The fixed structs of `include/uapi/linux/xfrm.h`, each with `LEN`,
//! `parse` (reads the first `LEN` bytes, bounds-checked) and `emit`.
//!
//! Offsets and sizes are those of the 64-bit ABIs (x86_64, aarch64, where
//! `__u64` is 8-aligned), checked against the header with `offsetof` when
//! this was written: `xfrm_usersa_info` is 224 bytes, `xfrm_userpolicy_info`
//! 168. 32-bit x86 packs them differently (the kernel's compat layer
//! translates for 32-bit processes on 64-bit kernels only).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::netlink::{DecodeError, Reader};

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;
/// `IPPROTO_ESP`.
pub const IPPROTO_ESP: u8 = 50;
/// `XFRM_INF`: no limit.
pub const XFRM_INF: u64 = u64::MAX;

/// `xfrm_address_t`: 16 bytes, IPv4 in the first 4, network order.
///
/// Kept as raw bytes so that parsing is lossless; the family lives next to
/// it in each struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct XfrmAddr(pub [u8; 16]);

impl XfrmAddr {
    /// Length on the wire.
    pub const LEN: usize = 16;

    /// The address of `ip`, with its family.
    pub fn from_ip(ip: IpAddr) -> (Self, u16) {
        let mut a = [0; 16];
        match ip {
            IpAddr::V4(v4) => {
                a[..4].copy_from_slice(&v4.octets());
                (Self(a), AF_INET)
            }
            IpAddr::V6(v6) => (Self(v6.octets()), AF_INET6),
        }
    }

    /// The address as `family` reads it; `None` for other families.
    pub fn to_ip(self, family: u16) -> Option<IpAddr> {
        match family {
            AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
                self.0[0], self.0[1], self.0[2], self.0[3],
            ))),
            AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(self.0))),
            _ => None,
        }
    }

    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.array().map(Self)
    }

    fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

/// `struct xfrm_selector`: the traffic a policy or SA applies to, as
/// prefixes and single ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XfrmSelector {
    /// Destination prefix.
    pub daddr: XfrmAddr,
    /// Source prefix.
    pub saddr: XfrmAddr,
    /// Destination port (host order here, big-endian on the wire).
    pub dport: u16,
    /// 0xffff to match `dport`, 0 for any.
    pub dport_mask: u16,
    /// Source port.
    pub sport: u16,
    /// 0xffff to match `sport`, 0 for any.
    pub sport_mask: u16,
    /// `AF_INET`, `AF_INET6`, or 0 (any, in SAs).
    pub family: u16,
    /// Destination prefix length.
    pub prefixlen_d: u8,
    /// Source prefix length.
    pub prefixlen_s: u8,
    /// IP protocol, 0 for any.
    pub proto: u8,
    /// Interface index, 0 for any.
    pub ifindex: i32,
    /// Owning user (unused by racoon3).
    pub user: u32,
}

impl XfrmSelector {
    /// Length on the wire.
    pub const LEN: usize = 56;

    /// Reads the struct from the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when `buf` is short.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "xfrm_selector");
        let sel = Self {
            daddr: XfrmAddr::parse(&mut r)?,
            saddr: XfrmAddr::parse(&mut r)?,
            dport: r.be16()?,
            dport_mask: r.be16()?,
            sport: r.be16()?,
            sport_mask: r.be16()?,
            family: r.u16()?,
            prefixlen_d: r.u8()?,
            prefixlen_s: r.u8()?,
            proto: r.u8()?,
            ifindex: {
                r.skip(3)?;
                r.u32()? as i32
            },
            user: r.u32()?,
        };
        Ok(sel)
    }

    /// Appends the struct.
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.daddr.emit(out);
        self.saddr.emit(out);
        for port in [self.dport, self.dport_mask, self.sport, self.sport_mask] {
            out.extend_from_slice(&port.to_be_bytes());
        }
        out.extend_from_slice(&self.family.to_ne_bytes());
        out.extend_from_slice(&[self.prefixlen_d, self.prefixlen_s, self.proto, 0, 0, 0]);
        out.extend_from_slice(&self.ifindex.to_ne_bytes());
        out.extend_from_slice(&self.user.to_ne_bytes());
    }
}

/// `struct xfrm_id`: (destination, SPI, protocol), what identifies an SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XfrmId {
    /// Destination address.
    pub daddr: XfrmAddr,
    /// SPI (host order here, big-endian on the wire).
    pub spi: u32,
    /// IPsec protocol (50 for ESP).
    pub proto: u8,
}

impl XfrmId {
    /// Length on the wire.
    pub const LEN: usize = 24;

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = Self {
            daddr: XfrmAddr::parse(r)?,
            spi: r.be32()?,
            proto: r.u8()?,
        };
        r.skip(3)?;
        Ok(id)
    }

    fn emit(&self, out: &mut Vec<u8>) {
        self.daddr.emit(out);
        out.extend_from_slice(&self.spi.to_be_bytes());
        out.extend_from_slice(&[self.proto, 0, 0, 0]);
    }
}

/// `struct xfrm_lifetime_cfg`: soft and hard limits; [`XFRM_INF`] for no
/// byte or packet limit, 0 for no time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifetimeCfg {
    /// Soft byte limit.
    pub soft_byte_limit: u64,
    /// Hard byte limit.
    pub hard_byte_limit: u64,
    /// Soft packet limit.
    pub soft_packet_limit: u64,
    /// Hard packet limit.
    pub hard_packet_limit: u64,
    /// Soft limit in seconds since installation.
    pub soft_add_expires_seconds: u64,
    /// Hard limit in seconds since installation.
    pub hard_add_expires_seconds: u64,
    /// Soft limit in seconds since first use.
    pub soft_use_expires_seconds: u64,
    /// Hard limit in seconds since first use.
    pub hard_use_expires_seconds: u64,
}

impl Default for LifetimeCfg {
    /// No limits, as `ip xfrm` sends.
    fn default() -> Self {
        Self {
            soft_byte_limit: XFRM_INF,
            hard_byte_limit: XFRM_INF,
            soft_packet_limit: XFRM_INF,
            hard_packet_limit: XFRM_INF,
            soft_add_expires_seconds: 0,
            hard_add_expires_seconds: 0,
            soft_use_expires_seconds: 0,
            hard_use_expires_seconds: 0,
        }
    }
}

impl LifetimeCfg {
    /// Length on the wire.
    pub const LEN: usize = 64;

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            soft_byte_limit: r.u64()?,
            hard_byte_limit: r.u64()?,
            soft_packet_limit: r.u64()?,
            hard_packet_limit: r.u64()?,
            soft_add_expires_seconds: r.u64()?,
            hard_add_expires_seconds: r.u64()?,
            soft_use_expires_seconds: r.u64()?,
            hard_use_expires_seconds: r.u64()?,
        })
    }

    fn emit(&self, out: &mut Vec<u8>) {
        for v in [
            self.soft_byte_limit,
            self.hard_byte_limit,
            self.soft_packet_limit,
            self.hard_packet_limit,
            self.soft_add_expires_seconds,
            self.hard_add_expires_seconds,
            self.soft_use_expires_seconds,
            self.hard_use_expires_seconds,
        ] {
            out.extend_from_slice(&v.to_ne_bytes());
        }
    }
}

/// `struct xfrm_lifetime_cur`: what an SA has used so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LifetimeCur {
    /// Bytes processed.
    pub bytes: u64,
    /// Packets processed.
    pub packets: u64,
    /// Installation time (seconds since the epoch).
    pub add_time: u64,
    /// Time of first use.
    pub use_time: u64,
}

impl LifetimeCur {
    /// Length on the wire.
    pub const LEN: usize = 32;

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            bytes: r.u64()?,
            packets: r.u64()?,
            add_time: r.u64()?,
            use_time: r.u64()?,
        })
    }

    fn emit(&self, out: &mut Vec<u8>) {
        for v in [self.bytes, self.packets, self.add_time, self.use_time] {
            out.extend_from_slice(&v.to_ne_bytes());
        }
    }
}

/// `struct xfrm_usersa_info`: one SA (NEWSA, UPDSA, GETSA replies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsersaInfo {
    /// Traffic the SA may carry (all zero: any).
    pub sel: XfrmSelector,
    /// Destination, SPI, protocol.
    pub id: XfrmId,
    /// Source address.
    pub saddr: XfrmAddr,
    /// Limits.
    pub lft: LifetimeCfg,
    /// Counters (ignored on input).
    pub curlft: LifetimeCur,
    /// `struct xfrm_stats`: replay window, replay and integrity failures.
    pub stats: [u32; 3],
    /// Sequence number of the ACQUIRE this answers, 0 for none.
    pub seq: u32,
    /// Request ID.
    pub reqid: u32,
    /// Family of `id.daddr` and `saddr`.
    pub family: u16,
    /// `XFRM_MODE_*`.
    pub mode: u8,
    /// Replay window (up to 32; larger windows go in
    /// `XFRMA_REPLAY_ESN_VAL`).
    pub replay_window: u8,
    /// `XFRM_STATE_*` bits.
    pub flags: u8,
}

/// `XFRM_STATE_*` bits of [`UsersaInfo::flags`].
pub mod state_flags {
    /// Take the inner family from the packet (tunnel mode with mixed
    /// families, as strongSwan sets for every tunnel SA).
    pub const AF_UNSPEC: u8 = 32;
    /// Extended sequence numbers.
    pub const ESN: u8 = 128;
}

impl UsersaInfo {
    /// Length on the wire (with 7 bytes of tail padding).
    pub const LEN: usize = 224;

    /// Reads the struct from the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when `buf` is short.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "xfrm_usersa_info");
        let info = Self {
            sel: XfrmSelector::parse(r.take(XfrmSelector::LEN)?)?,
            id: XfrmId::read(&mut r)?,
            saddr: XfrmAddr::parse(&mut r)?,
            lft: LifetimeCfg::read(&mut r)?,
            curlft: LifetimeCur::read(&mut r)?,
            stats: [r.u32()?, r.u32()?, r.u32()?],
            seq: r.u32()?,
            reqid: r.u32()?,
            family: r.u16()?,
            mode: r.u8()?,
            replay_window: r.u8()?,
            flags: r.u8()?,
        };
        r.skip(7)?;
        Ok(info)
    }

    /// Appends the struct.
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.sel.emit(out);
        self.id.emit(out);
        self.saddr.emit(out);
        self.lft.emit(out);
        self.curlft.emit(out);
        for v in [
            self.stats[0],
            self.stats[1],
            self.stats[2],
            self.seq,
            self.reqid,
        ] {
            out.extend_from_slice(&v.to_ne_bytes());
        }
        out.extend_from_slice(&self.family.to_ne_bytes());
        out.extend_from_slice(&[self.mode, self.replay_window, self.flags]);
        out.extend_from_slice(&[0; 7]);
    }
}

/// `struct xfrm_usersa_id`: names one SA (DELSA, GETSA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsersaId {
    /// Destination address.
    pub daddr: XfrmAddr,
    /// SPI.
    pub spi: u32,
    /// Family of `daddr`.
    pub family: u16,
    /// IPsec protocol.
    pub proto: u8,
}

impl UsersaId {
    /// Length on the wire.
    pub const LEN: usize = 24;

    /// Reads the struct from the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when `buf` is short.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "xfrm_usersa_id");
        let id = Self {
            daddr: XfrmAddr::parse(&mut r)?,
            spi: r.be32()?,
            family: r.u16()?,
            proto: r.u8()?,
        };
        r.skip(1)?;
        Ok(id)
    }

    /// Appends the struct.
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.daddr.emit(out);
        out.extend_from_slice(&self.spi.to_be_bytes());
        out.extend_from_slice(&self.family.to_ne_bytes());
        out.extend_from_slice(&[self.proto, 0]);
    }
}

/// `struct xfrm_userspi_info`: ALLOCSPI, a larval SA and the SPI range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserspiInfo {
    /// The larval SA: addresses, protocol, mode, request ID.
    pub info: UsersaInfo,
    /// Lowest acceptable SPI.
    pub min: u32,
    /// Highest acceptable SPI.
    pub max: u32,
}

impl UserspiInfo {
    /// Length on the wire.
    pub const LEN: usize = 232;

    /// Reads the struct from the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when `buf` is short.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "xfrm_userspi_info");
        Ok(Self {
            info: UsersaInfo::parse(r.take(UsersaInfo::LEN)?)?,
            min: r.u32()?,
            max: r.u32()?,
        })
    }

    /// Appends the struct.
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.info.emit(out);
        out.extend_from_slice(&self.min.to_ne_bytes());
        out.extend_from_slice(&self.max.to_ne_bytes());
    }
}

/// `XFRM_POLICY_IN`, `_OUT`, `_FWD`.
pub mod dir {
    /// Inbound.
    pub const IN: u8 = 0;
    /// Outbound.
    pub const OUT: u8 = 1;
    /// Forwarded (inbound, for another host: tunnel gateways need it).
    pub const FWD: u8 = 2;
}

/// `XFRM_POLICY_ALLOW`.
pub const POLICY_ALLOW: u8 = 0;
/// `XFRM_POLICY_BLOCK`.
pub const POLICY_BLOCK: u8 = 1;

/// `XFRM_MODE_TRANSPORT`.
pub const MODE_TRANSPORT: u8 = 0;
/// `XFRM_MODE_TUNNEL`.
pub const MODE_TUNNEL: u8 = 1;

/// `struct xfrm_userpolicy_info`: one policy (NEWPOLICY, UPDPOLICY, dump
/// replies, and the socket policy of `IP_XFRM_POLICY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserpolicyInfo {
    /// Traffic the policy applies to.
    pub sel: XfrmSelector,
    /// Limits (racoon3 sets none).
    pub lft: LifetimeCfg,
    /// Counters.
    pub curlft: LifetimeCur,
    /// Lower numbers win among overlapping policies.
    pub priority: u32,
    /// Kernel-assigned index (0 on input).
    pub index: u32,
    /// [`dir`] value.
    pub dir: u8,
    /// [`POLICY_ALLOW`] or [`POLICY_BLOCK`].
    pub action: u8,
    /// `XFRM_POLICY_LOCALOK`, `XFRM_POLICY_ICMP`.
    pub flags: u8,
    /// `XFRM_SHARE_*`.
    pub share: u8,
}

impl UserpolicyInfo {
    /// Length on the wire.
    pub const LEN: usize = 168;

    /// Reads the struct from the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when `buf` is short.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "xfrm_userpolicy_info");
        let info = Self {
            sel: XfrmSelector::parse(r.take(XfrmSelector::LEN)?)?,
            lft: LifetimeCfg::read(&mut r)?,
            curlft: LifetimeCur::read(&mut r)?,
            priority: r.u32()?,
            index: r.u32()?,
            dir: r.u8()?,
            action: r.u8()?,
            flags: r.u8()?,
            share: r.u8()?,
        };
        r.skip(4)?;
        Ok(info)
    }

    /// Appends the struct.
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.sel.emit(out);
        self.lft.emit(out);
        self.curlft.emit(out);
        out.extend_from_slice(&self.priority.to_ne_bytes());
        out.extend_from_slice(&self.index.to_ne_bytes());
        out.extend_from_slice(&[self.dir, self.action, self.flags, self.share, 0, 0, 0, 0]);
    }
}

/// `struct xfrm_userpolicy_id`: names one policy (DELPOLICY, GETPOLICY,
/// MIGRATE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserpolicyId {
    /// The policy's selector.
    pub sel: XfrmSelector,
    /// Its index, or 0 to look up by selector.
    pub index: u32,
    /// Its direction.
    pub dir: u8,
}

impl UserpolicyId {
    /// Length on the wire.
    pub const LEN: usize = 64;

    /// Reads the struct from the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when `buf` is short.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "xfrm_userpolicy_id");
        let id = Self {
            sel: XfrmSelector::parse(r.take(XfrmSelector::LEN)?)?,
            index: r.u32()?,
            dir: r.u8()?,
        };
        r.skip(3)?;
        Ok(id)
    }

    /// Appends the struct.
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.sel.emit(out);
        out.extend_from_slice(&self.index.to_ne_bytes());
        out.extend_from_slice(&[self.dir, 0, 0, 0]);
    }
}

/// `struct xfrm_user_tmpl`: one SA a policy requires (`XFRMA_TMPL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserTmpl {
    /// Tunnel destination (zero in transport mode), SPI 0, protocol.
    pub id: XfrmId,
    /// Family of the template's addresses.
    pub family: u16,
    /// Tunnel source.
    pub saddr: XfrmAddr,
    /// Request ID tying the policy to its SAs.
    pub reqid: u32,
    /// `XFRM_MODE_*`.
    pub mode: u8,
    /// `XFRM_SHARE_*`.
    pub share: u8,
    /// Nonzero: the SA may be absent.
    pub optional: u8,
    /// Allowed authentication algorithms (bit mask, all ones for any).
    pub aalgos: u32,
    /// Allowed encryption algorithms.
    pub ealgos: u32,
    /// Allowed compression algorithms.
    pub calgos: u32,
}

impl UserTmpl {
    /// Length on the wire.
    pub const LEN: usize = 64;

    /// Reads the struct from the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when `buf` is short.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "xfrm_user_tmpl");
        let id = XfrmId::read(&mut r)?;
        let family = r.u16()?;
        r.skip(2)?;
        let tmpl = Self {
            id,
            family,
            saddr: XfrmAddr::parse(&mut r)?,
            reqid: r.u32()?,
            mode: r.u8()?,
            share: r.u8()?,
            optional: r.u8()?,
            aalgos: {
                r.skip(1)?;
                r.u32()?
            },
            ealgos: r.u32()?,
            calgos: r.u32()?,
        };
        Ok(tmpl)
    }

    /// Appends the struct.
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.id.emit(out);
        out.extend_from_slice(&self.family.to_ne_bytes());
        out.extend_from_slice(&[0, 0]);
        self.saddr.emit(out);
        out.extend_from_slice(&self.reqid.to_ne_bytes());
        out.extend_from_slice(&[self.mode, self.share, self.optional, 0]);
        for v in [self.aalgos, self.ealgos, self.calgos] {
            out.extend_from_slice(&v.to_ne_bytes());
        }
    }
}

/// `struct xfrm_user_acquire`: the kernel asks for an SA (XFRM_MSG_ACQUIRE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserAcquire {
    /// The template's destination and protocol.
    pub id: XfrmId,
    /// The template's source.
    pub saddr: XfrmAddr,
    /// The triggering flow: full-length prefixes of its addresses, its
    /// protocol and ports.
    pub sel: XfrmSelector,
    /// The policy that matched.
    pub policy: UserpolicyInfo,
    /// Allowed authentication algorithms.
    pub aalgos: u32,
    /// Allowed encryption algorithms.
    pub ealgos: u32,
    /// Allowed compression algorithms.
    pub calgos: u32,
    /// Sequence number to echo in the SA that answers.
    pub seq: u32,
}

impl UserAcquire {
    /// Length on the wire.
    pub const LEN: usize = 280;

    /// Reads the struct from the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when `buf` is short.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "xfrm_user_acquire");
        Ok(Self {
            id: XfrmId::read(&mut r)?,
            saddr: XfrmAddr::parse(&mut r)?,
            sel: XfrmSelector::parse(r.take(XfrmSelector::LEN)?)?,
            policy: UserpolicyInfo::parse(r.take(UserpolicyInfo::LEN)?)?,
            aalgos: r.u32()?,
            ealgos: r.u32()?,
            calgos: r.u32()?,
            seq: r.u32()?,
        })
    }

    /// Appends the struct.
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.id.emit(out);
        self.saddr.emit(out);
        self.sel.emit(out);
        self.policy.emit(out);
        for v in [self.aalgos, self.ealgos, self.calgos, self.seq] {
            out.extend_from_slice(&v.to_ne_bytes());
        }
    }
}

/// `struct xfrm_user_expire`: an SA reached a limit (XFRM_MSG_EXPIRE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserExpire {
    /// The SA.
    pub state: UsersaInfo,
    /// Nonzero for a hard expiry (the SA is gone).
    pub hard: u8,
}

impl UserExpire {
    /// Length on the wire (with 7 bytes of tail padding).
    pub const LEN: usize = 232;

    /// Reads the struct from the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when `buf` is short.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "xfrm_user_expire");
        let expire = Self {
            state: UsersaInfo::parse(r.take(UsersaInfo::LEN)?)?,
            hard: r.u8()?,
        };
        r.skip(7)?;
        Ok(expire)
    }

    /// Appends the struct.
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.state.emit(out);
        out.extend_from_slice(&[self.hard, 0, 0, 0, 0, 0, 0, 0]);
    }
}

/// `struct xfrm_user_migrate`: one SA's old and new endpoints
/// (`XFRMA_MIGRATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserMigrate {
    /// Old destination.
    pub old_daddr: XfrmAddr,
    /// Old source.
    pub old_saddr: XfrmAddr,
    /// New destination.
    pub new_daddr: XfrmAddr,
    /// New source.
    pub new_saddr: XfrmAddr,
    /// IPsec protocol.
    pub proto: u8,
    /// `XFRM_MODE_*`.
    pub mode: u8,
    /// Request ID.
    pub reqid: u32,
    /// Family of the old addresses.
    pub old_family: u16,
    /// Family of the new addresses.
    pub new_family: u16,
}

impl UserMigrate {
    /// Length on the wire.
    pub const LEN: usize = 76;

    /// Reads the struct from the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when `buf` is short.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "xfrm_user_migrate");
        Ok(Self {
            old_daddr: XfrmAddr::parse(&mut r)?,
            old_saddr: XfrmAddr::parse(&mut r)?,
            new_daddr: XfrmAddr::parse(&mut r)?,
            new_saddr: XfrmAddr::parse(&mut r)?,
            proto: r.u8()?,
            mode: r.u8()?,
            reqid: {
                r.skip(2)?;
                r.u32()?
            },
            old_family: r.u16()?,
            new_family: r.u16()?,
        })
    }

    /// Appends the struct.
    pub fn emit(&self, out: &mut Vec<u8>) {
        for a in [
            self.old_daddr,
            self.old_saddr,
            self.new_daddr,
            self.new_saddr,
        ] {
            a.emit(out);
        }
        out.extend_from_slice(&[self.proto, self.mode, 0, 0]);
        out.extend_from_slice(&self.reqid.to_ne_bytes());
        out.extend_from_slice(&self.old_family.to_ne_bytes());
        out.extend_from_slice(&self.new_family.to_ne_bytes());
    }
}

/// `struct xfrm_encap_tmpl`: UDP encapsulation of an SA (`XFRMA_ENCAP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncapTmpl {
    /// `UDP_ENCAP_ESPINUDP` (2) for RFC 3948.
    pub encap_type: u16,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Original address (for NAT-OA; racoon3 leaves it zero).
    pub oa: XfrmAddr,
}

/// `UDP_ENCAP_ESPINUDP`: RFC 3948 ESP in UDP with the non-ESP marker.
pub const UDP_ENCAP_ESPINUDP: u16 = 2;

impl EncapTmpl {
    /// Length on the wire.
    pub const LEN: usize = 24;

    /// Reads the struct from the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when `buf` is short.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "xfrm_encap_tmpl");
        let encap = Self {
            encap_type: r.u16()?,
            sport: r.be16()?,
            dport: r.be16()?,
            oa: {
                r.skip(2)?;
                XfrmAddr::parse(&mut r)?
            },
        };
        Ok(encap)
    }

    /// Appends the struct.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.encap_type.to_ne_bytes());
        out.extend_from_slice(&self.sport.to_be_bytes());
        out.extend_from_slice(&self.dport.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        self.oa.emit(out);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Sizes from `offsetof`/`sizeof` on x86_64 against
    /// `/usr/include/linux/xfrm.h` (linux-libc-dev).
    #[test]
    fn emitted_sizes_match_the_kernel_structs() {
        type Emit = fn(&mut Vec<u8>);
        let sizes: [(usize, Emit); 11] = [
            (XfrmSelector::LEN, |o| XfrmSelector::default().emit(o)),
            (UsersaInfo::LEN, |o| UsersaInfo::default().emit(o)),
            (UsersaId::LEN, |o| UsersaId::default().emit(o)),
            (UserspiInfo::LEN, |o| UserspiInfo::default().emit(o)),
            (UserpolicyInfo::LEN, |o| UserpolicyInfo::default().emit(o)),
            (UserpolicyId::LEN, |o| UserpolicyId::default().emit(o)),
            (UserTmpl::LEN, |o| UserTmpl::default().emit(o)),
            (UserAcquire::LEN, |o| UserAcquire::default().emit(o)),
            (UserExpire::LEN, |o| UserExpire::default().emit(o)),
            (UserMigrate::LEN, |o| UserMigrate::default().emit(o)),
            (EncapTmpl::LEN, |o| EncapTmpl::default().emit(o)),
        ];
        for (len, emit) in sizes {
            let mut out = Vec::new();
            emit(&mut out);
            assert_eq!(out.len(), len);
        }
        assert_eq!(
            (XfrmId::LEN, LifetimeCfg::LEN, LifetimeCur::LEN),
            (24, 64, 32)
        );
    }

    #[test]
    fn selector_fields_sit_at_the_kernel_offsets() {
        let sel = XfrmSelector {
            daddr: XfrmAddr::from_ip("203.0.113.0".parse().unwrap()).0,
            saddr: XfrmAddr::from_ip("198.51.100.0".parse().unwrap()).0,
            dport: 80,
            dport_mask: 0xffff,
            family: AF_INET,
            prefixlen_d: 24,
            prefixlen_s: 24,
            proto: 6,
            ifindex: 3,
            ..Default::default()
        };
        let mut out = Vec::new();
        sel.emit(&mut out);
        assert_eq!(&out[0..4], [203, 0, 113, 0]);
        assert_eq!(&out[16..20], [198, 51, 100, 0]);
        assert_eq!(&out[32..36], [0, 80, 0xff, 0xff]);
        assert_eq!(&out[40..45], [2, 0, 24, 24, 6]);
        assert_eq!(&out[48..52], 3i32.to_ne_bytes());
        assert_eq!(XfrmSelector::parse(&out), Ok(sel));
    }

    #[test]
    fn every_struct_rejects_every_truncation() {
        let buf = [0xa5u8; 300];
        for cut in 0..300 {
            let b = &buf[..cut];
            assert_eq!(XfrmSelector::parse(b).is_ok(), cut >= XfrmSelector::LEN);
            assert_eq!(UsersaInfo::parse(b).is_ok(), cut >= UsersaInfo::LEN);
            assert_eq!(UsersaId::parse(b).is_ok(), cut >= UsersaId::LEN);
            assert_eq!(UserspiInfo::parse(b).is_ok(), cut >= UserspiInfo::LEN);
            assert_eq!(UserpolicyInfo::parse(b).is_ok(), cut >= UserpolicyInfo::LEN);
            assert_eq!(UserpolicyId::parse(b).is_ok(), cut >= UserpolicyId::LEN);
            assert_eq!(UserTmpl::parse(b).is_ok(), cut >= UserTmpl::LEN);
            assert_eq!(UserAcquire::parse(b).is_ok(), cut >= UserAcquire::LEN);
            assert_eq!(UserExpire::parse(b).is_ok(), cut >= UserExpire::LEN);
            assert_eq!(UserMigrate::parse(b).is_ok(), cut >= UserMigrate::LEN);
            assert_eq!(EncapTmpl::parse(b).is_ok(), cut >= EncapTmpl::LEN);
        }
    }

    #[test]
    fn addresses_read_back_by_family() {
        for ip in ["192.0.2.1", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let (a, family) = XfrmAddr::from_ip(ip);
            assert_eq!(a.to_ip(family), Some(ip));
        }
        assert_eq!(XfrmAddr::default().to_ip(0), None);
    }
}
