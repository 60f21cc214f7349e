//! The IKE_AUTH exchange with PSK and the first CHILD SA, both roles
//! ([RFC 7296 §1.2, §2.15](https://www.rfc-editor.org/rfc/rfc7296#section-2.15)).

use crate::ikev2::auth::{SignedOctets, psk_auth, verify_psk_auth};
use crate::ikev2::child::{self, Negotiated};
use crate::ikev2::config::{Identity, Mode};
use crate::ikev2::error::Error;
use crate::ikev2::info::Established;
use crate::ikev2::init::{find_notify, find_sa, first_error, notify};
use crate::ikev2::keys::Keyed;
use crate::ikev2::output::{Event, Output, Path};
use crate::ikev2::proposal;
use crate::ikev2::sa::{Context, IkeSa, State};
use crate::ikev2::sk;
use crate::ikev2::ts::TsRange;
use crate::ikev2::wire::{
    AuthMethod, AuthPayload, ExchangeType, IdPayload, Message, NotifyType, Payload,
};

/// Initiator: IKE_AUTH sent, waiting for the response.
pub(crate) struct AuthSent {
    keyed: Keyed,
    /// The responder's IKE_SA_INIT message, which its AUTH covers.
    init_resp: Vec<u8>,
    /// Our inbound ESP SPI offered in the SA payload.
    child_spi: u32,
}

impl AuthSent {
    pub(crate) fn keyed(&self) -> &Keyed {
        &self.keyed
    }

    /// Sends IKE_AUTH: our identity, AUTH, and the first CHILD SA's proposal.
    pub(crate) fn send(
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        keyed: Keyed,
        init_req: Vec<u8>,
        init_resp: Vec<u8>,
    ) -> Result<State, Error> {
        let cfg = sa.config.clone();
        let child_spi = child::random_spi(cx.rng)?;
        let id_i = id_payload(&cfg.local_id);
        let octets = SignedOctets {
            message: &init_req,
            peer_nonce: &keyed.nr,
            sk_p: &keyed.keys.sk_pi,
            id_body: &id_i.body_bytes(),
        };
        let auth = psk_auth(keyed.suite.prf, &cfg.psk, &octets);
        let mut payloads = vec![Payload::IdI(id_i)];
        if let Some(r) = &cfg.remote_id {
            payloads.push(Payload::IdR(id_payload(r)));
        }
        payloads.push(Payload::Auth(AuthPayload {
            method: AuthMethod::SharedKeyMic,
            data: auth,
        }));
        payloads.push(notify(NotifyType::InitialContact, Vec::new()));
        if cfg.child.mode == Mode::Transport {
            payloads.push(notify(NotifyType::UseTransportMode, Vec::new()));
        }
        payloads.push(Payload::Sa(proposal::esp_proposals(
            &cfg.child.esp,
            child_spi,
        )));
        payloads.push(Payload::TsI(
            cfg.child.local_ts.iter().map(TsRange::to_wire).collect(),
        ));
        payloads.push(Payload::TsR(
            cfg.child.remote_ts.iter().map(TsRange::to_wire).collect(),
        ));
        let header = sa.header(ExchangeType::IkeAuth, false, 1);
        let bytes = sk::seal(&header, &payloads, keyed.sk_out(sa.role), cx.rng)?;
        sa.next_request_id = 2;
        sa.send_request(cx, 1, bytes);
        Ok(State::AuthSent(Box::new(Self {
            keyed,
            init_resp,
            child_spi,
        })))
    }

    /// Handles the responder's IKE_AUTH answer.
    pub(crate) fn handle_response(
        self: Box<Self>,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        msg: &Message,
        raw: &[u8],
    ) -> State {
        let Ok(inner) = sk::open(raw, msg, self.keyed.sk_in(sa.role)) else {
            return State::AuthSent(self); // forged or corrupted: keep waiting
        };
        sa.pending = None;
        if let Err(e) = self.authenticate_responder(sa, &inner) {
            if matches!(e, Error::AuthenticationFailed(_)) {
                send_auth_failed(sa, cx, &self.keyed);
            }
            return sa.fail(cx, e);
        }
        cx.out.push_back(Output::Event(Event::IkeEstablished {
            peer_id: record_peer(sa, &inner),
            suite: self.keyed.suite.summary(),
            nat: self.keyed.nat.any(),
        }));
        let est = match self.child_from_response(sa, cx, &inner) {
            Ok((child, handle)) => {
                cx.out.push_back(Output::InstallChild(Box::new(child)));
                Established::new(self.keyed, Some(handle), cx.now)
            }
            Err(e) => {
                cx.out.push_back(Output::Event(Event::ChildFailed(e)));
                return Box::new(Established::new(self.keyed, None, cx.now)).delete(sa, cx);
            }
        };
        State::Established(Box::new(est.arm_lifetime(&sa.config, cx)))
    }

    fn authenticate_responder(&self, sa: &IkeSa, inner: &[Payload]) -> Result<(), Error> {
        let id_r = find_id(inner, false);
        let auth = find_auth(inner);
        let (Some(id_r), Some(auth)) = (id_r, auth) else {
            return Err(match first_error(inner) {
                Some(NotifyType::AuthenticationFailed) => Error::AuthenticationRejected,
                Some(NotifyType::NoProposalChosen) => Error::ProposalRejected,
                Some(NotifyType::TsUnacceptable) => Error::TsRejected,
                Some(other) => Error::PeerError(other),
                None => Error::PeerMisbehaved("IKE_AUTH response without IDr or AUTH"),
            });
        };
        check_peer_id(sa, id_r)?;
        let octets = SignedOctets {
            message: &self.init_resp,
            peer_nonce: &self.keyed.ni,
            sk_p: &self.keyed.keys.sk_pr,
            id_body: &id_r.body_bytes(),
        };
        check_auth(&self.keyed, &sa.config.psk, &octets, auth)
    }

    fn child_from_response(
        &self,
        sa: &IkeSa,
        cx: &mut Context<'_>,
        inner: &[Payload],
    ) -> Result<(crate::ikev2::output::ChildSa, child::ChildHandle), Error> {
        let cfg = &sa.config.child;
        let Some(proposals) = find_sa(inner) else {
            return Err(match first_error(inner) {
                Some(NotifyType::NoProposalChosen) => Error::ProposalRejected,
                Some(NotifyType::TsUnacceptable) => Error::TsRejected,
                Some(other) => Error::PeerError(other),
                None => Error::PeerMisbehaved("IKE_AUTH response without SA payload"),
            });
        };
        let (suite, spi_out) = proposal::accept_esp_reply(proposals, &cfg.esp)?;
        let (tsi, tsr) =
            find_ts(inner).ok_or(Error::PeerMisbehaved("IKE_AUTH response without TSi/TSr"))?;
        let (local_ts, remote_ts) = (child::ts_from_wire(tsi)?, child::ts_from_wire(tsr)?);
        child::check_narrowed(cfg, &local_ts, &remote_ts)?;
        let transport = find_notify(inner, NotifyType::UseTransportMode).is_some();
        if transport != (cfg.mode == Mode::Transport) {
            return Err(Error::PeerMisbehaved(
                "responder answered with another IPsec mode",
            ));
        }
        let n = Negotiated {
            suite,
            spi_in: self.child_spi,
            spi_out,
            local_ts,
            remote_ts,
            mode: cfg.mode,
            keymat_seed: None,
            lifetime: child::new_lifetime(cfg, cx.rng),
        };
        Ok(child::build(sa.role, sa.path, &self.keyed, &n, cfg.reqid))
    }
}

/// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
pub(crate) struct ExpectAuth {
    keyed: Keyed,
    /// The initiator's IKE_SA_INIT message, which its AUTH covers.
    init_req: Vec<u8>,
    /// Our IKE_SA_INIT response, which our AUTH covers.
    init_resp: Vec<u8>,
}

impl ExpectAuth {
    pub(crate) fn keyed(&self) -> &Keyed {
        &self.keyed
    }

    pub(crate) fn new(keyed: Keyed, init_req: Vec<u8>, init_resp: Vec<u8>) -> Self {
        Self {
            keyed,
            init_req,
            init_resp,
        }
    }

    /// Handles IKE_AUTH: authenticates the initiator, answers with our AUTH
    /// and the CHILD SA (installed before the answer leaves).
    pub(crate) fn handle_request(
        self: Box<Self>,
        sa: &mut IkeSa,
        cx: &mut Context<'_>,
        path: Path,
        msg: &Message,
        raw: &[u8],
    ) -> State {
        let Ok(inner) = sk::open(raw, msg, self.keyed.sk_in(sa.role)) else {
            return State::ExpectAuth(self); // forged or corrupted: changes nothing
        };
        if self.keyed.nat.any() {
            sa.path = path;
        }
        sa.half_open_deadline = None;
        match self.authenticate_initiator(sa, &inner) {
            Ok(()) => self.answer(sa, cx, &inner),
            Err(e) => {
                let reply = vec![notify(
                    e.notify().unwrap_or(NotifyType::AuthenticationFailed),
                    Vec::new(),
                )];
                if let Ok(bytes) = self.seal_response(sa, cx, &reply) {
                    let path = sa.path;
                    sa.send_response(cx, path, bytes);
                }
                sa.fail(cx, e)
            }
        }
    }

    fn authenticate_initiator(&self, sa: &IkeSa, inner: &[Payload]) -> Result<(), Error> {
        let id_i = find_id(inner, true).ok_or(Error::PeerMisbehaved("IKE_AUTH without IDi"))?;
        let auth = find_auth(inner).ok_or(Error::PeerMisbehaved("IKE_AUTH without AUTH"))?;
        check_peer_id(sa, id_i)?;
        let octets = SignedOctets {
            message: &self.init_req,
            peer_nonce: &self.keyed.nr,
            sk_p: &self.keyed.keys.sk_pi,
            id_body: &id_i.body_bytes(),
        };
        check_auth(&self.keyed, &sa.config.psk, &octets, auth)
    }

    fn answer(self: Box<Self>, sa: &mut IkeSa, cx: &mut Context<'_>, inner: &[Payload]) -> State {
        let cfg = sa.config.clone();
        let id_r = id_payload(&cfg.local_id);
        let octets = SignedOctets {
            message: &self.init_resp,
            peer_nonce: &self.keyed.ni,
            sk_p: &self.keyed.keys.sk_pr,
            id_body: &id_r.body_bytes(),
        };
        let auth = psk_auth(self.keyed.suite.prf, &cfg.psk, &octets);
        let mut reply = vec![
            Payload::IdR(id_r),
            Payload::Auth(AuthPayload {
                method: AuthMethod::SharedKeyMic,
                data: auth,
            }),
        ];
        let child = self.negotiate_child(sa, cx, inner);
        let handle = match child {
            Ok((n, spec, handle)) => {
                if n.mode == Mode::Transport {
                    reply.push(notify(NotifyType::UseTransportMode, Vec::new()));
                }
                reply.push(Payload::Sa(vec![n.reply]));
                reply.push(Payload::TsI(
                    n.remote_ts.iter().map(TsRange::to_wire).collect(),
                ));
                reply.push(Payload::TsR(
                    n.local_ts.iter().map(TsRange::to_wire).collect(),
                ));
                cx.out.push_back(Output::InstallChild(Box::new(spec)));
                Some(handle)
            }
            Err(e) => {
                reply.push(notify(
                    e.notify().unwrap_or(NotifyType::NoProposalChosen),
                    Vec::new(),
                ));
                cx.out.push_back(Output::Event(Event::ChildFailed(e)));
                None
            }
        };
        match self.seal_response(sa, cx, &reply) {
            Ok(bytes) => {
                let path = sa.path;
                sa.send_response(cx, path, bytes);
            }
            Err(e) => {
                return sa.fail(cx, e);
            }
        }
        cx.out.push_back(Output::Event(Event::IkeEstablished {
            peer_id: record_peer(sa, inner),
            suite: self.keyed.suite.summary(),
            nat: self.keyed.nat.any(),
        }));
        let est = Established::new(self.keyed, handle, cx.now).arm_lifetime(&cfg, cx);
        State::Established(Box::new(est))
    }

    fn negotiate_child(
        &self,
        sa: &IkeSa,
        cx: &mut Context<'_>,
        inner: &[Payload],
    ) -> Result<
        (
            ChildReply,
            crate::ikev2::output::ChildSa,
            child::ChildHandle,
        ),
        Error,
    > {
        let cfg = &sa.config.child;
        let proposals =
            find_sa(inner).ok_or(Error::PeerMisbehaved("IKE_AUTH without SA payload"))?;
        let (tsi, tsr) = find_ts(inner).ok_or(Error::PeerMisbehaved("IKE_AUTH without TSi/TSr"))?;
        let spi_in = child::random_spi(cx.rng)?;
        let (suite, spi_out, reply) = proposal::select_esp(proposals, &cfg.esp, spi_in)?;
        let (local_ts, remote_ts) = child::narrow_as_responder(
            cfg,
            &child::ts_from_wire(tsi)?,
            &child::ts_from_wire(tsr)?,
        )?;
        let mode = child::responder_mode(cfg, inner)?;
        let n = Negotiated {
            suite,
            spi_in,
            spi_out,
            local_ts: local_ts.clone(),
            remote_ts: remote_ts.clone(),
            mode,
            keymat_seed: None,
            lifetime: child::new_lifetime(cfg, cx.rng),
        };
        let (spec, handle) = child::build(sa.role, sa.path, &self.keyed, &n, cfg.reqid);
        Ok((
            ChildReply {
                reply,
                local_ts,
                remote_ts,
                mode,
            },
            spec,
            handle,
        ))
    }

    fn seal_response(
        &self,
        sa: &IkeSa,
        cx: &mut Context<'_>,
        payloads: &[Payload],
    ) -> Result<Vec<u8>, Error> {
        let header = sa.header(ExchangeType::IkeAuth, true, sa.peer_next_id);
        sk::seal(&header, payloads, self.keyed.sk_out(sa.role), cx.rng)
    }
}

/// The parts of the responder's CHILD SA answer.
struct ChildReply {
    reply: crate::ikev2::wire::Proposal,
    local_ts: Vec<TsRange>,
    remote_ts: Vec<TsRange>,
    mode: Mode,
}

/// Tells the responder its AUTH did not verify (RFC 7296 §2.21.2), once.
fn send_auth_failed(sa: &IkeSa, cx: &mut Context<'_>, keyed: &Keyed) {
    let id = sa.next_request_id;
    let header = sa.header(ExchangeType::Informational, false, id);
    let payloads = [notify(NotifyType::AuthenticationFailed, Vec::new())];
    if let Ok(bytes) = sk::seal(&header, &payloads, keyed.sk_out(sa.role), cx.rng) {
        cx.out.push_back(Output::Send {
            path: sa.path,
            bytes,
        });
    }
}

fn check_auth(
    keyed: &Keyed,
    psk: &[u8],
    octets: &SignedOctets<'_>,
    auth: &AuthPayload,
) -> Result<(), Error> {
    if auth.method != AuthMethod::SharedKeyMic {
        return Err(Error::AuthenticationFailed(
            "peer uses an authentication method other than PSK",
        ));
    }
    if verify_psk_auth(keyed.suite.prf, psk, octets, &auth.data) {
        Ok(())
    } else {
        Err(Error::AuthenticationFailed(
            "peer's AUTH does not verify: the pre-shared keys differ",
        ))
    }
}

fn check_peer_id(sa: &IkeSa, got: &IdPayload) -> Result<(), Error> {
    match &sa.config.remote_id {
        Some(want) if want.id_type != got.id_type || want.data != got.data => Err(
            Error::AuthenticationFailed("peer's identity differs from peers_id"),
        ),
        _ => Ok(()),
    }
}

fn id_payload(id: &Identity) -> IdPayload {
    IdPayload {
        id_type: id.id_type,
        data: id.data.clone(),
    }
}

fn find_id(payloads: &[Payload], initiator: bool) -> Option<&IdPayload> {
    payloads.iter().find_map(|p| match (p, initiator) {
        (Payload::IdI(id), true) | (Payload::IdR(id), false) => Some(id),
        _ => None,
    })
}

fn find_auth(payloads: &[Payload]) -> Option<&AuthPayload> {
    payloads.iter().find_map(|p| match p {
        Payload::Auth(a) => Some(a),
        _ => None,
    })
}

pub(crate) type TsPair<'a> = (
    &'a [crate::ikev2::wire::TrafficSelector],
    &'a [crate::ikev2::wire::TrafficSelector],
);

pub(crate) fn find_ts(payloads: &[Payload]) -> Option<TsPair<'_>> {
    let tsi = payloads.iter().find_map(|p| match p {
        Payload::TsI(t) => Some(t.as_slice()),
        _ => None,
    })?;
    let tsr = payloads.iter().find_map(|p| match p {
        Payload::TsR(t) => Some(t.as_slice()),
        _ => None,
    })?;
    Some((tsi, tsr))
}

/// Remembers the authenticated peer identity on the SA; returns it for the event.
fn record_peer(sa: &mut IkeSa, payloads: &[Payload]) -> String {
    let id = peer_id_string(payloads);
    sa.peer_id = Some(id.clone());
    id
}

/// The peer's ID from an IKE_AUTH message, for the log.
fn peer_id_string(payloads: &[Payload]) -> String {
    payloads
        .iter()
        .find_map(|p| match p {
            Payload::IdI(id) | Payload::IdR(id) => Some(
                Identity {
                    id_type: id.id_type,
                    data: id.data.clone(),
                }
                .to_string(),
            ),
            _ => None,
        })
        .unwrap_or_default()
}
