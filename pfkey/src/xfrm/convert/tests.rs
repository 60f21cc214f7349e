#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use zeroize::Zeroizing;

use super::*;
use crate::xfrm::msg::WithAttrs;
use crate::xfrm::structs::{UserAcquire, UserExpire, UserMigrate};
use crate::{EspAuth, EspEncr};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn spec(encr: (u16, u16), key_len: usize, auth: Option<u16>) -> SaSpec {
    SaSpec {
        id: SaId {
            dst: ip("2001:db8::2"),
            spi: 0xc000_0001,
        },
        src: ip("2001:db8::1"),
        direction: SaDirection::Inbound,
        mode: IpsecMode::Tunnel,
        encr: EspEncr {
            id: encr.0,
            key_bits: encr.1,
        },
        encr_key: Zeroizing::new(vec![7; key_len]),
        auth: auth.map(|id| EspAuth { id }),
        auth_key: Zeroizing::new(vec![9; 32]),
        encap: None,
        selectors: Vec::new(),
        reqid: 3,
        esn: false,
        replay_window: 16,
        lifetime: Lifetime {
            soft_bytes: Some(1000),
            hard_time: Some(Duration::from_secs(3600)),
            ..Lifetime::default()
        },
    }
}

fn alg(attrs: &[Attr]) -> Vec<(String, u32, Option<u32>)> {
    attrs
        .iter()
        .filter_map(|a| match a {
            Attr::AlgAead(x) | Attr::AlgCrypt(x) | Attr::AlgAuthTrunc(x) => {
                Some((x.name.to_string(), x.key_bits, x.icv_bits))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn every_transform_maps_to_its_kernel_name_icv_and_key_length() {
    let cases = [
        (
            spec((20, 128), 20, None),
            vec![("rfc4106(gcm(aes))", 160, Some(128))],
        ),
        (
            spec((20, 256), 36, None),
            vec![("rfc4106(gcm(aes))", 288, Some(128))],
        ),
        (
            spec((19, 128), 20, None),
            vec![("rfc4106(gcm(aes))", 160, Some(96))],
        ),
        (
            spec((28, 256), 36, None),
            vec![("rfc7539esp(chacha20,poly1305)", 288, Some(128))],
        ),
        (
            spec((12, 256), 32, Some(2)),
            vec![("cbc(aes)", 256, None), ("hmac(sha1)", 256, Some(96))],
        ),
        (
            spec((12, 128), 16, Some(12)),
            vec![("cbc(aes)", 128, None), ("hmac(sha256)", 256, Some(128))],
        ),
        (
            spec((12, 128), 16, Some(13)),
            vec![("cbc(aes)", 128, None), ("hmac(sha384)", 256, Some(192))],
        ),
        (
            spec((12, 128), 16, Some(14)),
            vec![("cbc(aes)", 128, None), ("hmac(sha512)", 256, Some(256))],
        ),
    ];
    for (s, want) in cases {
        let m = sa_message(&s).unwrap();
        let want: Vec<_> = want
            .into_iter()
            .map(|(n, k, i)| (n.to_owned(), k, i))
            .collect();
        assert_eq!(alg(&m.attrs), want, "{:?}", s.encr);
    }
}

#[test]
fn unknown_transforms_and_wrong_key_lengths_are_unsupported() {
    for s in [
        spec((3, 192), 24, Some(2)),
        spec((12, 128), 15, Some(2)),
        spec((20, 128), 16, None),
        spec((20, 128), 20, Some(12)),
        spec((12, 128), 16, Some(5)),
    ] {
        assert!(
            matches!(sa_message(&s), Err(KernelError::Unsupported { .. })),
            "{:?} {:?}",
            s.encr,
            s.auth
        );
    }
}

#[test]
fn a_tunnel_sa_has_no_selector_and_takes_any_inner_family() {
    let m = sa_message(&spec((20, 128), 20, None)).unwrap();
    assert_eq!(m.info.sel, XfrmSelector::default());
    assert_eq!(m.info.flags, state_flags::AF_UNSPEC);
    assert_eq!(
        (m.info.mode, m.info.family, m.info.reqid),
        (MODE_TUNNEL, AF_INET6, 3)
    );
    assert_eq!(m.info.replay_window, 16);
    assert_eq!(m.info.lft.soft_byte_limit, 1000);
    assert_eq!(m.info.lft.hard_byte_limit, XFRM_INF);
    assert_eq!(m.info.lft.hard_add_expires_seconds, 3600);
    assert_eq!(m.info.lft.soft_add_expires_seconds, 0);
}

#[test]
fn esn_and_wide_windows_use_the_esn_replay_attribute() {
    let mut s = spec((20, 128), 20, None);
    s.esn = true;
    let m = sa_message(&s).unwrap();
    assert_eq!(m.info.flags & state_flags::ESN, state_flags::ESN);
    assert_eq!(m.info.replay_window, 0);
    assert!(m.attrs.contains(&Attr::ReplayEsn(ReplayEsn::new(16))));
    s.esn = false;
    s.replay_window = 0;
    let m = sa_message(&s).unwrap();
    assert_eq!(m.info.flags & state_flags::ESN, 0);
    assert!(
        m.attrs
            .contains(&Attr::ReplayEsn(ReplayEsn::new(DEFAULT_REPLAY_WINDOW)))
    );
}

#[test]
fn sa_info_reports_counters_encap_and_skips_larval_sas() {
    let mut s = spec((20, 128), 20, None);
    s.encap = Some(UdpEncap {
        sport: 4500,
        dport: 4501,
    });
    let mut m = sa_message(&s).unwrap();
    m.info.curlft.bytes = 1234;
    m.info.curlft.packets = 5;
    let info = sa_info(&m, Some(SaDirection::Outbound)).unwrap();
    assert_eq!(info.id, s.id);
    assert_eq!(info.src, s.src);
    assert_eq!(info.direction, SaDirection::Outbound);
    assert_eq!(info.encap, s.encap);
    assert_eq!((info.counters.bytes, info.counters.packets), (1234, 5));
    m.attrs.push(Attr::SaDir(2));
    assert_eq!(sa_info(&m, None).unwrap().direction, SaDirection::Outbound);
    m.attrs.retain(|a| !matches!(a, Attr::AlgAead(_)));
    assert_eq!(sa_info(&m, None), None);
}

#[test]
fn ranges_become_prefixes_or_are_refused() {
    for (start, end, want) in [
        ("10.0.0.0", "10.0.0.255", Some(24)),
        ("0.0.0.0", "255.255.255.255", Some(0)),
        ("192.0.2.7", "192.0.2.7", Some(32)),
        ("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff", Some(64)),
        ("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(0)),
        ("10.0.0.1", "10.0.0.255", None),
        ("10.0.0.0", "10.0.0.254", None),
        ("10.0.0.255", "10.0.0.0", None),
        ("10.0.0.0", "2001:db8::", None),
    ] {
        let got = prefix((ip(start), ip(end))).ok().map(|(_, len)| len);
        assert_eq!(got, want, "{start}-{end}");
        if let Some(len) = want {
            assert_eq!(range(ip(start), len), Some((ip(start), ip(end))));
        }
    }
    assert_eq!(range(ip("10.0.0.0"), 33), None);
}

fn tunnel_in() -> PolicySpec {
    PolicySpec {
        selector: Selector::ranges(
            (ip("203.0.113.0"), ip("203.0.113.255")),
            (ip("198.51.100.0"), ip("198.51.100.255")),
        ),
        direction: SaDirection::Inbound,
        action: PolicyAction::Protect {
            reqid: 5,
            mode: IpsecMode::Tunnel,
        },
        tunnel: Some((ip("192.0.2.1"), ip("192.0.2.2"))),
    }
}

#[test]
fn an_inbound_tunnel_policy_is_in_plus_fwd_with_remote_to_local_templates() {
    let msgs = policy_messages(&tunnel_in()).unwrap();
    let dirs: Vec<_> = msgs.iter().map(|m| m.info.dir).collect();
    assert_eq!(dirs, [dir::IN, dir::FWD]);
    for m in &msgs {
        let [Attr::Tmpl(t)] = m.attrs.as_slice() else {
            panic!("{:?}", m.attrs)
        };
        assert_eq!(t[0].saddr.to_ip(AF_INET), Some(ip("192.0.2.2")));
        assert_eq!(t[0].id.daddr.to_ip(AF_INET), Some(ip("192.0.2.1")));
        assert_eq!(
            (t[0].reqid, t[0].mode, t[0].ealgos),
            (5, MODE_TUNNEL, u32::MAX)
        );
    }
    assert_eq!(policy_spec(&msgs[0]), Some(tunnel_in()));
    assert_eq!(policy_spec(&msgs[1]), None);
    let ids = policy_ids(&tunnel_in().selector, SaDirection::Inbound).unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0].sel, msgs[0].info.sel);
}

#[test]
fn transport_bypass_and_discard_policies_read_back() {
    let sel = Selector {
        src: (ip("2001:db8::1"), ip("2001:db8::1")),
        dst: (ip("2001:db8::2"), ip("2001:db8::2")),
        proto: 17,
        src_port: 500,
        dst_port: 0,
    };
    for action in [
        PolicyAction::Protect {
            reqid: 1,
            mode: IpsecMode::Transport,
        },
        PolicyAction::Bypass,
        PolicyAction::Discard,
    ] {
        for direction in [SaDirection::Inbound, SaDirection::Outbound] {
            let p = PolicySpec {
                selector: sel.clone(),
                direction,
                action,
                tunnel: None,
            };
            let msgs = policy_messages(&p).unwrap();
            assert_eq!(msgs.len(), 1);
            assert_eq!(policy_spec(&msgs[0]), Some(p));
        }
    }
    let mut no_ends = tunnel_in();
    no_ends.tunnel = None;
    assert!(policy_messages(&no_ends).is_err());
}

#[test]
fn narrower_selectors_get_preferred_priorities() {
    let wide = selector(&Selector::ranges(
        (ip("0.0.0.0"), ip("255.255.255.255")),
        (ip("0.0.0.0"), ip("255.255.255.255")),
    ))
    .unwrap();
    let narrow = selector(&tunnel_in().selector).unwrap();
    let mut port = narrow;
    port.dport_mask = 0xffff;
    assert!(priority(&narrow) < priority(&wide));
    assert!(priority(&port) < priority(&narrow));
}

#[test]
fn acquire_expire_and_migrate_become_events() {
    let mut acq = UserAcquire::default();
    acq.sel.family = AF_INET;
    acq.sel.saddr = XfrmAddr::from_ip(ip("198.51.100.1")).0;
    acq.sel.daddr = XfrmAddr::from_ip(ip("203.0.113.1")).0;
    acq.sel.proto = 1;
    let tmpl = policy_messages(&PolicySpec {
        direction: SaDirection::Outbound,
        ..tunnel_in()
    })
    .unwrap()
    .remove(0)
    .attrs;
    let ev = events(&Body::Acquire(WithAttrs {
        fixed: acq,
        attrs: tmpl,
    }));
    assert_eq!(
        ev,
        [KernelEvent::Acquire {
            reqid: 5,
            src: ip("198.51.100.1"),
            dst: ip("203.0.113.1"),
            proto: 1
        }]
    );

    let exp = UserExpire {
        state: sa_message(&spec((20, 128), 20, None)).unwrap().info,
        hard: 1,
    };
    let ev = events(&Body::Expire(WithAttrs {
        fixed: exp,
        attrs: Vec::new(),
    }));
    assert_eq!(
        ev,
        [KernelEvent::Expire {
            id: spec((20, 128), 20, None).id,
            hard: true
        }]
    );

    let id = policy_ids(&tunnel_in().selector, SaDirection::Inbound).unwrap()[0];
    let addr = |s: &str| XfrmAddr::from_ip(ip(s)).0;
    let um = UserMigrate {
        old_daddr: addr("192.0.2.1"),
        old_saddr: addr("192.0.2.2"),
        new_daddr: addr("192.0.2.1"),
        new_saddr: addr("192.0.2.3"),
        proto: IPPROTO_ESP,
        mode: MODE_TUNNEL,
        reqid: 5,
        old_family: AF_INET,
        new_family: AF_INET,
    };
    let ev = events(&Body::Migrate(WithAttrs {
        fixed: id,
        attrs: vec![Attr::Migrate(vec![um])],
    }));
    assert_eq!(
        ev,
        [KernelEvent::Migrate {
            selector: tunnel_in().selector,
            direction: SaDirection::Inbound,
            old: (ip("192.0.2.1"), ip("192.0.2.2")),
            new: (ip("192.0.2.1"), ip("192.0.2.3")),
        }]
    );
}
