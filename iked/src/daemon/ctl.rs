//! iked's side of the control protocol: answers racoonctl from the
//! endpoint's state and the kernel's counters (docs/control-protocol.md).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use libracoon::ctl::proto::{
    ChildSaStatus, CtlError, DaemonStatus, ErrorCode, IkeSaStatus, Request, ResponseBody,
    ResponseResult,
};
use pfkey::{Counters, Kernel, SaId};

use crate::ikev2::child::ChildHandle;
use crate::ikev2::endpoint::Endpoint;
use crate::ikev2::sa::{IkeSa, Role};

/// What a status answer needs besides the endpoint.
pub(crate) struct Context<'a> {
    pub(crate) started: Instant,
    pub(crate) listen: &'a [SocketAddr],
    pub(crate) config: &'a libracoon::config::Config,
    /// The backend as operators know it (`userspace via spmd`).
    pub(crate) backend: &'a str,
    /// The sockets and the ESP hand-off, whose counters `show status`
    /// reports: drops an operator must be able to see.
    pub(crate) sockets: &'a super::udp::Sockets,
    pub(crate) handoff: Option<&'a super::handoff::EspHandoff>,
}

/// Answers one request.
pub(crate) async fn answer(
    req: Request,
    endpoint: &mut Endpoint,
    kernel: &impl Kernel,
    cx: &Context<'_>,
) -> ResponseResult {
    let result = match req {
        Request::ShowSa => {
            let counters = counters(endpoint, kernel).await;
            Ok(ResponseBody::Sas(
                endpoint.sas().map(|sa| ike_status(sa, &counters)).collect(),
            ))
        }
        Request::ShowStatus => Ok(ResponseBody::Status(status(endpoint, kernel, cx))),
        Request::Initiate { remote } => initiate(endpoint, cx, &remote),
        Request::Terminate { target } => terminate(endpoint, &target),
        // Every IKE SA goes, telling its peer; an empty daemon is not an
        // error for a flush.
        Request::Flush => match terminate(endpoint, "all") {
            Err(e) if e.code == ErrorCode::NotFound => Ok(ResponseBody::Done {
                message: "no IKE SA to delete".into(),
            }),
            other => other,
        },
        Request::Rekey { target } => rekey(endpoint, &target),
        Request::ShowPolicy | Request::Reload | Request::Kernel { .. } => Err(CtlError::new(
            ErrorCode::Unsupported,
            "iked holds IKE SAs, not policies: this is spmd's (racoonctl asks spmd for it)",
        )),
        Request::Watch => Err(CtlError::new(
            ErrorCode::BadRequest,
            "watch is handled by the control server",
        )),
    };
    result.into()
}

/// The kernel's counters of every CHILD SA, fetched before the answer is
/// built (the backend may be another process).
async fn counters(endpoint: &Endpoint, kernel: &impl Kernel) -> HashMap<SaId, Counters> {
    let ids: Vec<SaId> = endpoint
        .sas()
        .filter_map(IkeSa::child)
        .flat_map(|c| [c.inbound, c.outbound])
        .collect();
    let mut out = HashMap::new();
    for id in ids {
        if let Ok(info) = kernel.get_sa(id).await {
            out.insert(id, info.counters);
        }
    }
    out
}

fn ike_status(sa: &IkeSa, counters: &HashMap<SaId, Counters>) -> IkeSaStatus {
    IkeSaStatus {
        name: sa.config().name.clone(),
        spi_i: format!("{:016x}", sa.spi_i()),
        spi_r: format!("{:016x}", sa.spi_r()),
        state: sa.state_name().to_string(),
        role: match sa.role() {
            Role::Initiator => "initiator",
            Role::Responder => "responder",
        }
        .to_string(),
        local: sa.path().local.to_string(),
        remote: sa.path().remote.to_string(),
        peer_id: sa.peer_id().unwrap_or_default().to_string(),
        ike_algs: sa.suite().map(|s| s.summary()).unwrap_or_default(),
        age_secs: sa.age(Instant::now()).as_secs(),
        children: sa
            .child()
            .map(|c| child_status(c, counters))
            .into_iter()
            .collect(),
    }
}

fn child_status(c: &ChildHandle, counters: &HashMap<SaId, Counters>) -> ChildSaStatus {
    let rx = counters.get(&c.inbound).copied().unwrap_or_default();
    let tx = counters.get(&c.outbound).copied().unwrap_or_default();
    ChildSaStatus {
        spi_in: format!("{:08x}", c.spi_in),
        spi_out: format!("{:08x}", c.spi_out),
        mode: format!("{:?}", c.mode).to_lowercase(),
        esp_algs: c.esp.clone(),
        encap: c.encap,
        local_ts: c.local_ts.iter().map(ToString::to_string).collect(),
        remote_ts: c.remote_ts.iter().map(ToString::to_string).collect(),
        in_bytes: rx.bytes,
        in_packets: rx.packets,
        out_bytes: tx.bytes,
        out_packets: tx.packets,
    }
}

fn status(endpoint: &Endpoint, kernel: &impl Kernel, cx: &Context<'_>) -> DaemonStatus {
    DaemonStatus {
        daemon: "iked".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        uptime_secs: cx.started.elapsed().as_secs(),
        kernel_backend: cx.backend.to_owned(),
        carries_traffic: kernel.carries_traffic(),
        ike_sas: endpoint.sas().filter(|s| s.is_established()).count() as u64,
        half_open: endpoint.sas().filter(|s| s.is_half_open()).count() as u64,
        listen: cx.listen.iter().map(ToString::to_string).collect(),
        counters: socket_counters(cx),
    }
}

/// The socket readers' and the ESP hand-off's counters.
fn socket_counters(cx: &Context<'_>) -> std::collections::BTreeMap<String, u64> {
    let mut counters = cx.sockets.counters();
    if let Some(h) = cx.handoff {
        counters.extend(h.counters());
    }
    counters
}

fn initiate(
    endpoint: &mut Endpoint,
    cx: &Context<'_>,
    remote: &str,
) -> Result<ResponseBody, CtlError> {
    if endpoint.config(remote).is_none() {
        return Err(CtlError::new(
            ErrorCode::UnknownRemote,
            format!("no remote block named {remote} accepts ikev2"),
        ));
    }
    if endpoint.sas().any(|sa| sa.config().name == remote) {
        return Ok(ResponseBody::Done {
            message: format!("an IKE SA with remote {remote} is already up or being negotiated"),
        });
    }
    let peer = super::conf::initiation_target(cx.config, remote).ok_or_else(|| {
        CtlError::new(
            ErrorCode::BadRequest,
            format!("remote {remote} has no peers_ipaddr to initiate to"),
        )
    })?;
    super::start_negotiation(endpoint, cx.listen, remote, peer)
        .map_err(|e| CtlError::new(ErrorCode::Internal, e))?;
    Ok(ResponseBody::Done {
        message: format!("initiating IKE SA with {peer} (remote {remote})"),
    })
}

/// `target` is a remote name, an IKE SA's SPI (16 hex digits), or `all`.
/// `rekey SPI`: 8 hex digits name a CHILD SA (either of its SPIs), 16 an
/// IKE SA (either SPI).
fn rekey(endpoint: &mut Endpoint, target: &str) -> Result<ResponseBody, CtlError> {
    let bad = || {
        CtlError::new(
            ErrorCode::BadRequest,
            format!("rekey {target}: expected a CHILD SA SPI (8 hex digits) or an IKE SA SPI (16)"),
        )
    };
    let spi = u64::from_str_radix(target, 16).map_err(|_| bad())?;
    let now = Instant::now();
    let (ike_spi, child) = match target.len() {
        8 => endpoint
            .sas()
            .find(|sa| {
                sa.child()
                    .is_some_and(|c| u64::from(c.spi_in) == spi || u64::from(c.spi_out) == spi)
            })
            .map(|sa| (sa.local_spi(), true)),
        16 => endpoint
            .sas()
            .find(|sa| sa.spi_i() == spi || sa.spi_r() == spi)
            .map(|sa| (sa.local_spi(), false)),
        _ => return Err(bad()),
    }
    .ok_or_else(|| CtlError::new(ErrorCode::NotFound, format!("no SA with SPI {target}")))?;
    let result = if child {
        endpoint.rekey_child(now, ike_spi)
    } else {
        endpoint.rekey_ike(now, ike_spi)
    };
    result.map_err(|e| CtlError::new(ErrorCode::NotFound, format!("rekey {target}: {e}")))?;
    let what = if child { "CHILD SA" } else { "IKE SA" };
    Ok(ResponseBody::Done {
        message: format!("rekeying {what} {target}"),
    })
}

fn terminate(endpoint: &mut Endpoint, target: &str) -> Result<ResponseBody, CtlError> {
    let spi = u64::from_str_radix(target, 16)
        .ok()
        .filter(|_| target.len() == 16);
    let known_remote = endpoint.config(target).is_some();
    let matching: Vec<u64> = endpoint
        .sas()
        .filter(|sa| {
            target == "all"
                || sa.config().name == target
                || Some(sa.local_spi()) == spi
                || Some(sa.spi_i()) == spi
        })
        .map(IkeSa::local_spi)
        .collect();
    if matching.is_empty() {
        let code = if known_remote || target == "all" || spi.is_some() {
            ErrorCode::NotFound
        } else {
            ErrorCode::UnknownRemote
        };
        return Err(CtlError::new(code, format!("no IKE SA matches {target}")));
    }
    for spi in &matching {
        endpoint.delete(Instant::now(), *spi);
    }
    Ok(ResponseBody::Done {
        message: format!("deleting {} IKE SA(s) matching {target}", matching.len()),
    })
}
