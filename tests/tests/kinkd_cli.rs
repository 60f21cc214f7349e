//! kinkd as an operator starts it: racoon2's flags, configuration errors
//! naming file:line or the remote block, detaching with a pid file and a
//! control socket racoonctl talks to, staying up (and saying why) while the
//! keytab is missing or the KDC unreachable, and a clean SIGTERM.
//!
//! Uses `--kernel memory` (no spmd). Ignored by default (needs root,
//! namespaces and the kinkd and racoonctl binaries: `cargo build -p kinkd
//! -p racoonctl` first); run with `cargo nextest run --run-ignored all`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use interop::kdc::Kdc;
use interop::{Iked, LabDir, Netns, require_root_and_tools, wait_for};

const CONF: &str = r#"interface { kink { 127.0.0.1; }; };
remote peer {
  acceptable_kmp { kink; };
  kink {
    my_principal "kink/a.kink.test@KINK.TEST";
    peers_principal "kink/b.kink.test@KINK.TEST";
  };
};
selector out { direction outbound; src 198.51.100.0/24; dst 203.0.113.0/24; policy_index pol; };
policy pol { action auto_ipsec; remote_index peer; ipsec_mode tunnel; ipsec_index { e; };
             peers_sa_ipaddr 127.0.0.2; my_sa_ipaddr 127.0.0.1; };
ipsec e { sa_index esp; };
sa esp { sa_protocol esp; esp_enc_alg { aes128_gcm16; }; };
"#;

fn kinkd() -> PathBuf {
    Iked::binary().with_file_name("kinkd")
}

fn racoonctl() -> PathBuf {
    Iked::binary().with_file_name("racoonctl")
}

/// A lab dir, a namespace with `lo` up, and the configuration file.
fn setup(name: &str, conf: &str) -> (LabDir, Netns, PathBuf) {
    require_root_and_tools();
    let dir = LabDir::new(name).expect("lab dir");
    let ns = Netns::create(name).expect("netns");
    ns.ip(&["link", "set", "lo", "up"]).expect("lo up");
    let path = dir.path().join("racoon2.conf");
    std::fs::write(&path, conf).expect("conf");
    (dir, ns, path)
}

/// kinkd's flags for `conf` and `run_dir`, with the memory kernel.
fn args(conf: &Path, run_dir: &Path) -> Vec<String> {
    args_with(conf, run_dir, "memory")
}

/// The same with another `--kernel`.
fn args_with(conf: &Path, run_dir: &Path, kernel: &str) -> Vec<String> {
    vec![
        "-f".into(),
        conf.display().to_string(),
        "--run-dir".into(),
        run_dir.display().to_string(),
        "--kernel".into(),
        kernel.into(),
    ]
}

/// A krb5.conf for KINK.TEST whose KDC is `kdc` (nothing need listen there).
fn krb5_conf(dir: &Path, kdc: &str) -> PathBuf {
    let path = dir.join("krb5.conf");
    std::fs::write(
        &path,
        format!(
            "[libdefaults]\n default_realm = KINK.TEST\n dns_lookup_kdc = false\n\
             [realms]\n KINK.TEST = {{\n  kdc = {kdc}\n }}\n"
        ),
    )
    .expect("krb5.conf");
    path
}

fn log_of(run_dir: &Path) -> String {
    std::fs::read_to_string(run_dir.join("kinkd.log")).unwrap_or_default()
}

/// A detached kinkd this test started: killed on drop unless [`stop`]
/// stopped it, so a failing assertion leaves no daemon behind.
struct Detached(i32);

impl Drop for Detached {
    fn drop(&mut self) {
        let ours = std::fs::read_link(format!("/proc/{}/exe", self.0))
            .is_ok_and(|exe| std::fs::canonicalize(kinkd()).is_ok_and(|k| k == exe));
        if self.0 > 0 && ours {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

/// Starts kinkd detached in `ns`; checks the pid file names it.
fn start_detached(ns: &Netns, conf: &Path, run_dir: &Path, krb5: &Path, keytab: &Path) -> Detached {
    start_detached_with(ns, &args(conf, run_dir), run_dir, krb5, keytab)
}

/// As [`start_detached`] with these kinkd arguments.
fn start_detached_with(
    ns: &Netns,
    args: &[String],
    run_dir: &Path,
    krb5: &Path,
    keytab: &Path,
) -> Detached {
    let out = ns
        .command(kinkd())
        .args(args)
        .env("KRB5_CONFIG", krb5)
        .env("KRB5_KTNAME", format!("FILE:{}", keytab.display()))
        .env_remove("KRB5CCNAME")
        .output()
        .expect("run kinkd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kinkd: {stderr}");
    assert!(stderr.contains("running in the background"), "{stderr}");
    let pid_file = run_dir.join("kinkd.pid");
    let readable =
        || std::fs::read_to_string(&pid_file).is_ok_and(|t| t.trim().parse::<i32>().is_ok());
    assert!(wait_for(readable, Duration::from_secs(5)), "no pid file");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid number");
    let guard = Detached(pid);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("kinkd alive");
    assert_eq!(
        exe,
        std::fs::canonicalize(kinkd()).expect("binary"),
        "the pid file names our kinkd"
    );
    assert!(
        wait_for(
            || log_of(run_dir).contains("kinkd started"),
            Duration::from_secs(15)
        ),
        "kinkd did not log its start:\n{}",
        log_of(run_dir)
    );
    guard
}

/// SIGTERM; the pid file, the control socket and the process must go.
fn stop(mut daemon: Detached, run_dir: &Path) {
    let pid = daemon.0;
    let status = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    assert!(
        wait_for(
            || !run_dir.join("kinkd.pid").exists(),
            Duration::from_secs(5)
        ),
        "kinkd left its pid file behind:\n{}",
        log_of(run_dir)
    );
    assert!(
        wait_for(
            || !Path::new(&format!("/proc/{pid}")).exists(),
            Duration::from_secs(5)
        ),
        "kinkd did not exit"
    );
    assert!(
        !run_dir.join("kinkd.sock").exists(),
        "the control socket goes"
    );
    assert!(log_of(run_dir).contains("kinkd stopped"));
    daemon.0 = 0; // stopped: nothing for the guard to do
}

/// Runs racoonctl against `run_dir`; (exit code, stdout, stderr).
fn ctl(run_dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(racoonctl())
        .arg("--run-dir")
        .arg(run_dir)
        .args(args)
        .output()
        .expect("racoonctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs the kinkd binary from `cargo build -p kinkd` (run with --run-ignored all)"]
fn dash_v_prints_the_version() {
    let out = std::process::Command::new(kinkd())
        .arg("-V")
        .output()
        .expect("kinkd -V");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("kinkd (racoon3) "));
}

#[test]
#[ignore = "needs the kinkd binary from `cargo build -p kinkd` (run with --run-ignored all)"]
fn configuration_errors_name_file_line_or_the_remote_and_stop_kinkd() {
    let dir = LabDir::new("r3kcfg").expect("lab dir");
    let conf = dir.path().join("racoon2.conf");
    let run_dir = dir.path().join("run");
    let run = |text: &str| {
        std::fs::write(&conf, text).expect("conf");
        let out = std::process::Command::new(kinkd())
            .arg("-F")
            .args(args(&conf, &run_dir))
            .output()
            .expect("run kinkd");
        assert_eq!(out.status.code(), Some(1), "kinkd must fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A syntax error: file:line:col.
    let err = run(&CONF.replace("peers_principal", "peers_principle"));
    let want = format!("{}:6:5", conf.display());
    assert!(
        err.contains(&want) && err.contains("peers_principle"),
        "{err}"
    );
    // A missing directive: the remote block.
    let err = run(&CONF.replace("    peers_principal \"kink/b.kink.test@KINK.TEST\";\n", ""));
    assert!(
        err.contains("remote peer: kink { peers_principal \"kink/PEER@REALM\"; } is required"),
        "{err}"
    );
    assert!(
        err.starts_with(&format!("kinkd: {}: ", conf.display())),
        "{err}"
    );
    // A wildcard listen address.
    let err = run(&CONF.replace("kink { 127.0.0.1; }", "kink { MY_IPV4; }"));
    assert!(
        err.contains("list concrete addresses, not a wildcard"),
        "{err}"
    );
    assert!(
        !run_dir.join("kinkd.pid").exists(),
        "no pid file on failure"
    );
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn without_a_keytab_kinkd_stays_up_says_why_and_answers_racoonctl() {
    let (dir, ns, conf) = setup("r3kcli", CONF);
    let run_dir = dir.path().join("run");
    // Nothing listens on port 1: the KDC is unreachable too (MIT asks the
    // KDC before it reads the keytab); kinkd says the keytab is missing.
    let krb5 = krb5_conf(dir.path(), "127.0.0.1:1");
    let keytab = dir.path().join("missing.keytab");
    let pid = start_detached(&ns, &conf, &run_dir, &krb5, &keytab);
    assert!(
        wait_for(
            || log_of(&run_dir).contains("cannot get a TGT from the KDC"),
            Duration::from_secs(15)
        ),
        "no log line about the TGT:\n{}",
        log_of(&run_dir)
    );
    let log = log_of(&run_dir);
    assert!(log.contains("retrying in 30s"), "{log}");
    assert!(
        log.contains(&format!(
            "keytab {} does not exist: kinkd cannot get its TGT",
            keytab.display()
        )),
        "names the keytab: {log}"
    );
    assert!(
        Path::new(&format!("/proc/{}", pid.0)).exists(),
        "kinkd stays up"
    );
    assert!(run_dir.join("kinkd.sock").exists(), "control socket");

    let (code, out, err) = ctl(&run_dir, &["--json", "show", "status", "kinkd"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let status = &v["status"];
    assert_eq!(status["daemon"], "kinkd");
    assert_eq!(status["pid"], pid.0);
    assert_eq!(status["kernel_backend"], "memory");
    assert_eq!(status["carries_traffic"], false);
    assert_eq!(status["listen"], serde_json::json!(["127.0.0.1[910]"]));
    let counters = status["counters"].as_object().expect("counters");
    for name in [
        "received",
        "malformed",
        "bad_checksum",
        "replayed",
        "krb_errors_sent",
        "krb_errors_received",
        "kink_errors_received",
        "unknown_xid",
        "retransmits",
        "replies_resent",
        "creates",
        "failures",
    ] {
        assert!(counters.contains_key(name), "{name} in {out}");
    }
    let (code, out, err) = ctl(&run_dir, &["show", "status", "kinkd"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("kinkd "), "{out}");
    assert!(out.contains("SA pairs        0 (0 negotiating)"), "{out}");
    let (code, out, err) = ctl(&run_dir, &["show", "sa", "kinkd"]);
    assert_eq!((code, out.as_str()), (0, "no KINK SAs\n"), "{err}");
    let (code, _, err) = ctl(&run_dir, &["initiate", "--daemon", "kinkd", "nope"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unknown_remote"), "{err}");
    let (code, _, err) = ctl(&run_dir, &["terminate", "--daemon", "kinkd", "nope"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = ctl(&dir.path().join("elsewhere"), &["show", "sa", "kinkd"]);
    assert_eq!(code, 3, "not running there: {err}");
    assert!(err.contains("kinkd.sock"), "{err}");

    // HUP is not fatal.
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.0.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    assert!(wait_for(
        || log_of(&run_dir).contains("SIGHUP: kinkd does not reload"),
        Duration::from_secs(5)
    ));
    assert!(Path::new(&format!("/proc/{}", pid.0)).exists());
    stop(pid, &run_dir);
}

#[test]
#[ignore = "needs root, network namespaces and the MIT KDC tools (run with --run-ignored all)"]
fn with_the_kdc_down_kinkd_logs_it_and_retries() {
    let (dir, ns, conf) = setup("r3kkdc", CONF);
    let run_dir = dir.path().join("run");
    // A real keytab for kink/a.kink.test, from a KDC that is then stopped.
    let kdc = Kdc::start(&dir).expect("KDC");
    let (principal, keytab) = kdc.add_host("a.kink.test").expect("kink/a");
    assert_eq!(principal, "kink/a.kink.test@KINK.TEST");
    let kdc_addr = kdc.addr().to_string();
    drop(kdc);
    // In the namespace the KDC's loopback address has nobody either.
    let krb5 = krb5_conf(dir.path(), &kdc_addr);
    let pid = start_detached(&ns, &conf, &run_dir, &krb5, &keytab);
    assert!(
        wait_for(
            || log_of(&run_dir).contains("cannot get a TGT from the KDC"),
            Duration::from_secs(30)
        ),
        "no log line about the KDC:\n{}",
        log_of(&run_dir)
    );
    let log = log_of(&run_dir);
    assert!(log.contains("Cannot contact any KDC"), "{log}");
    assert!(
        Path::new(&format!("/proc/{}", pid.0)).exists(),
        "kinkd stays up"
    );
    let (code, _, err) = ctl(&run_dir, &["show", "status", "kinkd"]);
    assert_eq!(code, 0, "{err}");
    stop(pid, &run_dir);
}

#[test]
#[ignore = "needs root, network namespaces and the MIT KDC tools (run with --run-ignored all)"]
fn with_a_kdc_kinkd_gets_its_tgt_into_both_backends() {
    let (dir, ns, conf) = setup("r3ktgt", CONF);
    let run_dir = dir.path().join("run");
    let kdc = Kdc::start_in(&dir, &ns, std::net::Ipv4Addr::LOCALHOST).expect("KDC in the netns");
    let (_, keytab) = kdc.add_host("a.kink.test").expect("kink/a");
    let pid = start_detached(&ns, &conf, &run_dir, kdc.krb5_conf(), &keytab);
    assert!(
        wait_for(
            || log_of(&run_dir).contains("got a TGT for kink/a.kink.test@KINK.TEST from the KDC"),
            Duration::from_secs(15)
        ),
        "no TGT:\n{}\nKDC:\n{}",
        log_of(&run_dir),
        kdc.log()
    );
    // The event loop's backend found it in the shared cache.
    assert!(
        wait_for(
            || log_of(&run_dir).contains("loaded into the protocol core's backend"),
            Duration::from_secs(5)
        ),
        "the core's backend did not load the TGT:\n{}",
        log_of(&run_dir)
    );
    let (code, _, err) = ctl(&run_dir, &["show", "status", "kinkd"]);
    assert_eq!(code, 0, "{err}");
    let log = log_of(&run_dir);
    assert!(!log.contains("not in the shared credential cache"), "{log}");
    assert!(!log.contains("cannot get a TGT"), "{log}");
    stop(pid, &run_dir);
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn by_default_kinkd_follows_spmd_and_attaches_as_kinkd() {
    let (dir, ns, conf) = setup("r3kspmd", CONF);
    let run_dir = dir.path().join("run");
    let mut spmd = interop::Launch::new(
        Iked::binary().with_file_name("spmd"),
        dir.path().join("spmd.out"),
    )
    .netns(&ns)
    .args(["-F", "-f"])
    .arg(&conf)
    .arg("--run-dir")
    .arg(&run_dir)
    .args(["--kernel", "memory"])
    .spawn()
    .expect("spmd");
    assert!(
        wait_for(
            || run_dir.join("spmd.sock").exists(),
            Duration::from_secs(10)
        ),
        "spmd did not come up"
    );
    let krb5 = krb5_conf(dir.path(), "127.0.0.1:1");
    let keytab = dir.path().join("missing.keytab");
    let kernel_args = args_with(&conf, &run_dir, "auto");
    let pid = start_detached_with(&ns, &kernel_args, &run_dir, &krb5, &keytab);
    let (code, out, err) = ctl(&run_dir, &["--json", "show", "status", "kinkd"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["status"]["kernel_backend"], "memory via spmd", "{out}");
    let (code, out, err) = ctl(&run_dir, &["--json", "show", "status", "spmd"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kinkd attached"), "{out}");
    // --kernel xfrm against an spmd on memory is refused, naming both
    // (another run directory, spmd's socket named in the configuration).
    let conf2 = dir.path().join("second.conf");
    let spmd_line = format!(
        "interface {{ kink {{ 127.0.0.1 port 9910; }}; spmd {{ unix \"{}\"; }}; }};",
        run_dir.join("spmd.sock").display()
    );
    std::fs::write(
        &conf2,
        CONF.replace("interface { kink { 127.0.0.1; }; };", &spmd_line),
    )
    .expect("second conf");
    let out = ns
        .command(kinkd())
        .arg("-F")
        .args(args_with(&conf2, &dir.path().join("run2"), "xfrm"))
        .output()
        .expect("kinkd --kernel xfrm");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("kinkd --kernel xfrm, but spmd at") && err.contains("runs the memory backend"),
        "{err}"
    );
    stop(pid, &run_dir);
    spmd.stop();
}
