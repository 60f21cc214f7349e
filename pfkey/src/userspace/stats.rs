//! Datapath counters: packets and bytes per SA, drops by reason.
//!
//! Counters are atomics shared between the datapath (which adds, with
//! `Relaxed` ordering: they are statistics, not synchronisation) and
//! whoever reads a [`DatapathStats`] snapshot. Nothing here locks.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::esp::EspError;
use crate::{SaDirection, SaId};

/// Why the datapath dropped a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// Inbound ESP with an SPI no installed SA has.
    BadSpi,
    /// Inbound ESP failing the anti-replay check.
    Replay,
    /// Inbound ESP whose ICV did not verify.
    Integrity,
    /// Too short, misaligned, bad padding, not IP inside, or an inner
    /// packet whose header does not parse.
    Malformed,
    /// A dummy packet (Next Header 59, RFC 4303 §2.6), discarded as
    /// required.
    Dummy,
    /// An outbound packet that no SA's selectors cover.
    NoSa,
    /// An outbound packet that a `Protect` policy covers but no SA does
    /// yet: dropped while the key exchange its ACQUIRE started runs (the
    /// datapath does not queue).
    Acquire,
    /// An outbound packet that a `Discard` policy covers.
    Discard,
    /// An outbound packet whose policy says `Bypass` but that a broader
    /// route brought into the TUN device: the datapath cannot send it in
    /// the clear from there.
    Bypass,
    /// A decrypted packet outside the SA's selectors (RFC 4301 §5.2 step 4).
    SelectorMismatch,
    /// An outbound packet for a transport-mode SA whose addresses are not
    /// the SA's endpoints (transport mode carries only their own traffic).
    TransportAddress,
    /// An IPv4 fragment (MF set or a non-zero offset) for a transport-mode
    /// SA: RFC 4303 §3.3 applies transport mode to whole datagrams only.
    Fragment,
    /// The SA reached a hard lifetime.
    Expired,
    /// The outbound sequence number space is used up (RFC 4303 §3.3.3).
    SeqExhausted,
    /// The packet does not fit the datapath's buffers.
    Oversize,
    /// ESP-in-UDP for an SA with no attached port-4500 socket for its source.
    NoSocket,
    /// The socket or TUN device refused the packet (full queue, error).
    SendFailed,
    /// ESP-in-UDP handed over faster than the datapath task drains it.
    Backlog,
}

impl DropReason {
    /// Every reason, in display order.
    pub const ALL: [Self; 18] = [
        Self::BadSpi,
        Self::Replay,
        Self::Integrity,
        Self::Malformed,
        Self::Dummy,
        Self::NoSa,
        Self::Acquire,
        Self::Discard,
        Self::Bypass,
        Self::SelectorMismatch,
        Self::TransportAddress,
        Self::Fragment,
        Self::Expired,
        Self::SeqExhausted,
        Self::Oversize,
        Self::NoSocket,
        Self::SendFailed,
        Self::Backlog,
    ];

    /// Short name for logs and `Display`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::BadSpi => "bad-spi",
            Self::Replay => "replay",
            Self::Integrity => "integrity",
            Self::Malformed => "malformed",
            Self::Dummy => "dummy",
            Self::NoSa => "no-sa",
            Self::Acquire => "acquire",
            Self::Discard => "discard",
            Self::Bypass => "bypass",
            Self::SelectorMismatch => "selector-mismatch",
            Self::TransportAddress => "transport-address",
            Self::Fragment => "fragment",
            Self::Expired => "expired",
            Self::SeqExhausted => "seq-exhausted",
            Self::Oversize => "oversize",
            Self::NoSocket => "no-socket",
            Self::SendFailed => "send-failed",
            Self::Backlog => "backlog",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<EspError> for DropReason {
    fn from(e: EspError) -> Self {
        match e {
            EspError::Replay(_) => Self::Replay,
            EspError::Integrity => Self::Integrity,
            EspError::WrongSpi(_) => Self::BadSpi,
            EspError::SequenceExhausted => Self::SeqExhausted,
            EspError::BufferTooSmall { .. } => Self::Oversize,
            _ => Self::Malformed,
        }
    }
}

/// Drop counters, one per [`DropReason`].
#[derive(Debug, Default)]
pub struct DropCounters([AtomicU64; DropReason::ALL.len()]);

impl DropCounters {
    /// Counts one dropped packet.
    pub fn add(&self, reason: DropReason) {
        self.0[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The current count for `reason`.
    #[must_use]
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()].load(Ordering::Relaxed)
    }
}

/// Packet and byte counters of one SA. Bytes count inner (cleartext)
/// packets, as RFC 4301 lifetimes do.
#[derive(Debug, Default)]
pub struct SaCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
}

impl SaCounters {
    /// Counts one packet of `bytes` bytes; returns the new totals
    /// `(packets, bytes)`.
    pub fn add(&self, bytes: usize) -> (u64, u64) {
        let bytes = bytes as u64;
        let p = self.packets.fetch_add(1, Ordering::Relaxed) + 1;
        let b = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        (p, b)
    }

    /// Packets so far.
    #[must_use]
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Bytes so far.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// One SA's line in [`DatapathStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaStats {
    /// Which SA.
    pub id: SaId,
    /// Its direction.
    pub direction: SaDirection,
    /// Its reqid.
    pub reqid: u32,
    /// Transform name, e.g. `AES_GCM_16-128`.
    pub transform: String,
    /// Packets protected (outbound) or accepted (inbound).
    pub packets: u64,
    /// Their inner bytes.
    pub bytes: u64,
}

/// A snapshot of the datapath's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatapathStats {
    /// Installed SAs, sorted by [`SaId`].
    pub sas: Vec<SaStats>,
    /// Dropped packets per reason (every reason listed, zeros included).
    pub drops: Vec<(DropReason, u64)>,
}

impl DatapathStats {
    /// Reads `drops` into a snapshot with the given SA lines.
    #[must_use]
    pub fn new(mut sas: Vec<SaStats>, drops: &DropCounters) -> Self {
        sas.sort_by_key(|s| s.id);
        let drops = DropReason::ALL.iter().map(|&r| (r, drops.get(r))).collect();
        Self { sas, drops }
    }

    /// The count for one drop reason.
    #[must_use]
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// The line of one SA, if installed.
    #[must_use]
    pub fn sa(&self, id: SaId) -> Option<&SaStats> {
        self.sas.iter().find(|s| s.id == id)
    }
}

impl fmt::Display for DatapathStats {
    /// strongSwan-like lines: `in  7b371abe  AES_GCM_16-128  84 bytes, 1 packets`,
    /// then the non-zero drop counters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.sas {
            let dir = match s.direction {
                SaDirection::Inbound => "in ",
                SaDirection::Outbound => "out",
            };
            writeln!(
                f,
                "{dir} {:08x} dst {} reqid {} {}: {} bytes, {} packets",
                s.id.spi, s.id.dst, s.reqid, s.transform, s.bytes, s.packets
            )?;
        }
        let drops: Vec<String> = self
            .drops
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        if drops.is_empty() {
            write!(f, "drops: none")
        } else {
            write!(f, "drops: {}", drops.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    #[test]
    fn reasons_index_their_own_counter() {
        let c = DropCounters::default();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            for _ in 0..=i {
                c.add(*r);
            }
        }
        let stats = DatapathStats::new(Vec::new(), &c);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(stats.dropped(*r), i as u64 + 1, "{r}");
        }
    }

    #[test]
    fn display_lists_sas_and_only_nonzero_drops() {
        let c = DropCounters::default();
        c.add(DropReason::Replay);
        let sa = SaStats {
            id: SaId {
                dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
                spi: 0x7b37_1abe,
            },
            direction: SaDirection::Outbound,
            reqid: 1,
            transform: "AES_GCM_16-128".into(),
            packets: 2,
            bytes: 168,
        };
        let text = DatapathStats::new(vec![sa], &c).to_string();
        assert_eq!(
            text,
            "out 7b371abe dst 192.0.2.2 reqid 1 AES_GCM_16-128: 168 bytes, 2 packets\n\
             drops: replay 1"
        );
    }
}
