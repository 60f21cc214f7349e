//! One sample of every control message, for the framing round trips, the
//! socket tests and the check that `docs/control-protocol.md` shows exactly
//! what the serializer produces.

use super::frame;
use super::proto::{
    ChildSaStatus, ClientMessage, CtlError, DaemonStatus, ErrorCode, EventRecord, IkeSaStatus,
    PROTOCOL_VERSION, Request, ResponseBody, ResponseResult, ServerMessage,
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
    ]
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
    }
}

/// An IKE SA coming up.
pub(crate) fn event() -> EventRecord {
    EventRecord {
        time: "2026-11-27T10:15:02Z".into(),
        kind: "ike_up".into(),
        sa: Some("1a2b3c4d5e6f7081".into()),
        message: "IKE SA peer-b established with 198.51.100.2[4500] (peer-b.example)".into(),
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
    ]
}

/// The client's hello as bytes on the wire, prefix included.
pub(crate) fn hello_frame() -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(&client_messages()[0], &mut out).expect("the hello encodes");
    out
}
