//! kinkd keeps two Kerberos backends with one credential cache: a fetcher
//! that talks to the KDC on the blocking pool, and the protocol core's,
//! called on the event loop for local crypto only. This proves the core's
//! backend finds in the shared `MEMORY:` cache what the fetcher got, with
//! the KDC stopped (so no call of the core's backend can block on it).
//!
//! Ignored by default (starts `krb5kdc`); run with `--run-ignored all`.

use interop::LabDir;
use interop::kdc::Kdc;
use kinkd::krb5::{AcceptMode, Kerberos, Krb5Config, MitKerberos, TicketKind};

fn backend(
    kdc_conf: &std::path::Path,
    (principal, keytab): &(String, std::path::PathBuf),
    ccache: &str,
) -> MitKerberos {
    MitKerberos::new(&Krb5Config {
        principal: principal.clone(),
        config_file: Some(kdc_conf.to_owned()),
        keytab: Some(format!("FILE:{}", keytab.display())),
        ccache: Some(ccache.to_owned()),
    })
    .expect("backend")
}

#[test]
#[ignore = "starts an MIT KDC (run with --run-ignored all)"]
fn the_engine_backend_uses_tickets_the_fetcher_got_with_the_kdc_stopped() {
    interop::kdc::require_kdc_tools();
    let lab = LabDir::new("krb5-ccache").expect("lab dir");
    let kdc = Kdc::start(&lab).expect("KDC starts");
    let a = kdc.add_host("a.kink.test").expect("kink/a");
    let b = kdc.add_host("b.kink.test").expect("kink/b");
    let conf = kdc.krb5_conf().to_owned();
    let shared = format!("MEMORY:kinkd-test-{}", std::process::id());
    let mut fetcher = backend(&conf, &a, &shared);
    let mut engine = backend(&conf, &a, &shared);
    let mut responder = backend(&conf, &b, "MEMORY:kinkd-test-b");

    fetcher.get_tgt().expect("AS-REQ");
    fetcher
        .get_service_ticket("kink/b.kink.test")
        .expect("TGS-REQ");
    responder
        .get_tgt()
        .expect("b's TGT, for user-to-user below");
    let b_tgt = responder.tgt_ticket().expect("b's TGT ticket");
    fetcher
        .get_user_to_user_ticket("kink/b.kink.test", &b_tgt)
        .expect("user-to-user TGS-REQ");

    drop(kdc);
    // No KDC from here on: everything below is served from the cache.
    let tgt = engine.load_tgt().expect("TGT from the shared cache");
    assert_eq!(tgt.server, "krbtgt/KINK.TEST@KINK.TEST");
    assert!(engine.tgt_ticket().is_ok());
    let st = engine
        .get_service_ticket("kink/b.kink.test")
        .expect("the service ticket the fetcher got, from the shared cache");
    assert_eq!(st.server, b.0);
    let req = engine
        .make_ap_req("kink/b.kink.test", TicketKind::Service)
        .expect("AP-REQ from the cached ticket");
    let acc = responder
        .read_ap_req(&req.bytes, AcceptMode::Keytab)
        .expect("b accepts it");
    let rep = engine.read_ap_rep(req.id, &acc.ap_rep).expect("AP-REP");
    assert_eq!(rep.session_key, acc.session_key);
    // The user-to-user ticket too, found by walking the cache (MIT's own
    // matching does not find it), and b accepts it with its TGT's key.
    let u2u = engine
        .load_ticket("kink/b.kink.test", TicketKind::UserToUser, Some(&b_tgt))
        .expect("the user-to-user ticket the fetcher got, from the shared cache");
    assert_eq!(u2u.server, b.0);
    let req = engine
        .make_ap_req("kink/b.kink.test", TicketKind::UserToUser)
        .expect("user-to-user AP-REQ from the cached ticket");
    let acc = responder
        .read_ap_req(&req.bytes, AcceptMode::UserToUser)
        .expect("b accepts it with its TGT");
    let rep = engine.read_ap_rep(req.id, &acc.ap_rep).expect("AP-REP");
    assert_eq!(rep.session_key, acc.session_key);
    // Against another TGT there is no such ticket.
    assert!(
        engine
            .load_ticket(
                "kink/b.kink.test",
                TicketKind::UserToUser,
                Some(b"not a TGT")
            )
            .is_err()
    );
    // A ticket nobody fetched is not there, and asking fails (no KDC)
    // rather than succeeding by magic.
    assert!(engine.get_service_ticket("kink/c.kink.test").is_err());
}
