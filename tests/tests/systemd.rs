//! The systemd units in contrib/systemd: their command lines use flags the
//! binaries accept, iked and kinkd are ordered after spmd, and both daemons send
//! `READY=1` to `NOTIFY_SOCKET` once they serve (Type=notify).

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use interop::{ChildGuard, Iked, LabDir, Launch, Netns, require_root_and_tools};

fn unit(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contrib/systemd")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn exec_start(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
#[ignore = "needs the daemons from `cargo build --workspace --bins` (run with --run-ignored all)"]
fn units_use_flags_the_daemons_accept() {
    for daemon in ["spmd", "iked", "kinkd"] {
        let text = unit(&format!("{daemon}.service"));
        assert!(text.contains("Type=notify"), "{daemon}: Type=notify");
        assert!(text.contains("Restart=on-failure"), "{daemon}: restarts");
        let argv = exec_start(&text);
        assert_eq!(argv[0], format!("/usr/sbin/{daemon}"));
        let help = std::process::Command::new(Iked::binary().with_file_name(daemon))
            .arg("--help")
            .output()
            .expect("run --help");
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in argv.iter().skip(1).filter(|a| a.starts_with('-')) {
            assert!(
                help.contains(flag.as_str()),
                "{daemon} --help lacks {flag}:\n{help}"
            );
        }
        assert!(
            argv.contains(&"-F".to_owned()),
            "{daemon} stays in the foreground"
        );
    }
    for daemon in ["iked", "kinkd"] {
        let text = unit(&format!("{daemon}.service"));
        assert!(
            text.contains("After=network-online.target spmd.service"),
            "{daemon} starts after spmd"
        );
        assert!(
            text.contains("Requires=spmd.service"),
            "{daemon} needs spmd"
        );
    }
}

/// Starts `daemon` in `ns` with NOTIFY_SOCKET pointing at a socket of ours,
/// and waits for its readiness message.
fn start_and_wait_ready(
    ns: &Netns,
    lab: &LabDir,
    daemon: &str,
    args: &[&str],
) -> (ChildGuard, String) {
    let notify: PathBuf = lab.path().join(format!("{daemon}.notify"));
    let sock = UnixDatagram::bind(&notify).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let child = Launch::new(
        Iked::binary().with_file_name(daemon),
        lab.path().join(format!("{daemon}.out")),
    )
    .netns(ns)
    .args(args.iter().map(std::ffi::OsString::from))
    .env("NOTIFY_SOCKET", notify.as_os_str())
    .spawn()
    .expect("start");
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).unwrap_or_else(|e| {
        panic!(
            "{daemon} sent no readiness message: {e}\n{}",
            std::fs::read_to_string(lab.path().join(format!("{daemon}.out"))).unwrap_or_default()
        )
    });
    (child, String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn spmd_and_iked_notify_systemd_when_ready() {
    require_root_and_tools();
    let lab = LabDir::new("r3notify").expect("lab dir");
    let ns = Netns::create("r3notify").expect("netns");
    ns.ip(&["link", "set", "lo", "up"]).expect("lo up");
    let psk = lab.path().join("psk");
    std::fs::write(&psk, "notify test key").expect("psk");
    let conf = lab.path().join("racoon2.conf");
    std::fs::write(
        &conf,
        format!(
            r#"interface {{ ike {{ 127.0.0.1 port 500; }}; }};
remote peer {{
  acceptable_kmp {{ ikev2; }};
  ikev2 {{
    peers_ipaddr 127.0.0.2 port 500;
    kmp_enc_alg {{ aes128_gcm16; }}; kmp_prf_alg {{ hmac_sha2_256; }};
    kmp_dh_group {{ curve25519; }}; kmp_auth_method {{ psk; }};
    pre_shared_key "{}";
  }};
}};
selector out {{ direction outbound; src 198.51.100.0/24; dst 203.0.113.0/24; policy_index pol; }};
policy pol {{ action auto_ipsec; remote_index peer; ipsec_mode tunnel; ipsec_index {{ e; }};
             peers_sa_ipaddr 127.0.0.2; my_sa_ipaddr 127.0.0.1; }};
ipsec e {{ sa_index esp; }};
sa esp {{ sa_protocol esp; esp_enc_alg {{ aes128_gcm16; }}; }};
"#,
            psk.display()
        ),
    )
    .expect("conf");
    let run = lab.path().join("run");
    let (conf, run) = (conf.display().to_string(), run.display().to_string());
    let common = ["-F", "-f", conf.as_str(), "--run-dir", run.as_str()];
    let mut spmd_args = common.to_vec();
    spmd_args.extend(["--kernel", "memory"]);
    let (mut spmd, ready) = start_and_wait_ready(&ns, &lab, "spmd", &spmd_args);
    assert_eq!(ready, "READY=1");
    let (mut iked, ready) = start_and_wait_ready(&ns, &lab, "iked", &common);
    assert_eq!(ready, "READY=1");
    iked.stop();
    spmd.stop();
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn kinkd_notifies_systemd_when_ready() {
    require_root_and_tools();
    let lab = LabDir::new("r3knotify").expect("lab dir");
    let ns = Netns::create("r3knotify").expect("netns");
    ns.ip(&["link", "set", "lo", "up"]).expect("lo up");
    let conf = lab.path().join("racoon2.conf");
    std::fs::write(
        &conf,
        r#"interface { kink { 127.0.0.1; }; };
remote peer {
  acceptable_kmp { kink; };
  kink { my_principal "kink/a.kink.test@KINK.TEST"; peers_principal "kink/b.kink.test@KINK.TEST"; };
};
selector out { direction outbound; src 198.51.100.0/24; dst 203.0.113.0/24; policy_index pol; };
policy pol { action auto_ipsec; remote_index peer; ipsec_mode tunnel; ipsec_index { e; };
             peers_sa_ipaddr 127.0.0.2; my_sa_ipaddr 127.0.0.1; };
ipsec e { sa_index esp; };
sa esp { sa_protocol esp; esp_enc_alg { aes128_gcm16; }; };
"#,
    )
    .expect("conf");
    let run = lab.path().join("run");
    let (conf, run) = (conf.display().to_string(), run.display().to_string());
    // Ready once it serves, whether or not the KDC answers yet.
    let args = [
        "-F",
        "-f",
        conf.as_str(),
        "--run-dir",
        run.as_str(),
        "--kernel",
        "memory",
    ];
    let (mut kinkd, ready) = start_and_wait_ready(&ns, &lab, "kinkd", &args);
    assert_eq!(ready, "READY=1");
    kinkd.stop();
}
