use libracoon::ctl::proto::{ChildSaStatus, DaemonStatus, EventRecord, IkeSaStatus, ResponseBody};

use super::*;

fn child(spi_in: &str, encap: bool) -> ChildSaStatus {
    ChildSaStatus {
        spi_in: spi_in.into(),
        spi_out: "c5d6e7f8".into(),
        mode: "tunnel".into(),
        esp_algs: "AES_GCM_16_256".into(),
        encap,
        local_ts: vec!["192.0.2.0/24".into()],
        remote_ts: vec!["198.51.100.0/24".into(), "203.0.113.0/24".into()],
        in_bytes: 123_456,
        in_packets: 321,
        out_bytes: 654_321,
        out_packets: 400,
    }
}

fn sas() -> Vec<IkeSaStatus> {
    vec![
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
            children: vec![child("c1a2b3c4", true), child("c0ffee00", false)],
        },
        IkeSaStatus {
            name: "roadwarrior".into(),
            spi_i: "0011223344556677".into(),
            spi_r: "0000000000000000".into(),
            state: "connecting".into(),
            role: "responder".into(),
            local: "192.0.2.1[500]".into(),
            remote: "203.0.113.9[500]".into(),
            peer_id: String::new(),
            ike_algs: "AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048".into(),
            age_secs: 2,
            children: Vec::new(),
        },
    ]
}

#[test]
fn show_sa_table() {
    let got = body(&ResponseBody::Sas(sas()), false);
    let want = "\
NAME         STATE        PEER                                 ALGORITHMS                                                 AGE
peer-b       established  198.51.100.2[4500] (peer-b.example)  AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519               1h 02m 03s
    initiator  SPIs 1a2b3c4d5e6f7081_i 8f7e6d5c4b3a2910_r  local 192.0.2.1[4500]
    CHILD  in c1a2b3c4  out c5d6e7f8  tunnel UDP-encap  AES_GCM_16_256
           192.0.2.0/24 === 198.51.100.0/24, 203.0.113.0/24
           in 120.6 KiB, 321 packets  out 639.0 KiB, 400 packets
    CHILD  in c0ffee00  out c5d6e7f8  tunnel  AES_GCM_16_256
           192.0.2.0/24 === 198.51.100.0/24, 203.0.113.0/24
           in 120.6 KiB, 321 packets  out 639.0 KiB, 400 packets
roadwarrior  connecting   203.0.113.9[500]                     AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048  2s
    responder  SPIs 0011223344556677_i 0000000000000000_r  local 192.0.2.1[500]
";
    assert_eq!(got, want, "\n{got}");
}

#[test]
fn show_sa_with_no_sas() {
    assert_eq!(body(&ResponseBody::Sas(Vec::new()), false), "no IKE SAs");
}

#[test]
fn show_sa_json_is_the_response_body() {
    let got = body(&ResponseBody::Sas(sas()[1..].to_vec()), true);
    let want = concat!(
        r#"{"sas":[{"name":"roadwarrior","spi_i":"0011223344556677","spi_r":"0000000000000000","#,
        r#""state":"connecting","role":"responder","local":"192.0.2.1[500]","remote":"203.0.113.9[500]","#,
        r#""peer_id":"","ike_algs":"AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048","#,
        r#""age_secs":2,"children":[]}]}"#
    );
    assert_eq!(got, want);
    let back: ResponseBody = serde_json::from_str(&got).unwrap();
    assert_eq!(back, ResponseBody::Sas(sas()[1..].to_vec()));
}

#[test]
fn show_sa_json_round_trips_children() {
    let got = body(&ResponseBody::Sas(sas()), true);
    assert!(!got.contains('\n'));
    let back: ResponseBody = serde_json::from_str(&got).unwrap();
    assert_eq!(back, ResponseBody::Sas(sas()));
}

fn status(carries_traffic: bool) -> DaemonStatus {
    DaemonStatus {
        daemon: "iked".into(),
        version: "0.1.0".into(),
        pid: 4242,
        uptime_secs: 86_461,
        kernel_backend: if carries_traffic {
            "userspace"
        } else {
            "memory"
        }
        .into(),
        carries_traffic,
        ike_sas: 3,
        half_open: 1,
        listen: vec!["192.0.2.1[500]".into(), "192.0.2.1[4500]".into()],
        counters: std::collections::BTreeMap::new(),
    }
}

#[test]
fn show_status_text() {
    let got = body(&ResponseBody::Status(status(true)), false);
    assert_eq!(
        got,
        "iked 0.1.0, pid 4242, up 1d 00h 01m\n\
         kernel backend  userspace (carries traffic)\n\
         IKE SAs         3 (1 half-open)\n\
         listening on    192.0.2.1[500], 192.0.2.1[4500]\n"
    );
    let got = body(&ResponseBody::Status(status(false)), false);
    assert!(
        got.contains("kernel backend  memory (SAs carry no traffic)\n"),
        "{got}"
    );
}

#[test]
fn show_status_json() {
    let got = body(&ResponseBody::Status(status(true)), true);
    assert_eq!(
        got,
        r#"{"status":{"daemon":"iked","version":"0.1.0","pid":4242,"uptime_secs":86461,"kernel_backend":"userspace","carries_traffic":true,"ike_sas":3,"half_open":1,"listen":["192.0.2.1[500]","192.0.2.1[4500]"]}}"#
    );
}

#[test]
fn done_prints_the_message_or_the_body() {
    let done = ResponseBody::Done {
        message: "deleting 1 IKE SA".into(),
    };
    assert_eq!(body(&done, false), "deleting 1 IKE SA");
    assert_eq!(
        body(&done, true),
        r#"{"done":{"message":"deleting 1 IKE SA"}}"#
    );
}

#[test]
fn events_as_lines() {
    let mut ev = EventRecord {
        time: "2026-11-27T10:15:02Z".into(),
        kind: "ike_up".into(),
        sa: Some("1a2b3c4d5e6f7081".into()),
        message: "IKE SA peer-b established".into(),
        kernel: None,
    };
    assert_eq!(
        event(&ev, false),
        "2026-11-27T10:15:02Z ike_up [1a2b3c4d5e6f7081] IKE SA peer-b established"
    );
    assert_eq!(
        event(&ev, true),
        r#"{"time":"2026-11-27T10:15:02Z","kind":"ike_up","sa":"1a2b3c4d5e6f7081","message":"IKE SA peer-b established"}"#
    );
    ev.sa = None;
    assert_eq!(
        event(&ev, false),
        "2026-11-27T10:15:02Z ike_up IKE SA peer-b established"
    );
}

#[test]
fn durations() {
    let cases = [
        (0, "0s"),
        (59, "59s"),
        (60, "1m 00s"),
        (303, "5m 03s"),
        (3600, "1h 00m 00s"),
        (86_399, "23h 59m 59s"),
        (86_400, "1d 00h 00m"),
        (183_840, "2d 03h 04m"),
    ];
    for (secs, want) in cases {
        assert_eq!(duration(secs), want, "{secs}");
    }
}

#[test]
fn byte_counts() {
    let cases = [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (123_456, "120.6 KiB"),
        (1_048_575, "1.0 MiB"),
        (1_610_612_736, "1.5 GiB"),
        (u64::MAX, "16.0 EiB"),
    ];
    for (n, want) in cases {
        assert_eq!(bytes(n), want, "{n}");
    }
}

#[test]
fn kinkd_status_names_sa_pairs_and_counters() {
    let mut s = status(true);
    s.daemon = "kinkd".into();
    s.listen = vec!["192.0.2.1[910]".into()];
    s.counters = [("received".to_owned(), 12), ("retransmits".to_owned(), 2)]
        .into_iter()
        .collect();
    let got = body(&ResponseBody::Status(s), false);
    assert_eq!(
        got,
        "kinkd 0.1.0, pid 4242, up 1d 00h 01m\n\
         kernel backend  userspace (carries traffic)\n\
         SA pairs        3 (1 negotiating)\n\
         listening on    192.0.2.1[910]\n\
         counters        received 12, retransmits 2\n"
    );
}

#[test]
fn kink_sas_table() {
    use libracoon::ctl::proto::KinkSaStatus;
    let pair = |peer: &str, state: &str, esp: &str| KinkSaStatus {
        peer: peer.into(),
        state: state.into(),
        role: "initiator".into(),
        spi_in: "c1a2b3c4".into(),
        spi_out: "00000000".into(),
        esp_algs: esp.into(),
    };
    let got = body(
        &ResponseBody::KinkSas(vec![
            pair("peer-b", "established", "AES_GCM_16-128"),
            pair("gw", "negotiating", ""),
        ]),
        false,
    );
    assert_eq!(
        got,
        "PEER    STATE        ROLE       SPI IN    SPI OUT   ALGORITHMS\n\
         peer-b  established  initiator  c1a2b3c4  00000000  AES_GCM_16-128\n\
         gw      negotiating  initiator  c1a2b3c4  00000000  -\n"
    );
    assert_eq!(body(&ResponseBody::KinkSas(vec![]), false), "no KINK SAs");
    let json = body(
        &ResponseBody::KinkSas(vec![pair("b", "established", "x")]),
        true,
    );
    assert!(json.starts_with("{\"kink_sas\":[{\"peer\":\"b\""), "{json}");
}
