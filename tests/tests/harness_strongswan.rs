//! Proves the harness: two strongSwan peers in two namespaces establish IKEv2 and carry
//! traffic, and the guards leave nothing behind.
//!
//! Ignored by default (needs root, namespaces and strongSwan); CI runs it with
//! `cargo nextest run --run-ignored all`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use interop::process::proc_start_time;
use interop::{Lab, Netns, StrongSwan, SwanConn, require_root_and_tools};

/// Brings up `conn` from host A to host B and checks both sides.
fn establish(lab: &Lab, conn: &SwanConn) -> (StrongSwan, StrongSwan) {
    let t = Instant::now();
    let a = StrongSwan::start(&lab.dir, &lab.a.netns, "a", std::slice::from_ref(conn))
        .expect("charon A");
    let b = StrongSwan::start(&lab.dir, &lab.b.netns, "b", &[conn.mirrored()]).expect("charon B");
    eprintln!("two charons up in {:?}", t.elapsed());

    let t = Instant::now();
    a.initiate(&conn.child).expect("swanctl --initiate");
    eprintln!("initiate took {:?}", t.elapsed());

    for (side, ss) in [("A", &a), ("B", &b)] {
        let sa = ss
            .wait_established(&conn.name, &conn.child, Duration::from_secs(5))
            .expect(side);
        assert_eq!(sa.version, "IKEv2", "{side}");
        assert_eq!(
            sa.ike_algs, "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519",
            "{side}"
        );
        let child = &sa.children[0];
        assert_eq!(child.esp_algs, "AES_GCM_16-128", "{side}");
        // libipsec always encapsulates ESP in UDP (strongswan-in-netns notes).
        assert_eq!(child.mode, "TUNNEL-in-UDP", "{side}");
    }
    (a, b)
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn strongswan_pair_ikev2_psk_v4_carries_ping() {
    let start = Instant::now();
    let lab = Lab::two_hosts().expect("lab");
    eprintln!("lab up in {:?}", start.elapsed());
    let conn = SwanConn::psk_tunnel_v4(&lab.a, &lab.b);

    // Before the tunnel there is no route between the LANs, so a ping can only pass through it.
    let (src, dst) = (lab.a.lan_v4.to_string(), lab.b.lan_v4.to_string());
    let no_route = lab.a.netns.ip(&["route", "get", &dst, "from", &src]);
    assert!(
        no_route.is_err(),
        "unexpected route before the tunnel: {no_route:?}"
    );

    let (a, b) = establish(&lab, &conn);
    let sas = a.sas().expect("list-sas A");
    let child = &sas[0].children[0];
    assert_eq!(child.local_ts, [lab.a.lan_net_v4]);
    assert_eq!(child.remote_ts, [lab.b.lan_net_v4]);

    let t = Instant::now();
    let ping = ["-n", "-c", "3", "-i", "0.2", "-W", "2", "-I", &src, &dst];
    let out = lab
        .a
        .netns
        .run("ping", &ping)
        .expect("ping through the tunnel");
    assert!(out.contains("3 received"), "{out}");
    eprintln!("ping took {:?}", t.elapsed());

    // The packets went through ESP: libipsec counts them on both sides.
    let listing = b.list_sas().expect("list-sas B");
    assert!(listing.contains("3 packets"), "{listing}");

    let t = Instant::now();
    drop((a, b));
    drop(lab);
    eprintln!(
        "teardown took {:?}; whole test {:?}",
        t.elapsed(),
        start.elapsed()
    );
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn guards_leave_no_namespace_process_or_lab_dir() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let conn = SwanConn::psk_tunnel_v4(&lab.a, &lab.b);
    let (a, b) = establish(&lab, &conn);

    let namespaces = [lab.a.netns.name().to_owned(), lab.b.netns.name().to_owned()];
    let charons: Vec<(u32, u64)> = [&a, &b]
        .iter()
        .map(|ss| (ss.charon().pid(), ss.charon().start_time()))
        .collect();
    let dirs: Vec<PathBuf> = vec![
        lab.dir.path().to_owned(),
        a.dir().to_owned(),
        b.dir().to_owned(),
    ];
    for ns in &namespaces {
        assert!(Netns::exists(ns), "{ns} should exist while the lab lives");
    }
    for &(pid, start) in &charons {
        assert_eq!(proc_start_time(pid), Some(start), "charon {pid} should run");
    }
    // libipsec's routing rule exists while charon runs.
    let rules = lab.a.netns.ip(&["rule", "show"]).expect("ip rule");
    assert!(rules.contains("lookup 220"), "{rules}");

    // Drop in the "wrong" order on purpose: the lab first, the daemons after. The daemons
    // keep their namespaces alive until they have stopped.
    drop(lab);
    for ns in &namespaces {
        assert!(
            Netns::exists(ns),
            "{ns} deleted while charon still ran in it"
        );
    }
    drop((a, b));

    for ns in &namespaces {
        assert!(!Netns::exists(ns), "netns {ns} left behind");
    }
    for &(pid, start) in &charons {
        assert_ne!(
            proc_start_time(pid),
            Some(start),
            "charon {pid} left running"
        );
    }
    if interop::lab::keep_lab() {
        eprintln!("RACOON3_KEEP_LAB=1: lab directories kept on purpose");
    } else {
        for dir in &dirs {
            assert!(!dir.exists(), "lab dir {} left behind", dir.display());
        }
    }
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn strongswan_pair_ikev2_psk_v6_carries_ping() {
    let lab = Lab::two_hosts().expect("lab");
    let conn = SwanConn::psk_tunnel_v6(&lab.a, &lab.b);
    let (_a, _b) = establish(&lab, &conn);
    let (src, dst) = (lab.a.lan_v6.to_string(), lab.b.lan_v6.to_string());
    let out = lab.a.netns.run(
        "ping",
        &[
            "-6", "-n", "-c", "2", "-i", "0.2", "-W", "2", "-I", &src, &dst,
        ],
    );
    let out = out.expect("ping6 through the tunnel");
    assert!(out.contains("2 received"), "{out}");
}

/// Negative control: the harness reports a failed negotiation as an error, with the reason
/// in the logs, instead of hanging or passing.
#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn strongswan_pair_wrong_psk_fails_cleanly() {
    let lab = Lab::two_hosts().expect("lab");
    let conn = SwanConn::psk_tunnel_v4(&lab.a, &lab.b);
    let wrong = SwanConn {
        psk: "not-the-same-psk-0123456789".into(),
        ..conn.mirrored()
    };
    let a = StrongSwan::start(&lab.dir, &lab.a.netns, "a", std::slice::from_ref(&conn)).expect("A");
    let b = StrongSwan::start(&lab.dir, &lab.b.netns, "b", &[wrong]).expect("B");
    let err = a
        .initiate(&conn.child)
        .expect_err("a wrong PSK must not establish");
    eprintln!("initiate failed as expected: {err}");
    assert!(a.log_contains("AUTHENTICATION_FAILED"), "{}", a.log());
    assert!(b.log_contains("MAC mismatched"), "{}", b.log());
    assert!(
        a.sas()
            .expect("list-sas")
            .iter()
            .all(|sa| sa.state != "ESTABLISHED")
    );
}
