//! One sample of every control message, for the framing round trips, the
//! socket tests and the check that `docs/control-protocol.md` shows exactly
//! what the serializer produces.

use super::frame;
use super::kernel::{KernelNotice, KernelOp, KernelReply};
use super::proto::{
    ChildSaStatus, ClientMessage, CtlError, DaemonStatus, ErrorCode, EventRecord, IkeSaStatus,
    KinkSaStatus, PROTOCOL_VERSION, PolicyStatus, Request, ResponseBody, ResponseResult,
    ServerMessage,
};
use crate::ipsec::{
    Counters, EspEncr, IpsecMode, KernelEvent, Lifetime, PolicyAction, PolicySpec, SaDirection,
    SaId, SaInfo, SaSpec, Selector, UdpEncap,
};

/// Every [`Request`] variant.
pub(crate) fn requests() -> Vec<Request> {
    vec![
        Request::ShowSa,
        Request::ShowStatus,
        Request::Initiate {
            remote: "peer-b".into(),
        },
        Request::Terminate {
            target: "1a2b3c4d5e6f7081".into(),
        },
        Request::Watch,
        Request::ShowPolicy,
        Request::Reload,
        Request::Flush,
        Request::Rekey {
            target: "c1a2b3c4".into(),
        },
    ]
    .into_iter()
    .chain(kernel_ops().into_iter().map(|op| Request::Kernel {
        from: "iked".into(),
        op: Box::new(op),
    }))
    .collect()
}

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().expect("sample address")
}

fn sa_id() -> SaId {
    SaId {
        dst: ip("198.51.100.2"),
        spi: 0xc5d6_e7f8,
    }
}

fn selector() -> Selector {
    Selector::ranges(
        (ip("192.0.2.0"), ip("192.0.2.255")),
        (ip("203.0.113.0"), ip("203.0.113.255")),
    )
}

fn policy() -> PolicySpec {
    PolicySpec {
        selector: selector(),
        direction: SaDirection::Outbound,
        action: PolicyAction::Protect {
            reqid: 1,
            mode: IpsecMode::Tunnel,
        },
        tunnel: Some((ip("192.0.2.1"), ip("198.51.100.2"))),
    }
}

/// Every [`KernelOp`], as iked sends them to spmd.
fn kernel_ops() -> Vec<KernelOp> {
    let sa = SaSpec {
        id: sa_id(),
        src: ip("192.0.2.1"),
        direction: SaDirection::Outbound,
        mode: IpsecMode::Tunnel,
        encr: EspEncr {
            id: 20,
            key_bits: 128,
        },
        encr_key: zeroize::Zeroizing::new(vec![0x11; 20]),
        auth: None,
        auth_key: zeroize::Zeroizing::new(Vec::new()),
        encap: Some(UdpEncap {
            sport: 4500,
            dport: 4500,
        }),
        selectors: vec![selector()],
        reqid: 1,
        esn: false,
        replay_window: 0,
        lifetime: Lifetime {
            soft_time: Some(std::time::Duration::from_secs(3000)),
            hard_time: Some(std::time::Duration::from_secs(3600)),
            ..Lifetime::default()
        },
    };
    vec![
        KernelOp::Attach,
        KernelOp::AllocSpi {
            src: ip("198.51.100.2"),
            dst: ip("192.0.2.1"),
            reqid: 1,
        },
        KernelOp::AddSa { sa: sa.clone() },
        KernelOp::UpdateSa { sa },
        KernelOp::DeleteSa { id: sa_id() },
        KernelOp::GetSa { id: sa_id() },
        KernelOp::ListSas,
        KernelOp::AddPolicy { policy: policy() },
        KernelOp::DeletePolicy {
            selector: selector(),
            direction: SaDirection::Outbound,
        },
        KernelOp::ListPolicies,
    ]
}

/// One installed policy as `show policy` lists it.
pub(crate) fn policy_status() -> PolicyStatus {
    PolicyStatus {
        source: "sel_out".into(),
        remote: Some("peer-b".into()),
        direction: "out".into(),
        src: "192.0.2.0/24".into(),
        dst: "203.0.113.0/24".into(),
        proto: 0,
        action: "protect".into(),
        mode: Some("tunnel".into()),
        reqid: Some(1),
        tunnel: Some("192.0.2.1 -> 198.51.100.2".into()),
    }
}

/// spmd's answers to kernel operations.
fn kernel_replies() -> Vec<KernelReply> {
    vec![
        KernelReply::Done,
        KernelReply::Attached {
            backend: "userspace".into(),
            carries_traffic: true,
        },
        KernelReply::Spi { spi: 0xc1a2_b3c4 },
        KernelReply::Sa {
            sa: SaInfo {
                id: sa_id(),
                src: ip("192.0.2.1"),
                direction: SaDirection::Outbound,
                mode: IpsecMode::Tunnel,
                reqid: 1,
                encap: None,
                counters: Counters {
                    bytes: 654_321,
                    packets: 400,
                },
            },
        },
        KernelReply::Sas { sas: vec![sa_id()] },
        KernelReply::Policies {
            policies: vec![policy()],
        },
    ]
}

/// An ACQUIRE spmd routes to iked.
pub(crate) fn kernel_event() -> EventRecord {
    EventRecord {
        time: "2026-11-27T10:15:02Z".into(),
        kind: "acquire".into(),
        sa: None,
        message: "ACQUIRE for 192.0.2.10 -> 203.0.113.5 (reqid 1, remote peer-b) to iked".into(),
        kernel: Some(KernelNotice {
            to: "iked".into(),
            event: KernelEvent::Acquire {
                reqid: 1,
                src: ip("192.0.2.10"),
                dst: ip("203.0.113.5"),
                proto: 1,
            },
        }),
    }
}

/// The client's hello and one request of every kind (ids from 1).
pub(crate) fn client_messages() -> Vec<ClientMessage> {
    let hello = ClientMessage::Hello {
        version: PROTOCOL_VERSION,
        client: "racoonctl".into(),
    };
    let requests = requests().into_iter().zip(1..);
    let requests = requests.map(|(request, id)| ClientMessage::Request { id, request });
    std::iter::once(hello).chain(requests).collect()
}

/// An established IKE SA with one UDP-encapsulated tunnel-mode CHILD SA.
pub(crate) fn ike_sa() -> IkeSaStatus {
    IkeSaStatus {
        name: "peer-b".into(),
        spi_i: "1a2b3c4d5e6f7081".into(),
        spi_r: "8f7e6d5c4b3a2910".into(),
        state: "established".into(),
        role: "initiator".into(),
        local: "192.0.2.1[4500]".into(),
        remote: "198.51.100.2[4500]".into(),
        peer_id: "peer-b.example".into(),
        ike_algs: "AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519".into(),
        age_secs: 3723,
        children: vec![ChildSaStatus {
            spi_in: "c1a2b3c4".into(),
            spi_out: "c5d6e7f8".into(),
            mode: "tunnel".into(),
            esp_algs: "AES_GCM_16_256".into(),
            encap: true,
            local_ts: vec!["192.0.2.0/24".into()],
            remote_ts: vec!["198.51.100.0/24".into()],
            in_bytes: 123_456,
            in_packets: 321,
            out_bytes: 654_321,
            out_packets: 400,
        }],
    }
}

/// iked with the userspace datapath, one IKE SA.
pub(crate) fn daemon_status() -> DaemonStatus {
    DaemonStatus {
        daemon: "iked".into(),
        version: "0.1.0".into(),
        pid: 4242,
        uptime_secs: 86_461,
        kernel_backend: "userspace".into(),
        carries_traffic: true,
        ike_sas: 1,
        half_open: 0,
        listen: vec!["192.0.2.1[500]".into(), "192.0.2.1[4500]".into()],
        counters: [
            ("esp_dropped_handoff", 0),
            ("esp_dropped_no_datapath", 0),
            ("ike_dropped_queue_full", 0),
            ("port_4500_read_by_spmd", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
    }
}

/// kinkd following spmd's XFRM backend, one SA pair: its counters are named.
pub(crate) fn kinkd_status() -> DaemonStatus {
    let counters = [
        ("received", 12),
        ("malformed", 1),
        ("bad_checksum", 0),
        ("replayed", 0),
        ("krb_errors_sent", 0),
        ("krb_errors_received", 0),
        ("kink_errors_received", 0),
        ("unknown_xid", 0),
        ("retransmits", 2),
        ("replies_resent", 0),
        ("creates", 1),
        ("failures", 0),
        ("overflow", 0),
    ];
    DaemonStatus {
        daemon: "kinkd".into(),
        version: "0.1.0".into(),
        pid: 4343,
        uptime_secs: 600,
        kernel_backend: "xfrm".into(),
        carries_traffic: true,
        ike_sas: 1,
        half_open: 0,
        listen: vec!["192.0.2.1[910]".into()],
        counters: counters
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    }
}

/// A KINK SA pair as kinkd lists it.
pub(crate) fn kink_sa() -> KinkSaStatus {
    KinkSaStatus {
        peer: "peer-b".into(),
        state: "established".into(),
        role: "initiator".into(),
        spi_in: "c1a2b3c4".into(),
        spi_out: "c5d6e7f8".into(),
        esp_algs: "AES_GCM_16-128".into(),
    }
}

/// An IKE SA coming up.
pub(crate) fn event() -> EventRecord {
    EventRecord {
        time: "2026-11-27T10:15:02Z".into(),
        kind: "ike_up".into(),
        sa: Some("1a2b3c4d5e6f7081".into()),
        message: "IKE SA peer-b established with 198.51.100.2[4500] (peer-b.example)".into(),
        kernel: None,
    }
}

/// The daemon's hello, a response of every body, an error response and an
/// event.
pub(crate) fn server_messages() -> Vec<ServerMessage> {
    let ok = |id, body| ServerMessage::Response {
        id,
        result: ResponseResult::Ok(body),
    };
    vec![
        ServerMessage::Hello {
            version: PROTOCOL_VERSION,
            daemon: "iked".into(),
            pid: 4242,
        },
        ok(1, ResponseBody::Sas(vec![ike_sa()])),
        ok(2, ResponseBody::Status(daemon_status())),
        ok(
            3,
            ResponseBody::Done {
                message: "initiating IKE SA with 198.51.100.2 (remote peer-b)".into(),
            },
        ),
        ServerMessage::Response {
            id: 4,
            result: ResponseResult::Err(CtlError::new(
                ErrorCode::NotFound,
                "no IKE SA with initiator SPI 1a2b3c4d5e6f7081",
            )),
        },
        ok(
            5,
            ResponseBody::Done {
                message: "watching iked events".into(),
            },
        ),
        ServerMessage::Event { event: event() },
        ok(6, ResponseBody::Policies(vec![policy_status()])),
    ]
    .into_iter()
    .chain(
        kernel_replies()
            .into_iter()
            .zip(7..)
            .map(|(r, id)| ok(id, ResponseBody::Kernel(r))),
    )
    .chain([ServerMessage::Event {
        event: kernel_event(),
    }])
    .chain([
        ok(40, ResponseBody::KinkSas(vec![kink_sa()])),
        ok(41, ResponseBody::Status(kinkd_status())),
    ])
    .collect()
}

/// The client's hello as bytes on the wire, prefix included.
pub(crate) fn hello_frame() -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(&client_messages()[0], &mut out).expect("the hello encodes");
    out
}
