//! A deterministic two-peer simulator over a faulty link.
//!
//! `Pair::drive` moves datagrams between two [`Endpoint`]s, advancing a
//! virtual clock to the next delivery or timer. The link drops, duplicates,
//! reorders and delays datagrams from a fixed seed, so every run of a test
//! sees the same faults.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use libracoon::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg, SeededRandom};
use zeroize::Zeroizing;

use crate::ikev2::config::{
    ChildConfig, ChildLifetime, EspAlgorithms, Identity, IkeAlgorithms, Mode, PeerConfig,
    Retransmit,
};
use crate::ikev2::endpoint::Endpoint;
use crate::ikev2::error::Error;
use crate::ikev2::output::{ChildSa, Event, Output, Path};
use crate::ikev2::sa::State;
use crate::ikev2::sk;
use crate::ikev2::ts::TsRange;
use crate::ikev2::wire::Message;

/// Fault model of the simulated link, per datagram.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Link {
    /// Probability a datagram is lost.
    pub(crate) drop: f64,
    /// Probability it is delivered twice.
    pub(crate) dup: f64,
    /// Probability it is held back behind later ones.
    pub(crate) reorder: f64,
    /// One-way delay.
    pub(crate) delay: Duration,
}

/// What one side saw.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) installed: Vec<ChildSa>,
    pub(crate) keepalives: usize,
    pub(crate) deleted: Vec<(u32, u32)>,
    pub(crate) events: Vec<Event>,
    pub(crate) sent: usize,
}

impl Seen {
    pub(crate) fn established(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::IkeEstablished { .. }))
    }

    /// CHILD SAs installed and not deleted since.
    pub(crate) fn live(&self) -> Vec<&ChildSa> {
        self.installed
            .iter()
            .filter(|c| {
                !self
                    .deleted
                    .contains(&(c.inbound.id.spi, c.outbound.id.spi))
            })
            .collect()
    }

    pub(crate) fn closed_with(&self) -> Option<&Error> {
        self.events.iter().find_map(|e| match e {
            Event::IkeClosed(err) => Some(err),
            _ => None,
        })
    }
}

struct InFlight {
    at: Instant,
    to_b: bool,
    path: Path,
    bytes: Vec<u8>,
}

/// Two endpoints, a clock and a link.
pub(crate) struct Pair {
    pub(crate) a: Endpoint,
    pub(crate) b: Endpoint,
    pub(crate) seen_a: Seen,
    pub(crate) seen_b: Seen,
    pub(crate) now: Instant,
    pub(crate) link: Link,
    /// Cut the link entirely (for liveness tests).
    pub(crate) cut: bool,
    /// A sits behind a NAT that adds 20000 to its source ports.
    pub(crate) nat_a: bool,
    /// Applied to every datagram towards B before delivery.
    pub(crate) tamper_to_b: Option<fn(&mut Vec<u8>)>,
    /// Every delivered datagram as `A>B <summary>`, SK payloads opened
    /// with the receiver's keys where it has an established SA.
    pub(crate) transcript: Vec<String>,
    flight: Vec<InFlight>,
    faults: u64,
}

pub(crate) const A_ADDR: &str = "192.0.2.1";
/// Port offset of the simulated NAT in front of A.
const NAT_SHIFT: u16 = 20000;
pub(crate) const B_ADDR: &str = "192.0.2.2";

impl Pair {
    pub(crate) fn new(a: PeerConfig, b: PeerConfig, link: Link, seed: u64) -> Self {
        Self {
            a: Endpoint::new(vec![a], Box::new(SeededRandom::new(seed))),
            b: Endpoint::new(vec![b], Box::new(SeededRandom::new(seed ^ 0x5555))),
            seen_a: Seen::default(),
            seen_b: Seen::default(),
            now: Instant::now(),
            link,
            cut: false,
            nat_a: false,
            tamper_to_b: None,
            transcript: Vec::new(),
            flight: Vec::new(),
            faults: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        }
    }

    /// A initiates to B.
    pub(crate) fn initiate(&mut self) {
        let path = Path {
            local: sock(A_ADDR, 500),
            remote: sock(B_ADDR, 500),
        };
        self.a.initiate(self.now, "to-b", path).expect("initiate");
    }

    /// Runs until nothing is in flight and no timer is due within `limit`;
    /// if a timer is due later, the clock stops at `limit`.
    pub(crate) fn drive_for(&mut self, limit: Duration) {
        let end = self.now + limit;
        loop {
            self.collect();
            let next_rx = self.flight.iter().map(|f| f.at).min();
            let next_timer = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = [next_rx, next_timer].into_iter().flatten().min() else {
                return;
            };
            if next > end {
                self.now = self.now.max(end);
                return;
            }
            self.now = self.now.max(next);
            if next_rx == Some(next) {
                let i = self
                    .flight
                    .iter()
                    .position(|f| f.at == next)
                    .expect("due datagram");
                let f = self.flight.remove(i);
                self.deliver(f);
            } else {
                self.a.handle_timeout(self.now);
                self.b.handle_timeout(self.now);
            }
        }
    }

    /// Runs for up to two virtual minutes.
    pub(crate) fn drive(&mut self) {
        self.drive_for(Duration::from_secs(120));
    }

    fn deliver(&mut self, mut f: InFlight) {
        let nat = |mut a: SocketAddr, outbound: bool| {
            if self.nat_a {
                let port = if outbound {
                    a.port().wrapping_add(NAT_SHIFT)
                } else {
                    a.port().wrapping_sub(NAT_SHIFT)
                };
                a.set_port(port);
            }
            a
        };
        let path = if f.to_b {
            Path {
                local: f.path.remote,
                remote: nat(f.path.local, true),
            }
        } else {
            Path {
                local: nat(f.path.remote, false),
                remote: f.path.local,
            }
        };
        let (to, arrow) = if f.to_b {
            (&self.b, "A>B")
        } else {
            (&self.a, "B>A")
        };
        self.transcript
            .push(format!("{arrow} {}", summarize(to, &f.bytes)));
        if f.to_b {
            if let Some(t) = self.tamper_to_b {
                t(&mut f.bytes);
            }
            self.b.handle_datagram(self.now, path, &f.bytes);
        } else {
            self.a.handle_datagram(self.now, path, &f.bytes);
        }
    }

    fn collect(&mut self) {
        while let Some((_, out)) = self.a.poll_output() {
            self.route(out, true);
        }
        while let Some((_, out)) = self.b.poll_output() {
            self.route(out, false);
        }
    }

    fn route(&mut self, out: Output, from_a: bool) {
        let seen = if from_a {
            &mut self.seen_a
        } else {
            &mut self.seen_b
        };
        match out {
            Output::Send { path, bytes } => {
                seen.sent += 1;
                self.transmit(from_a, path, bytes);
            }
            Output::InstallChild(c) => seen.installed.push(*c),
            Output::NatKeepalive { .. } => seen.keepalives += 1,
            Output::DeleteChild { inbound, outbound } => {
                seen.deleted.push((inbound.spi, outbound.spi))
            }
            Output::Event(e) => seen.events.push(e),
        }
    }

    fn transmit(&mut self, from_a: bool, path: Path, bytes: Vec<u8>) {
        if self.cut || self.chance(self.link.drop) {
            return;
        }
        let mut at = self.now + self.link.delay;
        if self.chance(self.link.reorder) {
            at += self.link.delay.max(Duration::from_millis(1)) * 3;
        }
        if self.chance(self.link.dup) {
            self.flight.push(InFlight {
                at,
                to_b: from_a,
                path,
                bytes: bytes.clone(),
            });
        }
        self.flight.push(InFlight {
            at,
            to_b: from_a,
            path,
            bytes,
        });
    }

    /// xorshift64*: deterministic fault decisions, independent of the SAs' randomness.
    fn chance(&mut self, p: f64) -> bool {
        self.faults ^= self.faults >> 12;
        self.faults ^= self.faults << 25;
        self.faults ^= self.faults >> 27;
        let x = self.faults.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        (x as f64) / ((1u64 << 53) as f64) < p
    }
}

/// The summary line of a datagram, its SK payload opened with `to`'s keys
/// when `to` has the established IKE SA it is for.
fn summarize(to: &Endpoint, bytes: &[u8]) -> String {
    let Ok(msg) = Message::parse(bytes) else {
        return "<malformed>".into();
    };
    let spi = if msg.header.flags.initiator() {
        msg.header.spi_r
    } else {
        msg.header.spi_i
    };
    let sa = to.sas().find(|s| s.local_spi() == spi);
    let inner = sa.and_then(|sa| match &sa.state {
        State::Established(e) => sk::open(bytes, &msg, e.keyed.sk_in(sa.role())).ok(),
        _ => None,
    });
    match inner {
        Some(payloads) => Message {
            header: msg.header,
            payloads,
            sk: None,
        }
        .to_string(),
        None => msg.to_string(),
    }
}

pub(crate) fn sock(addr: &str, port: u16) -> SocketAddr {
    SocketAddr::new(addr.parse::<IpAddr>().expect("addr"), port)
}

pub(crate) fn net(addr: &str, len: u8) -> TsRange {
    TsRange::from_prefix(addr.parse().expect("addr"), len).expect("prefix")
}

/// A's configuration: 198.51.100.0/24 behind A, 203.0.113.0/24 behind B.
pub(crate) fn config_a() -> PeerConfig {
    PeerConfig {
        name: "to-b".into(),
        local_id: Identity::fqdn("a.example"),
        remote_id: Some(Identity::fqdn("b.example")),
        remote_addr: Some(B_ADDR.parse().expect("addr")),
        psk: Zeroizing::new(b"simulated secret".to_vec()),
        ike: IkeAlgorithms {
            encr: vec![EncrAlg::AesGcm16_128, EncrAlg::AesCbc128],
            prf: vec![PrfAlg::HmacSha256],
            integ: vec![IntegAlg::HmacSha256_128],
            dh: vec![DhGroup::Curve25519, DhGroup::Ecp256],
        },
        child: ChildConfig {
            local_ts: vec![net("198.51.100.0", 24)],
            remote_ts: vec![net("203.0.113.0", 24)],
            mode: Mode::Tunnel,
            esp: EspAlgorithms {
                encr: vec![EncrAlg::AesGcm16_256],
                integ: vec![],
            },
            reqid: 1,
            pfs: None,
            lifetime: ChildLifetime::default(),
        },
        ike_lifetime: None,
        dpd_delay: None,
        retransmit: Retransmit::default(),
        nonce_len: 32,
        cookie_required: false,
        force_udp_encap: false,
    }
}

/// B's mirror of [`config_a`].
pub(crate) fn config_b() -> PeerConfig {
    let a = config_a();
    PeerConfig {
        name: "to-a".into(),
        local_id: Identity::fqdn("b.example"),
        remote_id: Some(Identity::fqdn("a.example")),
        remote_addr: Some(A_ADDR.parse().expect("addr")),
        child: ChildConfig {
            local_ts: a.child.remote_ts.clone(),
            remote_ts: a.child.local_ts.clone(),
            ..a.child.clone()
        },
        ..a
    }
}

/// Checks the two sides installed matching SAs: A's outbound is B's inbound.
pub(crate) fn assert_children_match(p: &Pair) {
    let (a, b) = (&p.seen_a.installed, &p.seen_b.installed);
    assert_eq!((a.len(), b.len()), (1, 1), "one CHILD SA per side");
    assert_eq!(a[0].outbound.id, b[0].inbound.id);
    assert_eq!(a[0].inbound.id, b[0].outbound.id);
    assert_eq!(*a[0].outbound.encr_key, *b[0].inbound.encr_key);
    assert_eq!(*a[0].inbound.encr_key, *b[0].outbound.encr_key);
    assert_ne!(*a[0].inbound.encr_key, *a[0].outbound.encr_key);
}
