//! Two engines talking to each other through a fake Kerberos: the
//! exchanges, retransmission, the reply cache, replays, tampering,
//! DELETE, EPOCH changes and rekeying, without a KDC. The real Kerberos
//! path is covered by tests/tests/kinkd.rs against an MIT KDC.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use libracoon::crypto::SeededRandom;
use libracoon::ipsec::{
    EspAuth, EspEncr, IpsecMode, Lifetime, SaDirection, SaId, SaSpec, Selector,
};

use super::fuzzing::ToyKerberos as FakeKrb;
use super::*;
use crate::krb5::KrbErrorCode;

const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn gcm() -> EspProposal {
    EspProposal {
        encr: EspEncr {
            id: 20,
            key_bits: 128,
        },
        auth: None,
    }
}

fn cbc_sha256() -> EspProposal {
    EspProposal {
        encr: EspEncr {
            id: 12,
            key_bits: 256,
        },
        auth: Some(EspAuth { id: 12 }),
    }
}

fn config(me: &str, peer: &str, principal: &str, proposals: Vec<EspProposal>) -> PeerConfig {
    PeerConfig {
        name: format!("peer-{peer}"),
        address: SocketAddr::new(ip(peer), 910),
        local: ip(me),
        principal: principal.into(),
        reqid: 7,
        mode: IpsecMode::Transport,
        selector: Selector::ranges((ip(me), ip(me)), (ip(peer), ip(peer))),
        proposals,
        lifetime: Lifetime {
            soft_time: Some(Duration::from_secs(480)),
            hard_time: Some(Duration::from_secs(600)),
            ..Lifetime::default()
        },
        user_to_user: false,
        retransmit_base: Duration::from_secs(1),
        retransmit_tries: 5,
    }
}

/// One end: engine, fake Kerberos, and what it installed.
struct Side {
    engine: Engine,
    krb: FakeKrb,
    addr: SocketAddr,
    sas: HashMap<SaId, SaSpec>,
    events: Vec<Event>,
    sent: Vec<(SocketAddr, Vec<u8>)>,
}

impl Side {
    fn new(
        me: &str,
        peer: &str,
        principal: &str,
        peer_principal: &str,
        seed: u64,
        proposals: Vec<EspProposal>,
    ) -> Self {
        Self {
            engine: Engine::new(
                vec![config(me, peer, peer_principal, proposals)],
                1_000,
                Box::new(SeededRandom::new(seed)),
            ),
            krb: FakeKrb::new(principal),
            addr: SocketAddr::new(ip(me), 910),
            sas: HashMap::new(),
            events: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// Applies outputs; tickets are granted at once.
    fn drain(&mut self, now: Instant) {
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Send { to, bytes } => self.sent.push((to, bytes)),
                Output::FetchTicket { peer, kind, .. } => {
                    self.engine
                        .ticket_ready(now, &mut self.krb, &peer, kind, Ok(()));
                }
                Output::InstallSa(spec) => {
                    self.sas.insert(spec.id, *spec);
                }
                Output::DeleteSa(id) => {
                    self.sas.remove(&id);
                }
                Output::Event(e) => self.events.push(e),
            }
        }
    }

    fn take_sent(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.sent)
            .into_iter()
            .map(|(_, b)| b)
            .collect()
    }

    fn deliver(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.engine.handle_datagram(now, &mut self.krb, from, bytes);
        self.drain(now);
    }

    fn established(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Established { .. }))
            .count()
    }
}

fn pair() -> (Side, Side) {
    let a = Side::new(A, B, "kink/a@T", "kink/b@T", 1, vec![gcm(), cbc_sha256()]);
    let b = Side::new(B, A, "kink/b@T", "kink/a@T", 2, vec![gcm(), cbc_sha256()]);
    (a, b)
}

/// A pair whose responder does not accept the initiator's first
/// (optimistic) proposal: CREATE takes three messages.
fn three_way_pair() -> (Side, Side) {
    let a = Side::new(A, B, "kink/a@T", "kink/b@T", 1, vec![gcm(), cbc_sha256()]);
    let b = Side::new(B, A, "kink/b@T", "kink/a@T", 2, vec![cbc_sha256()]);
    (a, b)
}

/// The first three messages of a three-message CREATE, delivered: A's
/// CREATE to B, B's REPLY (with ACKREQ) to A; returns A's ACK, not yet
/// delivered.
fn up_to_the_ack(now: Instant, a: &mut Side, b: &mut Side) -> Vec<u8> {
    acquire(now, a);
    let create = a.take_sent();
    b.deliver(now, a.addr, &create[0]);
    let reply = b.take_sent();
    a.deliver(now, b.addr, &reply[0]);
    a.take_sent().remove(0)
}

/// Runs messages back and forth until both are quiet.
fn exchange(now: Instant, a: &mut Side, b: &mut Side) {
    for _ in 0..10 {
        let from_a = a.take_sent();
        let from_b = b.take_sent();
        if from_a.is_empty() && from_b.is_empty() {
            return;
        }
        for m in from_a {
            b.deliver(now, a.addr, &m);
        }
        for m in from_b {
            a.deliver(now, b.addr, &m);
        }
    }
}

/// Both ends hold matching SAs: each outbound SA equals the other's
/// inbound SA with the same SPI, keys included.
fn assert_keys_match(a: &Side, b: &Side) {
    let outbound = |s: &Side| -> Vec<SaSpec> {
        s.sas
            .values()
            .filter(|x| x.direction == SaDirection::Outbound)
            .cloned()
            .collect()
    };
    for (from, to) in [(a, b), (b, a)] {
        let outs = outbound(from);
        assert!(!outs.is_empty(), "no outbound SA");
        for out in outs {
            let inb = to
                .sas
                .get(&out.id)
                .expect("peer has the matching inbound SA");
            assert_eq!(inb.direction, SaDirection::Inbound);
            assert_eq!(*inb.encr_key, *out.encr_key, "encryption keys differ");
            assert_eq!(*inb.auth_key, *out.auth_key, "integrity keys differ");
            assert_eq!(inb.encr, out.encr);
            assert_eq!(inb.src, out.src);
        }
    }
}

fn acquire(now: Instant, a: &mut Side) {
    a.engine.acquire(now, &mut a.krb, 7).expect("reqid known");
    a.drain(now);
}

#[test]
fn optimistic_create_takes_two_messages() {
    let now = Instant::now();
    let (mut a, mut b) = pair();
    acquire(now, &mut a);
    assert_eq!(
        a.sas.len(),
        1,
        "optimistic inbound SA before the CREATE leaves"
    );
    let create = a.take_sent();
    assert_eq!(create.len(), 1);
    b.deliver(now, a.addr, &create[0]);
    assert_eq!(b.sas.len(), 2, "responder installs both SAs");
    let reply = b.take_sent();
    let parsed = Message::parse(&reply[0]).expect("reply parses");
    assert!(!parsed.ack_request(), "optimistic choice needs no ACK");
    a.deliver(now, b.addr, &reply[0]);
    assert!(a.take_sent().is_empty(), "no ACK");
    assert_eq!(a.sas.len(), 2);
    assert_keys_match(&a, &b);
    assert_eq!((a.established(), b.established()), (1, 1));
    assert_eq!(a.engine.stats().creates, 1);
    assert_eq!(b.engine.stats().creates, 1);
    let sa = a.engine.sas();
    assert_eq!(sa.len(), 1);
    assert_eq!(sa[0].state, "established");
    assert_eq!(sa[0].esp, qm::esp_name(&gcm()));
    assert!(a.engine.poll_timeout().is_none_or(|t| t > now));
}

#[test]
fn another_choice_takes_three_messages() {
    let now = Instant::now();
    let (mut a, mut b) = three_way_pair();
    acquire(now, &mut a);
    let create = a.take_sent();
    b.deliver(now, a.addr, &create[0]);
    assert_eq!(
        b.sas.len(),
        1,
        "responder waits for the ACK before its outbound SA"
    );
    let reply = b.take_sent();
    assert!(Message::parse(&reply[0]).expect("parses").ack_request());
    a.deliver(now, b.addr, &reply[0]);
    let ack = a.take_sent();
    assert_eq!(ack.len(), 1);
    assert_eq!(
        Message::parse(&ack[0]).expect("ack").msg_type,
        MessageType::Ack
    );
    b.deliver(now, a.addr, &ack[0]);
    assert_keys_match(&a, &b);
    assert!(
        a.sas.values().all(|s| s.encr.id == 12),
        "chosen proposal, not the optimistic one"
    );
    assert!(b.events.iter().any(|e| matches!(
        e,
        Event::Established {
            three_way: true,
            ..
        }
    )));
}

#[test]
fn lost_reply_is_answered_from_the_cache_after_a_fresh_ap_req() {
    let now = Instant::now();
    let (mut a, mut b) = pair();
    acquire(now, &mut a);
    let create = a.take_sent();
    b.deliver(now, a.addr, &create[0]);
    let _lost = b.take_sent();
    let later = now + Duration::from_millis(1_100);
    a.engine.handle_timeout(later, &mut a.krb);
    a.drain(later);
    let again = a.take_sent();
    assert_eq!(again.len(), 1);
    assert_ne!(again[0], create[0], "retransmission carries a fresh AP-REQ");
    assert_eq!(
        Message::parse(&again[0]).expect("parses").xid,
        Message::parse(&create[0]).expect("parses").xid
    );
    b.deliver(later, a.addr, &again[0]);
    assert_eq!(b.engine.stats().replies_resent, 1);
    assert_eq!(b.sas.len(), 2, "no second pair");
    exchange(later, &mut a, &mut b);
    assert_keys_match(&a, &b);
    assert_eq!(a.engine.stats().retransmits, 1);
}

#[test]
fn verbatim_replay_is_dropped_without_answer() {
    let now = Instant::now();
    let (mut a, mut b) = pair();
    acquire(now, &mut a);
    let create = a.take_sent();
    b.deliver(now, a.addr, &create[0]);
    b.take_sent();
    b.deliver(now, a.addr, &create[0]);
    assert!(b.take_sent().is_empty(), "a replay gets no answer");
    assert_eq!(b.engine.stats().replayed, 1);
    assert_eq!(b.sas.len(), 2);
}

#[test]
fn tampered_create_is_dropped_and_nothing_installed() {
    let now = Instant::now();
    let (mut a, mut b) = pair();
    acquire(now, &mut a);
    let create = a.take_sent().remove(0);
    let mut tampered = create;
    let at = tampered.len() - 20;
    tampered[at] ^= 1;
    b.deliver(now, a.addr, &tampered);
    assert!(b.sas.is_empty());
    assert!(b.take_sent().is_empty());
    assert_eq!(b.engine.stats().bad_checksum, 1);
}

#[test]
fn every_truncation_and_flip_is_survived_and_counted() {
    let now = Instant::now();
    let (mut a, mut b) = pair();
    acquire(now, &mut a);
    let create = a.take_sent().remove(0);
    for len in 0..create.len() {
        b.deliver(now, a.addr, &create[..len]);
    }
    let before = b.engine.stats();
    for i in 0..create.len() {
        let mut m = create.clone();
        m[i] ^= 0x80;
        // Each flip on its own: a fresh replay cache, so every one reaches
        // the checksum (or fails before it) rather than the replay check.
        b.krb.seen.clear();
        b.deliver(now, a.addr, &m);
    }
    let after = b.engine.stats();
    assert!(b.sas.is_empty(), "nothing installed from corrupted CREATEs");
    assert_eq!(after.creates, 0);
    let refused = (after.malformed - before.malformed)
        + (after.bad_checksum - before.bad_checksum)
        + (after.krb_errors_sent - before.krb_errors_sent);
    assert_eq!(
        usize::try_from(refused).expect("fits"),
        create.len(),
        "every flipped CREATE is refused and counted: {after:?}"
    );
}

#[test]
fn stale_keytab_answers_krb_error_and_initiator_fails() {
    let now = Instant::now();
    let (mut a, mut b) = pair();
    b.krb.refuse_with = Some(KrbErrorCode::KRB_AP_ERR_BADKEYVER);
    acquire(now, &mut a);
    exchange(now, &mut a, &mut b);
    assert_eq!(b.engine.stats().krb_errors_sent, 1);
    assert_eq!(a.engine.stats().krb_errors_received, 1);
    let failed = a.events.iter().find_map(|e| match e {
        Event::Failed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(
        failed
            .expect("a failure event")
            .contains("KRB_AP_ERR_BADKEYVER")
    );
    assert!(a.sas.is_empty(), "optimistic inbound SA removed");
    assert!(a.engine.sas().is_empty());
}

#[test]
fn unanswered_create_gives_up_after_the_configured_tries() {
    let mut now = Instant::now();
    let (mut a, _b) = pair();
    acquire(now, &mut a);
    for _ in 0..10 {
        now += Duration::from_secs(40);
        a.engine.handle_timeout(now, &mut a.krb);
        a.drain(now);
    }
    assert_eq!(a.take_sent().len(), 5);
    assert!(a.sas.is_empty());
    assert!(a.events.iter().any(|e| matches!(e, Event::Failed { .. })));
    assert!(a.engine.poll_timeout().is_none());
}

#[test]
fn delete_removes_both_ends_after_grace() {
    let now = Instant::now();
    let (mut a, mut b) = pair();
    acquire(now, &mut a);
    exchange(now, &mut a, &mut b);
    assert_eq!(a.engine.delete(now, &mut a.krb, "peer-192.0.2.2"), 1);
    a.drain(now);
    assert_eq!(
        a.sas.len(),
        1,
        "outbound gone at once, inbound kept for the grace"
    );
    exchange(now, &mut a, &mut b);
    assert_eq!(b.sas.len(), 1);
    assert!(b.events.iter().any(|e| matches!(e, Event::Deleted { .. })));
    let later = now + DELETE_GRACE + Duration::from_secs(1);
    for s in [&mut a, &mut b] {
        s.engine.handle_timeout(later, &mut s.krb);
        s.drain(later);
        assert!(s.sas.is_empty());
        assert!(s.engine.sas().is_empty());
    }
}

#[test]
fn peer_restart_removes_its_old_pairs() {
    let now = Instant::now();
    let (mut a, mut b) = pair();
    acquire(now, &mut a);
    exchange(now, &mut a, &mut b);
    // B restarts: new engine, new EPOCH, no SAs.
    let mut b2 = Side::new(B, A, "kink/b@T", "kink/a@T", 3, vec![gcm()]);
    b2.engine.epoch = 2_000;
    b2.krb.seen = b.krb.seen.clone();
    b2.engine
        .initiate(now, &mut b2.krb, "peer-192.0.2.1")
        .expect("known");
    b2.drain(now);
    exchange(now, &mut b2, &mut a);
    assert!(
        a.events
            .iter()
            .any(|e| matches!(e, Event::PeerRestarted { .. }))
    );
    assert_eq!(a.engine.sas().len(), 1, "only the new pair");
    assert_keys_match(&a, &b2);
}

#[test]
fn soft_expiry_rekeys_then_deletes_the_old_pair() {
    let now = Instant::now();
    let (mut a, mut b) = pair();
    acquire(now, &mut a);
    exchange(now, &mut a, &mut b);
    let old = a.engine.sas()[0].clone();
    let id = SaId {
        dst: ip(A),
        spi: old.spi_in,
    };
    // The responder's soft expiry does nothing; the initiator rekeys.
    let b_out = b
        .sas
        .values()
        .find(|s| s.direction == SaDirection::Outbound)
        .expect("out")
        .id;
    b.engine.on_expire(now, &mut b.krb, b_out, false);
    b.drain(now);
    assert!(b.take_sent().is_empty());
    a.engine.on_expire(now, &mut a.krb, id, false);
    a.drain(now);
    exchange(now, &mut a, &mut b);
    let sas = a.engine.sas();
    assert!(
        sas.iter()
            .any(|s| s.spi_in != old.spi_in && s.state == "established")
    );
    assert!(
        sas.iter()
            .any(|s| s.spi_in == old.spi_in && s.state == "deleting")
    );
    assert!(
        a.events
            .iter()
            .any(|e| matches!(e, Event::Established { rekey: true, .. }))
    );
}

#[test]
fn unknown_reqid_and_peer_are_errors() {
    let now = Instant::now();
    let (mut a, _) = pair();
    assert_eq!(
        a.engine.acquire(now, &mut a.krb, 99),
        Err(Error::UnknownReqid(99))
    );
    assert!(a.engine.initiate(now, &mut a.krb, "nobody").is_err());
}

#[test]
fn malformed_command_gets_a_kink_error() {
    let now = Instant::now();
    let (_, mut b) = pair();
    // A CREATE header with major version 2.
    let mut m = Message::new(MessageType::Create, 42).emit();
    m[1] = 0x20;
    b.deliver(now, SocketAddr::new(ip(A), 910), &m);
    let sent = b.take_sent();
    assert_eq!(sent.len(), 1);
    let reply = Message::parse(&sent[0]).expect("reply");
    assert_eq!(reply.xid, 42);
    assert!(
        matches!(reply.payloads[0], crate::wire::Payload::Error(e) if e == crate::wire::ErrorCode::InvMaj)
    );
    assert_eq!(b.engine.stats().malformed, 1);
}

#[test]
fn shutdown_deletes_at_the_peer_and_removes_every_sa_at_once() {
    let now = Instant::now();
    let (mut a, mut b) = pair();
    acquire(now, &mut a);
    exchange(now, &mut a, &mut b);
    assert_eq!(a.engine.shutdown(now, &mut a.krb), 1);
    a.drain(now);
    assert!(a.sas.is_empty(), "no SA left behind: {:?}", a.sas.keys());
    assert!(a.engine.sas().is_empty());
    exchange(now, &mut a, &mut b);
    assert_eq!(
        b.sas.len(),
        1,
        "B keeps only its inbound SA for the grace period"
    );
}

#[test]
fn a_late_ack_for_a_deleted_pair_installs_nothing() {
    let now = Instant::now();
    let (mut a, mut b) = three_way_pair();
    let ack = up_to_the_ack(now, &mut a, &mut b);
    // B's operator deletes the half-made pair before the ACK arrives.
    assert_eq!(b.engine.delete(now, &mut b.krb, "all"), 1);
    b.drain(now);
    b.take_sent();
    let installed = b.sas.len();
    b.deliver(now, a.addr, &ack);
    assert_eq!(b.sas.len(), installed, "no outbound SA resurrected");
    assert!(b.engine.sas().iter().all(|s| s.state == "deleting"));
}

#[test]
fn a_responder_without_ack_deletes_the_pair_at_the_initiator() {
    let mut now = Instant::now();
    let (mut a, mut b) = three_way_pair();
    let _lost = up_to_the_ack(now, &mut a, &mut b); // and so is every ACK
    for _ in 0..6 {
        now += Duration::from_secs(40);
        b.engine.handle_timeout(now, &mut b.krb);
        b.drain(now);
    }
    let sent = b.take_sent();
    let delete = sent
        .iter()
        .find(|m| Message::parse(m).is_ok_and(|m| m.msg_type == MessageType::Delete))
        .expect("B tells A with DELETE");
    a.deliver(now, b.addr, delete);
    assert!(
        a.sas.values().all(|s| s.direction == SaDirection::Inbound),
        "A's outbound SA into the void is gone"
    );
    assert!(
        b.events
            .iter()
            .any(|e| matches!(e, Event::Failed { reason, .. } if reason.contains("ACK")))
    );
}

#[test]
fn errors_and_tgts_go_only_to_configured_peers() {
    let now = Instant::now();
    let (_, mut b) = pair();
    let stranger = SocketAddr::new(ip("203.0.113.9"), 910);
    let mut bad = Message::new(MessageType::Create, 42).emit();
    bad[1] = 0x20;
    b.deliver(now, stranger, &bad);
    let gettgt = {
        let mut m = Message::new(MessageType::GetTgt, 43);
        m.payloads
            .push(crate::wire::Payload::TgtReq(b"kink/b@T".as_slice().into()));
        m.emit()
    };
    b.deliver(now, stranger, &gettgt);
    assert!(b.take_sent().is_empty(), "nothing reflected at a stranger");
    // From the peer, the malformed command gets its KINK_ERROR.
    b.deliver(now, SocketAddr::new(ip(A), 910), &bad);
    assert_eq!(b.take_sent().len(), 1);
}

#[test]
fn a_refused_install_deletes_the_pair_and_tells_the_peer() {
    let now = Instant::now();
    let (mut a, mut b) = pair();
    acquire(now, &mut a);
    exchange(now, &mut a, &mut b);
    let out = a
        .sas
        .values()
        .find(|s| s.direction == SaDirection::Outbound)
        .expect("out")
        .id;
    a.engine.install_failed(now, &mut a.krb, out);
    a.drain(now);
    exchange(now, &mut a, &mut b);
    assert!(a.engine.sas().iter().all(|s| s.state == "deleting"));
    assert!(b.events.iter().any(|e| matches!(e, Event::Deleted { .. })));
}

#[test]
fn an_acquire_for_an_old_established_pair_renegotiates() {
    let now = Instant::now();
    let (mut a, mut b) = pair();
    acquire(now, &mut a);
    exchange(now, &mut a, &mut b);
    // Soon after: the SAs may just not be installed yet: nothing happens.
    acquire(now + Duration::from_secs(1), &mut a);
    assert!(a.take_sent().is_empty());
    // Later: the kernel lost them (flush): delete and create anew.
    let later = now + OUT_OF_STEP_AGE + Duration::from_secs(1);
    acquire(later, &mut a);
    exchange(later, &mut a, &mut b);
    let sas = a.engine.sas();
    assert_eq!(sas.iter().filter(|s| s.state == "established").count(), 1);
    assert_eq!(sas.iter().filter(|s| s.state == "deleting").count(), 1);
}

#[test]
fn a_restarted_peer_reusing_an_xid_gets_a_fresh_answer() {
    let now = Instant::now();
    let (mut a, mut b) = pair();
    acquire(now, &mut a);
    exchange(now, &mut a, &mut b);
    let first_reply_spi = b.engine.sas()[0].spi_in;
    // A restarts (new EPOCH) and, by chance, uses the same XID again.
    let mut a2 = Side::new(A, B, "kink/a@T", "kink/b@T", 1, vec![gcm(), cbc_sha256()]);
    a2.engine.epoch = 5_000;
    a2.krb.next = 100; // fresh AP-REQs
    acquire(now, &mut a2);
    exchange(now, &mut a2, &mut b);
    assert_eq!(
        b.engine.stats().replies_resent,
        0,
        "not answered from the cache"
    );
    assert!(
        b.engine
            .sas()
            .iter()
            .any(|s| s.spi_in != first_reply_spi && s.state == "established")
    );
    assert_keys_match(&a2, &b);
}

#[test]
fn busy_until_the_deletes_are_answered() {
    let now = Instant::now();
    let (mut a, mut b) = pair();
    acquire(now, &mut a);
    exchange(now, &mut a, &mut b);
    assert!(
        !a.engine.busy(),
        "a two-message CREATE leaves nothing in flight"
    );
    a.engine.shutdown(now, &mut a.krb);
    a.drain(now);
    assert!(a.engine.busy(), "the DELETE waits for its REPLY");
    exchange(now, &mut a, &mut b);
    assert!(!a.engine.busy());
}
