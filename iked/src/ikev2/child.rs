//! The CHILD SA created by IKE_AUTH: negotiation as the responder and the
//! kernel specs for both directions.

use pfkey::{EspAuth, EspEncr, SaDirection, SaId, SaSpec, Selector, UdpEncap};

use crate::ikev2::config::{ChildConfig, Mode};
use crate::ikev2::error::Error;
use crate::ikev2::keys::{Keyed, derive_child_keys, derive_child_keys_from_seed};
use crate::ikev2::output::{ChildSa, Path};
use crate::ikev2::proposal::EspSuite;
use crate::ikev2::sa::Role;
use crate::ikev2::ts::TsRange;

/// What an established CHILD SA keeps: enough to delete it and to show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildHandle {
    /// Our inbound SPI.
    pub spi_in: u32,
    /// The peer's inbound SPI (our outbound).
    pub spi_out: u32,
    /// Kernel ID of our inbound SA.
    pub inbound: SaId,
    /// Kernel ID of our outbound SA.
    pub outbound: SaId,
    /// Tunnel or transport.
    pub mode: Mode,
    /// strongSwan-style ESP algorithm summary.
    pub esp: String,
    /// Whether ESP is UDP-encapsulated (NAT).
    pub encap: bool,
    /// Our side's negotiated selectors.
    pub local_ts: Vec<TsRange>,
    /// The peer's side.
    pub remote_ts: Vec<TsRange>,
}

/// Everything negotiated for a CHILD SA.
pub(crate) struct Negotiated {
    pub(crate) suite: EspSuite,
    pub(crate) spi_in: u32,
    pub(crate) spi_out: u32,
    pub(crate) local_ts: Vec<TsRange>,
    pub(crate) remote_ts: Vec<TsRange>,
    pub(crate) mode: Mode,
    /// KEYMAT seed of a CREATE_CHILD_SA exchange (`[g^ir |] Ni | Nr` of
    /// that exchange); `None` for the IKE_AUTH CHILD SA, which uses the
    /// IKE SA's nonces.
    pub(crate) keymat_seed: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// Kernel lifetime of both SAs, from [`crate::ikev2::lifetime::child_sa`].
    pub(crate) lifetime: pfkey::Lifetime,
}

/// Draws an SPI outside the reserved range 1..=255 (RFC 4303 §2.1).
pub(crate) fn random_spi(rng: &mut dyn libracoon::crypto::Random) -> Result<u32, Error> {
    let mut b = [0u8; 4];
    rng.fill(&mut b)?;
    Ok(u32::from_be_bytes(b) | 0x100)
}

/// The lifetime for a new CHILD SA under `cfg`, its soft limits jittered.
pub(crate) fn new_lifetime(
    cfg: &ChildConfig,
    rng: &mut dyn libracoon::crypto::Random,
) -> pfkey::Lifetime {
    crate::ikev2::lifetime::child_sa(&cfg.lifetime, crate::ikev2::lifetime::soft_permille(rng))
}

/// Parses the peer's TS payload; unusable entries make the whole set unacceptable.
pub(crate) fn ts_from_wire(
    ts: &[crate::ikev2::wire::TrafficSelector],
) -> Result<Vec<TsRange>, Error> {
    ts.iter()
        .map(|t| TsRange::from_wire(t).ok_or(Error::TsUnacceptable("malformed traffic selector")))
        .collect()
}

/// Responder side of TS narrowing: the initiator's TSi is our remote side.
pub(crate) fn narrow_as_responder(
    cfg: &ChildConfig,
    tsi: &[TsRange],
    tsr: &[TsRange],
) -> Result<(Vec<TsRange>, Vec<TsRange>), Error> {
    let remote = crate::ikev2::ts::narrow(tsi, &cfg.remote_ts);
    let local = crate::ikev2::ts::narrow(tsr, &cfg.local_ts);
    if remote.is_empty() || local.is_empty() {
        return Err(Error::TsUnacceptable(
            "proposed selectors do not overlap the configured ones",
        ));
    }
    // A TS payload holds at most 255 selectors (RFC 7296 §3.13).
    if remote.len() > 255 || local.len() > 255 {
        return Err(Error::TsUnacceptable(
            "narrowing yields more than 255 selectors",
        ));
    }
    Ok((local, remote))
}

/// Initiator side: the responder may only narrow what we proposed.
pub(crate) fn check_narrowed(
    cfg: &ChildConfig,
    tsi: &[TsRange],
    tsr: &[TsRange],
) -> Result<(), Error> {
    let inside = |got: &[TsRange], ours: &[TsRange]| {
        !got.is_empty() && got.iter().all(|g| ours.iter().any(|o| g.is_within(o)))
    };
    if inside(tsi, &cfg.local_ts) && inside(tsr, &cfg.remote_ts) {
        Ok(())
    } else {
        Err(Error::PeerMisbehaved(
            "responder widened our traffic selectors",
        ))
    }
}

/// The mode a responder grants: transport only when the initiator sent
/// USE_TRANSPORT_MODE and we are configured for it (RFC 7296 §1.3.1).
pub(crate) fn responder_mode(
    cfg: &ChildConfig,
    inner: &[crate::ikev2::wire::Payload],
) -> Result<Mode, Error> {
    let wants_transport =
        crate::ikev2::init::find_notify(inner, crate::ikev2::wire::NotifyType::UseTransportMode)
            .is_some();
    match (wants_transport, cfg.mode) {
        (true, Mode::Transport) => Ok(Mode::Transport),
        (_, Mode::Tunnel) => Ok(Mode::Tunnel),
        (false, Mode::Transport) => Err(Error::NoProposalChosen(
            "peer wants tunnel mode, we are configured for transport",
        )),
    }
}

/// Derives KEYMAT and builds both kernel SAs.
pub(crate) fn build(
    role: Role,
    path: Path,
    keyed: &Keyed,
    n: &Negotiated,
    reqid: u32,
) -> (ChildSa, ChildHandle) {
    let k = match &n.keymat_seed {
        Some(seed) => derive_child_keys_from_seed(
            keyed.suite.prf,
            &keyed.keys.sk_d,
            n.suite.encr,
            n.suite.integ,
            seed,
        ),
        None => derive_child_keys(
            keyed.suite.prf,
            &keyed.keys.sk_d,
            n.suite.encr,
            n.suite.integ,
            &keyed.ni,
            &keyed.nr,
        ),
    };
    let ((in_e, in_a), (out_e, out_a)) = match role {
        Role::Initiator => ((k.encr_r, k.integ_r), (k.encr_i, k.integ_i)),
        Role::Responder => ((k.encr_i, k.integ_i), (k.encr_r, k.integ_r)),
    };
    let (local, remote) = (path.local.ip(), path.remote.ip());
    let encap = keyed.nat.any().then_some(UdpEncap {
        sport: path.local.port(),
        dport: path.remote.port(),
    });
    let reverse = encap.map(|e| UdpEncap {
        sport: e.dport,
        dport: e.sport,
    });
    let spec = |dir, id, src, encr_key, auth_key, encap, selectors| SaSpec {
        id,
        src,
        direction: dir,
        mode: n.mode,
        encr: EspEncr {
            id: n.suite.encr.iana(),
            key_bits: n.suite.encr.key_bits().unwrap_or(256),
        },
        encr_key,
        auth: n.suite.integ.map(|i| EspAuth { id: i.iana() }),
        auth_key,
        encap,
        selectors,
        reqid,
        esn: false,
        replay_window: 0,
        lifetime: n.lifetime,
    };
    let inbound_id = SaId {
        dst: local,
        spi: n.spi_in,
    };
    let outbound_id = SaId {
        dst: remote,
        spi: n.spi_out,
    };
    let inbound = spec(
        SaDirection::Inbound,
        inbound_id,
        remote,
        in_e,
        in_a,
        reverse,
        selectors(&n.remote_ts, &n.local_ts),
    );
    let outbound = spec(
        SaDirection::Outbound,
        outbound_id,
        local,
        out_e,
        out_a,
        encap,
        selectors(&n.local_ts, &n.remote_ts),
    );
    let ts = format!("{} === {}", join(&n.local_ts), join(&n.remote_ts));
    let child = ChildSa {
        inbound,
        outbound,
        esp: n.suite.summary(),
        ts,
    };
    let handle = ChildHandle {
        spi_in: n.spi_in,
        spi_out: n.spi_out,
        inbound: inbound_id,
        outbound: outbound_id,
        mode: n.mode,
        esp: n.suite.summary(),
        encap: encap.is_some(),
        local_ts: n.local_ts.clone(),
        remote_ts: n.remote_ts.clone(),
    };
    (child, handle)
}

fn selectors(src: &[TsRange], dst: &[TsRange]) -> Vec<Selector> {
    let mut out = Vec::new();
    for s in src {
        for d in dst
            .iter()
            .filter(|d| d.start.is_ipv4() == s.start.is_ipv4())
        {
            // Protocols intersect: 0 means any; two different ones match nothing.
            let proto = match (s.proto, d.proto) {
                (0, p) | (p, 0) => p,
                (a, b) if a == b => a,
                _ => continue,
            };
            out.push(Selector {
                src: (s.start, s.end),
                dst: (d.start, d.end),
                proto,
                src_port: 0,
                dst_port: 0,
            });
        }
    }
    out
}

fn join(ts: &[TsRange]) -> String {
    ts.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}
