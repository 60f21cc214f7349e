//! racoon2's hook scripts, run by a real iked: A (the initiator) has
//! `phase1_up`, `phase2_up`, `phase2_down` and `phase1_down` scripts that
//! record their argv and environment; its `phase1_up` then sleeps for a
//! minute, which must not hold up the negotiation. And against strongSwan,
//! which rekeys both SAs: the rekey scripts run, the down scripts do not.
//!
//! Ignored by default (needs root and namespaces); CI runs them with
//! `cargo nextest run --run-ignored all`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use interop::racoon2conf::{self, Algs, Family};
use interop::{Iked, Lab, StrongSwan, SwanConn, require_root_and_tools};

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

/// One recording script per event: appends `argv1=$1`, `env` and `END`
/// to `NAME.env`, prints a line for iked's log, and (for `sleep`) then
/// sleeps, having noted its PID (its process group) in `NAME.pid`.
fn recorder(dir: &Path, name: &str, sleep: bool) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let record = dir.join(format!("{name}.env"));
    let mut body = format!(
        "#!/bin/sh\n{{ echo \"argv1=$1\"; env; echo END; }} >> {}\necho \"hello from $1\"\n",
        record.display()
    );
    if sleep {
        body.push_str(&format!(
            "echo $$ > {}\nexec sleep 60\n",
            dir.join(format!("{name}.pid")).display()
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// The runs recorded in `NAME.env`, each as its variables (argv[1] as
/// `argv1`), once at least `n` complete ones are there (or after [`WAIT`]).
fn runs(dir: &Path, name: &str, n: usize) -> Vec<BTreeMap<String, String>> {
    runs_within(dir, name, n, WAIT)
}

fn runs_within(dir: &Path, name: &str, n: usize, wait: Duration) -> Vec<BTreeMap<String, String>> {
    let file = dir.join(format!("{name}.env"));
    let parse = || -> Vec<BTreeMap<String, String>> {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        text.split_inclusive("END\n")
            .filter(|r| r.ends_with("END\n"))
            .map(|r| {
                r.lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .collect()
    };
    interop::wait_for(|| parse().len() >= n, wait);
    parse()
}

fn var<'m>(run: &'m BTreeMap<String, String>, name: &str) -> Option<&'m str> {
    run.get(name).map(String::as_str)
}

/// SIGKILL to a sleeping script's process group if the test ends early,
/// so no `sleep 60` outlives it.
struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// `text` between `before` and the next `after`, on the first line with `before`.
fn between<'t>(text: &'t str, before: &str, after: &str) -> &'t str {
    let start = text.find(before).expect(before) + before.len();
    let len = text[start..].find(after).expect(after);
    &text[start..start + len]
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn hook_scripts_see_racoon2s_variables_and_never_block_iked() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let hooks = lab.dir.subdir("hooks").expect("hooks dir");
    let p1up = recorder(&hooks, "p1up", true);
    let p2up = recorder(&hooks, "p2up", false);
    let p2down = recorder(&hooks, "p2down", false);
    let p1down = recorder(&hooks, "p1down", false);
    let (conf_a, conf_b) = racoon2conf::tunnel_pair(&lab, Family::V4, &algs(), "tunnel");
    // Both spellings: racoon2's phase names and their IKEv2 synonyms.
    let conf_a = racoon2conf::with_scripts(
        &conf_a,
        &[
            ("phase1_up", &p1up),
            ("child_up", &p2up),
            ("phase2_down", &p2down),
            ("ike_sa_down", &p1down),
        ],
    );
    let b = Iked::start(&lab.dir, &lab.b.netns, "b", &conf_b, None).expect("iked b");
    b.wait_for_log("iked started", WAIT).expect("b up");
    let a = Iked::start(
        &lab.dir,
        &lab.a.netns,
        "a",
        &conf_a,
        Some(lab.b.outer_v4.into()),
    )
    .expect("iked a");

    // phase1_up starts sleeping for 60 s as soon as the IKE SA is up;
    // the CHILD SA is installed and carries traffic meanwhile, and iked
    // answers its control socket.
    a.wait_for_log("INSTALLED", WAIT)
        .expect("A installs the CHILD SA");
    b.wait_for_log("INSTALLED", WAIT)
        .expect("B installs the CHILD SA");
    let up = runs(&hooks, "p1up", 1);
    let pid_file = hooks.join("p1up.pid");
    assert!(
        interop::wait_for(|| pid_file.exists(), WAIT),
        "phase1_up runs"
    );
    let sleeper: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid number");
    let sleeper_guard = GroupGuard(sleeper);
    racoon2conf::ping_lan(&lab.a, &lab.b, Family::V4).expect("ping through the tunnel");
    let (code, out, _) = a.racoonctl(&["show", "sa"]).expect("show sa");
    assert_eq!(code, 0);
    assert!(out.contains("ESTABLISHED"), "{out}");
    assert!(
        Path::new(&format!("/proc/{sleeper}")).exists(),
        "all this happened while phase1_up was still running"
    );

    let log = a.log();
    let ike_spi = between(&log, "IKE SA peer[", "] ESTABLISHED");
    let (spi_in, spi_out) = between(&log, "SPIs in ", ",")
        .split_once(" out ")
        .expect("SPIs in X out Y");
    assert_eq!(up.len(), 1);
    let up = &up[0];
    let expected_p1 = [
        ("argv1", "phase1_up"),
        ("LOCAL_ADDR", "192.0.2.1"),
        ("LOCAL_PORT", "500"),
        ("REMOTE_ADDR", "192.0.2.2"),
        ("REMOTE_PORT", "500"),
        ("REMOTE_INDEX", "peer"),
        ("IKE_SPI", ike_spi),
    ];
    for (k, v) in expected_p1 {
        assert_eq!(var(up, k), Some(v), "phase1_up {k}: {up:?}");
    }
    assert_eq!(
        var(up, "RUST_LIB_BACKTRACE"),
        None,
        "iked's own environment is not passed on: {up:?}"
    );

    let child_up = runs(&hooks, "p2up", 1);
    assert_eq!(child_up.len(), 1, "{child_up:?}");
    let expected_p2 = [
        ("LOCAL_ADDR", "192.0.2.1"),
        ("REMOTE_ADDR", "192.0.2.2"),
        ("SELECTOR_INDEX", "sel_out"),
        ("IPSEC_MODE", "tunnel"),
        ("LOCAL_NET_ADDR", "198.51.100.0"),
        ("LOCAL_NET_PREFIXLEN", "24"),
        ("LOCAL_NET_PORT", "0"),
        ("REMOTE_NET_ADDR", "203.0.113.0"),
        ("REMOTE_NET_PREFIXLEN", "24"),
        ("REMOTE_NET_PORT", "0"),
        ("UPPER_LAYER_PROTOCOL", "any"),
        ("INTERNAL_ADDR4", ""),
        ("APPLICATION_VERSION", ""),
        ("REMOTE_INDEX", "peer"),
        ("IKE_SPI", ike_spi),
        ("SPI_IN", spi_in),
        ("SPI_OUT", spi_out),
    ];
    for (k, v) in expected_p2 {
        assert_eq!(var(&child_up[0], k), Some(v), "phase2_up {k}");
    }
    assert_eq!(var(&child_up[0], "argv1"), Some("phase2_up"));
    a.wait_for_log(
        &format!("hook phase2_up {}: hello from phase2_up", p2up.display()),
        WAIT,
    )
    .expect("script output in iked's log");
    a.wait_for_log(
        &format!("hook phase2_up {}: exited 0", p2up.display()),
        WAIT,
    )
    .expect("exit status logged");
    assert!(!hooks.join("p1down.env").exists() && !hooks.join("p2down.env").exists());

    // racoonctl terminate all: the CHILD SA goes down, then the IKE SA,
    // each script with its *_up's variables.
    let (code, out, err) = a.racoonctl(&["terminate", "all"]).expect("terminate");
    assert_eq!(code, 0, "{out}{err}");
    let child_down = runs(&hooks, "p2down", 1);
    assert_eq!(child_down.len(), 1, "{child_down:?}");
    assert_eq!(var(&child_down[0], "argv1"), Some("phase2_down"));
    for (k, v) in expected_p2 {
        assert_eq!(var(&child_down[0], k), Some(v), "phase2_down {k}");
    }
    let down = runs(&hooks, "p1down", 1);
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!(var(&down[0], "argv1"), Some("phase1_down"));
    for (k, v) in &expected_p1[1..] {
        assert_eq!(var(&down[0], k), Some(*v), "phase1_down {k}");
    }
    // Each fired once: no phase2_up again, no second phase1_up.
    assert_eq!(runs(&hooks, "p2up", 1).len(), 1);
    assert_eq!(runs(&hooks, "p1up", 1).len(), 1);

    // End the sleeper (its own process group) instead of waiting out
    // iked's 30 s timeout; iked logs how it ended.
    let pid = rustix::process::Pid::from_raw(sleeper).expect("pid");
    rustix::process::kill_process_group(pid, rustix::process::Signal::TERM)
        .expect("stop phase1_up");
    // Stopped: the guard must not signal a group ID that may be reused.
    std::mem::forget(sleeper_guard);
    a.wait_for_log(
        &format!("hook phase1_up {}: ended by signal 15", p1up.display()),
        WAIT,
    )
    .expect("phase1_up's end is logged");
    assert!(a.is_running() && b.is_running());
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan (run with --run-ignored all)"]
fn strongswan_rekeys_run_the_rekey_scripts_and_no_down_script() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let hooks = lab.dir.subdir("hooks").expect("hooks dir");
    let events = [
        ("phase1_up", "p1up"),
        ("phase1_rekey", "p1rekey"),
        ("phase1_down", "p1down"),
        ("phase2_up", "p2up"),
        ("phase2_rekey", "p2rekey"),
        ("phase2_down", "p2down"),
    ];
    let paths: Vec<(&str, PathBuf)> = events
        .iter()
        .map(|(event, name)| (*event, recorder(&hooks, name, false)))
        .collect();
    let scripts: Vec<(&str, &Path)> = paths.iter().map(|(e, p)| (*e, p.as_path())).collect();
    // strongSwan on B initiates and rekeys the CHILD SA every ~3 s and
    // the IKE SA after ~5 s.
    let mut conn = SwanConn::psk_tunnel_v4(&lab.b, &lab.a);
    conn.ike_proposals = "aes128gcm16-prfsha256-x25519".into();
    conn.esp_proposals = "aes256gcm16".into();
    conn.child_rekey_time = Some("3s".into());
    conn.ike_rekey_time = Some("5s".into());
    let swan = StrongSwan::start(&lab.dir, &lab.b.netns, "b", std::slice::from_ref(&conn))
        .expect("charon");
    let psk = lab.dir.path().join("psk-a");
    std::fs::write(&psk, &conn.psk).expect("psk file");
    let conf = racoon2conf::tunnel(&lab.a, &lab.b, Family::V4, &algs(), &psk, "tunnel");
    let conf = racoon2conf::with_scripts(&conf, &scripts);
    let a = Iked::start(&lab.dir, &lab.a.netns, "a", &conf, None).expect("iked a");
    a.wait_for_log("iked started", WAIT).expect("a up");
    swan.initiate(&conn.child).expect("strongSwan initiates");

    let rekeyed = Duration::from_secs(20);
    let child_rekeys = runs_within(&hooks, "p2rekey", 1, rekeyed);
    let ike_rekeys = runs_within(&hooks, "p1rekey", 1, rekeyed);
    assert!(
        !child_rekeys.is_empty() && !ike_rekeys.is_empty(),
        "both rekeyed:\n{}\n--- charon ---\n{}",
        a.log(),
        swan.log()
    );
    // strongSwan deletes the replaced SAs; that is no *_down.
    a.wait_for_log("CHILD SA peer deleted by", WAIT)
        .expect("old CHILD SA deleted");
    a.wait_for_log("deleted by 192.0.2.2", WAIT)
        .expect("old IKE SA deleted");
    std::thread::sleep(Duration::from_millis(500));
    for name in ["p1down", "p2down"] {
        assert!(
            !hooks.join(format!("{name}.env")).exists(),
            "{name} ran:\n{}",
            a.log()
        );
    }

    let up = runs(&hooks, "p1up", 1);
    assert_eq!(up.len(), 1, "one phase1_up: {up:?}");
    // kernel-libipsec claims a NAT: IKE moved to port 4500 before IKE_AUTH.
    for (k, v) in [
        ("argv1", "phase1_up"),
        ("LOCAL_ADDR", "192.0.2.1"),
        ("LOCAL_PORT", "4500"),
        ("REMOTE_ADDR", "192.0.2.2"),
        ("REMOTE_PORT", "4500"),
    ] {
        assert_eq!(var(&up[0], k), Some(v), "phase1_up {k}");
    }
    let rekey = &ike_rekeys[0];
    assert_eq!(var(rekey, "argv1"), Some("phase1_rekey"));
    assert_eq!(var(rekey, "LOCAL_PORT"), Some("4500"));
    assert_ne!(
        var(rekey, "IKE_SPI"),
        var(&up[0], "IKE_SPI"),
        "phase1_rekey names the new IKE SA"
    );
    let log = a.log();
    let new_spi = var(rekey, "IKE_SPI").expect("IKE_SPI");
    assert!(
        log.contains(&format!("now peer[{new_spi}]")),
        "the new SPI as logged:\n{log}"
    );

    let child_up = runs(&hooks, "p2up", 1);
    assert_eq!(child_up.len(), 1, "one phase2_up: {child_up:?}");
    let first = &child_rekeys[0];
    assert_eq!(var(first, "argv1"), Some("phase2_rekey"));
    assert_ne!(var(first, "SPI_IN"), var(&child_up[0], "SPI_IN"));
    for k in [
        "LOCAL_NET_ADDR",
        "REMOTE_NET_ADDR",
        "SELECTOR_INDEX",
        "IPSEC_MODE",
    ] {
        assert_eq!(var(first, k), var(&child_up[0], k), "{k}");
    }
    let spi_in = var(first, "SPI_IN").expect("SPI_IN");
    assert!(
        log.contains(&format!("SPIs in {spi_in} ")),
        "the rekeyed CHILD SA's SPI as logged:\n{log}"
    );
}
