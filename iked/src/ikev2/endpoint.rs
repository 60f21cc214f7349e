//! All IKE SAs of a daemon behind one demultiplexer
//! (quinn's `Endpoint` shape).
//!
//! The endpoint reads only the IKE header to route a datagram: by our SPI
//! to an existing SA, or, for a new IKE_SA_INIT request, to a fresh
//! responder SA after the half-open limit is checked. Nothing is allocated
//! for a datagram that matches no SA and no configuration.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use libracoon::crypto::Random;
use pfkey::SaId;

use crate::ikev2::config::PeerConfig;
use crate::ikev2::cookie::{CookieJar, DEFAULT_COOKIE_THRESHOLD};
use crate::ikev2::error::Error;
use crate::ikev2::output::{Output, Path};
use crate::ikev2::sa::IkeSa;
use crate::ikev2::wire::{DecodeError, ExchangeType, Header, Message, NotifyType};

/// Half-open responder SAs allowed at once, even with COOKIEs; beyond
/// this, new IKE_SA_INIT requests are dropped.
pub const MAX_HALF_OPEN: usize = 1024;

/// Which SA an output belongs to, for the operator's log line.
#[derive(Debug, Clone)]
pub struct SaTag {
    /// Our SPI of the IKE SA.
    pub spi: u64,
    /// Name of the remote block.
    pub name: String,
    /// Peer address.
    pub peer: SocketAddr,
}

/// Counters of datagrams that never reached an SA.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drops {
    /// Not even an IKE header.
    pub malformed: u64,
    /// No SA with that SPI.
    pub unknown_spi: u64,
    /// IKE_SA_INIT from an address no remote block accepts.
    pub no_config: u64,
    /// Half-open limit reached.
    pub half_open_limit: u64,
    /// IKE_SA_INIT requests answered with a COOKIE instead of state.
    pub cookie_sent: u64,
}

/// The IKE SAs of one daemon.
pub struct Endpoint {
    configs: Vec<Arc<PeerConfig>>,
    sas: HashMap<u64, IkeSa>,
    /// IKE_SA_INIT requests already answered: (peer, SPIi) to our SPI.
    by_init: HashMap<(SocketAddr, u64), u64>,
    rng: Box<dyn Random + Send>,
    out: VecDeque<(SaTag, Output)>,
    drops: Drops,
    /// `None` only if the random source failed at start; then no COOKIEs.
    cookies: Option<CookieJar>,
    cookie_threshold: usize,
}

impl Endpoint {
    /// An endpoint serving these remote configurations.
    pub fn new(configs: Vec<PeerConfig>, mut rng: Box<dyn Random + Send>) -> Self {
        let cookies = CookieJar::new(rng.as_mut()).ok();
        Self {
            configs: configs.into_iter().map(Arc::new).collect(),
            sas: HashMap::new(),
            by_init: HashMap::new(),
            rng,
            out: VecDeque::new(),
            drops: Drops::default(),
            cookies,
            cookie_threshold: DEFAULT_COOKIE_THRESHOLD,
        }
    }

    /// Half-open SAs above which new IKE_SA_INIT requests must return a
    /// COOKIE first (0: always).
    pub fn set_cookie_threshold(&mut self, n: usize) {
        self.cookie_threshold = n;
    }

    /// The configuration named `name`.
    pub fn config(&self, name: &str) -> Option<&PeerConfig> {
        self.configs
            .iter()
            .find(|c| c.name == name)
            .map(AsRef::as_ref)
    }

    /// The configuration for a peer address: an exact `remote_addr` match,
    /// else the first configuration without a fixed address.
    pub fn config_for(&self, peer: IpAddr) -> Option<&PeerConfig> {
        self.find_config(peer).map(AsRef::as_ref)
    }

    fn find_config(&self, peer: IpAddr) -> Option<&Arc<PeerConfig>> {
        self.configs
            .iter()
            .find(|c| c.remote_addr == Some(peer))
            .or_else(|| self.configs.iter().find(|c| c.remote_addr.is_none()))
    }

    /// The remote block whose CHILD SA uses request ID `reqid`: its name
    /// and fixed peer address.
    pub fn config_for_reqid(&self, reqid: u32) -> Option<(String, Option<IpAddr>)> {
        self.configs
            .iter()
            .find(|c| c.child.reqid == reqid)
            .map(|c| (c.name.clone(), c.remote_addr))
    }

    /// Starts an IKE SA to `path.remote` under the named configuration.
    ///
    /// # Errors
    /// [`Error::Internal`] if no such configuration exists or the random
    /// source fails.
    pub fn initiate(&mut self, now: Instant, name: &str, path: Path) -> Result<u64, Error> {
        let config = self
            .configs
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .ok_or(Error::Internal("no remote block with that name"))?;
        let sa = IkeSa::initiate(now, self.rng.as_mut(), config, path)?;
        let spi = sa.local_spi();
        self.sas.insert(spi, sa);
        self.drain(spi);
        Ok(spi)
    }

    /// Routes one received datagram (without the non-ESP marker).
    pub fn handle_datagram(&mut self, now: Instant, path: Path, bytes: &[u8]) {
        let Ok(header) = Header::parse(bytes) else {
            self.drops.malformed += 1;
            return;
        };
        let is_new_init = header.exchange == ExchangeType::IkeSaInit
            && !header.flags.response()
            && header.spi_r == 0;
        let spi = if is_new_init {
            match self.by_init.get(&(path.remote, header.spi_i)) {
                Some(spi) => *spi,
                None => return self.accept(now, path, bytes),
            }
        } else if header.flags.initiator() {
            header.spi_r
        } else {
            header.spi_i
        };
        let Some(sa) = self.sas.get_mut(&spi) else {
            self.drops.unknown_spi += 1;
            return;
        };
        sa.handle_datagram(now, self.rng.as_mut(), path, bytes);
        self.drain(spi);
    }

    /// Fires every due timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, sa)| sa.poll_timeout().is_some_and(|t| t <= now))
            .map(|(spi, _)| *spi)
            .collect();
        for spi in due {
            if let Some(sa) = self.sas.get_mut(&spi) {
                sa.handle_timeout(now, self.rng.as_mut());
            }
            self.drain(spi);
        }
    }

    /// Deletes the IKE SA with our SPI `spi`.
    pub fn delete(&mut self, now: Instant, spi: u64) -> bool {
        let Some(sa) = self.sas.get_mut(&spi) else {
            return false;
        };
        sa.handle_delete(now, self.rng.as_mut());
        self.drain(spi);
        true
    }

    /// Rekeys the CHILD SA of the IKE SA with our SPI `ike_spi` (RFC 7296
    /// §1.3.3): what racoonctl's `rekey` of a CHILD SA calls. The new SA
    /// comes out as [`Output::InstallChild`], the old one later as
    /// [`Output::DeleteChild`].
    ///
    /// # Errors
    /// [`Error::NoSuchSa`] for an unknown SPI, [`Error::NotReady`] if the
    /// IKE SA is not established, is going away, or has no CHILD SA.
    pub fn rekey_child(&mut self, now: Instant, ike_spi: u64) -> Result<(), Error> {
        let sa = self.sas.get_mut(&ike_spi).ok_or(Error::NoSuchSa)?;
        let result = sa.handle_rekey_child(now, self.rng.as_mut());
        self.drain(ike_spi);
        result
    }

    /// Creates a CHILD SA on the IKE SA with our SPI `ike_spi` when it has
    /// none, e.g. after [`Endpoint::on_hard_expire`] removed it and traffic
    /// (an ACQUIRE) wants one again (RFC 7296 §1.3.1).
    ///
    /// # Errors
    /// [`Error::NoSuchSa`] for an unknown SPI, [`Error::NotReady`] if the
    /// IKE SA is not established, is going away, or has a CHILD SA.
    pub fn create_child(&mut self, now: Instant, ike_spi: u64) -> Result<(), Error> {
        let sa = self.sas.get_mut(&ike_spi).ok_or(Error::NoSuchSa)?;
        let result = sa.handle_create_child(now, self.rng.as_mut());
        self.drain(ike_spi);
        result
    }

    /// Rekeys the IKE SA with our SPI `ike_spi` (RFC 7296 §1.3.2). On
    /// success [`Event::IkeRekeyed`](crate::ikev2::output::Event::IkeRekeyed)
    /// names the new SPI, the CHILD SAs move to it and the old IKE SA is
    /// deleted. The IKE SA lifetime (`PeerConfig::ike_lifetime`) calls this
    /// itself from [`Endpoint::handle_timeout`].
    ///
    /// # Errors
    /// [`Error::NoSuchSa`] for an unknown SPI, [`Error::NotReady`] if the
    /// IKE SA is not established or is going away.
    pub fn rekey_ike(&mut self, now: Instant, ike_spi: u64) -> Result<(), Error> {
        let sa = self.sas.get_mut(&ike_spi).ok_or(Error::NoSuchSa)?;
        let result = sa.handle_rekey_ike(now, self.rng.as_mut());
        self.drain(ike_spi);
        result
    }

    /// The kernel reported the soft lifetime of SA `id`
    /// (`KernelEvent::Expire { hard: false }`): rekeys the CHILD SA it
    /// belongs to, unless that SA was already replaced or is being rekeyed.
    /// Returns our SPI of the IKE SA owning it, or `None` if no IKE SA
    /// knows `id` (for the log).
    pub fn on_soft_expire(&mut self, now: Instant, id: SaId) -> Option<u64> {
        let rng = self.rng.as_mut();
        let spi = self
            .sas
            .iter_mut()
            .find_map(|(spi, sa)| sa.handle_soft_expire(now, rng, &id).then_some(*spi))?;
        self.drain(spi);
        Some(spi)
    }

    /// The kernel removed SA `id` at its hard lifetime
    /// (`KernelEvent::Expire { hard: true }`): forgets a replaced CHILD SA,
    /// or deletes the current one with the peer (the IKE SA stays, without
    /// a CHILD SA). Returns our SPI of the IKE SA owning `id`, or `None` if
    /// no IKE SA knows it.
    pub fn on_hard_expire(&mut self, now: Instant, id: SaId) -> Option<u64> {
        let rng = self.rng.as_mut();
        let spi = self
            .sas
            .iter_mut()
            .find_map(|(spi, sa)| sa.handle_hard_expire(now, rng, &id).then_some(*spi))?;
        self.drain(spi);
        Some(spi)
    }

    /// Next output of any SA, tagged with its SA.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<(SaTag, Output)> {
        self.out.pop_front()
    }

    /// Earliest timer of any SA.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sas.values().filter_map(IkeSa::poll_timeout).min()
    }

    /// The live IKE SAs.
    pub fn sas(&self) -> impl Iterator<Item = &IkeSa> {
        self.sas.values()
    }

    /// Datagrams dropped before reaching an SA.
    pub fn drops(&self) -> Drops {
        self.drops
    }

    fn accept(&mut self, now: Instant, path: Path, bytes: &[u8]) {
        let Some(config) = self.find_config(path.remote.ip()).cloned() else {
            self.drops.no_config += 1;
            return;
        };
        let half_open = self.sas.values().filter(|s| s.is_half_open()).count();
        if half_open >= MAX_HALF_OPEN {
            self.drops.half_open_limit += 1;
            return;
        }
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(e) => return self.refuse_malformed_init(path, bytes, e),
        };
        let threshold = if config.cookie_required {
            0
        } else {
            self.cookie_threshold
        };
        if half_open >= threshold && !self.cookie_ok(path, &msg) {
            return;
        }
        let sa = IkeSa::accept(now, self.rng.as_mut(), config, path, &msg, bytes);
        let spi = sa.local_spi();
        self.by_init.insert((path.remote, msg.header.spi_i), spi);
        self.sas.insert(spi, sa);
        self.drain(spi);
    }

    /// Under load, a request must start with our COOKIE (RFC 7296 §2.6:
    /// "the initiator MUST retry the IKE_SA_INIT with a Notify payload of
    /// type COOKIE ... as the first payload"). Otherwise answer with one,
    /// keeping no state, and report `false`.
    fn cookie_ok(&mut self, path: Path, msg: &Message) -> bool {
        let Some(jar) = &self.cookies else {
            return true;
        };
        let nonce = msg.payloads.iter().find_map(|p| match p {
            crate::ikev2::wire::Payload::Nonce(n) => Some(n.as_slice()),
            _ => None,
        });
        let Some(nonce) = nonce else {
            return true; // malformed: the SA's own checks refuse it
        };
        let (ip, spi_i) = (path.remote.ip(), msg.header.spi_i);
        if let Some(crate::ikev2::wire::Payload::Notify(n)) = msg.payloads.first()
            && n.ntype == NotifyType::Cookie
            && jar.verify(&n.data, nonce, ip, spi_i)
        {
            return true;
        }
        let cookie = jar.cookie(nonce, ip, spi_i);
        self.drops.cookie_sent += 1;
        self.reply_stateless(path, msg.header, NotifyType::Cookie, cookie);
        false
    }

    /// RFC 7296 §2.5: an unsupported critical payload in IKE_SA_INIT gets
    /// UNSUPPORTED_CRITICAL_PAYLOAD; other garbage is dropped.
    fn refuse_malformed_init(&mut self, path: Path, bytes: &[u8], e: DecodeError) {
        let DecodeError::UnknownCritical(ptype) = e else {
            self.drops.malformed += 1;
            return;
        };
        let Ok(request) = Header::parse(bytes) else {
            return;
        };
        self.reply_stateless(
            path,
            request,
            NotifyType::UnsupportedCriticalPayload,
            vec![ptype],
        );
    }

    /// Answers an IKE_SA_INIT request with one notify, keeping no state.
    fn reply_stateless(&mut self, path: Path, request: Header, ntype: NotifyType, data: Vec<u8>) {
        let mut header = request;
        header.flags = crate::ikev2::wire::Flags(crate::ikev2::wire::Flags::RESPONSE);
        header.next_payload = crate::ikev2::wire::PayloadType::None;
        let msg = Message {
            header,
            payloads: vec![crate::ikev2::init::notify(ntype, data)],
            sk: None,
        };
        let tag = SaTag {
            spi: 0,
            name: String::new(),
            peer: path.remote,
        };
        self.out.push_back((
            tag,
            Output::Send {
                path,
                bytes: msg.emit(),
            },
        ));
    }

    /// Moves an SA's outputs to the endpoint queue; forgets it once closed.
    fn drain(&mut self, spi: u64) {
        let Some(sa) = self.sas.get_mut(&spi) else {
            return;
        };
        let tag = SaTag {
            spi,
            name: sa.config().name.clone(),
            peer: sa.path().remote,
        };
        while let Some(o) = sa.poll_output() {
            self.out.push_back((tag.clone(), o));
        }
        let spawned = sa.take_spawned();
        let closed = sa
            .closed()
            .is_some()
            .then(|| (sa.path().remote, sa.spi_i()));
        if let Some(new) = spawned {
            self.sas.insert(new.local_spi(), *new);
        }
        if let Some(key) = closed {
            self.sas.remove(&spi);
            self.by_init.retain(|k, v| *v != spi && *k != key);
        }
    }
}
