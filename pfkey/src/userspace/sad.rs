//! The SAD of the userspace datapath: inbound SAs by SPI, outbound SAs by
//! [`SaId`] (found through the [`Spd`] or by reqid), with per-SA counters and
//! lifetimes, and the two pipelines (tunnel and transport mode):
//!
//! - [`Sad::encapsulate`]: inner packet → policy check → SA lookup → seal →
//!   [`Transmit`], or an ACQUIRE when a `Protect` policy has no SA yet
//!   ([`Sad::poll_acquire`], rate-limited by [`PolicyTable`]);
//! - [`Sad::decapsulate`]: ESP packet → SPI lookup → open → (transport mode:
//!   header rebuilt, see [`super::transport`]) → inbound selector check
//!   (RFC 4301 §5.2) → inner packet.
//!
//! Sans-IO: time comes in as `now`, randomness as `&mut dyn Random`, and
//! buffers belong to the caller. Drops are counted here, by reason.
//!
//! **Lifetimes.** Soft and hard limits on time, bytes and packets (RFC 4301
//! §4.4.2.1). Volume limits are checked as packets pass, time limits in
//! [`Sad::handle_timeout`]. Crossing one queues an [`Expiry`] for
//! [`Sad::poll_expiry`]; a hard one also deletes the SA (as XFRM does), so
//! that an outbound packet finds the next SA or, with none, raises an
//! ACQUIRE through its `Protect` policy. Without ESN, an outbound SA also
//! expires softly once its sequence number passes
//! [`SEQ_SOFT_LIMIT`], well before the counter would be exhausted
//! (RFC 4303 §3.3.3). The shell raises them as [`KernelEvent::Expire`].
//!
//! **SA choice.** When the most specific policy covering an outbound
//! packet is `Protect { reqid, .. }`, only SAs with that reqid may seal it
//! (the newest whose selectors cover it); with none, the ACQUIRE is raised
//! for that reqid. Without a policy, the newest covering SA is used.

#![deny(clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libracoon::crypto::Random;

use super::esp::{
    EspError, EspHeader, EspOptions, EspSa, NEXT_HEADER_IPV4, NEXT_HEADER_IPV6, NEXT_HEADER_NONE,
    Opened,
};
use super::policy::PolicyTable;
use super::spd::{InnerHeader, Spd, any_covers};
use super::stats::{DatapathStats, DropCounters, DropReason, SaCounters, SaStats};
use super::transport::{self, IPV6_HEADER};
use crate::{
    IpsecMode, KernelEvent, PolicyAction, PolicySpec, SaDirection, SaId, SaSpec, Selector, UdpEncap,
};

/// Without ESN, the outbound sequence number past which an SA expires
/// softly: 2^24 packets before the 32-bit counter would be exhausted, time
/// enough for a rekey.
pub const SEQ_SOFT_LIMIT: u64 = u32::MAX as u64 - (1 << 24);

pub use crate::Lifetime;

/// An SA crossed a lifetime limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// Which SA.
    pub id: SaId,
    /// Its reqid.
    pub reqid: u32,
    /// Soft (rekey now) or hard (the SA no longer passes traffic).
    pub hard: bool,
}

/// Where a sealed packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Bytes of the ESP packet at the start of the output buffer.
    pub len: usize,
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
    /// UDP ports when the SA is UDP-encapsulated (RFC 3948), else plain ESP.
    pub encap: Option<UdpEncap>,
}

/// An opened inbound packet, ready for the TUN device: [`header`](Self::header)
/// followed by `packet[payload]` of the buffer given to [`Sad::decapsulate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decapsulated {
    header: [u8; IPV6_HEADER],
    header_len: usize,
    /// Where the rest of the inner packet lies in the opened buffer: in
    /// tunnel mode the whole inner packet (trimmed to the length its header
    /// states), in transport mode the payload after the rebuilt header.
    pub payload: Range<usize>,
}

impl Decapsulated {
    /// The IP header rebuilt for a transport-mode packet (RFC 4303 §3.1.1);
    /// empty in tunnel mode, where the inner packet carries its own.
    #[must_use]
    pub fn header(&self) -> &[u8] {
        &self.header[..self.header_len]
    }

    /// Length of the whole inner packet.
    #[must_use]
    pub fn len(&self) -> usize {
        self.header_len + self.payload.len()
    }

    /// Whether the inner packet is empty (never, for an accepted packet).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn tunnel(payload: Range<usize>) -> Self {
        Self {
            header: [0; IPV6_HEADER],
            header_len: 0,
            payload,
        }
    }
}

/// [`Sad::insert`] found the SA (or, inbound, its SPI) already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("SA with SPI {0:#010x} already installed")]
pub struct Exists(pub u32);

/// One installed SA: what the SPD and the shell need from its [`SaSpec`],
/// its keys and state, counters and lifetime.
#[derive(Debug)]
pub struct SadEntry {
    id: SaId,
    src: IpAddr,
    direction: SaDirection,
    mode: IpsecMode,
    reqid: u32,
    encap: Option<UdpEncap>,
    selectors: Vec<Selector>,
    esp: EspSa,
    counters: Arc<SaCounters>,
    lifetime: Lifetime,
    installed: Instant,
    soft_fired: bool,
    hard_fired: bool,
}

impl SadEntry {
    /// Builds an entry from `spec` (with its lifetime), installed at `now`.
    ///
    /// # Errors
    /// As [`EspSa::new`].
    pub fn new(
        spec: &SaSpec,
        opts: EspOptions,
        rng: &mut dyn Random,
        now: Instant,
    ) -> Result<Self, EspError> {
        Ok(Self {
            id: spec.id,
            src: spec.src,
            direction: spec.direction,
            mode: spec.mode,
            reqid: spec.reqid,
            encap: spec.encap,
            selectors: spec.selectors.clone(),
            esp: EspSa::new(spec, opts, rng)?,
            counters: Arc::default(),
            lifetime: spec.lifetime,
            installed: now,
            soft_fired: false,
            hard_fired: false,
        })
    }

    /// The SA's identity.
    #[must_use]
    pub fn id(&self) -> SaId {
        self.id
    }

    /// Inbound or outbound.
    #[must_use]
    pub fn direction(&self) -> SaDirection {
        self.direction
    }

    /// Its counters, shareable with a statistics reader.
    #[must_use]
    pub fn counters(&self) -> &Arc<SaCounters> {
        &self.counters
    }

    /// Its ESP state.
    #[must_use]
    pub fn esp(&self) -> &EspSa {
        &self.esp
    }

    /// Whether a hard limit was reached.
    #[must_use]
    pub fn is_expired(&self) -> bool {
        self.hard_fired
    }

    /// This SA's line in [`DatapathStats`].
    #[must_use]
    pub fn stats(&self) -> SaStats {
        SaStats {
            id: self.id,
            direction: self.direction,
            reqid: self.reqid,
            transform: self.esp.transform().to_string(),
            packets: self.counters.packets(),
            bytes: self.counters.bytes(),
        }
    }

    /// Counts a packet of `bytes` inner bytes and checks the volume limits.
    fn count(&mut self, bytes: usize, events: &mut VecDeque<Expiry>) {
        let (packets, bytes) = self.counters.add(bytes);
        let lt = self.lifetime;
        let over = |limit: Option<u64>, value: u64| limit.is_some_and(|l| value >= l);
        if over(lt.hard_bytes, bytes) || over(lt.hard_packets, packets) {
            self.expire(true, events);
        } else if over(lt.soft_bytes, bytes) || over(lt.soft_packets, packets) {
            self.expire(false, events);
        }
    }

    /// Without ESN, asks for a rekey once the sequence number passes
    /// [`SEQ_SOFT_LIMIT`]: RFC 4303 §3.3.3 forbids cycling the counter, so
    /// the SA must be replaced before it runs out.
    fn check_sequence(&mut self, events: &mut VecDeque<Expiry>) {
        if !self.esp.esn() && self.esp.last_seq() > SEQ_SOFT_LIMIT {
            self.expire(false, events);
        }
    }

    /// Checks the time limits at `now`.
    fn tick(&mut self, now: Instant, events: &mut VecDeque<Expiry>) {
        let age = now.saturating_duration_since(self.installed);
        let over = |limit: Option<Duration>| limit.is_some_and(|l| age >= l);
        if over(self.lifetime.hard_time) {
            self.expire(true, events);
        } else if over(self.lifetime.soft_time) {
            self.expire(false, events);
        }
    }

    /// Records a crossed limit once per kind; hard implies soft.
    fn expire(&mut self, hard: bool, events: &mut VecDeque<Expiry>) {
        let fired = if hard {
            &mut self.hard_fired
        } else {
            &mut self.soft_fired
        };
        if *fired {
            return;
        }
        *fired = true;
        if hard {
            self.soft_fired = true;
        }
        events.push_back(Expiry {
            id: self.id,
            reqid: self.reqid,
            hard,
        });
    }
}

/// The SA tables and both pipelines.
#[derive(Debug)]
pub struct Sad {
    inbound: HashMap<u32, SadEntry>,
    outbound: HashMap<SaId, SadEntry>,
    spd: Spd,
    policies: PolicyTable,
    drops: Arc<DropCounters>,
    events: VecDeque<Expiry>,
    acquires: VecDeque<KernelEvent>,
}

impl Sad {
    /// Empty tables counting drops into `drops`.
    #[must_use]
    pub fn new(drops: Arc<DropCounters>) -> Self {
        Self {
            inbound: HashMap::new(),
            outbound: HashMap::new(),
            spd: Spd::new(),
            policies: PolicyTable::new(),
            drops,
            events: VecDeque::new(),
            acquires: VecDeque::new(),
        }
    }

    /// Installs `entry`. Inbound SAs are keyed by SPI alone (RFC 4301
    /// §4.1 allows SPI-only lookup for unicast SAs), so an inbound SPI is
    /// unique whatever its destination.
    ///
    /// # Errors
    /// [`Exists`] if the SA (inbound: its SPI) is installed.
    pub fn insert(&mut self, entry: SadEntry) -> Result<(), Exists> {
        let id = entry.id;
        match entry.direction {
            SaDirection::Inbound => {
                if self.inbound.contains_key(&id.spi) {
                    return Err(Exists(id.spi));
                }
                self.inbound.insert(id.spi, entry);
            }
            SaDirection::Outbound => {
                if self.outbound.contains_key(&id) {
                    return Err(Exists(id.spi));
                }
                self.spd.insert(id, entry.selectors.clone());
                self.policies.sa_installed(entry.reqid);
                self.outbound.insert(id, entry);
            }
        }
        Ok(())
    }

    /// Removes SA `id` (inbound SAs match on SPI and destination).
    pub fn remove(&mut self, id: SaId) -> Option<SadEntry> {
        if let Some(e) = self.outbound.remove(&id) {
            self.spd.remove(id);
            return Some(e);
        }
        if self.inbound.get(&id.spi).is_some_and(|e| e.id == id) {
            return self.inbound.remove(&id.spi);
        }
        None
    }

    /// Whether SA `id` is installed.
    #[must_use]
    pub fn contains(&self, id: SaId) -> bool {
        self.outbound.contains_key(&id) || self.inbound.get(&id.spi).is_some_and(|e| e.id == id)
    }

    /// The inbound SA with SPI `spi`.
    #[must_use]
    pub fn inbound(&self, spi: u32) -> Option<&SadEntry> {
        self.inbound.get(&spi)
    }

    /// The outbound SA `id`.
    #[must_use]
    pub fn outbound(&self, id: SaId) -> Option<&SadEntry> {
        self.outbound.get(&id)
    }

    /// An outbound SA with request ID `reqid` that is not expired (any of
    /// them when a rekey has two).
    #[must_use]
    pub fn outbound_by_reqid(&self, reqid: u32) -> Option<&SadEntry> {
        self.outbound
            .values()
            .find(|e| e.reqid == reqid && !e.hard_fired)
    }

    /// Sets SA `id`'s limits; returns whether it exists. Limits are counted
    /// from installation, so a limit already passed fires at the next
    /// packet or [`handle_timeout`](Self::handle_timeout).
    pub fn set_lifetime(&mut self, id: SaId, lifetime: Lifetime) -> bool {
        match self.entry_mut(id) {
            Some(e) => {
                e.lifetime = lifetime;
                true
            }
            None => false,
        }
    }

    /// Changes an SA's lifetime and UDP encapsulation in place, keeping its
    /// keys, counters and replay window. `false` if it is not installed.
    pub fn update(&mut self, id: SaId, lifetime: Lifetime, encap: Option<UdpEncap>) -> bool {
        match self.entry_mut(id) {
            Some(e) => {
                e.lifetime = lifetime;
                e.encap = encap;
                true
            }
            None => false,
        }
    }

    /// Installs a policy, replacing one with the same selector and
    /// direction.
    pub fn insert_policy(&mut self, spec: PolicySpec) {
        self.policies.insert(spec);
    }

    /// Removes the policy with this selector and direction; returns it.
    pub fn remove_policy(
        &mut self,
        selector: &Selector,
        direction: SaDirection,
    ) -> Option<PolicySpec> {
        self.policies.remove(selector, direction)
    }

    /// The installed policies.
    #[must_use]
    pub fn policies(&self) -> &PolicyTable {
        &self.policies
    }

    /// Protects the inner packet `inner` (read from the TUN device at
    /// `now`) into `out`.
    ///
    /// A `Discard` policy drops the packet; otherwise the newest SA whose
    /// selectors cover it (under a `Protect` policy: the newest with the
    /// policy's reqid) seals it; with none, a `Protect` policy queues an
    /// ACQUIRE for [`poll_acquire`](Self::poll_acquire) (at most one per
    /// policy per [`super::policy::ACQUIRE_RETRY`], none once an SA with its
    /// request ID is installed) and the packet is dropped as `acquire`.
    ///
    /// # Errors
    /// The [`DropReason`], already counted.
    pub fn encapsulate(
        &mut self,
        now: Instant,
        inner: &[u8],
        out: &mut [u8],
    ) -> Result<Transmit, DropReason> {
        let r = self.try_encapsulate(now, inner, out);
        if let Err(reason) = r {
            self.drops.add(reason);
        }
        r
    }

    /// [`encapsulate`](Self::encapsulate) in place: the inner packet is
    /// `buf[inner]`, and the ESP packet is written over it, starting up to
    /// 24 bytes before it (ESP header and IV) and ending up to 2 + 15 + 32
    /// bytes after it (trailer, padding, ICV); returns where it is.
    ///
    /// # Errors
    /// The [`DropReason`], already counted (`oversize` when `buf` lacks
    /// that room).
    pub fn encapsulate_in_place(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        inner: Range<usize>,
    ) -> Result<(Range<usize>, Transmit), DropReason> {
        let r = self.try_encapsulate_in_place(now, buf, inner);
        if let Err(reason) = &r {
            self.drops.add(*reason);
        }
        r
    }

    /// Checks and decrypts the ESP packet `packet` in place and returns
    /// where the inner packet is: in tunnel mode a range of `packet`,
    /// trimmed to the length its header states; in transport mode a
    /// rebuilt IP header (the SA's addresses, protocol = Next Header)
    /// followed by the decrypted payload.
    ///
    /// # Errors
    /// The [`DropReason`], already counted.
    pub fn decapsulate(&mut self, packet: &mut [u8]) -> Result<Decapsulated, DropReason> {
        let r = self.try_decapsulate(packet);
        if let Err(reason) = r {
            self.drops.add(reason);
        }
        r
    }

    /// Checks time limits at `now`; deletes the SAs that expired hard.
    pub fn handle_timeout(&mut self, now: Instant) {
        let events = &mut self.events;
        for e in self.inbound.values_mut().chain(self.outbound.values_mut()) {
            e.tick(now, events);
        }
        self.inbound.retain(|_, e| !e.hard_fired);
        let spd = &mut self.spd;
        self.outbound.retain(|id, e| {
            if e.hard_fired {
                spd.remove(*id);
            }
            !e.hard_fired
        });
    }

    /// The next lifetime event, oldest first.
    #[must_use]
    pub fn poll_expiry(&mut self) -> Option<Expiry> {
        self.events.pop_front()
    }

    /// The next [`KernelEvent::Acquire`], oldest first.
    #[must_use]
    pub fn poll_acquire(&mut self) -> Option<KernelEvent> {
        self.acquires.pop_front()
    }

    /// Counts a drop the caller detected (I/O failures, oversize input).
    pub fn count_drop(&self, reason: DropReason) {
        self.drops.add(reason);
    }

    /// A snapshot of every SA's counters and the drop counters.
    #[must_use]
    pub fn stats(&self) -> DatapathStats {
        let sas = self
            .inbound
            .values()
            .chain(self.outbound.values())
            .map(SadEntry::stats)
            .collect();
        DatapathStats::new(sas, &self.drops)
    }

    fn try_encapsulate(
        &mut self,
        now: Instant,
        inner: &[u8],
        out: &mut [u8],
    ) -> Result<Transmit, DropReason> {
        let (id, body, next_header, len) = self.outbound_for(now, inner)?;
        let Some(entry) = self.outbound.get_mut(&id) else {
            return Err(DropReason::NoSa);
        };
        let sealed = entry.esp.seal(&inner[body], next_header, out);
        self.sealed(id, sealed, len)
    }

    fn try_encapsulate_in_place(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        inner: Range<usize>,
    ) -> Result<(Range<usize>, Transmit), DropReason> {
        let packet = buf.get(inner.clone()).ok_or(DropReason::Malformed)?;
        let (id, body, next_header, len) = self.outbound_for(now, packet)?;
        let Some(entry) = self.outbound.get_mut(&id) else {
            return Err(DropReason::NoSa);
        };
        let body = inner.start + body.start..inner.start + body.end;
        let mut at = 0..0;
        let sealed = entry
            .esp
            .seal_in_place(buf, body, next_header)
            .map(|range| {
                let n = range.len();
                at = range;
                n
            });
        let tx = self.sealed(id, sealed, len)?;
        Ok((at, tx))
    }

    /// The outbound SA for the inner packet `inner`, what of it to seal
    /// (a range of `inner`) with which Next Header, and its length.
    fn outbound_for(
        &mut self,
        now: Instant,
        inner: &[u8],
    ) -> Result<(SaId, Range<usize>, u8, usize), DropReason> {
        let h = InnerHeader::parse(inner).ok_or(DropReason::Malformed)?;
        let action = self.policies.lookup(&h).map(|p| p.action);
        let reqid = match action {
            Some(PolicyAction::Discard) => return Err(DropReason::Discard),
            Some(PolicyAction::Bypass) => return Err(DropReason::Bypass),
            Some(PolicyAction::Protect { reqid, .. }) => Some(reqid),
            None => None,
        };
        let Some(id) = self.select(&h, reqid) else {
            return Err(self.no_sa(&h, now, action.is_some()));
        };
        let entry = self.outbound.get(&id).ok_or(DropReason::NoSa)?;
        if entry.hard_fired {
            return Err(DropReason::Expired);
        }
        match entry.mode {
            IpsecMode::Tunnel => Ok((id, 0..h.len, h.next_header(), h.len)),
            IpsecMode::Transport => {
                // RFC 4303 §3.1.1: "ESP is inserted after the IP header";
                // a transport-mode SA carries only its endpoints' packets.
                if h.src != entry.src || h.dst != id.dst {
                    return Err(DropReason::TransportAddress);
                }
                // RFC 4303 §3.3: "transport mode ESP is applied only to
                // whole IP datagrams (not to IP fragments)".
                if transport::is_ipv4_fragment(inner) {
                    return Err(DropReason::Fragment);
                }
                let at = transport::payload_offset(inner).ok_or(DropReason::Malformed)?;
                if at > h.len {
                    return Err(DropReason::Malformed);
                }
                Ok((id, at..h.len, h.proto, h.len))
            }
        }
    }

    /// Accounts for an outbound packet of `len` inner bytes that SA `id`
    /// sealed into `sealed` bytes (or failed to).
    fn sealed(
        &mut self,
        id: SaId,
        sealed: Result<usize, EspError>,
        len: usize,
    ) -> Result<Transmit, DropReason> {
        let Some(entry) = self.outbound.get_mut(&id) else {
            return Err(DropReason::NoSa);
        };
        let sealed = match sealed {
            Ok(n) => n,
            Err(EspError::SequenceExhausted) => {
                entry.expire(true, &mut self.events);
                self.remove(id);
                return Err(DropReason::SeqExhausted);
            }
            Err(e) => return Err(e.into()),
        };
        entry.count(len, &mut self.events);
        entry.check_sequence(&mut self.events);
        let tx = Transmit {
            len: sealed,
            src: entry.src,
            dst: id.dst,
            encap: entry.encap,
        };
        if entry.hard_fired {
            // This packet was the last: the next finds another SA or acquires.
            self.remove(id);
        }
        Ok(tx)
    }

    /// The outbound SA for a packet with header `h`: the newest covering
    /// it, among those with `reqid` when its policy names one.
    fn select(&self, h: &InnerHeader, reqid: Option<u32>) -> Option<SaId> {
        self.spd
            .matching(h)
            .find(|id| reqid.is_none_or(|r| self.outbound.get(id).is_some_and(|e| e.reqid == r)))
    }

    fn try_decapsulate(&mut self, packet: &mut [u8]) -> Result<Decapsulated, DropReason> {
        let spi = EspHeader::new_checked(&*packet)
            .map_err(DropReason::from)?
            .spi();
        let entry = self.inbound.get_mut(&spi).ok_or(DropReason::BadSpi)?;
        if entry.hard_fired {
            return Err(DropReason::Expired);
        }
        let opened = entry.esp.open(packet)?;
        if opened.next_header == NEXT_HEADER_NONE {
            return Err(DropReason::Dummy);
        }
        let (h, inner) = match entry.mode {
            IpsecMode::Tunnel => tunnel_inner(packet, &opened)?,
            IpsecMode::Transport => transport_inner(entry, &opened, packet)?,
        };
        if !any_covers(&entry.selectors, &h) {
            return Err(DropReason::SelectorMismatch);
        }
        entry.count(h.len, &mut self.events);
        if entry.hard_fired {
            self.inbound.remove(&spi);
        }
        Ok(inner)
    }

    /// No SA covers `h`: raise an ACQUIRE if its `Protect` policy may.
    fn no_sa(&mut self, h: &InnerHeader, now: Instant, protected: bool) -> DropReason {
        if !protected {
            return DropReason::NoSa;
        }
        if let Some(ev) = self.policies.acquire(h, now) {
            self.acquires.push_back(ev);
        }
        DropReason::Acquire
    }

    fn entry_mut(&mut self, id: SaId) -> Option<&mut SadEntry> {
        if let Some(e) = self.outbound.get_mut(&id) {
            return Some(e);
        }
        self.inbound.get_mut(&id.spi).filter(|e| e.id == id)
    }
}

/// The inner packet of a tunnel-mode SA: a whole IP packet whose version
/// matches the Next Header.
fn tunnel_inner(packet: &[u8], opened: &Opened) -> Result<(InnerHeader, Decapsulated), DropReason> {
    if !matches!(opened.next_header, NEXT_HEADER_IPV4 | NEXT_HEADER_IPV6) {
        return Err(DropReason::Malformed);
    }
    let h = InnerHeader::parse(&packet[opened.payload.clone()]).ok_or(DropReason::Malformed)?;
    if h.next_header() != opened.next_header {
        return Err(DropReason::Malformed);
    }
    let start = opened.payload.start;
    Ok((h, Decapsulated::tunnel(start..start + h.len)))
}

/// The inner packet of a transport-mode SA: the payload behind a header
/// rebuilt from the SA's addresses (peer to us).
fn transport_inner(
    entry: &SadEntry,
    opened: &Opened,
    packet: &[u8],
) -> Result<(InnerHeader, Decapsulated), DropReason> {
    let (src, dst, proto) = (entry.src, entry.id.dst, opened.next_header);
    let mut header = [0; IPV6_HEADER];
    let header_len = transport::rebuild(src, dst, proto, opened.payload.len(), &mut header)
        .ok_or(DropReason::Malformed)?;
    let inner = Decapsulated {
        header,
        header_len,
        payload: opened.payload.clone(),
    };
    let l4 = packet.get(opened.payload.clone()).unwrap_or_default();
    let (src_port, dst_port) = super::spd::ports(proto, l4);
    let h = InnerHeader {
        src,
        dst,
        proto,
        len: inner.len(),
        src_port,
        dst_port,
    };
    Ok((h, inner))
}

#[cfg(test)]
mod tests;
