//! kinkd's side of the control protocol (docs/control-protocol.md):
//! `show_sa` (as `kink_sas`), `show_status` (with the protocol counters),
//! `initiate` and `terminate`. `watch` is served by the control server
//! from the events the loop publishes; everything else is another daemon's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use libracoon::ctl::proto::{
    CtlError, DaemonStatus, ErrorCode, KinkSaStatus, Request, ResponseBody, ResponseResult,
};

use crate::krb5::Kerberos;
use crate::proto::{Engine, Error, SaPairStatus, Stats};

/// What a status answer needs besides the engine.
pub(crate) struct Context<'a> {
    pub(crate) started: Instant,
    pub(crate) listen: &'a [SocketAddr],
    /// The backend as operators know it (`xfrm`, `userspace via spmd`).
    pub(crate) backend: &'a str,
    pub(crate) carries_traffic: bool,
    /// Datagrams the socket readers dropped because the event loop was
    /// behind (`overflow` in the counters).
    pub(crate) overflow: u64,
}

/// Answers one request.
pub(crate) fn answer(
    req: Request,
    engine: &mut Engine,
    krb: &mut dyn Kerberos,
    cx: &Context<'_>,
) -> ResponseResult {
    let result = match req {
        Request::ShowSa => Ok(ResponseBody::KinkSas(
            engine.sas().iter().map(sa_status).collect(),
        )),
        Request::ShowStatus => Ok(ResponseBody::Status(status(engine, cx))),
        Request::Initiate { remote } => match engine.initiate(Instant::now(), krb, &remote) {
            Ok(()) => Ok(ResponseBody::Done {
                message: format!("initiating KINK CREATE with remote {remote}"),
            }),
            Err(e @ Error::UnknownPeer(_)) => {
                Err(CtlError::new(ErrorCode::UnknownRemote, e.to_string()))
            }
            Err(e) => Err(CtlError::new(ErrorCode::Internal, e.to_string())),
        },
        Request::Terminate { target } => terminate(engine, krb, &target),
        Request::Watch => Err(CtlError::new(
            ErrorCode::BadRequest,
            "watch is handled by the control server",
        )),
        Request::ShowPolicy
        | Request::Reload
        | Request::Flush
        | Request::Rekey { .. }
        | Request::Kernel { .. } => Err(CtlError::new(
            ErrorCode::Unsupported,
            "kinkd answers show sa, show status, initiate, terminate and watch only",
        )),
    };
    result.into()
}

fn terminate(
    engine: &mut Engine,
    krb: &mut dyn Kerberos,
    target: &str,
) -> Result<ResponseBody, CtlError> {
    let known = target == "all" || engine.peers().iter().any(|p| p.name == target);
    if !known {
        return Err(CtlError::new(
            ErrorCode::UnknownRemote,
            format!("no remote named {target} with acceptable_kmp kink"),
        ));
    }
    match engine.delete(Instant::now(), krb, target) {
        0 => Err(CtlError::new(
            ErrorCode::NotFound,
            format!("no KINK SA pair matches {target}"),
        )),
        n => Ok(ResponseBody::Done {
            message: format!("deleting {n} KINK SA pair(s) matching {target}"),
        }),
    }
}

fn sa_status(s: &SaPairStatus) -> KinkSaStatus {
    KinkSaStatus {
        peer: s.peer.clone(),
        state: s.state.to_owned(),
        role: s.role.to_owned(),
        spi_in: format!("{:08x}", s.spi_in),
        spi_out: format!("{:08x}", s.spi_out),
        esp_algs: s.esp.clone(),
    }
}

/// `ike_sas` counts established SA pairs, `half_open` the negotiations in
/// progress; `counters` has every [`Stats`] field by name.
fn status(engine: &Engine, cx: &Context<'_>) -> DaemonStatus {
    let sas = engine.sas();
    let established = sas.iter().filter(|s| s.state == "established").count();
    DaemonStatus {
        daemon: "kinkd".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        uptime_secs: cx.started.elapsed().as_secs(),
        kernel_backend: cx.backend.to_owned(),
        carries_traffic: cx.carries_traffic,
        ike_sas: established as u64,
        half_open: (sas.len() - established) as u64,
        listen: cx
            .listen
            .iter()
            .map(|l| format!("{}[{}]", l.ip(), l.port()))
            .collect(),
        counters: {
            let mut c = counters(&engine.stats());
            c.insert("overflow".into(), cx.overflow);
            c
        },
    }
}

/// Every counter under its field name.
pub(crate) fn counters(s: &Stats) -> BTreeMap<String, u64> {
    // Destructured so a new field cannot be forgotten here.
    let Stats {
        received,
        malformed,
        bad_checksum,
        replayed,
        krb_errors_sent,
        krb_errors_received,
        kink_errors_received,
        unknown_xid,
        retransmits,
        replies_resent,
        creates,
        failures,
    } = *s;
    [
        ("received", received),
        ("malformed", malformed),
        ("bad_checksum", bad_checksum),
        ("replayed", replayed),
        ("krb_errors_sent", krb_errors_sent),
        ("krb_errors_received", krb_errors_received),
        ("kink_errors_received", kink_errors_received),
        ("unknown_xid", unknown_xid),
        ("retransmits", retransmits),
        ("replies_resent", replies_resent),
        ("creates", creates),
        ("failures", failures),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_named() {
        let s = Stats {
            received: 1,
            malformed: 2,
            bad_checksum: 3,
            replayed: 4,
            krb_errors_sent: 5,
            krb_errors_received: 6,
            kink_errors_received: 7,
            unknown_xid: 8,
            retransmits: 9,
            replies_resent: 10,
            creates: 11,
            failures: 12,
        };
        let c = counters(&s);
        assert_eq!(c.len(), 12);
        assert_eq!(c["received"], 1);
        assert_eq!(c["unknown_xid"], 8);
        assert_eq!(c["failures"], 12);
        let mut values: Vec<u64> = c.values().copied().collect();
        values.sort_unstable();
        assert_eq!(
            values,
            (1..=12).collect::<Vec<_>>(),
            "no two fields share a name"
        );
    }

    #[test]
    fn sa_pairs_show_hex_spis() {
        let s = sa_status(&SaPairStatus {
            peer: "b".into(),
            state: "established",
            role: "initiator",
            spi_in: 0xc1a2_b3c4,
            spi_out: 0x10,
            esp: "AES_GCM_16-128".into(),
        });
        assert_eq!(
            (s.spi_in.as_str(), s.spi_out.as_str()),
            ("c1a2b3c4", "00000010")
        );
        assert_eq!(s.esp_algs, "AES_GCM_16-128");
    }
}
