//! iked starts a rekey against strongSwan 5.9: its IKE SA lifetime
//! (`kmp_sa_lifetime_time`) runs out in seconds, the protocol core's timer
//! rekeys the IKE SA (RFC 7296 §1.3.2), the CHILD SA moves along, and iked
//! deletes the old IKE SA.
//!
//! Ignored by default (needs root, namespaces and strongSwan), like
//! `ikev2_strongswan.rs`, whose set-up this mirrors in small.

use std::net::IpAddr;
use std::time::Duration;

use interop::racoon2conf::{self, Algs, Family};
use interop::{Iked, Lab, StrongSwan, SwanConn, require_root_and_tools};

const WAIT: Duration = Duration::from_secs(10);

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn racoon3_rekeys_the_ike_sa_when_its_lifetime_runs_out() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let mut conn = SwanConn::psk_tunnel_v4(&lab.b, &lab.a);
    conn.ike_proposals = "aes128gcm16-prfsha256-x25519".into();
    conn.esp_proposals = "aes128gcm16".into();
    let swan = StrongSwan::start(&lab.dir, &lab.b.netns, "b", std::slice::from_ref(&conn))
        .expect("charon");
    let psk_file = lab.dir.path().join("psk-a");
    std::fs::write(&psk_file, &conn.psk).expect("psk file");
    let algs = Algs {
        ike_enc: "aes128_gcm16",
        ike_hash: "hmac_sha2_256",
        dh: "curve25519",
        esp_enc: "aes128_gcm16",
        esp_auth: "",
    };
    // Rekey at 80-90% of 10 s.
    let conf = racoon2conf::tunnel(&lab.a, &lab.b, Family::V4, &algs, &psk_file, "tunnel").replace(
        "    dpd_delay 10 sec;\n",
        "    dpd_delay 10 sec;\n    kmp_sa_lifetime_time 10 sec;\n",
    );
    let peer: IpAddr = lab.b.outer_v4.into();
    let iked = Iked::start(&lab.dir, &lab.a.netns, "a", &conf, Some(peer)).expect("iked");
    let log = || {
        format!(
            "--- iked ---\n{}\n--- charon ---\n{}",
            iked.log(),
            swan.log()
        )
    };
    swan.wait_established(&conn.name, &conn.child, WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    iked.wait_for_log("rekeyed", Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    let settled = interop::wait_for(
        || {
            swan.sas().is_ok_and(|s| {
                s.len() == 1 && s[0].is_up(&conn.name, &conn.child) && s[0].children.len() == 1
            })
        },
        WAIT,
    );
    assert!(
        settled,
        "one IKE SA with its CHILD SA on strongSwan:\n{}\n{}",
        swan.list_sas().unwrap_or_default(),
        log()
    );
    assert!(
        swan.log_contains("received DELETE for IKE_SA"),
        "iked deletes the old IKE SA:\n{}",
        log()
    );
    for (from, to) in [(&lab.a, &lab.b), (&lab.b, &lab.a)] {
        if let Err(out) = racoon2conf::ping_lan(from, to, Family::V4) {
            panic!(
                "ping {} -> {} after the rekey:\n{out}\n{}",
                from.label,
                to.label,
                log()
            );
        }
    }
    assert_eq!(
        iked.log().matches("INSTALLED").count(),
        1,
        "the CHILD SA moved, it was not renegotiated:\n{}",
        log()
    );
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn racoon3_rekeys_the_child_sa_on_its_soft_lifetime_and_traffic_keeps_flowing() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let mut conn = SwanConn::psk_tunnel_v4(&lab.b, &lab.a);
    conn.ike_proposals = "aes128gcm16-prfsha256-x25519".into();
    conn.esp_proposals = "aes128gcm16".into();
    let swan = StrongSwan::start(&lab.dir, &lab.b.netns, "b", std::slice::from_ref(&conn))
        .expect("charon");
    let psk_file = lab.dir.path().join("psk-a");
    std::fs::write(&psk_file, &conn.psk).expect("psk file");
    let algs = Algs {
        ike_enc: "aes128_gcm16",
        ike_hash: "hmac_sha2_256",
        dh: "curve25519",
        esp_enc: "aes128_gcm16",
        esp_auth: "",
    };
    // The datapath raises the soft expiry at 80-90% of 6 s; iked rekeys.
    let conf = racoon2conf::tunnel(&lab.a, &lab.b, Family::V4, &algs, &psk_file, "tunnel").replace(
        "ipsec_sa_lifetime_time infinite;",
        "ipsec_sa_lifetime_time 6 sec;",
    );
    assert!(conf.contains("ipsec_sa_lifetime_time 6 sec;"), "{conf}");
    let peer: IpAddr = lab.b.outer_v4.into();
    let iked = Iked::start(&lab.dir, &lab.a.netns, "a", &conf, Some(peer)).expect("iked");
    let log = || {
        format!(
            "--- iked ---\n{}\n--- spmd ---\n{}\n--- charon ---\n{}",
            iked.log(),
            iked.spmd_log(),
            swan.log()
        )
    };
    swan.wait_established(&conn.name, &conn.child, WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    iked.wait_for_log(
        "reached its soft lifetime: rekeying",
        Duration::from_secs(15),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    let rekeyed = interop::wait_for(|| iked.log().matches("INSTALLED").count() >= 2, WAIT);
    assert!(rekeyed, "a second CHILD SA was installed:\n{}", log());
    // Rekeys come every ~5 s here, so strongSwan may list the replaced
    // CHILD SA (DELETED) for a moment: what must hold is one live one.
    let settled = interop::wait_for(
        || {
            swan.sas().is_ok_and(|s| {
                s.len() == 1
                    && s[0].is_up(&conn.name, &conn.child)
                    && s[0]
                        .children
                        .iter()
                        .filter(|c| c.state == "INSTALLED")
                        .count()
                        == 1
            })
        },
        WAIT,
    );
    assert!(
        settled,
        "one IKE SA with one live CHILD SA on strongSwan:\n{}\n{}",
        swan.list_sas().unwrap_or_default(),
        log()
    );
    for (from, to) in [(&lab.a, &lab.b), (&lab.b, &lab.a)] {
        if let Err(out) = racoon2conf::ping_lan(from, to, Family::V4) {
            panic!(
                "ping {} -> {} after the CHILD rekey:\n{out}\n{}",
                from.label,
                to.label,
                log()
            );
        }
    }
    // `racoonctl rekey` does it on demand too.
    let spi = iked.first_child_spi_in().expect("a CHILD SA SPI");
    let before = iked.log().matches("INSTALLED").count();
    let (code, out, err) = iked.racoonctl(&["rekey", &spi]).expect("rekey");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("rekeying CHILD SA"), "{out}");
    let again = interop::wait_for(|| iked.log().matches("INSTALLED").count() > before, WAIT);
    assert!(
        again,
        "racoonctl rekey installed a new CHILD SA:\n{}",
        log()
    );
}
