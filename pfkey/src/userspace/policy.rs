//! The policy half of the SPD (RFC 4301 §4.4.1): what the daemons install
//! with [`crate::Kernel::add_policy`], and negotiation on demand.
//!
//! The SA half ([`super::spd::Spd`]) says which SA protects a packet; this
//! table says what *should* happen to it when no SA does:
//!
//! - **`Discard`**: the packet is dropped (reason `discard`), even if an
//!   SA's selectors cover it.
//! - **`Protect`** with no SA covering the packet: the packet is dropped
//!   (reason `acquire`) and an ACQUIRE is raised for the policy's request
//!   ID, so that a key exchange installs one. Packets are **not queued**
//!   while the exchange runs, as with XFRM's default (`acq_expires`
//!   without `xfrm_larval_drop = 0`); the sender's retransmissions get
//!   through once the SA is in.
//! - **`Bypass`** is recorded. Bypass policies get no route into the TUN
//!   device, so their traffic never reaches the datapath unless a broader
//!   route of a protect policy pulls it in; the datapath cannot send
//!   cleartext from there, so such a packet is dropped (reason `bypass`).
//!
//! A policy's `tunnel` addresses are not used here: the SAs carry their
//! outer addresses. Inbound policies are recorded for completeness: cleartext inbound
//! traffic never passes the userspace datapath, and decrypted traffic is
//! checked against its SA's selectors (RFC 4301 §5.2).
//!
//! **Order.** [`PolicySpec`] carries no priority, so the most specific
//! policy wins: narrowest destination range, then narrowest source range,
//! then a specific protocol over "any"; among equals the newest. The XFRM
//! backend's priorities (`xfrm::convert`) rank by the *sum* of both
//! prefix lengths instead, so two overlapping policies whose source and
//! destination widths trade off (a /32 source to a /24 against a /24 to a
//! /25) can be ordered differently by the two backends. Bypass acts as
//! Discard here (below), so the difference never sends cleartext.
//!
//! **No ACQUIRE storm.** A policy raises at most one ACQUIRE until an SA
//! with its request ID is installed ([`PolicyTable::sa_installed`]), and
//! again [`ACQUIRE_RETRY`] after the last one if none arrives (the key
//! exchange failed or the ACQUIRE was lost). Time is an input.

#![deny(clippy::unwrap_used)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::spd::{InnerHeader, covers};
use crate::{KernelEvent, PolicyAction, PolicySpec, SaDirection, Selector};

/// How long a policy waits for an SA before it raises another ACQUIRE.
pub const ACQUIRE_RETRY: Duration = Duration::from_secs(3);

/// The installed policies, most specific first.
#[derive(Debug, Default)]
pub struct PolicyTable {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    spec: PolicySpec,
    rank: Rank,
    /// When the last ACQUIRE was raised, while no SA has come since.
    acquired: Option<Instant>,
}

/// Sort key: smaller is more specific (destination range, source range,
/// then a named protocol, then named ports).
type Rank = (u128, u128, bool, u8);

impl PolicyTable {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs `spec`, replacing a policy with the same selector and
    /// direction (as `ip xfrm policy update` does).
    pub fn insert(&mut self, spec: PolicySpec) {
        self.remove(&spec.selector, spec.direction);
        let rank = rank(&spec.selector);
        let at = self.entries.partition_point(|e| e.rank < rank);
        self.entries.insert(
            at,
            Entry {
                spec,
                rank,
                acquired: None,
            },
        );
    }

    /// Removes the policy with this selector and direction; returns it.
    pub fn remove(&mut self, selector: &Selector, direction: SaDirection) -> Option<PolicySpec> {
        let at = self
            .entries
            .iter()
            .position(|e| e.spec.selector == *selector && e.spec.direction == direction)?;
        Some(self.entries.remove(at).spec)
    }

    /// The most specific outbound policy covering a packet with header `h`.
    #[must_use]
    pub fn lookup(&self, h: &InnerHeader) -> Option<&PolicySpec> {
        self.position(h).map(|i| &self.entries[i].spec)
    }

    /// A packet with header `h` found no SA. If its policy is `Protect` and
    /// may raise an ACQUIRE at `now` (none raised yet, or the last one
    /// [`ACQUIRE_RETRY`] ago), returns the event and remembers `now`.
    pub fn acquire(&mut self, h: &InnerHeader, now: Instant) -> Option<KernelEvent> {
        let at = self.position(h)?;
        let entry = &mut self.entries[at];
        let PolicyAction::Protect { reqid, .. } = entry.spec.action else {
            return None;
        };
        let armed = entry
            .acquired
            .is_none_or(|t| now.saturating_duration_since(t) >= ACQUIRE_RETRY);
        if !armed {
            return None;
        }
        entry.acquired = Some(now);
        Some(KernelEvent::Acquire {
            reqid,
            src: h.src,
            dst: h.dst,
            proto: h.proto,
        })
    }

    /// An SA with request ID `reqid` was installed: its policies may raise
    /// an ACQUIRE again as soon as traffic finds no SA (e.g. after it is
    /// deleted).
    pub fn sa_installed(&mut self, reqid: u32) {
        for e in &mut self.entries {
            if matches!(e.spec.action, PolicyAction::Protect { reqid: r, .. } if r == reqid) {
                e.acquired = None;
            }
        }
    }

    /// Every installed policy, most specific first.
    pub fn iter(&self) -> impl Iterator<Item = &PolicySpec> {
        self.entries.iter().map(|e| &e.spec)
    }

    /// Number of installed policies.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no policy is installed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, h: &InnerHeader) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.spec.direction == SaDirection::Outbound && covers(&e.spec.selector, h))
    }
}

/// Specificity of a selector: the sizes of its destination and source
/// ranges, then whether the protocol is "any".
fn rank(s: &Selector) -> Rank {
    let any_ports = u8::from(s.src_port == 0) + u8::from(s.dst_port == 0);
    (width(s.dst), width(s.src), s.proto == 0, any_ports)
}

/// `hi - lo` of an address range (`u128::MAX` for a malformed one, which
/// then matches nothing anyway).
fn width((lo, hi): (IpAddr, IpAddr)) -> u128 {
    let n = |a: IpAddr| match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    if lo.is_ipv4() == hi.is_ipv4() && n(lo) <= n(hi) {
        n(hi) - n(lo)
    } else {
        u128::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IpsecMode;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn sel(src: (&str, &str), dst: (&str, &str), proto: u8) -> Selector {
        Selector {
            src: (ip(src.0), ip(src.1)),
            dst: (ip(dst.0), ip(dst.1)),
            proto,
            src_port: 0,
            dst_port: 0,
        }
    }

    fn policy(selector: Selector, action: PolicyAction) -> PolicySpec {
        PolicySpec {
            selector,
            direction: SaDirection::Outbound,
            action,
            tunnel: None,
        }
    }

    fn protect(reqid: u32) -> PolicyAction {
        PolicyAction::Protect {
            reqid,
            mode: IpsecMode::Tunnel,
        }
    }

    fn lans() -> Selector {
        sel(
            ("198.51.100.0", "198.51.100.255"),
            ("203.0.113.0", "203.0.113.255"),
            0,
        )
    }

    /// 198.51.100.1 -> 203.0.113.1, ICMP.
    fn icmp() -> InnerHeader {
        InnerHeader {
            src: ip("198.51.100.1"),
            dst: ip("203.0.113.1"),
            proto: 1,
            len: 84,
            src_port: 0,
            dst_port: 0,
        }
    }

    #[test]
    fn a_port_specific_bypass_inside_a_protect_range_wins() {
        let mut table = PolicyTable::new();
        let range = sel(
            ("198.51.100.0", "198.51.100.255"),
            ("203.0.113.0", "203.0.113.255"),
            0,
        );
        table.insert(PolicySpec {
            selector: range.clone(),
            direction: SaDirection::Outbound,
            action: PolicyAction::Protect {
                reqid: 1,
                mode: IpsecMode::Tunnel,
            },
            tunnel: None,
        });
        let mut dns = range;
        dns.proto = 17;
        dns.dst_port = 53;
        table.insert(PolicySpec {
            selector: dns,
            direction: SaDirection::Outbound,
            action: PolicyAction::Bypass,
            tunnel: None,
        });
        let query = InnerHeader {
            proto: 17,
            src_port: 33000,
            dst_port: 53,
            ..icmp()
        };
        assert_eq!(
            table.lookup(&query).map(|p| p.action),
            Some(PolicyAction::Bypass)
        );
        let other = InnerHeader {
            dst_port: 123,
            ..query
        };
        assert!(matches!(
            table.lookup(&other).map(|p| p.action),
            Some(PolicyAction::Protect { .. })
        ));
    }

    #[test]
    fn the_most_specific_policy_wins_whatever_the_order_of_installation() {
        let any = sel(
            ("0.0.0.0", "255.255.255.255"),
            ("203.0.113.0", "203.0.113.255"),
            0,
        );
        let host = sel(
            ("198.51.100.1", "198.51.100.1"),
            ("203.0.113.1", "203.0.113.1"),
            0,
        );
        let icmp_only = sel(
            ("198.51.100.1", "198.51.100.1"),
            ("203.0.113.1", "203.0.113.1"),
            1,
        );
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            let all = [
                policy(any.clone(), PolicyAction::Discard),
                policy(lans(), protect(1)),
                policy(host.clone(), PolicyAction::Bypass),
                policy(icmp_only.clone(), protect(2)),
            ];
            let mut t = PolicyTable::new();
            for i in order {
                t.insert(all[i].clone());
            }
            assert_eq!(t.lookup(&icmp()).map(|p| p.action), Some(protect(2)));
            let tcp = InnerHeader { proto: 6, ..icmp() };
            assert_eq!(t.lookup(&tcp).map(|p| p.action), Some(PolicyAction::Bypass));
            let other = InnerHeader {
                src: ip("198.51.100.9"),
                ..icmp()
            };
            assert_eq!(t.lookup(&other).map(|p| p.action), Some(protect(1)));
            let outside = InnerHeader {
                src: ip("192.0.2.9"),
                ..icmp()
            };
            assert_eq!(
                t.lookup(&outside).map(|p| p.action),
                Some(PolicyAction::Discard)
            );
        }
    }

    #[test]
    fn inbound_policies_and_other_families_do_not_match_outbound_packets() {
        let mut t = PolicyTable::new();
        let mut inbound = policy(lans(), protect(1));
        inbound.direction = SaDirection::Inbound;
        t.insert(inbound);
        assert_eq!(t.lookup(&icmp()), None);
        let v6 = InnerHeader {
            src: ip("2001:db8:a::1"),
            dst: ip("2001:db8:b::1"),
            ..icmp()
        };
        t.insert(policy(lans(), protect(1)));
        assert_eq!(t.lookup(&v6), None);
        assert!(t.lookup(&icmp()).is_some());
    }

    #[test]
    fn insert_replaces_and_remove_finds_by_selector_and_direction() {
        let mut t = PolicyTable::new();
        t.insert(policy(lans(), protect(1)));
        t.insert(policy(lans(), PolicyAction::Discard));
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.lookup(&icmp()).map(|p| p.action),
            Some(PolicyAction::Discard)
        );
        assert_eq!(t.remove(&lans(), SaDirection::Inbound), None);
        assert!(t.remove(&lans(), SaDirection::Outbound).is_some());
        assert!(t.is_empty());
        assert_eq!(t.lookup(&icmp()), None);
    }

    #[test]
    fn one_acquire_per_policy_until_the_retry_interval_passes() {
        let t0 = Instant::now();
        let mut t = PolicyTable::new();
        t.insert(policy(lans(), protect(7)));
        let ev = t.acquire(&icmp(), t0).expect("first packet acquires");
        assert_eq!(
            ev,
            KernelEvent::Acquire {
                reqid: 7,
                src: ip("198.51.100.1"),
                dst: ip("203.0.113.1"),
                proto: 1,
            }
        );
        // Exhaustive over the waiting period in 100 ms steps: silence.
        for ms in (0..3000).step_by(100) {
            assert_eq!(
                t.acquire(&icmp(), t0 + Duration::from_millis(ms)),
                None,
                "{ms}"
            );
        }
        let again = t0 + ACQUIRE_RETRY;
        assert!(t.acquire(&icmp(), again).is_some(), "re-armed after 3 s");
        assert_eq!(t.acquire(&icmp(), again + Duration::from_secs(1)), None);
    }

    #[test]
    fn an_installed_sa_rearms_only_policies_with_its_reqid() {
        let t0 = Instant::now();
        let mut t = PolicyTable::new();
        t.insert(policy(lans(), protect(7)));
        let other = sel(
            ("198.51.100.0", "198.51.100.255"),
            ("192.0.2.0", "192.0.2.255"),
            0,
        );
        t.insert(policy(other, protect(8)));
        let to_other = InnerHeader {
            dst: ip("192.0.2.5"),
            ..icmp()
        };
        assert!(t.acquire(&icmp(), t0).is_some());
        assert!(t.acquire(&to_other, t0).is_some());
        t.sa_installed(7);
        let soon = t0 + Duration::from_millis(10);
        assert!(t.acquire(&icmp(), soon).is_some(), "reqid 7 re-armed");
        assert_eq!(t.acquire(&to_other, soon), None, "reqid 8 still waits");
    }

    #[test]
    fn bypass_discard_and_unmatched_packets_never_acquire() {
        let t0 = Instant::now();
        let mut t = PolicyTable::new();
        assert_eq!(t.acquire(&icmp(), t0), None);
        t.insert(policy(lans(), PolicyAction::Bypass));
        assert_eq!(t.acquire(&icmp(), t0), None);
        t.insert(policy(lans(), PolicyAction::Discard));
        assert_eq!(t.acquire(&icmp(), t0), None);
    }

    #[test]
    fn clock_going_backwards_does_not_rearm() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut t = PolicyTable::new();
        t.insert(policy(lans(), protect(7)));
        assert!(t.acquire(&icmp(), t0).is_some());
        assert_eq!(t.acquire(&icmp(), t0 - Duration::from_secs(5)), None);
    }
}
