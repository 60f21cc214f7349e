//! What Linux PF_KEY can and cannot say, and the translations both ways.

use std::net::IpAddr;
use std::time::Duration;

use zeroize::Zeroizing;

use super::*;
use crate::pfkeyv2::ext::{Extension, PolicyDir};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn spec() -> SaSpec {
    SaSpec {
        id: SaId {
            dst: ip("2001:db8::2"),
            spi: 0x100,
        },
        src: ip("2001:db8::1"),
        direction: SaDirection::Inbound,
        mode: IpsecMode::Transport,
        encr: EspEncr {
            id: 12,
            key_bits: 256,
        },
        encr_key: Zeroizing::new(vec![1; 32]),
        auth: Some(EspAuth { id: 14 }),
        auth_key: Zeroizing::new(vec![2; 64]),
        encap: None,
        selectors: Vec::new(),
        reqid: 1,
        esn: false,
        replay_window: 0,
        lifetime: Lifetime::default(),
    }
}

fn is_unsupported(e: &KernelError, needle: &str) -> bool {
    matches!(e, KernelError::Unsupported { backend: "pfkey", what } if what.contains(needle))
}

#[test]
fn ikev2_transforms_map_to_linux_pfkey_numbers() {
    let encr = |id| encr_alg(EspEncr { id, key_bits: 128 });
    assert_eq!((encr(12), encr(20)), (Ok(12), Ok(20)));
    let auth = |id| auth_alg(Some(EspAuth { id }));
    assert_eq!(
        [auth(2), auth(12), auth(13), auth(14)],
        [Ok(3), Ok(5), Ok(6), Ok(7)]
    );
    assert_eq!(auth_alg(None), Ok(0));
    assert!(is_unsupported(&encr(28).unwrap_err(), "ChaCha20-Poly1305"));
    assert!(is_unsupported(&auth(5).unwrap_err(), "INTEG transform 5"));
}

#[test]
fn esn_is_refused_with_the_reason() {
    let sa = SaSpec {
        esn: true,
        ..spec()
    };
    let err = sa_message(MsgType::Add, &sa).unwrap_err();
    assert!(is_unsupported(&err, "extended sequence numbers"), "{err}");
}

#[test]
fn an_ipv6_transport_sa_carries_keys_sa2_and_default_replay() {
    let msg = sa_message(MsgType::Update, &spec()).unwrap();
    let sa = msg.sa().unwrap();
    assert_eq!((sa.spi, sa.replay, sa.auth, sa.encrypt), (0x100, 32, 7, 12));
    assert_eq!(msg.sa2().unwrap().mode, Mode::Transport);
    assert_eq!(msg.key(KeyKind::Encrypt).unwrap().bits, 256);
    assert_eq!(msg.key(KeyKind::Auth).unwrap().bits, 512);
    assert_eq!(msg.address(AddressKind::Dst).unwrap().prefixlen, 128);
    assert!(msg.nat_t_type().is_none());
    // sockaddr_in6 (28 bytes) pads to 32: the address extension is 40.
    let wire = msg.emit().unwrap();
    let parsed = Message::parse(&wire).unwrap();
    assert_eq!(parsed, msg);
}

#[test]
fn an_aead_sa_sends_its_salted_key_and_no_auth_key() {
    let sa = SaSpec {
        encr: EspEncr {
            id: 20,
            key_bits: 128,
        },
        encr_key: Zeroizing::new(vec![3; 20]),
        auth: None,
        auth_key: Zeroizing::new(Vec::new()),
        ..spec()
    };
    let msg = sa_message(MsgType::Add, &sa).unwrap();
    assert_eq!(msg.key(KeyKind::Encrypt).unwrap().bits, 160);
    assert!(msg.key(KeyKind::Auth).is_none());
    assert_eq!(msg.sa().unwrap().encrypt, SADB_X_EALG_AES_GCM_ICV16);
}

#[test]
fn lifetimes_never_send_zero_for_a_real_limit() {
    let sa = SaSpec {
        lifetime: Lifetime {
            hard_packets: Some(0),
            soft_bytes: Some(u64::MAX),
            hard_time: Some(Duration::from_millis(1500)),
            soft_time: Some(Duration::ZERO),
            soft_packets: Some(1 << 40),
            ..Lifetime::default()
        },
        replay_window: 1024,
        ..spec()
    };
    let msg = sa_message(MsgType::Add, &sa).unwrap();
    let hard = msg.lifetime(LifetimeKind::Hard).unwrap();
    let soft = msg.lifetime(LifetimeKind::Soft).unwrap();
    assert_eq!((hard.allocations, hard.bytes, hard.addtime), (1, 0, 2));
    assert_eq!(
        (soft.allocations, soft.bytes, soft.addtime),
        (u32::MAX, u64::MAX, 1)
    );
    assert_eq!(msg.sa().unwrap().replay, 255, "Linux then caps it at 32");
}

#[test]
fn sa_ref_messages_use_an_unspecified_source_of_the_same_family() {
    let msg = sa_ref_message(MsgType::Delete, spec().id);
    assert_eq!(msg.address(AddressKind::Src).unwrap().addr.ip(), ip("::"));
    assert_eq!(sa_id(&msg), Some(spec().id));
}

#[test]
fn ranges_and_prefixes_convert_both_ways() {
    let cases = [
        ("192.0.2.0", "192.0.2.255", Some(24)),
        ("0.0.0.0", "255.255.255.255", Some(0)),
        ("192.0.2.7", "192.0.2.7", Some(32)),
        ("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(0)),
        ("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff", Some(64)),
        ("192.0.2.1", "192.0.2.2", None),
        ("192.0.2.0", "192.0.2.2", None),
        ("192.0.2.255", "192.0.2.0", None),
        ("192.0.2.0", "2001:db8::", None),
    ];
    for (s, e, plen) in cases {
        let got = range_to_prefix(ip(s), ip(e));
        assert_eq!(got.map(|(_, p)| p), plen, "{s}-{e}");
        if let Some((a, p)) = got {
            assert_eq!(prefix_to_range(a, p), (ip(s), ip(e)));
        }
    }
    assert_eq!(
        prefix_to_range(ip("192.0.2.77"), 24),
        (ip("192.0.2.0"), ip("192.0.2.255"))
    );
}

fn tunnel_policy(direction: SaDirection) -> PolicySpec {
    PolicySpec {
        selector: Selector {
            src: (ip("2001:db8:1::"), ip("2001:db8:1::ffff")),
            dst: (ip("2001:db8:2::5"), ip("2001:db8:2::5")),
            proto: 17,
            src_port: 0,
            dst_port: 53,
        },
        direction,
        action: PolicyAction::Protect {
            reqid: 3,
            mode: IpsecMode::Tunnel,
        },
        tunnel: Some((ip("2001:db8::1"), ip("2001:db8::2"))),
    }
}

#[test]
fn an_inbound_tunnel_policy_is_in_plus_fwd_with_remote_as_source() {
    let policy = tunnel_policy(SaDirection::Inbound);
    let msgs = policy_messages(MsgType::XSpdAdd, &policy).unwrap();
    let dirs: Vec<_> = msgs.iter().map(|(_, d)| *d).collect();
    assert_eq!(dirs, [PolicyDir::Inbound, PolicyDir::Fwd]);
    for (msg, dir) in &msgs {
        let pol = msg.policy().unwrap();
        assert_eq!(pol.dir, *dir);
        let rq = pol.requests[0];
        assert_eq!((rq.level, rq.reqid, rq.proto), (Level::Unique, 3, 50));
        let (s, d) = rq.endpoints.unwrap();
        assert_eq!((s.ip(), d.ip()), (ip("2001:db8::2"), ip("2001:db8::1")));
        let wire = msg.emit().unwrap();
        let (back, _) = policy_spec(&Message::parse(&wire).unwrap()).unwrap();
        assert_eq!(back, policy, "ports, protocol and prefixes survive");
    }
    let out = policy_messages(MsgType::XSpdAdd, &tunnel_policy(SaDirection::Outbound)).unwrap();
    let (s, _) = out[0].0.policy().unwrap().requests[0].endpoints.unwrap();
    assert_eq!(s.ip(), ip("2001:db8::1"));
}

#[test]
fn transport_bypass_and_discard_policies() {
    let mut p = tunnel_policy(SaDirection::Inbound);
    p.action = PolicyAction::Protect {
        reqid: 0,
        mode: IpsecMode::Transport,
    };
    p.tunnel = None;
    let msgs = policy_messages(MsgType::XSpdAdd, &p).unwrap();
    assert_eq!(msgs.len(), 1, "transport mode needs no FWD policy");
    let rq = msgs[0].0.policy().unwrap().requests[0];
    assert_eq!((rq.level, rq.endpoints), (Level::Require, None));
    for (action, ty) in [
        (PolicyAction::Bypass, PolicyType::None),
        (PolicyAction::Discard, PolicyType::Discard),
    ] {
        p.action = action;
        let msgs = policy_messages(MsgType::XSpdAdd, &p).unwrap();
        let pol = msgs[0].0.policy().unwrap();
        assert_eq!((pol.policy_type, pol.requests.len()), (ty, 0));
        assert_eq!(policy_spec(&msgs[0].0).unwrap().0, p);
    }
}

#[test]
fn what_pfkey_policies_cannot_say_is_refused() {
    let mut p = tunnel_policy(SaDirection::Outbound);
    p.action = PolicyAction::Protect {
        reqid: 0x4000,
        mode: IpsecMode::Tunnel,
    };
    let err = policy_messages(MsgType::XSpdAdd, &p).unwrap_err();
    assert!(is_unsupported(&err, "16383"), "{err}");
    let mut p = tunnel_policy(SaDirection::Outbound);
    p.selector.src = (ip("2001:db8::1"), ip("2001:db8::3"));
    let err = policy_messages(MsgType::XSpdAdd, &p).unwrap_err();
    assert!(is_unsupported(&err, "not one"), "{err}");
    let mut p = tunnel_policy(SaDirection::Outbound);
    p.tunnel = None;
    assert!(policy_messages(MsgType::XSpdAdd, &p).is_err());
}

#[test]
fn more_specific_policies_get_preferred_priorities() {
    let wide = policy_messages(MsgType::XSpdAdd, &tunnel_policy(SaDirection::Outbound)).unwrap();
    let mut p = tunnel_policy(SaDirection::Outbound);
    p.selector.src = (ip("::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    let wider = policy_messages(MsgType::XSpdAdd, &p).unwrap();
    let prio = |m: &[(Message, PolicyDir)]| m[0].0.policy().unwrap().priority;
    assert!(prio(&wide) < prio(&wider));
}

#[test]
fn a_delete_names_the_same_selector_as_the_add() {
    let p = tunnel_policy(SaDirection::Outbound);
    let add = &policy_messages(MsgType::XSpdAdd, &p).unwrap()[0].0;
    let del = policy_delete_message(&p.selector, PolicyDir::Outbound).unwrap();
    for kind in [AddressKind::Src, AddressKind::Dst] {
        assert_eq!(add.address(kind), del.address(kind));
    }
    assert_eq!(del.policy().unwrap().dir, PolicyDir::Outbound);
}

#[test]
fn an_acquire_event_takes_reqid_and_protocol_from_the_policy() {
    let p = tunnel_policy(SaDirection::Outbound);
    let (mut reply, _) = policy_messages(MsgType::XSpdGet, &p).unwrap().remove(0);
    reply.extensions.push(Extension::NatTType(2));
    let ev = acquire_event(ip("2001:db8::1"), ip("2001:db8::2"), &reply);
    assert_eq!(
        ev,
        Some(KernelEvent::Acquire {
            reqid: 3,
            src: ip("2001:db8::1"),
            dst: ip("2001:db8::2"),
            proto: 17,
        })
    );
}

#[test]
fn getspi_asks_for_the_whole_unreserved_range() {
    let msg = getspi_message(ip("192.0.2.2"), ip("192.0.2.1"), 5).unwrap();
    let range = msg.spirange().unwrap();
    assert_eq!((range.min, range.max), (0x100, u32::MAX));
    assert_eq!(msg.sa2().unwrap().reqid, 5);
    assert!(getspi_message(ip("192.0.2.2"), ip("2001:db8::1"), 5).is_err());
}
