//! kinkd's Kerberos access against a real MIT KDC (realm KINK.TEST on 127.0.0.1, started by
//! `interop::kdc`): the AP exchange KINK runs, its failure cases, user-to-user (GETTGT), and
//! the KINK_CKSUM / KINK_ENCRYPT primitives with the keys both sides agree on.
//!
//! Ignored by default (they start `krb5kdc`); CI runs them with
//! `cargo nextest run --run-ignored all`. Needs krb5-kdc, krb5-admin-server, krb5-user.

use std::path::Path;

use interop::LabDir;
use interop::kdc::Kdc;
use kinkd::krb5::{
    AcceptMode, KEY_USAGE_KINK_CKSUM, KEY_USAGE_KINK_ENCRYPT, Kerberos, Krb5Config, KrbErrorCode,
    MitKerberos, TicketKind,
};

const A: &str = "a.kink.test";
const B: &str = "b.kink.test";

/// A KDC with `kink/a.kink.test` and `kink/b.kink.test`, and their keytabs.
struct Realm {
    kdc: Kdc,
    a: (String, std::path::PathBuf),
    b: (String, std::path::PathBuf),
    _lab: LabDir,
}

impl Realm {
    fn new() -> Self {
        interop::kdc::require_kdc_tools();
        let lab = LabDir::new("krb5").expect("lab dir");
        let kdc = Kdc::start(&lab).expect("KDC starts");
        let a = kdc.add_host(A).expect("kink/a");
        let b = kdc.add_host(B).expect("kink/b");
        Self {
            kdc,
            a,
            b,
            _lab: lab,
        }
    }

    fn backend(&self, (principal, keytab): &(String, std::path::PathBuf)) -> MitKerberos {
        backend(self.kdc.krb5_conf(), principal, keytab)
    }
}

fn backend(krb5_conf: &Path, principal: &str, keytab: &Path) -> MitKerberos {
    MitKerberos::new(&Krb5Config {
        principal: principal.to_owned(),
        config_file: Some(krb5_conf.to_owned()),
        keytab: Some(format!("FILE:{}", keytab.display())),
        // A private MEMORY cache, whatever KRB5CCNAME says.
        ccache: Some(format!("MEMORY:{principal}")),
    })
    .expect("backend")
}

fn peer(host: &str) -> String {
    format!("kink/{host}")
}

#[test]
#[ignore = "starts an MIT KDC (run with --run-ignored all)"]
fn ap_exchange_agrees_on_keys_and_protects_messages() {
    let realm = Realm::new();
    let (mut a, mut b) = (realm.backend(&realm.a), realm.backend(&realm.b));
    let tgt = a.get_tgt().expect("AS-REQ with a's keytab");
    assert_eq!(tgt.server, "krbtgt/KINK.TEST@KINK.TEST");
    let st = a.get_service_ticket(&peer(B)).expect("TGS-REQ for kink/b");
    assert_eq!(st.server, realm.b.0);
    assert_eq!(st.client, realm.a.0);

    let req = a
        .make_ap_req(&peer(B), TicketKind::Service)
        .expect("AP-REQ");
    assert_eq!(req.bytes.first(), Some(&0x6e), "AP-REQ is [APPLICATION 14]");
    let acc = b
        .read_ap_req(&req.bytes, AcceptMode::Keytab)
        .expect("b accepts");
    assert_eq!(acc.client, realm.a.0);
    let (now, _) = b.now().expect("now");
    assert!((acc.client_time.0 - now).abs() <= 5, "authenticator time");
    assert!(acc.ticket_end > now + 3600, "ticket valid for hours");
    assert_eq!(
        acc.ap_rep.first(),
        Some(&0x6f),
        "AP-REP is [APPLICATION 15]"
    );

    let rep = a
        .read_ap_rep(req.id, &acc.ap_rep)
        .expect("mutual authentication");
    assert_eq!(
        rep.session_key, acc.session_key,
        "both sides hold the ticket session key"
    );
    assert_eq!(rep.session_key.enctype(), st.session_enctype);
    let sub = rep.subkey.expect("initiator sent a subkey");
    assert_eq!(
        Some(&sub),
        acc.subkey.as_ref(),
        "responder received the subkey"
    );
    assert_ne!(sub, rep.session_key);

    // KINK_CKSUM from b verifies at a; any change to message or checksum does not.
    let key = &acc.session_key;
    let msg = b"REPLY header + KINK_AP_REP + KINK_ENCRYPT".to_vec();
    let cksum = b.checksum(key, KEY_USAGE_KINK_CKSUM, &msg).expect("cksum");
    assert!(
        a.verify_checksum(&rep.session_key, KEY_USAGE_KINK_CKSUM, &msg, &cksum)
            .expect("v")
    );
    let mut tampered = msg.clone();
    tampered[3] ^= 0x01;
    assert!(
        !a.verify_checksum(key, KEY_USAGE_KINK_CKSUM, &tampered, &cksum)
            .expect("v")
    );
    let mut bad_cksum = cksum.clone();
    bad_cksum[0] ^= 0x01;
    assert!(
        !a.verify_checksum(key, KEY_USAGE_KINK_CKSUM, &msg, &bad_cksum)
            .expect("v")
    );
    // A checksum under the subkey (a key the peer also has) is not the KINK_CKSUM.
    assert!(
        !a.verify_checksum(&sub, KEY_USAGE_KINK_CKSUM, &msg, &cksum)
            .expect("v")
    );

    // KINK_ENCRYPT from a opens at b; tampered ciphertext fails its integrity check.
    let sealed = a
        .encrypt(&rep.session_key, KEY_USAGE_KINK_ENCRYPT, b"ISAKMP SA+Nonce")
        .expect("e");
    let opened = b
        .decrypt(key, KEY_USAGE_KINK_ENCRYPT, &sealed)
        .expect("decrypt");
    assert_eq!(&opened[..], b"ISAKMP SA+Nonce");
    let mut bad = sealed;
    bad[20] ^= 0x40;
    let err = b.decrypt(key, KEY_USAGE_KINK_ENCRYPT, &bad).unwrap_err();
    assert_eq!(
        err.krb_error(),
        Some(KrbErrorCode::KRB_AP_ERR_BAD_INTEGRITY),
        "{err}"
    );

    // KEYMAT: both sides compute the same PRF output.
    let seed = b"\x03\x12\x34\x56\x78nonce-i";
    assert_eq!(
        a.prf(&rep.session_key, seed).expect("prf"),
        b.prf(key, seed).expect("prf")
    );
    // The harness reports kadmin.local failures (it exits 0 on them).
    assert!(realm.kdc.add_host(A).is_err(), "principal exists already");
    a.release_ap_req(req.id);
    assert!(a.read_ap_rep(req.id, &acc.ap_rep).is_err(), "released");
    assert!(realm.kdc.is_running());
}

#[test]
#[ignore = "starts an MIT KDC (run with --run-ignored all)"]
fn replayed_ap_req_is_refused_with_krb_ap_err_repeat() {
    let realm = Realm::new();
    let (mut a, mut b) = (realm.backend(&realm.a), realm.backend(&realm.b));
    a.get_tgt().expect("tgt");
    a.get_service_ticket(&peer(B)).expect("ticket");
    let req = a
        .make_ap_req(&peer(B), TicketKind::Service)
        .expect("AP-REQ");
    b.read_ap_req(&req.bytes, AcceptMode::Keytab)
        .expect("first copy accepted");
    let rejected = b.read_ap_req(&req.bytes, AcceptMode::Keytab).unwrap_err();
    assert_eq!(
        rejected.error.krb_error(),
        Some(KrbErrorCode::KRB_AP_ERR_REPEAT),
        "{}",
        rejected.error
    );
    assert!(
        rejected.client_time.is_some(),
        "authenticator was decrypted"
    );
    // A fresh AP-REQ on the same ticket (KINK's retransmission) is fine.
    let again = a
        .make_ap_req(&peer(B), TicketKind::Service)
        .expect("AP-REQ");
    b.read_ap_req(&again.bytes, AcceptMode::Keytab)
        .expect("fresh authenticator accepted");
    // The KRB-ERROR b would send reads back with the code and the echoed time.
    let err = b
        .make_error(
            KrbErrorCode::KRB_AP_ERR_REPEAT,
            rejected.client_time,
            Some(&realm.a.0),
        )
        .expect("mk_error");
    let decoded = a.read_error(&err).expect("rd_error");
    assert_eq!(decoded.code, KrbErrorCode::KRB_AP_ERR_REPEAT);
    assert_eq!(decoded.client_time, rejected.client_time);
    assert_eq!(decoded.server.as_deref(), Some(realm.b.0.as_str()));
}

#[test]
#[ignore = "starts an MIT KDC (run with --run-ignored all)"]
fn stale_keytab_fails_with_the_key_version_error() {
    let realm = Realm::new();
    let (mut a, mut b) = (realm.backend(&realm.a), realm.backend(&realm.b));
    b.get_tgt()
        .expect("b's keytab is good before the key change");
    realm
        .kdc
        .change_key(&realm.b.0)
        .expect("cpw -randkey kink/b");
    a.get_tgt().expect("tgt");
    a.get_service_ticket(&peer(B))
        .expect("ticket under b's new key");
    let req = a
        .make_ap_req(&peer(B), TicketKind::Service)
        .expect("AP-REQ");
    let rejected = b.read_ap_req(&req.bytes, AcceptMode::Keytab).unwrap_err();
    assert_eq!(
        rejected.error.krb_error(),
        Some(KrbErrorCode::KRB_AP_ERR_BADKEYVER),
        "{}",
        rejected.error
    );
    assert!(rejected.client_time.is_none(), "nothing was decrypted");
    // b cannot even get a TGT with the stale key any more: the AS-REP does not decrypt
    // (PREAUTH_FAILED instead if the principal required pre-authentication).
    let err = b.get_tgt().unwrap_err();
    eprintln!(
        "AS-REQ with the stale keytab: {err} ({:?})",
        err.krb_error()
    );
    assert!(
        matches!(
            err.krb_error(),
            Some(KrbErrorCode::KDC_ERR_PREAUTH_FAILED | KrbErrorCode::KRB_AP_ERR_BAD_INTEGRITY)
        ),
        "{err} ({:?})",
        err.krb_error()
    );
    // Re-exporting the keytab heals b.
    realm
        .kdc
        .export_keytab(&realm.b.0, &realm.b.1)
        .expect("ktadd");
    let req = a
        .make_ap_req(&peer(B), TicketKind::Service)
        .expect("AP-REQ");
    b.read_ap_req(&req.bytes, AcceptMode::Keytab)
        .expect("accepted with the new keytab");
}

#[test]
#[ignore = "starts an MIT KDC (run with --run-ignored all)"]
fn clock_skew_is_refused_then_corrected_from_the_error_time() {
    let realm = Realm::new();
    let (mut a, mut b) = (realm.backend(&realm.a), realm.backend(&realm.b));
    a.get_tgt().expect("tgt");
    a.get_service_ticket(&peer(B)).expect("ticket");
    // a's clock runs an hour fast (default allowed skew: 300 s).
    a.set_clock_offset(3600).expect("offset");
    let req = a
        .make_ap_req(&peer(B), TicketKind::Service)
        .expect("AP-REQ");
    let rejected = b.read_ap_req(&req.bytes, AcceptMode::Keytab).unwrap_err();
    assert_eq!(
        rejected.error.krb_error(),
        Some(KrbErrorCode::KRB_AP_ERR_SKEW),
        "{}",
        rejected.error
    );
    let (ctime, _) = rejected
        .client_time
        .expect("authenticator time of the skewed request");
    let (b_now, _) = b.now().expect("now");
    assert!(
        (ctime - b_now - 3600).abs() <= 5,
        "ctime {ctime}, b {b_now}"
    );

    // KINK: the initiator learns the offset from the error's stime and retries.
    let err = b
        .make_error(KrbErrorCode::KRB_AP_ERR_SKEW, rejected.client_time, None)
        .expect("mk_error");
    let decoded = a.read_error(&err).expect("rd_error");
    assert_eq!(decoded.code, KrbErrorCode::KRB_AP_ERR_SKEW);
    let (a_now, _) = a.now().expect("a now");
    let correction = decoded.server_time.0 - a_now;
    assert!((correction + 3600).abs() <= 5, "correction {correction}");
    a.set_clock_offset(3600 + correction)
        .expect("corrected offset");
    let retry = a
        .make_ap_req(&peer(B), TicketKind::Service)
        .expect("AP-REQ");
    b.read_ap_req(&retry.bytes, AcceptMode::Keytab)
        .expect("accepted after correction");
}

#[test]
#[ignore = "starts an MIT KDC (run with --run-ignored all)"]
fn user_to_user_works_with_only_the_peers_tgt() {
    let realm = Realm::new();
    let (mut a, mut b) = (realm.backend(&realm.a), realm.backend(&realm.b));
    b.get_tgt().expect("b's TGT");
    let b_tgt = b.tgt_ticket().expect("KINK_TGT_REP body");
    assert_eq!(
        b_tgt.first(),
        Some(&0x61),
        "a DER Ticket is [APPLICATION 1]"
    );
    // From here on b decrypts without its keytab: remove it.
    std::fs::remove_file(&realm.b.1).expect("remove b's keytab");

    a.get_tgt().expect("a's TGT");
    let u2u = a
        .get_user_to_user_ticket(&peer(B), &b_tgt)
        .expect("ENC-TKT-IN-SKEY");
    assert_eq!(u2u.server, realm.b.0);
    let req = a
        .make_ap_req(&peer(B), TicketKind::UserToUser)
        .expect("AP-REQ");
    let acc = b
        .read_ap_req(&req.bytes, AcceptMode::UserToUser)
        .expect("b accepts u2u");
    assert_eq!(acc.client, realm.a.0);
    let rep = a.read_ap_rep(req.id, &acc.ap_rep).expect("mutual");
    assert_eq!(rep.session_key, acc.session_key);

    // The keytab path cannot read it (no keytab, and the ticket is not in a long-term key).
    let again = a
        .make_ap_req(&peer(B), TicketKind::UserToUser)
        .expect("AP-REQ");
    assert!(b.read_ap_req(&again.bytes, AcceptMode::Keytab).is_err());

    // b renews its TGT: tickets issued under the previous one still work
    // (it keeps that key until they would have to be refetched anyway).
    realm
        .kdc
        .export_keytab(&realm.b.0, &realm.b.1)
        .expect("keytab back for the new AS-REQ");
    b.get_tgt().expect("b's renewed TGT");
    let renewed = a
        .make_ap_req(&peer(B), TicketKind::UserToUser)
        .expect("AP-REQ");
    b.read_ap_req(&renewed.bytes, AcceptMode::UserToUser)
        .expect("a ticket under the previous TGT survives one renewal");

    // b restarts (a new process: new TGT, no memory of the old one): the
    // old u2u ticket fails its integrity check, which is what sends a KINK
    // initiator back to GETTGT.
    let mut b = realm.backend(&realm.b);
    b.get_tgt().expect("b's TGT after the restart");
    let stale = a
        .make_ap_req(&peer(B), TicketKind::UserToUser)
        .expect("AP-REQ");
    let rejected = b
        .read_ap_req(&stale.bytes, AcceptMode::UserToUser)
        .unwrap_err();
    assert_eq!(
        rejected.error.krb_error(),
        Some(KrbErrorCode::KRB_AP_ERR_BAD_INTEGRITY),
        "{}",
        rejected.error
    );
}

#[test]
#[ignore = "starts an MIT KDC (run with --run-ignored all)"]
fn tampered_ap_req_and_ap_rep_are_refused() {
    let realm = Realm::new();
    let (mut a, mut b) = (realm.backend(&realm.a), realm.backend(&realm.b));
    a.get_tgt().expect("tgt");
    a.get_service_ticket(&peer(B)).expect("ticket");

    // The last octets of an AP-REQ are the authenticator's ciphertext.
    let req = a
        .make_ap_req(&peer(B), TicketKind::Service)
        .expect("AP-REQ");
    let mut bad = req.bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    let rejected = b.read_ap_req(&bad, AcceptMode::Keytab).unwrap_err();
    assert_eq!(
        rejected.error.krb_error(),
        Some(KrbErrorCode::KRB_AP_ERR_BAD_INTEGRITY),
        "{}",
        rejected.error
    );
    // Truncated: refused, no crash.
    assert!(
        b.read_ap_req(&req.bytes[..req.bytes.len() / 2], AcceptMode::Keytab)
            .is_err()
    );

    // A good AP-REQ, then a tampered AP-REP: mutual authentication fails.
    let acc = b
        .read_ap_req(&req.bytes, AcceptMode::Keytab)
        .expect("untampered accepted");
    let mut bad_rep = acc.ap_rep.clone();
    let last = bad_rep.len() - 1;
    bad_rep[last] ^= 0x01;
    assert!(a.read_ap_rep(req.id, &bad_rep).is_err());
    // An AP-REP for another AP-REQ does not verify either.
    let other = a
        .make_ap_req(&peer(B), TicketKind::Service)
        .expect("AP-REQ");
    let other_acc = b
        .read_ap_req(&other.bytes, AcceptMode::Keytab)
        .expect("accepted");
    assert!(a.read_ap_rep(req.id, &other_acc.ap_rep).is_err());
    a.read_ap_rep(other.id, &other_acc.ap_rep)
        .expect("matching AP-REP");
    a.read_ap_rep(req.id, &acc.ap_rep)
        .expect("the right AP-REP still verifies");
}

/// Every single-bit corruption of an AP-REQ, an AP-REP and a KRB-ERROR: the library must
/// answer each with a result (no crash); at most one corrupted AP-REQ can pass (only fields
/// outside the encrypted parts, such as the AP options, escape integrity protection, and the
/// replay cache stops the authenticator from being used twice); corrupted AP-REPs pass only
/// when the corruption is in the clear header, and then with the right key.
#[test]
#[ignore = "starts an MIT KDC (run with --run-ignored all)"]
fn corrupted_messages_never_crash_and_never_pass_twice() {
    let realm = Realm::new();
    let (mut a, mut b) = (realm.backend(&realm.a), realm.backend(&realm.b));
    a.get_tgt().expect("tgt");
    a.get_service_ticket(&peer(B)).expect("ticket");
    let req = a
        .make_ap_req(&peer(B), TicketKind::Service)
        .expect("AP-REQ");
    let mut accepted = 0;
    for i in 0..req.bytes.len() * 8 {
        let mut bad = req.bytes.clone();
        bad[i / 8] ^= 1 << (i % 8);
        if b.read_ap_req(&bad, AcceptMode::Keytab).is_ok() {
            accepted += 1;
        }
    }
    assert!(
        accepted <= 1,
        "{accepted} corrupted copies of one AP-REQ accepted"
    );

    let fresh = a
        .make_ap_req(&peer(B), TicketKind::Service)
        .expect("AP-REQ");
    let acc = b
        .read_ap_req(&fresh.bytes, AcceptMode::Keytab)
        .expect("accepted");
    // The AP-REP's clear header (MIT does not check e.g. its msg-type) is not
    // integrity-protected by Kerberos; in KINK the Cksum over the whole REPLY covers it.
    // A corrupted AP-REP that passes must therefore still yield the same session key.
    let mut passed = Vec::new();
    for i in 0..acc.ap_rep.len() * 8 {
        let mut bad = acc.ap_rep.clone();
        bad[i / 8] ^= 1 << (i % 8);
        if let Ok(rep) = a.read_ap_rep(fresh.id, &bad) {
            assert_eq!(rep.session_key, acc.session_key, "bit {i}");
            passed.push(i);
        }
    }
    eprintln!("corrupted AP-REQs accepted: {accepted}; AP-REP bits that pass: {passed:?}");
    let header_bits = 16 * 8;
    assert!(
        passed.iter().all(|&i| i < header_bits),
        "AP-REP bits beyond the clear header passed: {passed:?}"
    );
    a.read_ap_rep(fresh.id, &acc.ap_rep)
        .expect("the original still verifies");

    let err = b
        .make_error(
            KrbErrorCode::KRB_AP_ERR_SKEW,
            Some(acc.client_time),
            Some(&realm.a.0),
        )
        .expect("mk_error");
    for i in 0..err.len() * 8 {
        let mut bad = err.clone();
        bad[i / 8] ^= 1 << (i % 8);
        let _ = a.read_error(&bad);
    }
    for len in 0..err.len() {
        assert!(a.read_error(&err[..len]).is_err(), "truncated to {len}");
    }
}

#[test]
#[ignore = "starts an MIT KDC (run with --run-ignored all)"]
fn aes_sha2_session_keys_work_end_to_end() {
    let realm = Realm::new();
    realm
        .kdc
        .kadmin("addprinc -randkey -e aes256-cts-hmac-sha384-192:normal kink/c.kink.test")
        .expect("sha2-only principal");
    // The KDC picks the session enctype from the client's list unless the service says
    // which it supports.
    realm
        .kdc
        .kadmin("setstr kink/c.kink.test session_enctypes aes256-cts-hmac-sha384-192")
        .expect("session_enctypes");
    let c_keytab = realm.kdc.dir().join("c.keytab");
    realm
        .kdc
        .export_keytab("kink/c.kink.test@KINK.TEST", &c_keytab)
        .expect("keytab");
    let mut a = realm.backend(&realm.a);
    let mut c = backend(realm.kdc.krb5_conf(), "kink/c.kink.test", &c_keytab);
    a.get_tgt().expect("tgt");
    let st = a.get_service_ticket("kink/c.kink.test").expect("ticket");
    let req = a
        .make_ap_req("kink/c.kink.test", TicketKind::Service)
        .expect("AP-REQ");
    let acc = c
        .read_ap_req(&req.bytes, AcceptMode::Keytab)
        .expect("accepted");
    let rep = a.read_ap_rep(req.id, &acc.ap_rep).expect("mutual");
    assert_eq!(rep.session_key, acc.session_key);
    assert_eq!(st.session_enctype, rep.session_key.enctype());
    assert_eq!(rep.session_key.enctype(), 20, "aes256-cts-hmac-sha384-192");
    let key = &rep.session_key;
    let cksum = a.checksum(key, KEY_USAGE_KINK_CKSUM, b"m").expect("cksum");
    assert_eq!(cksum.len(), 24, "hmac-sha384-192");
    assert!(
        c.verify_checksum(key, KEY_USAGE_KINK_CKSUM, b"m", &cksum)
            .expect("v")
    );
    let sealed = a.encrypt(key, KEY_USAGE_KINK_ENCRYPT, b"m").expect("enc");
    assert_eq!(
        &c.decrypt(key, KEY_USAGE_KINK_ENCRYPT, &sealed)
            .expect("dec")[..],
        b"m"
    );
    eprintln!(
        "session key {:?}: checksum {} octets, encryption overhead {} octets",
        key,
        cksum.len(),
        sealed.len() - 1
    );
}

#[test]
#[ignore = "needs root: starts an MIT KDC inside a network namespace (run with --run-ignored all)"]
fn kdc_in_a_namespace_serves_kinit_there() {
    interop::kdc::require_kdc_tools();
    let lab = LabDir::new("krb5ns").expect("lab dir");
    let ns = interop::Netns::create("r3k-").expect("netns (root?)");
    let addr = std::net::Ipv4Addr::new(192, 0, 2, 53);
    ns.add_loopback_addr(interop::netns::IfAddr::new(addr, 32))
        .expect("address");
    let kdc = Kdc::start_in(&lab, &ns, addr).expect("KDC in the namespace");
    assert_eq!(kdc.addr().to_string(), "192.0.2.53:88");
    let (principal, keytab) = kdc.add_host(A).expect("kink/a");
    kdc.kinit(Some(&ns), &principal, &keytab)
        .expect("kinit inside the namespace");
    assert!(kdc.is_running());
}

#[test]
#[ignore = "starts an MIT KDC (run with --run-ignored all)"]
fn kdc_calls_run_off_the_event_loop() {
    let realm = Realm::new();
    let a = kinkd::krb5::Shared::new(realm.backend(&realm.a));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let info = rt
        .block_on(async {
            let peer_b = peer(B);
            a.run(move |k| {
                k.get_tgt()?;
                k.get_service_ticket(&peer_b)
            })
            .await
        })
        .expect("not cancelled")
        .expect("tickets");
    assert_eq!(info.server, realm.b.0);
}

/// Set in the child process of [`standard_environment_variables_are_honoured`].
const ENV_CHILD: &str = "RACOON3_KRB5_ENV_CHILD";

/// `KRB5_CONFIG`, `KRB5_KTNAME` and `KRB5CCNAME` choose the configuration, keytab and cache
/// when `Krb5Config` leaves them unset. Environment variables cannot be set safely inside a
/// multi-threaded test process, so the test re-runs this test binary with them set, asking
/// for [`environment_child`] only.
#[test]
#[ignore = "starts an MIT KDC (run with --run-ignored all)"]
fn standard_environment_variables_are_honoured() {
    let realm = Realm::new();
    let ccache = realm.kdc.dir().join("env.ccache");
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "environment_child",
            "--include-ignored",
            "--nocapture",
        ])
        .env(ENV_CHILD, &realm.a.0)
        .env("KRB5_CONFIG", realm.kdc.krb5_conf())
        .env("KRB5_KTNAME", format!("FILE:{}", realm.a.1.display()))
        .env("KRB5CCNAME", format!("FILE:{}", ccache.display()))
        .output()
        .expect("run the child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "child did not run:\n{text}");
    assert!(ccache.is_file(), "KRB5CCNAME's cache was not written");
}

/// The child half of [`standard_environment_variables_are_honoured`]; without its
/// environment (any other run) it has nothing to check and returns at once.
#[test]
#[ignore = "run by standard_environment_variables_are_honoured"]
fn environment_child() {
    let Some(principal) = std::env::var_os(ENV_CHILD) else {
        return;
    };
    let principal = principal.to_string_lossy().into_owned();
    let mut k = MitKerberos::new(&Krb5Config {
        principal: principal.clone(),
        ..Krb5Config::default()
    })
    .expect("backend from the environment");
    let tgt = k
        .get_tgt()
        .expect("KDC from KRB5_CONFIG, key from KRB5_KTNAME");
    assert_eq!(tgt.client, principal);
    k.get_service_ticket(&peer(B)).expect("service ticket");
}
