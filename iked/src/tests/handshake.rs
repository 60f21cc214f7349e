//! Whole IKEv2 negotiations between two in-memory peers: the happy path,
//! each failure the RFC names, and the simulator's faulty links.

use std::time::Duration;

use libracoon::crypto::{DhGroup, EncrAlg, IntegAlg};
use zeroize::Zeroizing;

use super::sim::{Link, Pair, assert_children_match, config_a, config_b, net};
use crate::ikev2::config::Mode;
use crate::ikev2::error::Error;
use crate::ikev2::output::Event;

fn pair(link: Link, seed: u64) -> Pair {
    let mut p = Pair::new(config_a(), config_b(), link, seed);
    p.initiate();
    p
}

#[test]
fn clean_link_establishes_ike_and_child_sa_with_matching_keys() {
    let mut p = pair(Link::default(), 1);
    p.drive();
    assert!(
        p.seen_a.closed_with().is_none(),
        "A: {:?} B: {:?} {} {} {:?}",
        p.seen_a.events,
        p.seen_b.events,
        p.seen_a.sent,
        p.seen_b.sent,
        p.b.drops()
    );
    assert!(
        p.seen_a.established(),
        "A: {:?} B: {:?} {} {} {:?}",
        p.seen_a.events,
        p.seen_b.events,
        p.seen_a.sent,
        p.seen_b.sent,
        p.b.drops()
    );
    assert!(p.seen_a.established() && p.seen_b.established());
    assert_children_match(&p);
    assert_eq!(p.seen_a.sent, 2, "IKE_SA_INIT and IKE_AUTH, nothing resent");
    assert_eq!(p.seen_a.installed[0].esp, "AES_GCM_16-256");
    assert!(p.a.sas().all(crate::ikev2::sa::IkeSa::is_established));
}

#[test]
fn lossy_duplicating_reordering_link_still_brings_the_sa_up_or_cleans_up() {
    let link = Link {
        drop: 0.3,
        dup: 0.3,
        reorder: 0.3,
        delay: Duration::from_millis(20),
    };
    let mut failures = 0;
    for seed in 1..=40 {
        let mut b = config_b();
        b.dpd_delay = Some(Duration::from_secs(30));
        let mut p = Pair::new(config_a(), b, link, seed);
        p.initiate();
        p.drive_for(Duration::from_secs(300));
        if p.seen_a.closed_with().is_some() {
            // Six losses in a row of one exchange happen at 30 %: then both
            // sides must end up with nothing (B through its liveness check).
            failures += 1;
            p.cut = true;
            p.drive_for(Duration::from_secs(900));
            assert!(
                p.a.sas().next().is_none() && p.b.sas().next().is_none(),
                "seed {seed}: SA leaked"
            );
            assert_eq!(
                p.seen_b.installed.len(),
                p.seen_b.deleted.len(),
                "seed {seed}: CHILD SA leaked"
            );
            continue;
        }
        assert!(
            p.seen_a.established() && p.seen_b.established(),
            "seed {seed}"
        );
        assert_children_match(&p);
    }
    assert!(
        failures < 10,
        "{failures} of 40 negotiations failed at 30 % loss"
    );
}

#[test]
fn dead_link_gives_up_after_retransmits_and_leaks_nothing() {
    let mut p = pair(
        Link {
            drop: 1.0,
            ..Link::default()
        },
        7,
    );
    p.drive_for(Duration::from_secs(600));
    assert_eq!(
        p.seen_a.closed_with(),
        Some(&Error::RetransmitsExhausted(5))
    );
    assert_eq!(p.seen_a.sent, 6, "one send plus five retransmissions");
    assert!(p.a.sas().next().is_none() && p.b.sas().next().is_none());
}

/// Corrupts the last byte (inside the ICV or tag) of every IKE_AUTH.
#[allow(clippy::ptr_arg)] // matches Pair::tamper_to_b's signature
fn corrupt_ike_auth(bytes: &mut Vec<u8>) {
    if bytes.get(18) == Some(&35)
        && let Some(last) = bytes.last_mut()
    {
        *last ^= 0x01;
    }
}

#[test]
fn half_open_responder_sa_expires_when_ike_auth_never_verifies() {
    let mut p = pair(Link::default(), 4);
    p.tamper_to_b = Some(corrupt_ike_auth);
    p.drive_for(Duration::from_secs(600));
    assert!(p.b.sas().next().is_none(), "half-open SA must time out");
    assert_eq!(
        p.seen_a.closed_with(),
        Some(&Error::RetransmitsExhausted(5))
    );
}

#[test]
fn wrong_psk_fails_on_both_sides_with_authentication_failed() {
    let mut b = config_b();
    b.psk = Zeroizing::new(b"another secret".to_vec());
    let mut p = Pair::new(config_a(), b, Link::default(), 5);
    p.initiate();
    p.drive();
    assert_eq!(p.seen_a.closed_with(), Some(&Error::AuthenticationRejected));
    assert!(matches!(
        p.seen_b.closed_with(),
        Some(Error::AuthenticationFailed(_))
    ));
    assert!(p.seen_a.installed.is_empty() && p.seen_b.installed.is_empty());
    assert!(p.a.sas().next().is_none() && p.b.sas().next().is_none());
}

#[test]
fn no_common_ike_proposal_is_refused_with_no_proposal_chosen() {
    let mut b = config_b();
    b.ike.encr = vec![EncrAlg::ChaCha20Poly1305];
    let mut p = Pair::new(config_a(), b, Link::default(), 6);
    p.initiate();
    p.drive();
    assert_eq!(p.seen_a.closed_with(), Some(&Error::ProposalRejected));
    assert!(matches!(
        p.seen_b.closed_with(),
        Some(Error::NoProposalChosen(_))
    ));
    assert!(p.a.sas().next().is_none() && p.b.sas().next().is_none());
}

#[test]
fn no_common_esp_proposal_fails_the_child_and_deletes_the_ike_sa() {
    let mut b = config_b();
    b.child.esp.encr = vec![EncrAlg::AesCbc128];
    b.child.esp.integ = vec![IntegAlg::HmacSha1_96];
    let mut p = Pair::new(config_a(), b, Link::default(), 8);
    p.initiate();
    p.drive();
    assert!(
        p.seen_a
            .events
            .contains(&Event::ChildFailed(Error::ProposalRejected))
    );
    assert!(p.seen_a.installed.is_empty() && p.seen_b.installed.is_empty());
    assert!(
        p.a.sas().next().is_none() && p.b.sas().next().is_none(),
        "IKE SA deleted after the child failed"
    );
}

#[test]
fn invalid_ke_payload_makes_the_initiator_retry_with_the_peers_group() {
    let mut b = config_b();
    b.ike.dh = vec![DhGroup::Ecp256];
    let mut p = Pair::new(config_a(), b, Link::default(), 9);
    p.initiate();
    p.drive();
    assert!(p.seen_a.established() && p.seen_b.established());
    let suite = p.seen_a.events.iter().find_map(|e| match e {
        Event::IkeEstablished { suite, .. } => Some(suite.clone()),
        _ => None,
    });
    assert!(suite.expect("suite").ends_with("ECP_256"));
}

#[test]
fn disjoint_traffic_selectors_give_ts_unacceptable() {
    let mut b = config_b();
    b.child.remote_ts = vec![net("192.0.2.128", 25)];
    let mut p = Pair::new(config_a(), b, Link::default(), 10);
    p.initiate();
    p.drive();
    assert!(
        p.seen_a
            .events
            .contains(&Event::ChildFailed(Error::TsRejected))
    );
    assert!(matches!(
        p.seen_b
            .events
            .iter()
            .find(|e| matches!(e, Event::ChildFailed(_))),
        Some(Event::ChildFailed(Error::TsUnacceptable(_)))
    ));
}

#[test]
fn responder_narrows_traffic_selectors() {
    let mut b = config_b();
    b.child.local_ts = vec![net("203.0.113.0", 25)];
    let mut a = config_a();
    a.child.remote_ts = vec![net("203.0.113.0", 24)];
    let mut p = Pair::new(a, b, Link::default(), 11);
    p.initiate();
    p.drive();
    assert_children_match(&p);
    assert!(p.seen_a.installed[0].ts.contains("203.0.113.0/25"));
}

#[test]
fn transport_mode_is_negotiated_with_use_transport_mode() {
    let (mut a, mut b) = (config_a(), config_b());
    a.child.mode = Mode::Transport;
    b.child.mode = Mode::Transport;
    let mut p = Pair::new(a, b, Link::default(), 12);
    p.initiate();
    p.drive();
    assert_children_match(&p);
    assert_eq!(p.seen_a.installed[0].outbound.mode, Mode::Transport);
}

#[test]
fn delete_from_initiator_removes_both_sides() {
    let mut p = pair(Link::default(), 13);
    p.drive();
    let spi = p.a.sas().next().expect("sa").local_spi();
    assert!(p.a.delete(p.now, spi));
    p.drive();
    assert_eq!(p.seen_a.closed_with(), Some(&Error::LocallyClosed));
    assert_eq!(p.seen_b.closed_with(), Some(&Error::DeletedByPeer));
    assert_eq!((p.seen_a.deleted.len(), p.seen_b.deleted.len()), (1, 1));
    assert!(p.a.sas().next().is_none() && p.b.sas().next().is_none());
}

#[test]
fn liveness_check_detects_a_dead_peer_and_removes_the_child() {
    let mut a = config_a();
    a.dpd_delay = Some(Duration::from_secs(10));
    let mut p = Pair::new(a, config_b(), Link::default(), 14);
    p.initiate();
    p.drive_for(Duration::from_secs(1));
    assert!(p.seen_a.established());
    p.cut = true;
    p.drive_for(Duration::from_secs(600));
    assert_eq!(
        p.seen_a.closed_with(),
        Some(&Error::RetransmitsExhausted(5))
    );
    assert_eq!(p.seen_a.deleted.len(), 1);
}

#[test]
fn liveness_checks_keep_a_live_sa_up() {
    let mut a = config_a();
    a.dpd_delay = Some(Duration::from_secs(10));
    let mut p = Pair::new(a, config_b(), Link::default(), 15);
    p.initiate();
    p.drive_for(Duration::from_secs(100));
    assert!(p.seen_a.closed_with().is_none());
    assert!(p.seen_a.sent >= 10, "a check every 10 s");
}

#[test]
fn tampered_ike_auth_changes_nothing_on_the_responder() {
    let mut p = pair(Link::default(), 16);
    p.tamper_to_b = Some(corrupt_ike_auth);
    p.drive_for(Duration::from_secs(5));
    assert!(!p.seen_b.established());
    assert!(p.seen_b.closed_with().is_none());
    assert_eq!(
        p.b.sas().next().map(crate::ikev2::sa::IkeSa::state_name),
        Some("half-open")
    );
}

#[test]
fn duplicated_requests_are_answered_from_the_response_cache() {
    let link = Link {
        dup: 1.0,
        ..Link::default()
    };
    let mut p = pair(link, 17);
    p.drive();
    assert_children_match(&p);
    assert_eq!(
        p.seen_b.installed.len(),
        1,
        "a duplicate IKE_AUTH must not install twice"
    );
}

#[test]
fn delete_during_a_liveness_check_waits_for_its_answer() {
    let mut a = config_a();
    a.dpd_delay = Some(Duration::from_secs(10));
    let link = Link {
        delay: Duration::from_millis(100),
        ..Link::default()
    };
    let mut p = Pair::new(a, config_b(), link, 18);
    p.initiate();
    // Up after 0.4 s; the liveness check leaves 10 s later and is in flight
    // for 0.1 s each way.
    p.drive_for(Duration::from_millis(10_450));
    let spi = p.a.sas().next().expect("sa").local_spi();
    assert!(p.a.delete(p.now, spi));
    p.drive();
    assert_eq!(p.seen_a.closed_with(), Some(&Error::LocallyClosed));
    assert_eq!(
        p.seen_b.closed_with(),
        Some(&Error::DeletedByPeer),
        "B accepted the Delete: its message ID followed the check's"
    );
    assert!(p.a.sas().next().is_none() && p.b.sas().next().is_none());
}

#[test]
fn cookie_required_demands_a_cookie_from_every_ike_sa_init() {
    let mut b = config_b();
    b.cookie_required = true;
    let mut p = Pair::new(config_a(), b, Link::default(), 22);
    p.initiate();
    p.drive();
    assert_children_match(&p);
    assert_eq!(p.b.drops().cookie_sent, 1);
}

#[test]
fn a_responder_demanding_cookies_still_completes_the_handshake() {
    let mut p = pair(Link::default(), 20);
    p.b.set_cookie_threshold(0);
    p.drive();
    assert_children_match(&p);
    assert_eq!(p.b.drops().cookie_sent, 1);
    assert_eq!(
        p.seen_a.sent, 3,
        "IKE_SA_INIT, IKE_SA_INIT with the cookie, IKE_AUTH"
    );
}

#[test]
fn force_udp_encap_on_one_side_floats_both_to_4500_without_a_nat() {
    for force_a in [true, false] {
        let (mut a, mut b) = (config_a(), config_b());
        if force_a {
            a.force_udp_encap = true;
        } else {
            b.force_udp_encap = true;
        }
        let mut p = Pair::new(a, b, Link::default(), 23);
        p.initiate();
        p.drive();
        assert_children_match(&p);
        for (who, seen) in [("A", &p.seen_a), ("B", &p.seen_b)] {
            let sa = &seen.installed[0];
            for (dir, spec) in [("out", &sa.outbound), ("in", &sa.inbound)] {
                assert_eq!(
                    spec.encap.map(|e| (e.sport, e.dport)),
                    Some((4500, 4500)),
                    "{who} {dir}: ESP in UDP 4500 (force on A: {force_a})"
                );
            }
        }
    }
}

#[test]
fn behind_a_nat_ike_floats_to_4500_esp_is_encapsulated_and_keepalives_flow() {
    let mut p = Pair::new(config_a(), config_b(), Link::default(), 21);
    p.nat_a = true;
    p.initiate();
    p.drive_for(Duration::from_secs(70));
    assert_children_match(&p);
    let a = &p.seen_a.installed[0].outbound;
    assert_eq!(
        a.encap.map(|e| (e.sport, e.dport)),
        Some((4500, 4500)),
        "A floated to 4500"
    );
    let b = &p.seen_b.installed[0].outbound;
    assert_eq!(
        b.encap.map(|e| e.dport),
        Some(24500),
        "B sends to A's public port"
    );
    assert!(
        p.seen_a
            .events
            .iter()
            .any(|e| matches!(e, Event::IkeEstablished { nat: true, .. }))
    );
    assert_eq!(
        p.seen_a.keepalives, 3,
        "one NAT-keepalive every 20 s from the host behind the NAT"
    );
    assert_eq!(p.seen_b.keepalives, 0, "B is not behind a NAT");
}
