//! The IKE_SA_INIT exchange, both roles
//! ([RFC 7296 §1.2](https://www.rfc-editor.org/rfc/rfc7296#section-1.2)):
//! proposals, Diffie-Hellman, nonces, NAT detection, COOKIE and
//! INVALID_KE_PAYLOAD retries.

use std::net::SocketAddr;

use libracoon::crypto::{DhGroup, DhSecret};

use crate::ikev2::error::Error;
use crate::ikev2::ike_auth::{AuthSent, ExpectAuth};
use crate::ikev2::keys::{Keyed, derive_ike_keys};
use crate::ikev2::natd::{self, NatState};
use crate::ikev2::output::Path;
use crate::ikev2::proposal;
use crate::ikev2::sa::{Context, IkeSa, State};
use crate::ikev2::wire::{
    ExchangeType, KePayload, Message, NotifyPayload, NotifyType, Payload, ProtocolId,
};

/// UDP port IKE moves to when a NAT is detected (RFC 3948).
pub const NAT_T_PORT: u16 = 4500;

/// Initiator: IKE_SA_INIT sent, waiting for the response.
pub(crate) struct InitSent {
    dh: DhSecret,
    nonce_i: Vec<u8>,
    request: Vec<u8>,
    /// IKE_SA_INIT requests sent so far for COOKIE / INVALID_KE retries.
    attempts: u8,
}

/// An unauthenticated responder may ask for a COOKIE or another group a
/// few times, not for ever.
const MAX_INIT_ATTEMPTS: u8 = 4;

impl InitSent {
    /// Builds and sends IKE_SA_INIT (again, for a COOKIE or INVALID_KE retry).
    pub(crate) fn start(
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        retry: Option<Retry>,
    ) -> Result<Self, Error> {
        let (dh, cookie, nonce_i) = match retry {
            Some(Retry {
                dh: Some(dh),
                cookie,
                nonce_i,
                ..
            }) => (dh, cookie, nonce_i),
            Some(r) => (r.group.generate(cx.rng)?, r.cookie, r.nonce_i),
            None => {
                let group = *sa
                    .config
                    .ike
                    .dh
                    .first()
                    .ok_or(Error::NoProposalChosen("no DH group configured"))?;
                let mut nonce = vec![0u8; sa.config.nonce_len];
                cx.rng.fill(&mut nonce)?;
                (group.generate(cx.rng)?, None, nonce)
            }
        };
        let group = dh.group();
        let mut payloads = Vec::new();
        if let Some(c) = cookie {
            payloads.push(notify(NotifyType::Cookie, c));
        }
        payloads.push(Payload::Sa(proposal::ike_proposals(&sa.config.ike)));
        payloads.push(Payload::Ke(KePayload {
            group: group.iana(),
            data: dh.public_key().to_vec(),
        }));
        payloads.push(Payload::Nonce(nonce_i.clone()));
        payloads.extend(natd_payloads(
            sa.spi_i,
            0,
            sa.path,
            sa.config.force_udp_encap,
        ));
        let msg = Message {
            header: sa.header(ExchangeType::IkeSaInit, false, 0),
            payloads,
            sk: None,
        };
        let request = msg.emit();
        sa.next_request_id = 1;
        sa.send_request(cx, 0, request.clone());
        Ok(Self {
            dh,
            nonce_i,
            request,
            attempts: 1,
        })
    }

    /// Handles the responder's answer.
    pub(crate) fn handle_response(
        self,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        path: Path,
        msg: &Message,
        raw: &[u8],
    ) -> State {
        match self.process(sa, cx, path, msg, raw) {
            Ok(state) => state,
            Err(e) => sa.fail(cx, e),
        }
    }

    fn process(
        self,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        path: Path,
        msg: &Message,
        raw: &[u8],
    ) -> Result<State, Error> {
        let p = &msg.payloads;
        let retrying = find_notify(p, NotifyType::Cookie).is_some()
            || find_notify(p, NotifyType::InvalidKePayload).is_some();
        if retrying && self.attempts >= MAX_INIT_ATTEMPTS {
            return Err(Error::PeerMisbehaved(
                "responder keeps asking for another IKE_SA_INIT",
            ));
        }
        let attempts = self.attempts + 1;
        if let Some(c) = find_notify(p, NotifyType::Cookie) {
            if !(1..=64).contains(&c.data.len()) {
                return Err(Error::PeerMisbehaved("COOKIE data must be 1 to 64 octets"));
            }
            // RFC 7296 §2.6: "all other payloads unchanged", so the same KE too.
            let retry = Retry {
                group: self.dh.group(),
                cookie: Some(c.data.clone()),
                nonce_i: self.nonce_i,
                dh: Some(self.dh),
            };
            let next = Self {
                attempts,
                ..Self::start(sa, cx, Some(retry))?
            };
            return Ok(State::InitSent(Box::new(next)));
        }
        if let Some(n) = find_notify(p, NotifyType::InvalidKePayload) {
            let group = invalid_ke_group(n, &sa.config.ike.dh, self.dh.group())?;
            let retry = Retry {
                group,
                cookie: None,
                nonce_i: self.nonce_i,
                dh: None,
            };
            let next = Self {
                attempts,
                ..Self::start(sa, cx, Some(retry))?
            };
            return Ok(State::InitSent(Box::new(next)));
        }
        if let Some(e) = first_error(p) {
            return Err(match e {
                NotifyType::NoProposalChosen => Error::ProposalRejected,
                other => Error::PeerError(other),
            });
        }
        let proposals = find_sa(p).ok_or(Error::PeerMisbehaved(
            "IKE_SA_INIT response without SA payload",
        ))?;
        let suite = proposal::accept_ike_reply(proposals, &sa.config.ike)?;
        let ke = find_ke(p).ok_or(Error::PeerMisbehaved(
            "IKE_SA_INIT response without KE payload",
        ))?;
        let nonce_r =
            find_nonce(p).ok_or(Error::PeerMisbehaved("IKE_SA_INIT response without nonce"))?;
        check_nonce(nonce_r)?;
        if ke.group != suite.dh.iana() || self.dh.group() != suite.dh {
            return Err(Error::PeerMisbehaved(
                "responder's KE group differs from the chosen group",
            ));
        }
        if msg.header.spi_r == 0 {
            return Err(Error::PeerMisbehaved("responder SPI is zero"));
        }
        sa.spi_r = msg.header.spi_r;
        let mut nat = detect_nat(sa.spi_i, sa.spi_r, path, p);
        nat.local_behind_nat |= sa.config.force_udp_encap;
        let shared = self.dh.agree(&ke.data)?;
        let keys = derive_ike_keys(&suite, &shared, &self.nonce_i, nonce_r, sa.spi_i, sa.spi_r);
        if nat.any() {
            sa.path = float_to_nat_t(sa.path);
        }
        sa.pending = None;
        let keyed = Keyed {
            suite,
            keys,
            ni: self.nonce_i,
            nr: nonce_r.to_vec(),
            nat,
        };
        AuthSent::send(sa, cx, keyed, self.request, raw.to_vec())
    }
}

/// What a second IKE_SA_INIT keeps from the first.
pub(crate) struct Retry {
    group: DhGroup,
    cookie: Option<Vec<u8>>,
    nonce_i: Vec<u8>,
    /// The key pair to send again (COOKIE), or `None` for a new one (INVALID_KE).
    dh: Option<DhSecret>,
}

impl ExpectAuth {
    /// Responder: validates IKE_SA_INIT, answers it and derives the keys.
    ///
    /// # Errors
    /// The error whose notify the caller sends back unencrypted.
    pub(crate) fn answer_init(
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        msg: &Message,
        raw: &[u8],
    ) -> Result<Self, Error> {
        let p = &msg.payloads;
        let proposals =
            find_sa(p).ok_or(Error::PeerMisbehaved("IKE_SA_INIT without SA payload"))?;
        let ke = find_ke(p).ok_or(Error::PeerMisbehaved("IKE_SA_INIT without KE payload"))?;
        let nonce_i = find_nonce(p).ok_or(Error::PeerMisbehaved("IKE_SA_INIT without nonce"))?;
        check_nonce(nonce_i)?;
        let (suite, chosen) = proposal::select_ike(proposals, &sa.config.ike)?;
        if ke.group != suite.dh.iana() {
            return Err(Error::InvalidKe {
                got: ke.group,
                want: suite.dh.iana(),
            });
        }
        let mut nat = detect_nat(sa.spi_i, 0, sa.path, p);
        nat.local_behind_nat |= sa.config.force_udp_encap;
        let dh = suite.dh.generate(cx.rng)?;
        let public = dh.public_key().to_vec();
        let shared = dh.agree(&ke.data)?;
        let mut nonce_r = vec![0u8; sa.config.nonce_len];
        cx.rng.fill(&mut nonce_r)?;
        let mut payloads = vec![
            Payload::Sa(vec![chosen]),
            Payload::Ke(KePayload {
                group: suite.dh.iana(),
                data: public,
            }),
            Payload::Nonce(nonce_r.clone()),
        ];
        if find_notify(p, NotifyType::NatDetectionSourceIp).is_some() {
            payloads.extend(natd_payloads(
                sa.spi_i,
                sa.spi_r,
                sa.path,
                sa.config.force_udp_encap,
            ));
        }
        let keys = derive_ike_keys(&suite, &shared, nonce_i, &nonce_r, sa.spi_i, sa.spi_r);
        let reply = Message {
            header: sa.header(ExchangeType::IkeSaInit, true, 0),
            payloads,
            sk: None,
        };
        let init_resp = reply.emit();
        let path = sa.path;
        sa.send_response(cx, path, init_resp.clone());
        let keyed = Keyed {
            suite,
            keys,
            ni: nonce_i.to_vec(),
            nr: nonce_r,
            nat,
        };
        Ok(Self::new(keyed, raw.to_vec(), init_resp))
    }
}

/// A notify payload without SPI.
pub(crate) fn notify(ntype: NotifyType, data: Vec<u8>) -> Payload {
    Payload::Notify(NotifyPayload {
        protocol: ProtocolId::None,
        spi: Vec::new(),
        ntype,
        data,
    })
}

/// The first notify of a type.
pub(crate) fn find_notify(payloads: &[Payload], ntype: NotifyType) -> Option<&NotifyPayload> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ntype == ntype => Some(n),
        _ => None,
    })
}

/// The first error notify (type below 16384), if any.
pub(crate) fn first_error(payloads: &[Payload]) -> Option<NotifyType> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ntype.is_error() => Some(n.ntype),
        _ => None,
    })
}

/// The proposals of the SA payload.
pub(crate) fn find_sa(payloads: &[Payload]) -> Option<&[crate::ikev2::wire::Proposal]> {
    payloads.iter().find_map(|p| match p {
        Payload::Sa(v) => Some(v.as_slice()),
        _ => None,
    })
}

pub(crate) fn find_ke(payloads: &[Payload]) -> Option<&KePayload> {
    payloads.iter().find_map(|p| match p {
        Payload::Ke(k) => Some(k),
        _ => None,
    })
}

pub(crate) fn find_nonce(payloads: &[Payload]) -> Option<&[u8]> {
    payloads.iter().find_map(|p| match p {
        Payload::Nonce(n) => Some(n.as_slice()),
        _ => None,
    })
}

/// RFC 7296 §3.9: "The size of the Nonce Data MUST be between 16 and 256 octets".
pub(crate) fn check_nonce(nonce: &[u8]) -> Result<(), Error> {
    if (16..=256).contains(&nonce.len()) {
        Ok(())
    } else {
        Err(Error::PeerMisbehaved(
            "nonce shorter than 16 or longer than 256 octets",
        ))
    }
}

/// The group an INVALID_KE_PAYLOAD asks for, if we may use it.
pub(crate) fn invalid_ke_group(
    n: &NotifyPayload,
    ours: &[DhGroup],
    current: DhGroup,
) -> Result<DhGroup, Error> {
    let wanted = <[u8; 2]>::try_from(n.data.as_slice())
        .map(u16::from_be_bytes)
        .map_err(|_| Error::PeerMisbehaved("INVALID_KE_PAYLOAD without a 2-byte group"))?;
    DhGroup::from_iana(wanted)
        .filter(|g| ours.contains(g) && *g != current)
        .ok_or(Error::NoProposalChosen(
            "peer wants a DH group we do not allow",
        ))
}

/// NAT_DETECTION_SOURCE_IP and NAT_DETECTION_DESTINATION_IP for our message;
/// with `force` (`force_udp_encap`) the source hash is of port 0, which
/// cannot match the datagram's, so the peer sees us behind a NAT.
fn natd_payloads(spi_i: u64, spi_r: u64, path: Path, force: bool) -> [Payload; 2] {
    let source = if force {
        natd::forced_source_hash(spi_i, spi_r, path.local)
    } else {
        natd::natd_hash(spi_i, spi_r, path.local)
    };
    [
        notify(NotifyType::NatDetectionSourceIp, source.to_vec()),
        notify(
            NotifyType::NatDetectionDestinationIp,
            natd::natd_hash(spi_i, spi_r, path.remote).to_vec(),
        ),
    ]
}

fn detect_nat(spi_i: u64, spi_r: u64, path: Path, payloads: &[Payload]) -> NatState {
    let sources: Vec<&[u8]> = payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) if n.ntype == NotifyType::NatDetectionSourceIp => {
                Some(n.data.as_slice())
            }
            _ => None,
        })
        .collect();
    let dest =
        find_notify(payloads, NotifyType::NatDetectionDestinationIp).map(|n| n.data.as_slice());
    natd::detect(spi_i, spi_r, path.local, path.remote, &sources, dest)
}

/// The same path on port 4500 at both ends (RFC 7296 §2.23).
fn float_to_nat_t(path: Path) -> Path {
    let with_port = |a: SocketAddr| SocketAddr::new(a.ip(), NAT_T_PORT);
    Path {
        local: with_port(path.local),
        remote: with_port(path.remote),
    }
}
