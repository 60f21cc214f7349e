//! Rekeys we start (RFC 7296 §1.3.2, §1.3.3, §2.8): CHILD SA with and
//! without PFS, the IKE SA, collisions, lost messages, and the lifetimes
//! that trigger them.

use std::time::Duration;

use libracoon::crypto::DhGroup;

use super::sim::{Link, Pair, Seen, config_a, config_b};
use crate::ikev2::config::{ChildLifetime, PeerConfig};
use crate::ikev2::endpoint::Endpoint;
use crate::ikev2::error::Error;
use crate::ikev2::output::{ChildSa, Event};

/// A and B with an IKE SA and its CHILD SA up.
fn established(a: PeerConfig, b: PeerConfig, link: Link, seed: u64) -> Pair {
    let mut p = Pair::new(a, b, link, seed);
    p.initiate();
    p.drive_for(Duration::from_secs(5));
    assert!(p.seen_a.established() && p.seen_b.established());
    p
}

fn clean(seed: u64) -> Pair {
    established(config_a(), config_b(), Link::default(), seed)
}

/// Our SPI of the endpoint's only IKE SA.
fn ike_spi(e: &Endpoint) -> u64 {
    let spis: Vec<u64> = e.sas().map(|s| s.local_spi()).collect();
    assert_eq!(spis.len(), 1, "exactly one IKE SA");
    spis[0]
}

/// The one live CHILD SA of each side; asserts they are the two ends of
/// one pair and that the core agrees with what it told the kernel.
fn one_pair(p: &Pair) -> (ChildSa, ChildSa) {
    let (a, b) = (p.seen_a.live(), p.seen_b.live());
    assert_eq!((a.len(), b.len()), (1, 1), "one live CHILD SA per side");
    let (a, b) = (a[0].clone(), b[0].clone());
    assert_eq!(a.outbound.id, b.inbound.id);
    assert_eq!(a.inbound.id, b.outbound.id);
    assert_eq!(*a.outbound.encr_key, *b.inbound.encr_key);
    assert_eq!(*a.inbound.encr_key, *b.outbound.encr_key);
    for (e, c) in [(&p.a, &a), (&p.b, &b)] {
        let sa = e.sas().next().expect("an IKE SA");
        let h = sa.child().expect("the core's CHILD SA");
        assert_eq!((h.inbound, h.outbound), (c.inbound.id, c.outbound.id));
    }
    (a, b)
}

fn count(p: &Pair, prefix: &str) -> usize {
    p.transcript
        .iter()
        .filter(|l| l.starts_with(prefix))
        .count()
}

fn rekeyed_events(seen: &Seen) -> usize {
    seen.events
        .iter()
        .filter(|e| matches!(e, Event::IkeRekeyed { .. }))
        .count()
}

#[test]
fn child_rekey_without_pfs_replaces_the_pair_on_both_sides() {
    let mut p = clean(1);
    let (old_a, _) = one_pair(&p);
    let spi = ike_spi(&p.a);
    p.a.rekey_child(p.now, spi).expect("rekey");
    p.drive();
    let (new_a, new_b) = one_pair(&p);
    assert_ne!(new_a.inbound.id.spi, old_a.inbound.id.spi);
    assert_ne!(new_a.outbound.id.spi, old_a.outbound.id.spi);
    assert_ne!(*new_a.inbound.encr_key, *old_a.inbound.encr_key);
    let old = (old_a.inbound.id.spi, old_a.outbound.id.spi);
    assert_eq!(p.seen_a.deleted, vec![old]);
    assert_eq!(p.seen_b.deleted, vec![(old.1, old.0)]);
    assert_eq!(new_b.inbound.id, new_a.outbound.id);
    assert!(
        p.transcript
            .iter()
            .any(|l| l == "A>B CREATE_CHILD_SA request 2 [ N(REKEY_SA) SA No TSi TSr ]")
    );
    assert!(
        p.transcript
            .iter()
            .any(|l| l == "B>A CREATE_CHILD_SA response 2 [ SA No TSi TSr ]")
    );
    assert!(
        p.transcript
            .iter()
            .any(|l| l == "A>B INFORMATIONAL request 3 [ D ]")
    );
    assert!(
        p.transcript
            .iter()
            .any(|l| l == "B>A INFORMATIONAL response 3 [ D ]")
    );
    assert_eq!(ike_spi(&p.a), spi, "the IKE SA stays");
}

#[test]
fn child_rekey_with_pfs_sends_ke_and_the_responder_answers_with_ke() {
    let mut a = config_a();
    a.child.pfs = Some(DhGroup::Ecp256);
    let mut p = established(a, config_b(), Link::default(), 2);
    let (old_a, _) = one_pair(&p);
    let spi = ike_spi(&p.a);
    p.a.rekey_child(p.now, spi).expect("rekey");
    p.drive();
    let (new_a, _) = one_pair(&p);
    assert_ne!(new_a.inbound.id.spi, old_a.inbound.id.spi);
    assert!(
        p.transcript
            .iter()
            .any(|l| l == "A>B CREATE_CHILD_SA request 2 [ N(REKEY_SA) SA No KE TSi TSr ]")
    );
    assert!(
        p.transcript
            .iter()
            .any(|l| l == "B>A CREATE_CHILD_SA response 2 [ SA No KE TSi TSr ]")
    );
    assert_eq!(p.seen_a.deleted.len(), 1);
    assert_eq!(p.seen_b.deleted.len(), 1);
}

#[test]
fn invalid_ke_in_a_child_rekey_is_retried_once_with_the_peers_group() {
    let mut a = config_a();
    a.child.pfs = Some(DhGroup::Ecp256);
    let mut b = config_b();
    b.ike.dh = vec![DhGroup::Curve25519];
    let mut p = established(a, b, Link::default(), 3);
    let spi = ike_spi(&p.a);
    p.a.rekey_child(p.now, spi).expect("rekey");
    p.drive();
    one_pair(&p);
    assert!(
        p.transcript
            .iter()
            .any(|l| l == "B>A CREATE_CHILD_SA response 2 [ N(INVAL_KE) ]")
    );
    assert!(
        p.transcript
            .iter()
            .any(|l| l == "A>B CREATE_CHILD_SA request 3 [ N(REKEY_SA) SA No KE TSi TSr ]")
    );
    assert_eq!(p.seen_a.installed.len(), 2);
}

#[test]
fn rekey_requests_wait_for_the_window_and_are_not_duplicated() {
    let mut a = config_a();
    a.dpd_delay = Some(Duration::from_secs(5));
    let mut p = established(a, config_b(), Link::default(), 4);
    // Let a liveness check go out, then ask for rekeys while it is in flight.
    p.link.delay = Duration::from_millis(50);
    p.drive_for(Duration::from_secs(5));
    let spi = ike_spi(&p.a);
    p.a.rekey_child(p.now, spi).expect("rekey");
    p.a.rekey_child(p.now, spi)
        .expect("asking twice is harmless");
    p.drive_for(Duration::from_secs(3));
    assert_eq!(count(&p, "A>B CREATE_CHILD_SA request"), 1);
    one_pair(&p);
    assert_eq!(p.seen_a.installed.len(), 2);
}

#[test]
fn ike_rekey_by_the_initiator_moves_the_child_and_the_new_sa_works() {
    let mut p = clean(5);
    let (child_a, _) = one_pair(&p);
    let old = ike_spi(&p.a);
    p.a.rekey_ike(p.now, old).expect("rekey");
    p.drive();
    let new = ike_spi(&p.a);
    assert_ne!(new, old);
    let b_sa = p.b.sas().next().expect("B's IKE SA");
    assert_eq!(b_sa.spi_i(), new, "B knows the new SA by A's new SPI");
    assert!(b_sa.is_established());
    assert_eq!(rekeyed_events(&p.seen_a), 1);
    assert_eq!(rekeyed_events(&p.seen_b), 1);
    assert!(
        p.transcript
            .iter()
            .any(|l| l == "A>B CREATE_CHILD_SA request 2 [ SA No KE ]")
    );
    assert!(
        p.transcript
            .iter()
            .any(|l| l == "A>B INFORMATIONAL request 3 [ D ]")
    );
    // The CHILD SA moved untouched.
    assert_eq!(one_pair(&p).0.inbound.id, child_a.inbound.id);
    assert!(p.seen_a.deleted.is_empty() && p.seen_b.deleted.is_empty());
    // The new IKE SA carries a CHILD SA rekey, from message ID 0.
    p.a.rekey_child(p.now, new).expect("rekey over the new SA");
    p.drive();
    let (after, _) = one_pair(&p);
    assert_ne!(after.inbound.id, child_a.inbound.id);
    assert!(
        p.transcript
            .iter()
            .any(|l| l == "A>B CREATE_CHILD_SA request 0 [ N(REKEY_SA) SA No TSi TSr ]")
    );
}

#[test]
fn ike_rekey_by_the_original_responder_works_too() {
    let mut p = clean(6);
    let old_b = ike_spi(&p.b);
    p.b.rekey_ike(p.now, old_b).expect("rekey");
    p.drive();
    let new_b = ike_spi(&p.b);
    assert_ne!(new_b, old_b);
    let a_sa = p.a.sas().next().expect("A's IKE SA");
    assert_eq!(a_sa.spi_i(), new_b, "B is the new SA's initiator");
    assert_eq!(a_sa.role(), crate::ikev2::sa::Role::Responder);
    one_pair(&p);
    let spi = ike_spi(&p.a);
    p.a.rekey_child(p.now, spi).expect("rekey over the new SA");
    p.drive();
    one_pair(&p);
    assert_eq!(p.seen_a.installed.len(), 2);
}

#[test]
fn simultaneous_child_rekeys_converge_to_one_pair() {
    for seed in 10..20 {
        let mut p = clean(seed);
        p.link.delay = Duration::from_millis(20);
        let (old, _) = one_pair(&p);
        let (sa, sb) = (ike_spi(&p.a), ike_spi(&p.b));
        p.a.rekey_child(p.now, sa).expect("rekey A");
        p.b.rekey_child(p.now, sb).expect("rekey B");
        p.drive();
        let (new, _) = one_pair(&p);
        assert_ne!(new.inbound.id, old.inbound.id, "seed {seed}");
        // Both exchanges completed: three pairs installed, two deleted.
        assert_eq!(p.seen_a.installed.len(), 3, "seed {seed}");
        assert_eq!(p.seen_a.deleted.len(), 2, "seed {seed}");
        assert_eq!(p.seen_b.deleted.len(), 2, "seed {seed}");
        assert_eq!(ike_spi(&p.a), sa);
    }
}

#[test]
fn simultaneous_ike_rekeys_complete_exactly_one() {
    for seed in 20..30 {
        let mut p = clean(seed);
        p.link.delay = Duration::from_millis(20);
        let (child, _) = one_pair(&p);
        let (sa, sb) = (ike_spi(&p.a), ike_spi(&p.b));
        p.a.rekey_ike(p.now, sa).expect("rekey A");
        p.b.rekey_ike(p.now, sb).expect("rekey B");
        p.drive();
        let (na, nb) = (ike_spi(&p.a), ike_spi(&p.b));
        assert!(na != sa && nb != sb, "seed {seed}");
        let a_sa = p.a.sas().next().expect("A");
        let b_sa = p.b.sas().next().expect("B");
        assert_eq!((a_sa.spi_i(), a_sa.spi_r()), (b_sa.spi_i(), b_sa.spi_r()));
        let refused = p
            .transcript
            .iter()
            .filter(|l| l.ends_with("[ N(TEMP_FAIL) ]"))
            .count();
        assert_eq!(refused, 1, "seed {seed}: {:#?}", p.transcript);
        assert_eq!(one_pair(&p).0.inbound.id, child.inbound.id);
    }
}

#[test]
fn ike_and_child_rekeys_at_once_retry_after_temporary_failure() {
    let mut p = clean(31);
    p.link.delay = Duration::from_millis(20);
    let (sa, sb) = (ike_spi(&p.a), ike_spi(&p.b));
    p.a.rekey_ike(p.now, sa).expect("rekey IKE");
    p.b.rekey_child(p.now, sb).expect("rekey CHILD");
    p.drive();
    assert!(count(&p, "A>B CREATE_CHILD_SA response 0 [ N(TEMP_FAIL) ]") >= 1);
    assert_ne!(ike_spi(&p.a), sa, "the IKE SA rekey went through on retry");
    let (_, b) = one_pair(&p);
    assert_eq!(p.seen_b.installed.len(), 2, "the CHILD SA rekey too");
    assert_eq!(b.inbound.id, p.seen_b.installed[1].inbound.id);
}

/// Seeds of the lossy-link test (raise locally to stress it).
const SEEDS: u64 = 100;

#[test]
fn lost_messages_during_rekeys_end_in_one_pair_or_a_clean_teardown() {
    let link = Link {
        drop: 0.25,
        dup: 0.1,
        reorder: 0.1,
        delay: Duration::from_millis(30),
    };
    let mut completed = 0;
    for seed in 40..SEEDS {
        let mut a = config_a();
        let mut b = config_b();
        for c in [&mut a, &mut b] {
            c.dpd_delay = Some(Duration::from_secs(20));
        }
        let mut p = Pair::new(a, b, link, seed);
        p.initiate();
        p.drive_for(Duration::from_secs(120));
        if !(p.seen_a.established() && p.seen_b.established()) || p.seen_a.live().len() != 1 {
            continue;
        }
        let first = p.seen_a.live()[0].inbound.id;
        let spi_a = p.a.sas().next().map(|s| s.local_spi());
        if let Some(spi) = spi_a {
            let _ = p.a.rekey_child(p.now, spi);
            let _ = p.a.rekey_ike(p.now, spi);
        }
        let spi_b = p.b.sas().next().map(|s| s.local_spi());
        if let Some(spi) = spi_b {
            let _ = p.b.rekey_child(p.now, spi);
            let _ = p.b.rekey_ike(p.now, spi);
        }
        p.drive_for(Duration::from_secs(300));
        // Settle on a clean link: a side whose IKE SA died of the losses
        // is noticed by the other's liveness checks.
        p.link = Link::default();
        p.drive_for(Duration::from_secs(300));
        let (la, lb) = (p.seen_a.live().len(), p.seen_b.live().len());
        let (ia, ib) = (p.a.sas().count(), p.b.sas().count());
        if (ia, ib) == (1, 1) && (la, lb) == (1, 1) {
            let (a, _) = one_pair(&p);
            if a.inbound.id != first {
                completed += 1;
            }
        } else {
            assert_eq!(
                (ia, ib, la, lb),
                (0, 0, 0, 0),
                "seed {seed}: torn down cleanly"
            );
        }
    }
    println!("completed {completed}");
    assert!(
        completed >= 10,
        "most seeds complete the rekeys: {completed}"
    );
}

#[test]
fn ike_lifetime_rekeys_the_ike_sa_from_handle_timeout() {
    let mut a = config_a();
    a.ike_lifetime = Some(Duration::from_secs(100));
    let mut p = established(a, config_b(), Link::default(), 7);
    let old = ike_spi(&p.a);
    p.drive_for(Duration::from_secs(74));
    assert_eq!(ike_spi(&p.a), old, "not before 80% of the lifetime");
    p.drive_for(Duration::from_secs(12));
    assert_ne!(ike_spi(&p.a), old, "by 90% of it");
    assert_eq!(rekeyed_events(&p.seen_a), 1);
    one_pair(&p);
    // The new SA runs its own lifetime: rekeyed again about 85 s later.
    p.drive_for(Duration::from_secs(95));
    assert_eq!(rekeyed_events(&p.seen_a), 2);
    assert_eq!(p.b.sas().count(), 1);
}

#[test]
fn both_peers_with_one_ike_lifetime_keep_exactly_one_ike_sa() {
    let mut a = config_a();
    let mut b = config_b();
    for c in [&mut a, &mut b] {
        c.ike_lifetime = Some(Duration::from_secs(60));
    }
    let mut p = established(a, b, Link::default(), 8);
    p.link.delay = Duration::from_millis(20);
    p.drive_for(Duration::from_secs(600));
    let a_sa = p.a.sas().next().expect("A");
    let b_sa = p.b.sas().next().expect("B");
    assert_eq!((p.a.sas().count(), p.b.sas().count()), (1, 1));
    assert_eq!((a_sa.spi_i(), a_sa.spi_r()), (b_sa.spi_i(), b_sa.spi_r()));
    assert!(rekeyed_events(&p.seen_a) >= 9, "about every 50 s");
    one_pair(&p);
}

#[test]
fn an_ike_sa_that_cannot_be_rekeyed_is_deleted_at_its_hard_lifetime() {
    let mut a = config_a();
    a.ike_lifetime = Some(Duration::from_secs(100));
    let mut p = established(a, config_b(), Link::default(), 9);
    p.cut = true;
    p.drive_for(Duration::from_secs(600));
    assert!(p.a.sas().next().is_none());
    assert!(p.seen_a.live().is_empty());
}

#[test]
fn soft_expiry_rekeys_the_child_once_and_ignores_replaced_sas() {
    let mut p = clean(11);
    let (old, _) = one_pair(&p);
    let spi = ike_spi(&p.a);
    assert_eq!(p.a.on_soft_expire(p.now, old.inbound.id), Some(spi));
    assert_eq!(p.a.on_soft_expire(p.now, old.outbound.id), Some(spi));
    p.drive();
    assert_eq!(count(&p, "A>B CREATE_CHILD_SA request"), 1);
    let (new, _) = one_pair(&p);
    assert_ne!(new.inbound.id, old.inbound.id);
    assert_eq!(p.a.on_soft_expire(p.now, old.inbound.id), None, "gone");
    p.drive();
    assert_eq!(count(&p, "A>B CREATE_CHILD_SA request"), 1);
}

#[test]
fn soft_expiry_on_both_sides_at_once_converges() {
    let mut p = clean(12);
    p.link.delay = Duration::from_millis(20);
    let (a, b) = one_pair(&p);
    assert!(p.a.on_soft_expire(p.now, a.outbound.id).is_some());
    assert!(p.b.on_soft_expire(p.now, b.inbound.id).is_some());
    p.drive();
    let (new, _) = one_pair(&p);
    assert_ne!(new.inbound.id, a.inbound.id);
}

#[test]
fn child_sas_carry_the_configured_lifetime_with_jittered_soft_limits() {
    let mut a = config_a();
    a.child.lifetime = ChildLifetime {
        time: Some(Duration::from_secs(3600)),
        bytes: Some(1 << 30),
    };
    let mut b = config_b();
    b.child.lifetime = a.child.lifetime;
    let p = established(a, b, Link::default(), 13);
    let (ca, cb) = one_pair(&p);
    for spec in [&ca.inbound, &ca.outbound, &cb.inbound, &cb.outbound] {
        let l = spec.lifetime;
        assert_eq!(l.hard_time, Some(Duration::from_secs(3600)));
        assert_eq!(l.hard_bytes, Some(1 << 30));
        let soft = l.soft_time.expect("soft time");
        assert!(soft >= Duration::from_secs(2880) && soft < Duration::from_secs(3240));
        assert!(l.soft_bytes.is_some_and(|s| s < 1 << 30));
    }
    assert_ne!(ca.inbound.lifetime.soft_time, cb.inbound.lifetime.soft_time);
}

#[test]
fn hard_expiry_of_the_current_child_deletes_it_with_the_peer() {
    let mut p = clean(14);
    let (a, _) = one_pair(&p);
    assert_eq!(
        p.a.on_hard_expire(p.now, a.outbound.id),
        Some(ike_spi(&p.a))
    );
    p.drive();
    assert!(p.seen_a.live().is_empty() && p.seen_b.live().is_empty());
    assert!(
        p.transcript
            .iter()
            .any(|l| l == "A>B INFORMATIONAL request 2 [ D ]")
    );
    assert!(
        p.a.sas()
            .next()
            .is_some_and(|s| s.is_established() && s.child().is_none())
    );
    assert_eq!(p.a.on_hard_expire(p.now, a.outbound.id), None);
}

#[test]
fn hard_expiry_of_a_replaced_child_only_forgets_it() {
    let mut p = clean(15);
    p.link.delay = Duration::from_millis(10);
    let (old, _) = one_pair(&p);
    let spi = ike_spi(&p.a);
    p.a.rekey_child(p.now, spi).expect("rekey");
    // The rekey completes; the Delete of the old pair is in flight.
    p.drive_for(Duration::from_millis(25));
    assert_eq!(p.seen_a.installed.len(), 2);
    assert_eq!(p.a.on_hard_expire(p.now, old.inbound.id), Some(spi));
    p.drive();
    one_pair(&p);
    assert_eq!(
        p.seen_a.deleted.len(),
        1,
        "once, not again on the Delete's answer"
    );
    assert_eq!(count(&p, "A>B CREATE_CHILD_SA request"), 1);
}

#[test]
fn an_ike_sa_replaced_by_the_peer_is_forgotten_if_its_delete_is_lost() {
    let mut p = clean(16);
    p.link.delay = Duration::from_millis(10);
    let old = ike_spi(&p.a);
    p.a.rekey_ike(p.now, old).expect("rekey");
    // Request delivered, answer in flight; A's Delete of the old SA will be lost.
    p.drive_for(Duration::from_millis(15));
    p.cut = true;
    p.drive_for(Duration::from_secs(200));
    assert_eq!(p.b.sas().count(), 2, "B still waits for the Delete");
    p.drive_for(Duration::from_secs(200));
    assert_eq!((p.a.sas().count(), p.b.sas().count()), (1, 1));
    let (a_sa, b_sa) = (p.a.sas().next().expect("A"), p.b.sas().next().expect("B"));
    assert_eq!(a_sa.local_spi(), b_sa.spi_i());
    assert_ne!(a_sa.local_spi(), old);
    assert_eq!(
        p.seen_b.live().len(),
        1,
        "the CHILD SA lives on in the new IKE SA"
    );
}

#[test]
fn a_child_sa_is_created_again_after_a_hard_expiry() {
    let mut a = config_a();
    a.child.pfs = Some(DhGroup::Curve25519);
    let mut p = established(a, config_b(), Link::default(), 17);
    let spi = ike_spi(&p.a);
    assert!(matches!(
        p.a.create_child(p.now, spi),
        Err(Error::NotReady(_))
    ));
    let (old, _) = one_pair(&p);
    p.a.on_hard_expire(p.now, old.inbound.id);
    p.drive();
    assert!(p.seen_a.live().is_empty() && p.seen_b.live().is_empty());
    p.a.create_child(p.now, spi).expect("create");
    p.drive();
    let (new, _) = one_pair(&p);
    assert_ne!(new.inbound.id, old.inbound.id);
    assert!(
        p.transcript
            .iter()
            .any(|l| l == "A>B CREATE_CHILD_SA request 3 [ SA No KE TSi TSr ]")
    );
    // And it can be rekeyed like the first one.
    p.a.rekey_child(p.now, spi).expect("rekey");
    p.drive();
    assert_ne!(one_pair(&p).0.inbound.id, new.inbound.id);
    assert!(matches!(p.a.rekey_child(p.now, 1), Err(Error::NoSuchSa)));
}

#[test]
fn deleting_during_a_rekey_leaves_nothing_behind() {
    for ike in [false, true] {
        let mut p = clean(18);
        p.link.delay = Duration::from_millis(10);
        let spi = ike_spi(&p.a);
        if ike {
            p.a.rekey_ike(p.now, spi).expect("rekey IKE");
        } else {
            p.a.rekey_child(p.now, spi).expect("rekey CHILD");
        }
        assert!(p.a.delete(p.now, spi));
        p.drive();
        assert_eq!(
            (p.a.sas().count(), p.b.sas().count()),
            (0, 0),
            "IKE rekey {ike}"
        );
        assert!(p.seen_a.live().is_empty() && p.seen_b.live().is_empty());
    }
}
