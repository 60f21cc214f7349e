//! The KINK lab itself, without kinkd: the KDC in B's namespace answers
//! both hosts, the premises of the Kerberos failure tests hold (a changed
//! key makes a keytab stale; `-allow_svr` leaves only user-to-user), spmd
//! accepts the generated KINK configurations, and the datagram capture and
//! injection helpers see and forge UDP between the namespaces.
//!
//! Ignored by default (needs root, namespaces, krb5-kdc); run with
//! `cargo nextest run -p interop --test harness_kink --run-ignored all`.

use std::time::Duration;

use interop::datagram::{Capture, CaptureFilter, inject_udp_v4};
use interop::kink::{self, KINK_PORT, KinkHost, KinkLab, KinkOptions, Kinkd};
use interop::racoon2conf::KinkEsp;
use interop::require_root_and_tools;

fn lab() -> KinkLab {
    require_root_and_tools();
    KinkLab::new().expect("KINK lab")
}

/// `kvno -c CCACHE kink/<peer>`: a service ticket through the KDC, in `from`'s namespace.
fn kvno(from: &KinkHost, ccache: &std::path::Path, peer: &KinkHost) -> Result<String, String> {
    let cc = format!("FILE:{}", ccache.display());
    let out = from
        .netns()
        .command("kvno")
        .args(["-c", &cc, &peer.principal])
        .env("KRB5_CONFIG", &from.krb5_conf)
        .output()
        .map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

#[test]
#[ignore = "needs root, network namespaces and an MIT KDC (run with --run-ignored all)"]
fn the_kdc_in_b_answers_both_hosts_and_the_failure_premises_hold() {
    let lab = lab();
    lab.kinit(&lab.a).expect("kinit kink/a in A");
    lab.kinit(&lab.b).expect("kinit kink/b in B");
    let cc = lab.dir().path().join("a.cc");
    lab.kinit_into(&lab.a, &lab.a.keytab, &cc).expect("A's TGT");
    let out = kvno(&lab.a, &cc, &lab.b).expect("service ticket for kink/b");
    assert!(out.contains("kvno = 1"), "{out}");

    // Stale keytab: after a key change B's exported keytab no longer works ...
    lab.kdc.change_key(&lab.b.principal).expect("cpw");
    let err = lab.kinit(&lab.b).expect_err("B's keytab is stale");
    eprintln!("kinit with the stale keytab: {err}");
    // (A fresh cache: the old one still holds the kvno 1 ticket, as a running
    // kinkd would; so the kinkd test changes the key before any exchange.)
    let fresh = lab.dir().path().join("a-fresh.cc");
    lab.kinit_into(&lab.a, &lab.a.keytab, &fresh)
        .expect("A's TGT");
    let out = kvno(&lab.a, &fresh, &lab.b).expect("ticket under the new key");
    assert!(
        out.contains("kvno = 2"),
        "A's new ticket is under kvno 2: {out}"
    );
    let cached = kvno(&lab.a, &cc, &lab.b).expect("cached ticket");
    assert!(cached.contains("kvno = 1"), "{cached}");
    // ... until it is exported again.
    lab.kdc
        .export_keytab(&lab.b.principal, &lab.b.keytab)
        .expect("ktadd");
    lab.kinit(&lab.b)
        .expect("kinit with the re-exported keytab");

    // -allow_svr: no ordinary service ticket any more (user-to-user only).
    lab.kdc
        .modify(&lab.b.principal, "-allow_svr")
        .expect("modprinc");
    let cc2 = cc.with_file_name("a2.cc");
    lab.kinit_into(&lab.a, &lab.a.keytab, &cc2)
        .expect("A's TGT");
    let err2 = kvno(&lab.a, &cc2, &lab.b).expect_err("-allow_svr refuses service tickets");
    assert!(
        err2.to_lowercase().contains("user2user"),
        "{err2} / {err:?}"
    );
    lab.kinit(&lab.b).expect("B still gets its own TGT");
    assert!(lab.kdc.is_running());
}

#[test]
#[ignore = "needs root, network namespaces and an MIT KDC (run with --run-ignored all)"]
fn spmd_starts_with_every_generated_kink_config() {
    let lab = lab();
    let variants = [
        KinkOptions::default(),
        KinkOptions {
            tunnel: true,
            esp: KinkEsp::AES256_CBC_SHA256,
            ..KinkOptions::default()
        },
        KinkOptions {
            v6: true,
            lifetime_secs: 10,
            ..KinkOptions::default()
        },
    ];
    for opts in variants {
        let spec = lab.spec(&lab.a, &lab.b, &opts);
        let conf = spec.conf.clone();
        let d = Kinkd::start_spmd(lab.dir(), lab.a.netns(), spec)
            .unwrap_or_else(|e| panic!("{e}\n--- config ---\n{conf}"));
        assert!(d.spmd_running(), "{}", d.tails());
        let (code, out, err) = d
            .racoonctl(&["--json", "show", "policy"])
            .expect("racoonctl");
        assert_eq!(code, 0, "{out}{err}\n{}", d.spmd_log());
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
        let protect: Vec<_> = v["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["action"] == "protect")
            .collect();
        assert_eq!(protect.len(), 2, "{opts:?}: {out}");
        assert!(
            protect
                .iter()
                .all(|p| p["remote"] == "peer-b" && p["reqid"] == 1),
            "{out}"
        );
    }
}

/// With both spmds enforcing the transport policy (and no kinkd to answer
/// the ACQUIRE), traffic between the hosts is held back, but Kerberos to
/// the KDC's own address still flows: the lab's placement of the KDC does
/// not deadlock the negotiation it keys.
#[test]
#[ignore = "needs root, network namespaces and an MIT KDC (run with --run-ignored all)"]
fn the_kdc_stays_reachable_while_the_hosts_policy_holds_traffic() {
    let lab = lab();
    let opts = KinkOptions::default();
    let a = Kinkd::start_spmd(lab.dir(), lab.a.netns(), lab.spec(&lab.a, &lab.b, &opts))
        .expect("spmd A");
    let b = Kinkd::start_spmd(lab.dir(), lab.b.netns(), lab.spec(&lab.b, &lab.a, &opts))
        .expect("spmd B");
    let (src, dst) = (lab.a.addr(false), lab.b.addr(false));
    let round = kink::ping(lab.a.netns(), src, dst, 2, "0.2");
    assert_eq!(round.received, 0, "the policy holds A -> B: {round:?}");
    lab.kinit(&lab.a)
        .expect("A reaches the KDC under the policy");
    lab.kinit(&lab.b)
        .expect("B reaches the KDC under the policy");
    let acquired = interop::wait_for(
        || a.spmd_log().contains("ACQUIRE for 192.0.2.1 -> 192.0.2.2"),
        Duration::from_secs(5),
    );
    assert!(acquired, "the ping raised an ACQUIRE:\n{}", a.tails());
    drop((a, b));
}

/// The skew test's clock: a process started with `kink::faketime_env` (as
/// the Kinkd guard starts kinkd, through `ip netns exec`) follows the file.
#[test]
#[ignore = "needs root, network namespaces and libfaketime (run with --run-ignored all)"]
fn faketime_moves_one_process_clock_by_the_file() {
    let lab = lab();
    let file = lab.dir().path().join("faketime");
    std::fs::write(&file, "+1h\n").expect("write");
    let env = kink::faketime_env(&file).expect("libfaketime (apt-get install faketime)");
    let out = lab
        .a
        .netns()
        .command("date")
        .arg("+%s")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("date");
    let faked: i64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let now = i64::try_from(now).expect("seconds fit");
    assert!((faked - now - 3600).abs() <= 5, "faked {faked}, now {now}");
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn capture_sees_what_inject_forges_from_the_other_namespace() {
    let lab = lab();
    // As in the kinkd tests: A's spmd routes 192.0.2.2 into its TUN device;
    // the forged datagram must still leave on the veth (bypass mark).
    let opts = KinkOptions::default();
    let spmd_a = Kinkd::start_spmd(lab.dir(), lab.a.netns(), lab.spec(&lab.a, &lab.b, &opts))
        .expect("spmd A");
    let capture = Capture::start(
        lab.b.netns(),
        CaptureFilter {
            src: lab.a.host.outer_v4,
            dst_port: KINK_PORT,
        },
    )
    .expect("capture in B");
    let d = kink::kink_datagram(
        lab.a.host.outer_v4,
        lab.b.host.outer_v4,
        b"\x06\x10\x00\x10forged-in-a".to_vec(),
    );
    // Nothing listens on 910 in B: the capture sees it anyway.
    let seen = interop::wait_for(
        || {
            inject_udp_v4(lab.a.netns(), &d).expect("inject from A");
            !capture.datagrams().is_empty()
        },
        Duration::from_secs(5),
    );
    assert!(seen, "no datagram captured");
    let got = capture.stop();
    assert_eq!(got[0], d, "the capture is the datagram, byte for byte");
    assert!(
        !spmd_a.spmd_log().contains("ACQUIRE"),
        "the forged datagram bypassed A's policy:\n{}",
        spmd_a.spmd_log()
    );
}
