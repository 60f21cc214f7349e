//! iked against strongSwan 5.9 (kernel-libipsec) in two namespaces: either
//! side initiating, IPv4 and IPv6, MODP, ECP and Curve25519 groups, AEAD
//! and CBC+HMAC suites; and the failures that must end cleanly.
//!
//! strongSwan's kernel-libipsec claims a NAT, so every test here also runs
//! NAT detection, the move to UDP 4500 and UDP-encapsulated ESP SAs.
//!
//! Ignored by default (needs root, namespaces and strongSwan); CI runs them
//! with `cargo nextest run --run-ignored all`.

use std::net::IpAddr;
use std::time::Duration;

use interop::racoon2conf::{self, Algs, Family};
use interop::{Iked, Lab, StrongSwan, SwanConn, require_root_and_tools};

const PSK: &str = "racoon3-interop-psk-0123456789";
const WAIT: Duration = Duration::from_secs(10);

/// One scenario: what each side is configured with and what must result.
struct Case {
    family: Family,
    algs: Algs,
    swan_ike: &'static str,
    swan_esp: &'static str,
    want_ike: &'static str,
    want_esp: &'static str,
    /// Extra directives for iked's `ikev2 { }` block.
    iked_extra: &'static str,
}

struct Running {
    lab: Lab,
    iked: Iked,
    swan: StrongSwan,
    conn: SwanConn,
}

/// iked on host A, strongSwan on host B.
fn start(case: &Case, racoon_initiates: bool, iked_psk: &str) -> Running {
    start_tuned(case, racoon_initiates, iked_psk, |_| {})
}

/// As [`start`], with strongSwan's connection adjusted by `tune` (rekey times).
fn start_tuned(
    case: &Case,
    racoon_initiates: bool,
    iked_psk: &str,
    tune: impl FnOnce(&mut SwanConn),
) -> Running {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let mut conn = match case.family {
        Family::V4 => SwanConn::psk_tunnel_v4(&lab.b, &lab.a),
        Family::V6 => SwanConn::psk_tunnel_v6(&lab.b, &lab.a),
    };
    conn.ike_proposals = case.swan_ike.into();
    conn.esp_proposals = case.swan_esp.into();
    tune(&mut conn);
    let swan = StrongSwan::start(&lab.dir, &lab.b.netns, "b", std::slice::from_ref(&conn))
        .expect("charon");
    let psk_file = lab.dir.path().join("psk-a");
    std::fs::write(&psk_file, iked_psk).expect("psk file");
    let conf = racoon2conf::tunnel(&lab.a, &lab.b, case.family, &case.algs, &psk_file, "tunnel")
        .replace(
            "    dpd_delay 10 sec;\n",
            &format!("    dpd_delay 10 sec;\n{}", case.iked_extra),
        );
    let peer: IpAddr = match case.family {
        Family::V4 => lab.b.outer_v4.into(),
        Family::V6 => lab.b.outer_v6.into(),
    };
    let iked = Iked::start(
        &lab.dir,
        &lab.a.netns,
        "a",
        &conf,
        racoon_initiates.then_some(peer),
    )
    .expect("iked");
    iked.wait_for_log("iked started", WAIT).expect("iked start");
    if !racoon_initiates {
        // Failure cases make swanctl exit non-zero; the checks look at the logs.
        let _ = swan.initiate(&conn.child);
    }
    Running {
        lab,
        iked,
        swan,
        conn,
    }
}

/// Both sides report the SA up with the expected algorithms.
fn check_established(r: &Running, case: &Case) {
    let sa = r
        .swan
        .wait_established(&r.conn.name, &r.conn.child, WAIT)
        .unwrap_or_else(|e| {
            panic!("{e}\n--- iked log ---\n{}", r.iked.log());
        });
    assert_eq!(sa.version, "IKEv2");
    assert_eq!(sa.ike_algs, case.want_ike);
    let child = &sa.children[0];
    assert_eq!(child.state, "INSTALLED");
    assert_eq!(child.esp_algs, case.want_esp);
    assert_eq!(
        child.mode, "TUNNEL-in-UDP",
        "kernel-libipsec forces UDP encapsulation"
    );
    r.iked
        .wait_for_log("ESTABLISHED", WAIT)
        .expect("iked ESTABLISHED");
    r.iked
        .wait_for_log("CHILD SA peer INSTALLED, UDP-encapsulated Tunnel", WAIT)
        .expect("iked INSTALLED");
    assert!(
        r.iked.log().contains(case.want_esp),
        "iked logs the ESP suite:\n{}",
        r.iked.log()
    );
}

/// Pings cross the tunnel both ways, and strongSwan's SA counts them.
fn check_traffic(r: &Running, case: &Case) {
    for (from, to) in [(&r.lab.a, &r.lab.b), (&r.lab.b, &r.lab.a)] {
        if let Err(out) = racoon2conf::ping_lan(from, to, case.family) {
            panic!(
                "ping {} -> {} failed:\n{out}\n--- iked log ---\n{}\n--- list-sas ---\n{}",
                from.label,
                to.label,
                r.iked.log(),
                r.swan.list_sas().unwrap_or_default()
            );
        }
    }
    let listing = r.swan.list_sas().expect("list-sas");
    assert!(
        listing.contains("6 packets"),
        "strongSwan saw the pings on its SA:\n{listing}"
    );
}

/// Stopping iked deletes the IKE SA on strongSwan's side too.
fn check_delete_on_stop(mut r: Running) {
    r.iked.child_mut().stop();
    let gone = interop::wait_for(|| r.swan.sas().map(|s| s.is_empty()).unwrap_or(false), WAIT);
    assert!(
        gone,
        "strongSwan still has the SA after iked stopped:\n{}",
        r.swan.list_sas().unwrap_or_default()
    );
    assert!(
        r.swan.log_contains("received DELETE for IKE_SA"),
        "{}",
        r.swan.log()
    );
}

fn x25519_gcm() -> Case {
    Case {
        family: Family::V4,
        algs: Algs {
            ike_enc: "aes128_gcm16",
            ike_hash: "hmac_sha2_256",
            dh: "curve25519",
            esp_enc: "aes128_gcm16",
            esp_auth: "",
        },
        swan_ike: "aes128gcm16-prfsha256-x25519",
        swan_esp: "aes128gcm16",
        want_ike: "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519",
        want_esp: "AES_GCM_16-128",
        iked_extra: "",
    }
}

fn ecp256_cbc() -> Case {
    Case {
        family: Family::V4,
        algs: Algs {
            ike_enc: "aes128_cbc",
            ike_hash: "hmac_sha2_256",
            dh: "ecp256",
            esp_enc: "aes256_cbc",
            esp_auth: "hmac_sha2_256",
        },
        swan_ike: "aes128-sha256-ecp256",
        swan_esp: "aes256-sha256",
        want_ike: "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256",
        want_esp: "AES_CBC-256/HMAC_SHA2_256_128",
        iked_extra: "",
    }
}

fn modp2048_v6() -> Case {
    Case {
        family: Family::V6,
        algs: Algs {
            ike_enc: "aes256_cbc",
            ike_hash: "hmac_sha2_384",
            dh: "modp2048",
            esp_enc: "aes256_gcm16",
            esp_auth: "",
        },
        swan_ike: "aes256-sha384-modp2048",
        swan_esp: "aes256gcm16",
        want_ike: "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/MODP_2048",
        want_esp: "AES_GCM_16-256",
        iked_extra: "",
    }
}

fn chacha_v6() -> Case {
    Case {
        family: Family::V6,
        algs: Algs {
            ike_enc: "chacha20_poly1305",
            ike_hash: "hmac_sha2_512",
            dh: "curve25519",
            esp_enc: "chacha20_poly1305",
            esp_auth: "",
        },
        swan_ike: "chacha20poly1305-prfsha512-x25519",
        swan_esp: "chacha20poly1305",
        want_ike: "CHACHA20_POLY1305/PRF_HMAC_SHA2_512/CURVE_25519",
        want_esp: "CHACHA20_POLY1305",
        iked_extra: "",
    }
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn racoon3_initiates_ipv4_curve25519_aes_gcm() {
    let case = x25519_gcm();
    let r = start(&case, true, PSK);
    check_established(&r, &case);
    check_traffic(&r, &case);
    check_delete_on_stop(r);
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn strongswan_initiates_ipv4_ecp256_aes_cbc_hmac() {
    let case = ecp256_cbc();
    let r = start(&case, false, PSK);
    check_established(&r, &case);
    check_traffic(&r, &case);
    check_delete_on_stop(r);
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn racoon3_initiates_ipv6_modp2048_aes_cbc_sha384() {
    let case = modp2048_v6();
    let r = start(&case, true, PSK);
    check_established(&r, &case);
    check_traffic(&r, &case);
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn strongswan_initiates_ipv6_curve25519_chacha20() {
    let case = chacha_v6();
    let r = start(&case, false, PSK);
    check_established(&r, &case);
    check_traffic(&r, &case);
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn strongswan_initiating_with_another_group_gets_invalid_ke_and_retries() {
    let mut case = x25519_gcm();
    case.algs.dh = "ecp256";
    case.swan_ike = "aes128gcm16-prfsha256-x25519-ecp256";
    case.want_ike = "AES_GCM_16-128/PRF_HMAC_SHA2_256/ECP_256";
    let r = start(&case, false, PSK);
    check_established(&r, &case);
    assert!(
        r.swan
            .log_contains("parsed IKE_SA_INIT response 0 [ N(INVAL_KE) ]"),
        "{}",
        r.swan.log()
    );
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn wrong_psk_fails_cleanly_on_both_sides_racoon3_initiating() {
    let r = start(&x25519_gcm(), true, "not the right key");
    r.iked
        .wait_for_log("AUTHENTICATION_FAILED", WAIT)
        .expect("iked reports the refusal");
    assert!(
        r.swan.log_contains("but MAC mismatched"),
        "{}",
        r.swan.log()
    );
    assert!(r.swan.sas().expect("list-sas").is_empty());
    assert!(r.iked.is_running(), "iked must keep running");
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn wrong_psk_fails_cleanly_on_both_sides_strongswan_initiating() {
    let r = start(&x25519_gcm(), false, "not the right key");
    r.iked
        .wait_for_log("pre-shared keys differ", WAIT)
        .expect("iked names the cause");
    let refused = interop::wait_for(|| r.swan.log_contains("AUTHENTICATION_FAILED"), WAIT);
    assert!(refused, "{}", r.swan.log());
    assert!(r.swan.sas().expect("list-sas").is_empty());
    assert!(r.iked.is_running(), "iked must keep running");
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn no_common_proposal_fails_cleanly_racoon3_initiating() {
    let mut case = x25519_gcm();
    case.algs.dh = "modp3072";
    let r = start(&case, true, PSK);
    r.iked
        .wait_for_log("NO_PROPOSAL_CHOSEN", WAIT)
        .expect("iked reports the refusal");
    assert!(r.swan.sas().expect("list-sas").is_empty());
    assert!(r.iked.is_running(), "iked must keep running");
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn no_common_proposal_fails_cleanly_strongswan_initiating() {
    let mut case = x25519_gcm();
    case.algs.ike_enc = "aes256_cbc";
    let r = start(&case, false, PSK);
    r.iked
        .wait_for_log("no proposal chosen", WAIT)
        .expect("iked names the cause");
    let refused = interop::wait_for(|| r.swan.log_contains("NO_PROPOSAL_CHOSEN"), WAIT);
    assert!(refused, "{}", r.swan.log());
    assert!(r.iked.is_running(), "iked must keep running");
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn strongswan_rekeys_the_child_sa_with_pfs_and_traffic_keeps_flowing() {
    let mut case = x25519_gcm();
    case.swan_esp = "aes128gcm16-x25519";
    let r = start_tuned(&case, false, PSK, |c| {
        c.child_rekey_time = Some("3s".into())
    });
    check_established(&r, &case);
    // strongSwan rekeys after about 3 s (minus jitter), with a fresh x25519 exchange.
    r.iked
        .wait_for_log("CHILD SA peer deleted by", Duration::from_secs(15))
        .unwrap_or_else(|e| {
            panic!("{e}\n--- charon ---\n{}", r.swan.log());
        });
    assert!(
        r.swan.log_contains("CHILD_SA net4{1} established"),
        "{}",
        r.swan.log()
    );
    assert!(
        r.swan.log_contains("rekeyed") || r.swan.log_contains("CREATE_CHILD_SA response"),
        "{}",
        r.swan.log()
    );
    assert_eq!(
        r.iked.log().matches("INSTALLED").count(),
        2,
        "the original and the rekeyed CHILD SA:\n{}",
        r.iked.log()
    );
    check_traffic_after_rekey(&r, &case);
}

/// Pings pass on the new SA, and strongSwan shows exactly one live CHILD SA.
fn check_traffic_after_rekey(r: &Running, case: &Case) {
    for (from, to) in [(&r.lab.a, &r.lab.b), (&r.lab.b, &r.lab.a)] {
        if let Err(out) = racoon2conf::ping_lan(from, to, case.family) {
            panic!(
                "ping after rekey {} -> {}:\n{out}\n{}",
                from.label,
                to.label,
                r.iked.log()
            );
        }
    }
    let sas = r.swan.sas().expect("list-sas");
    assert_eq!(sas.len(), 1);
    let installed = sas[0]
        .children
        .iter()
        .filter(|c| c.state == "INSTALLED")
        .count();
    assert_eq!(
        installed,
        1,
        "one live CHILD SA after the rekey:\n{}",
        r.swan.list_sas().unwrap_or_default()
    );
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn strongswan_rekeys_the_ike_sa_and_the_child_sa_moves_along() {
    let case = ecp256_cbc();
    let r = start_tuned(&case, false, PSK, |c| c.ike_rekey_time = Some("3s".into()));
    check_established(&r, &case);
    r.iked
        .wait_for_log("rekeyed with", Duration::from_secs(15))
        .unwrap_or_else(|e| {
            panic!("{e}\n--- charon ---\n{}", r.swan.log());
        });
    r.iked.wait_for_log("IKE SA peer[", WAIT).expect("log");
    let gone = interop::wait_for(|| r.iked.log().contains("deleted by 192.0.2.2"), WAIT);
    assert!(gone, "strongSwan deletes the old IKE SA:\n{}", r.iked.log());
    assert!(
        !r.iked.log().contains("CHILD SA of peer deleted"),
        "the CHILD SA survives the IKE rekey:\n{}",
        r.iked.log()
    );
    let sas = r.swan.sas().expect("list-sas");
    assert_eq!(sas.len(), 1, "{}", r.swan.list_sas().unwrap_or_default());
    assert!(
        sas[0].is_up(&r.conn.name, &r.conn.child),
        "{}",
        r.swan.list_sas().unwrap_or_default()
    );
    check_traffic(&r, &case);
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn strongswan_answers_the_cookie_of_an_iked_with_cookie_required() {
    let mut case = x25519_gcm();
    case.iked_extra = "    cookie_required on;\n";
    let r = start(&case, false, PSK);
    check_established(&r, &case);
    assert!(
        r.swan.log_contains("N(COOKIE)"),
        "strongSwan retried with the cookie:\n{}",
        r.swan.log()
    );
}
