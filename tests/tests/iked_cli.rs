//! iked and spmd as an operator starts them: racoon2's flags, detaching,
//! the pid files, and configuration errors that name file:line:col.
//!
//! Ignored by default (needs root and namespaces); CI runs them with
//! `cargo nextest run --run-ignored all`.

use std::time::Duration;

use interop::{Iked, LabDir, Netns, require_root_and_tools, wait_for};

const CONF: &str = r#"interface { ike { 127.0.0.1 port 500; }; };
remote peer {
  acceptable_kmp { ikev2; };
  ikev2 {
    peers_ipaddr 127.0.0.2 port 500;
    kmp_enc_alg { aes128_gcm16; };
    kmp_prf_alg { hmac_sha2_256; };
    kmp_dh_group { curve25519; };
    kmp_auth_method { psk; };
    pre_shared_key "PSK";
  };
};
selector out { direction outbound; src 198.51.100.0/24; dst 203.0.113.0/24; policy_index pol; };
policy pol { action auto_ipsec; remote_index peer; ipsec_mode tunnel; ipsec_index { e; };
             peers_sa_ipaddr 127.0.0.2; my_sa_ipaddr 127.0.0.1; };
ipsec e { sa_index esp; };
sa esp { sa_protocol esp; esp_enc_alg { aes128_gcm16; }; };
"#;

fn setup() -> (LabDir, Netns, std::path::PathBuf) {
    require_root_and_tools();
    let dir = LabDir::new("r3cli").expect("lab dir");
    let ns = Netns::create("r3cli").expect("netns");
    ns.ip(&["link", "set", "lo", "up"]).expect("lo up");
    let psk = dir.path().join("psk");
    std::fs::write(&psk, "cli test key").expect("psk");
    let conf = dir.path().join("racoon2.conf");
    std::fs::write(&conf, CONF.replace("PSK", &psk.display().to_string())).expect("conf");
    (dir, ns, conf)
}

/// Starts `daemon` (spmd or iked) without -F; checks it detached, wrote its
/// pid file and logged its start; returns its pid.
fn start_detached(
    ns: &Netns,
    daemon: &str,
    conf: &std::path::Path,
    run_dir: &std::path::Path,
) -> i32 {
    let binary = Iked::binary().with_file_name(daemon);
    let out = ns
        .command(&binary)
        .args([
            "-f",
            &conf.display().to_string(),
            "--run-dir",
            &run_dir.display().to_string(),
        ])
        .output()
        .expect("run the daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{daemon}: {stderr}");
    assert!(
        stderr.contains("running in the background"),
        "{daemon}: {stderr}"
    );
    let pid_file = run_dir.join(format!("{daemon}.pid"));
    let readable =
        || std::fs::read_to_string(&pid_file).is_ok_and(|t| t.trim().parse::<i32>().is_ok());
    assert!(
        wait_for(readable, Duration::from_secs(5)),
        "no {daemon} pid file"
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid number");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("daemon alive");
    assert_eq!(
        exe,
        std::fs::canonicalize(&binary).expect("binary"),
        "the pid file names our {daemon}"
    );
    let log = run_dir.join(format!("{daemon}.log"));
    let started = format!("{daemon} started");
    assert!(
        wait_for(
            || std::fs::read_to_string(&log).is_ok_and(|l| l.contains(&started)),
            Duration::from_secs(15)
        ),
        "{daemon} did not log its start:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    pid
}

/// SIGTERM, then the pid file and the process must go.
fn stop_detached(daemon: &str, pid: i32, run_dir: &std::path::Path) {
    let status = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let pid_file = run_dir.join(format!("{daemon}.pid"));
    assert!(
        wait_for(|| !pid_file.exists(), Duration::from_secs(5)),
        "{daemon} left its pid file behind"
    );
    assert!(wait_for(
        || !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        Duration::from_secs(5)
    ));
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn spmd_and_iked_detach_and_remove_their_pid_files() {
    let (dir, ns, conf) = setup();
    let run_dir = dir.path().join("run");
    let spmd = start_detached(&ns, "spmd", &conf, &run_dir);
    let iked = start_detached(&ns, "iked", &conf, &run_dir);
    stop_detached("iked", iked, &run_dir);
    stop_detached("spmd", spmd, &run_dir);
    let log = std::fs::read_to_string(run_dir.join("spmd.log")).expect("spmd log");
    assert!(
        log.contains("removed 1 policies"),
        "spmd removes its policy on exit:\n{log}"
    );
    assert!(
        !run_dir.join("spmd.policies").exists(),
        "a clean exit leaves no journal"
    );
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn a_second_iked_on_the_same_run_dir_is_refused() {
    let (dir, ns, conf) = setup();
    let first = Iked::start(
        &dir,
        &ns,
        "one",
        &std::fs::read_to_string(&conf).expect("conf"),
        None,
    )
    .expect("first");
    first
        .wait_for_log("iked started", Duration::from_secs(5))
        .expect("first up");
    let out = ns
        .command(Iked::binary())
        .args([
            "-F",
            "-f",
            &first.paths().conf.display().to_string(),
            "--run-dir",
            &first.paths().run_dir.display().to_string(),
        ])
        .output()
        .expect("second iked");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(first.is_running());
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn configuration_errors_name_file_line_and_column_and_stop_iked() {
    let (dir, ns, conf) = setup();
    let text = std::fs::read_to_string(&conf)
        .expect("conf")
        .replace("    kmp_dh_group", "    kmp_dh_gruop");
    std::fs::write(&conf, text).expect("write");
    let out = ns
        .command(Iked::binary())
        .args([
            "-F",
            "-f",
            &conf.display().to_string(),
            "--run-dir",
            &dir.path().join("run").display().to_string(),
        ])
        .output()
        .expect("run iked");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:8:5", conf.display());
    assert!(err.contains(&want) && err.contains("kmp_dh_gruop"), "{err}");
}

#[test]
#[ignore = "needs the iked binary from `cargo build --workspace --bins` (run with --run-ignored all)"]
fn dash_v_prints_the_version() {
    let out = std::process::Command::new(Iked::binary())
        .arg("-V")
        .output()
        .expect("iked -V");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("iked (racoon3) "));
}
