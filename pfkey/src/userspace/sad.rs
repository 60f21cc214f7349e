//! The SAD of the userspace datapath: inbound SAs by SPI, outbound SAs by
//! [`SaId`] (found through the [`Spd`] or by reqid), with per-SA counters and
//! lifetimes, and the two tunnel-mode pipelines:
//!
//! - [`Sad::encapsulate`]: inner packet → SPD lookup → seal → [`Transmit`];
//! - [`Sad::decapsulate`]: ESP packet → SPI lookup → open → inbound selector
//!   check (RFC 4301 §5.2) → inner packet.
//!
//! Sans-IO: time comes in as `now`, randomness as `&mut dyn Random`, and
//! buffers belong to the caller. Drops are counted here, by reason.
//!
//! **Lifetimes.** Soft and hard limits on time, bytes and packets (RFC 4301
//! §4.4.2.1). Volume limits are checked as packets pass, time limits in
//! [`Sad::handle_timeout`]. Crossing one queues an [`Expiry`] for
//! [`Sad::poll_expiry`]; after a hard one the SA drops every packet
//! (reason `expired`) until it is deleted. Raising these as kernel events to
//! iked is left to the shell.

#![deny(clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libracoon::crypto::Random;

use super::esp::{
    EspError, EspHeader, EspOptions, EspSa, NEXT_HEADER_IPV4, NEXT_HEADER_IPV6, NEXT_HEADER_NONE,
};
use super::spd::{InnerHeader, Spd, any_covers};
use super::stats::{DatapathStats, DropCounters, DropReason, SaCounters, SaStats};
use crate::{SaDirection, SaId, SaSpec, Selector, UdpEncap};

/// Soft and hard limits of one SA; `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifetime {
    /// Soft limit on inner bytes.
    pub soft_bytes: Option<u64>,
    /// Hard limit on inner bytes.
    pub hard_bytes: Option<u64>,
    /// Soft limit on packets.
    pub soft_packets: Option<u64>,
    /// Hard limit on packets.
    pub hard_packets: Option<u64>,
    /// Soft limit on time since installation.
    pub soft_time: Option<Duration>,
    /// Hard limit on time since installation.
    pub hard_time: Option<Duration>,
}

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
    /// Builds an entry from `spec`, installed at `now`, without limits.
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
            reqid: spec.reqid,
            encap: spec.encap,
            selectors: spec.selectors.clone(),
            esp: EspSa::new(spec, opts, rng)?,
            counters: Arc::default(),
            lifetime: Lifetime::default(),
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
    drops: Arc<DropCounters>,
    events: VecDeque<Expiry>,
}

impl Sad {
    /// Empty tables counting drops into `drops`.
    #[must_use]
    pub fn new(drops: Arc<DropCounters>) -> Self {
        Self {
            inbound: HashMap::new(),
            outbound: HashMap::new(),
            spd: Spd::new(),
            drops,
            events: VecDeque::new(),
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

    /// Protects the inner packet `inner` (read from the TUN device) into
    /// `out`.
    ///
    /// # Errors
    /// The [`DropReason`], already counted.
    pub fn encapsulate(&mut self, inner: &[u8], out: &mut [u8]) -> Result<Transmit, DropReason> {
        let r = self.try_encapsulate(inner, out);
        if let Err(reason) = r {
            self.drops.add(reason);
        }
        r
    }

    /// Checks and decrypts the ESP packet `packet` in place and returns the
    /// range of the inner packet, trimmed to the length its header states.
    ///
    /// # Errors
    /// The [`DropReason`], already counted.
    pub fn decapsulate(&mut self, packet: &mut [u8]) -> Result<Range<usize>, DropReason> {
        let r = self.try_decapsulate(packet);
        if let Err(reason) = r {
            self.drops.add(reason);
        }
        r
    }

    /// Checks time limits at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let events = &mut self.events;
        for e in self.inbound.values_mut().chain(self.outbound.values_mut()) {
            e.tick(now, events);
        }
    }

    /// The next lifetime event, oldest first.
    #[must_use]
    pub fn poll_expiry(&mut self) -> Option<Expiry> {
        self.events.pop_front()
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

    fn try_encapsulate(&mut self, inner: &[u8], out: &mut [u8]) -> Result<Transmit, DropReason> {
        let h = InnerHeader::parse(inner).ok_or(DropReason::Malformed)?;
        let id = self.spd.lookup(&h).ok_or(DropReason::NoSa)?;
        let entry = self.outbound.get_mut(&id).ok_or(DropReason::NoSa)?;
        if entry.hard_fired {
            return Err(DropReason::Expired);
        }
        let len = match entry.esp.seal(&inner[..h.len], h.next_header(), out) {
            Ok(len) => len,
            Err(EspError::SequenceExhausted) => {
                entry.expire(true, &mut self.events);
                return Err(DropReason::SeqExhausted);
            }
            Err(e) => return Err(e.into()),
        };
        entry.count(h.len, &mut self.events);
        Ok(Transmit {
            len,
            src: entry.src,
            dst: id.dst,
            encap: entry.encap,
        })
    }

    fn try_decapsulate(&mut self, packet: &mut [u8]) -> Result<Range<usize>, DropReason> {
        let spi = EspHeader::new_checked(&*packet)
            .map_err(DropReason::from)?
            .spi();
        let entry = self.inbound.get_mut(&spi).ok_or(DropReason::BadSpi)?;
        if entry.hard_fired {
            return Err(DropReason::Expired);
        }
        let opened = entry.esp.open(packet)?;
        match opened.next_header {
            NEXT_HEADER_NONE => return Err(DropReason::Dummy),
            NEXT_HEADER_IPV4 | NEXT_HEADER_IPV6 => {}
            _ => return Err(DropReason::Malformed),
        }
        let inner = &packet[opened.payload.clone()];
        let h = InnerHeader::parse(inner).ok_or(DropReason::Malformed)?;
        if h.next_header() != opened.next_header {
            return Err(DropReason::Malformed);
        }
        if !any_covers(&entry.selectors, &h) {
            return Err(DropReason::SelectorMismatch);
        }
        entry.count(h.len, &mut self.events);
        Ok(opened.payload.start..opened.payload.start + h.len)
    }

    fn entry_mut(&mut self, id: SaId) -> Option<&mut SadEntry> {
        if let Some(e) = self.outbound.get_mut(&id) {
            return Some(e);
        }
        self.inbound.get_mut(&id.spi).filter(|e| e.id == id)
    }
}

#[cfg(test)]
mod tests;
