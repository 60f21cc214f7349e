//! racoonctl against running iked daemons: show, initiate, terminate,
//! JSON output, and the error when iked is not running.
//!
//! Ignored by default (needs root and namespaces); CI runs them with
//! `cargo nextest run --run-ignored all`.

use std::time::Duration;

use interop::racoon2conf::{self, Algs, Family};
use interop::{Iked, Lab, require_root_and_tools};

const WAIT: Duration = Duration::from_secs(10);

fn algs() -> Algs {
    Algs {
        ike_enc: "aes128_gcm16",
        ike_hash: "hmac_sha2_256",
        dh: "curve25519",
        esp_enc: "aes256_gcm16",
        esp_auth: "",
    }
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn racoonctl_initiates_shows_and_terminates_an_sa() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let (conf_a, conf_b) = racoon2conf::tunnel_pair(&lab, Family::V4, &algs(), "tunnel");
    let b = Iked::start(&lab.dir, &lab.b.netns, "b", &conf_b, None).expect("iked b");
    let a = Iked::start(&lab.dir, &lab.a.netns, "a", &conf_a, None).expect("iked a");
    for d in [&a, &b] {
        d.wait_for_log("iked started", WAIT).expect("up");
    }

    let (code, out, _) = a.racoonctl(&["show", "sa"]).expect("show sa");
    assert_eq!(code, 0);
    assert!(
        !out.contains("ESTABLISHED"),
        "nothing before initiate:\n{out}"
    );

    let (code, out, err) = a.racoonctl(&["initiate", "peer"]).expect("initiate");
    assert_eq!(code, 0, "{out}{err}");
    a.wait_for_log("INSTALLED", WAIT).expect("A installed");
    b.wait_for_log("INSTALLED", WAIT).expect("B installed");
    racoon2conf::ping_lan(&lab.a, &lab.b, Family::V4).expect("ping through the tunnel");

    let (code, out, _) = a.racoonctl(&["show", "sa"]).expect("show sa");
    assert_eq!(code, 0);
    for want in [
        "peer",
        "ESTABLISHED",
        "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519",
        "AES_GCM_16-256",
        "198.51.100.0/24",
        "203.0.113.0/24",
    ] {
        assert!(out.contains(want), "missing {want}:\n{out}");
    }

    let (code, json, _) = a
        .racoonctl(&["--json", "show", "sa"])
        .expect("show sa --json");
    assert_eq!(code, 0);
    assert!(json.contains("\"state\":\"ESTABLISHED\""), "{json}");
    assert!(
        json.contains("\"out_packets\":3") && json.contains("\"in_packets\":3"),
        "ESP counters in JSON: {json}"
    );

    let (code, out, _) = a.racoonctl(&["--json", "show", "status"]).expect("status");
    assert_eq!(code, 0);
    assert!(
        out.contains("\"kernel_backend\":\"userspace via spmd\"")
            && out.contains("\"carries_traffic\":true"),
        "{out}"
    );

    let (code, _, err) = a
        .racoonctl(&["terminate", "no-such-remote"])
        .expect("terminate unknown");
    assert_eq!(code, 1, "{err}");

    let (code, out, err) = a.racoonctl(&["terminate", "all"]).expect("terminate");
    assert_eq!(code, 0, "{out}{err}");
    b.wait_for_log("deleted by", WAIT)
        .expect("B hears the Delete");
    let gone = interop::wait_for(
        || {
            a.racoonctl(&["show", "sa"])
                .is_ok_and(|(_, out, _)| !out.contains("ESTABLISHED"))
        },
        WAIT,
    );
    assert!(gone, "SA still shown after terminate");

    // spmd answers too: its status, and flush after a new negotiation.
    let (code, out, _) = a
        .racoonctl(&["--json", "show", "status", "spmd"])
        .expect("spmd status");
    assert_eq!(code, 0);
    assert!(
        out.contains("\"daemon\":\"spmd\"") && out.contains("\"kernel_backend\":\"userspace\""),
        "{out}"
    );
    let (code, out, err) = a.racoonctl(&["initiate", "peer"]).expect("initiate again");
    assert_eq!(code, 0, "{out}{err}");
    let up = interop::wait_for(
        || {
            a.racoonctl(&["show", "sa"])
                .is_ok_and(|(_, out, _)| out.contains("CHILD"))
        },
        WAIT,
    );
    assert!(up, "second SA did not come up");
    let (code, out, err) = a.racoonctl(&["flush"]).expect("flush");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("iked: deleting 1 IKE SA") && out.contains("spmd: flushed"),
        "{out}"
    );
    let (_, out, _) = a.racoonctl(&["show", "sa"]).expect("show sa");
    assert!(
        out.contains("no IKE SAs") || !out.contains("CHILD"),
        "{out}"
    );
}

#[test]
#[ignore = "needs the racoonctl binary from `cargo build --workspace --bins` (run with --run-ignored all)"]
fn racoonctl_says_when_iked_is_not_running() {
    let dir = std::env::temp_dir().join(format!("racoon3-noiked-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bin = Iked::binary().with_file_name("racoonctl");
    let out = std::process::Command::new(bin)
        .arg("--run-dir")
        .arg(&dir)
        .args(["show", "sa"])
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("iked is not running"));
}
