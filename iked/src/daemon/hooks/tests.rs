//! The environment of each event (names and values against racoon2's
//! `iked/script.c` and `doc/config-usage.txt`), which event each output
//! sequence runs, and running real scripts: argv, a cleared environment,
//! stdin at EOF, exit status, the timeout killing the whole group.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libracoon::config::{HookEvent, Scripts};
use pfkey::{EspEncr, IpsecMode, SaDirection, SaId, SaSpec, Selector};
use zeroize::Zeroizing;

use super::*;
use crate::ikev2::error::Error;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn tag(spi: u64) -> SaTag {
    SaTag {
        spi,
        name: "peer_b".to_owned(),
        peer: sock("198.51.100.2:4500"),
    }
}

fn spec(dir: SaDirection, src: &str, dst: &str, spi: u32, sel: Selector) -> SaSpec {
    SaSpec {
        id: SaId { dst: ip(dst), spi },
        src: ip(src),
        direction: dir,
        mode: IpsecMode::Tunnel,
        encr: EspEncr {
            id: 20,
            key_bits: 128,
        },
        encr_key: Zeroizing::new(vec![0; 20]),
        auth: None,
        auth_key: Zeroizing::new(Vec::new()),
        encap: None,
        selectors: vec![sel],
        reqid: 1,
        esn: false,
        replay_window: 0,
        lifetime: Default::default(),
    }
}

/// A tunnel between 192.0.2.1 and 198.51.100.2 for 10.1.0.0/16 <-> 10.2.0.0/24.
fn child(spi_in: u32, spi_out: u32) -> ChildSa {
    let out_sel = Selector {
        src: (ip("10.1.0.0"), ip("10.1.255.255")),
        dst: (ip("10.2.0.0"), ip("10.2.0.255")),
        proto: 6,
        src_port: 0,
        dst_port: 443,
    };
    let in_sel = Selector {
        src: out_sel.dst,
        dst: out_sel.src,
        proto: 6,
        src_port: 443,
        dst_port: 0,
    };
    ChildSa {
        inbound: spec(
            SaDirection::Inbound,
            "198.51.100.2",
            "192.0.2.1",
            spi_in,
            in_sel,
        ),
        outbound: spec(
            SaDirection::Outbound,
            "192.0.2.1",
            "198.51.100.2",
            spi_out,
            out_sel,
        ),
        esp: "AES_GCM_16-128".to_owned(),
        ts: "10.1.0.0/16 === 10.2.0.0/24".to_owned(),
    }
}

fn owned(env: &Env) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

// ---- environments ---------------------------------------------------------

#[test]
fn phase1_env_is_racoon2s_four_addresses_then_ours() {
    let env = ike_env(&tag(0x1122), Some(sock("192.0.2.1:4500")), 0x1122);
    assert_eq!(
        owned(&env),
        [
            ("LOCAL_ADDR", "192.0.2.1"),
            ("LOCAL_PORT", "4500"),
            ("REMOTE_ADDR", "198.51.100.2"),
            ("REMOTE_PORT", "4500"),
            ("REMOTE_INDEX", "peer_b"),
            ("IKE_SPI", "0000000000001122"),
        ]
    );
}

#[test]
fn phase1_env_for_ipv6_prints_bare_addresses() {
    let tag6 = SaTag {
        spi: 1,
        name: "v6".to_owned(),
        peer: sock("[2001:db8::2]:500"),
    };
    let env = ike_env(&tag6, Some(sock("[2001:db8::1]:500")), 1);
    assert_eq!(
        owned(&env)[..4],
        [
            ("LOCAL_ADDR", "2001:db8::1"),
            ("LOCAL_PORT", "500"),
            ("REMOTE_ADDR", "2001:db8::2"),
            ("REMOTE_PORT", "500"),
        ]
    );
}

#[test]
fn phase2_env_has_every_racoon2_variable_in_order() {
    let env = child_env(
        &tag(0xab),
        &child(0xc1c1_c1c1, 0x0d0d_0d0d),
        Some("sel_out"),
    );
    assert_eq!(
        owned(&env),
        [
            ("LOCAL_ADDR", "192.0.2.1"),
            ("REMOTE_ADDR", "198.51.100.2"),
            ("SELECTOR_INDEX", "sel_out"),
            ("IPSEC_MODE", "tunnel"),
            ("LOCAL_NET_ADDR", "10.1.0.0"),
            ("LOCAL_NET_PREFIXLEN", "16"),
            ("LOCAL_NET_PORT", "0"),
            ("REMOTE_NET_ADDR", "10.2.0.0"),
            ("REMOTE_NET_PREFIXLEN", "24"),
            ("REMOTE_NET_PORT", "443"),
            ("UPPER_LAYER_PROTOCOL", "6"),
            ("INTERNAL_ADDR4", ""),
            ("INTERNAL_DNS4", ""),
            ("INTERNAL_WINS4", ""),
            ("INTERNAL_DHCP4", ""),
            ("INTERNAL_ADDR6", ""),
            ("INTERNAL_DNS6", ""),
            ("INTERNAL_DHCP6", ""),
            ("APPLICATION_VERSION", ""),
            ("REMOTE_INDEX", "peer_b"),
            ("IKE_SPI", "00000000000000ab"),
            ("SPI_IN", "c1c1c1c1"),
            ("SPI_OUT", "0d0d0d0d"),
        ]
    );
}

#[test]
fn phase2_env_transport_host_selectors_any_protocol() {
    let mut c = child(1, 2);
    c.outbound.mode = IpsecMode::Transport;
    c.outbound.selectors = vec![Selector::ranges(
        (ip("192.0.2.1"), ip("192.0.2.1")),
        (ip("198.51.100.2"), ip("198.51.100.2")),
    )];
    let env = child_env(&tag(1), &c, None);
    let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
    assert_eq!(
        get("SELECTOR_INDEX"),
        None,
        "no selector: not set, as in racoon2"
    );
    assert_eq!(get("IPSEC_MODE"), Some("transport"));
    assert_eq!(get("LOCAL_NET_ADDR"), Some("192.0.2.1"));
    assert_eq!(get("LOCAL_NET_PREFIXLEN"), Some("32"));
    assert_eq!(get("REMOTE_NET_PREFIXLEN"), Some("32"));
    assert_eq!(get("UPPER_LAYER_PROTOCOL"), Some("any"));
    assert_eq!(get("SPI_IN"), Some("00000001"));
}

#[test]
fn ranges_become_prefixes() {
    let cases = [
        ("0.0.0.0", "255.255.255.255", "0.0.0.0", 0),
        ("10.0.0.0", "10.255.255.255", "10.0.0.0", 8),
        ("192.0.2.7", "192.0.2.7", "192.0.2.7", 32),
        // Not a prefix: the smallest one covering it.
        ("192.0.2.10", "192.0.2.20", "192.0.2.0", 27),
        ("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::", 0),
        ("2001:db8::", "2001:db8::ffff", "2001:db8::", 112),
        ("2001:db8::1", "2001:db8::1", "2001:db8::1", 128),
    ];
    for (s, e, addr, len) in cases {
        assert_eq!(covering_prefix(ip(s), ip(e)), (ip(addr), len), "{s}-{e}");
    }
}

// ---- which script each output runs ---------------------------------------

fn hooks(scripts: Scripts) -> Hooks {
    let mut remotes = HashMap::new();
    remotes.insert(
        "peer_b".to_owned(),
        RemoteHooks {
            scripts,
            selector_index: Some("sel_out".to_owned()),
        },
    );
    Hooks {
        remotes,
        ike: HashMap::new(),
        children: HashMap::new(),
        tasks: JoinSet::new(),
        timeout: SCRIPT_TIMEOUT,
    }
}

fn all_scripts() -> Scripts {
    Scripts {
        phase1_up: Some("/h/p1up".into()),
        phase1_down: Some("/h/p1down".into()),
        phase1_rekey: Some("/h/p1rekey".into()),
        phase2_up: Some("/h/p2up".into()),
        phase2_down: Some("/h/p2down".into()),
        phase2_rekey: Some("/h/p2rekey".into()),
        migration: None,
    }
}

/// Plans `out`, applies it as the driver's commit would, returns what ran.
fn step(h: &mut Hooks, tag: &SaTag, out: &Output) -> Option<Run> {
    let p = h.plan(tag, out, Some(sock("192.0.2.1:500")))?;
    h.apply(p.change);
    p.run
}

fn ran(run: Option<Run>) -> Option<(HookEvent, PathBuf)> {
    run.map(|r| (r.event, r.script))
}

fn var<'r>(run: &'r Run, name: &str) -> Option<&'r str> {
    run.env
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

fn established() -> Output {
    Output::Event(Event::IkeEstablished {
        peer_id: "peer".to_owned(),
        suite: "x".to_owned(),
        nat: false,
    })
}

fn install(spi_in: u32) -> Output {
    Output::InstallChild(Box::new(child(spi_in, spi_in + 1)))
}

fn delete(spi_in: u32) -> Output {
    let c = child(spi_in, spi_in + 1);
    Output::DeleteChild {
        inbound: c.inbound.id,
        outbound: c.outbound.id,
    }
}

#[test]
fn a_lifetime_of_rekeys_runs_each_script_once_in_racoon2s_sense() {
    let mut h = hooks(all_scripts());
    let (old, new) = (tag(0x10), tag(0x20));
    let up = step(&mut h, &old, &established()).unwrap();
    assert_eq!(
        (up.event, var(&up, "LOCAL_PORT")),
        (HookEvent::Phase1Up, Some("500"))
    );
    let c1 = step(&mut h, &old, &install(100)).unwrap();
    assert_eq!(
        (c1.event, var(&c1, "SPI_IN")),
        (HookEvent::Phase2Up, Some("00000064"))
    );
    // A second CHILD SA of the same IKE SA replaces the first: a rekey,
    // and the old one's removal is no phase2_down.
    let c2 = step(&mut h, &old, &install(200)).unwrap();
    assert_eq!(
        (c2.event, var(&c2, "SPI_IN")),
        (HookEvent::Phase2Rekey, Some("000000c8"))
    );
    assert_eq!(ran(step(&mut h, &old, &delete(100))), None);
    // The IKE SA is rekeyed: phase1_rekey with the new SPI; the old SA's
    // close is no phase1_down.
    let rekey = Output::Event(Event::IkeRekeyed { new_spi: 0x20 });
    let r = step(&mut h, &old, &rekey).unwrap();
    assert_eq!(
        (r.event, var(&r, "IKE_SPI"), var(&r, "LOCAL_ADDR")),
        (
            HookEvent::Phase1Rekey,
            Some("0000000000000020"),
            Some("192.0.2.1")
        )
    );
    let closed = |e| Output::Event(Event::IkeClosed(e));
    assert!(h.plan(&old, &closed(Error::DeletedByPeer), None).is_none());
    // The CHILD SA moved with it; deleting the new IKE SA takes it down.
    let d = step(&mut h, &new, &delete(200)).unwrap();
    assert_eq!(
        (d.event, var(&d, "SPI_IN"), var(&d, "IKE_SPI")),
        (
            HookEvent::Phase2Down,
            Some("000000c8"),
            Some("0000000000000010")
        ),
        "phase2_down carries phase2_up's environment"
    );
    let down = step(&mut h, &new, &closed(Error::LocallyClosed)).unwrap();
    assert_eq!(
        (down.event, down.script.as_path(), var(&down, "IKE_SPI")),
        (
            HookEvent::Phase1Down,
            Path::new("/h/p1down"),
            Some("0000000000000020")
        )
    );
    assert!(h.ike.is_empty() && h.children.is_empty());
}

#[test]
fn failed_negotiations_and_unhooked_remotes_run_nothing() {
    let h = hooks(all_scripts());
    let closed = Output::Event(Event::IkeClosed(Error::HalfOpenTimeout));
    assert!(
        h.plan(&tag(1), &closed, None).is_none(),
        "never established"
    );
    let mut other = tag(2);
    other.name = "no_scripts".to_owned();
    assert!(h.plan(&other, &established(), None).is_none());
    let send = Output::NatKeepalive {
        path: crate::ikev2::output::Path {
            local: sock("192.0.2.1:4500"),
            remote: sock("198.51.100.2:4500"),
        },
    };
    assert!(h.plan(&tag(1), &send, None).is_none());
    // A CHILD SA the kernel refused is never committed: its removal
    // (when the IKE SA is deleted for it) is no phase2_down.
    let refused = h.plan(&tag(1), &install(7), None);
    assert!(refused.is_some());
    drop(refused);
    assert!(h.plan(&tag(1), &delete(7), None).is_none());
}

#[test]
fn events_are_tracked_even_when_only_the_down_script_is_set() {
    let mut h = hooks(Scripts {
        phase2_down: Some("/h/only-down".into()),
        ..Scripts::default()
    });
    assert_eq!(ran(step(&mut h, &tag(1), &established())), None);
    assert_eq!(ran(step(&mut h, &tag(1), &install(5))), None);
    assert_eq!(
        ran(step(&mut h, &tag(1), &delete(5))),
        Some((HookEvent::Phase2Down, PathBuf::from("/h/only-down")))
    );
}

#[test]
fn hooks_come_from_the_configuration() {
    let text = r#"
interface { ike { 192.0.2.1; }; };
sa esp1 { sa_protocol esp; esp_enc_alg aes128_gcm16; };
ipsec ips1 { sa_index esp1; };
default { remote { ikev2 {
    kmp_enc_alg aes128_gcm16; kmp_prf_alg hmac_sha2_256; kmp_dh_group 19;
    kmp_auth_method psk; pre_shared_key "/k";
}; }; };
remote hooked { acceptable_kmp ikev2; ikev2 {
    peers_ipaddr 198.51.100.2;
    script { ike_sa_up "/h/up"; child_down "/h/down"; };
}; };
remote plain { acceptable_kmp ikev2; ikev2 { peers_ipaddr 203.0.113.2; }; };
policy pol { action auto_ipsec; remote_index hooked; ipsec_mode tunnel; ipsec_index ips1;
    peers_sa_ipaddr 198.51.100.2; my_sa_ipaddr 192.0.2.1; };
selector sel_out { direction outbound; src 10.1.0.0/16; dst 10.2.0.0/16; policy_index pol; };
"#;
    let config = libracoon::config::parse_str(text, "t.conf", &|_| None)
        .unwrap()
        .config;
    let h = Hooks::new(&config);
    assert_eq!(h.remotes.len(), 1, "only remotes with scripts");
    let r = &h.remotes["hooked"];
    assert_eq!(r.selector_index.as_deref(), Some("sel_out"));
    assert_eq!(r.scripts.get(HookEvent::Phase1Up), Some(Path::new("/h/up")));
    assert_eq!(
        r.scripts.get(HookEvent::Phase2Down),
        Some(Path::new("/h/down"))
    );
}

// ---- running scripts -------------------------------------------------------

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("racoon3-hooks-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.0.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_of(script: PathBuf, env: &[(&'static str, &str)]) -> Run {
    Run {
        event: HookEvent::Phase1Up,
        script,
        env: env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
    }
}

#[tokio::test]
async fn a_script_gets_the_event_as_argv1_only_our_variables_and_no_stdin() {
    let dir = Scratch::new("env");
    let out = dir.0.join("out");
    let script = dir.script(
        "up",
        &format!(
            "{{ echo \"argv1=$1\"; read line; echo \"read=$?\"; env; }} > {}\necho to-stderr >&2\nexit 3",
            out.display()
        ),
    );
    let run = run_of(
        script,
        &[("LOCAL_ADDR", "192.0.2.1"), ("INTERNAL_DNS4", "")],
    );
    assert_eq!(run.run(Duration::from_secs(10)).await, Outcome::Exited(3));
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..2],
        ["argv1=phase1_up", "read=1"],
        "stdin is /dev/null"
    );
    let mut vars: Vec<&str> = lines[2..]
        .iter()
        .copied()
        // What /bin/sh itself adds.
        .filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL=") && !l.starts_with("_="))
        .collect();
    vars.sort_unstable();
    assert_eq!(
        vars,
        [
            "INTERNAL_DNS4=",
            "LOCAL_ADDR=192.0.2.1",
            &format!("PATH={SCRIPT_PATH}"),
        ],
        "iked's own environment is not passed on"
    );
}

#[tokio::test]
async fn a_script_that_outlives_the_timeout_is_killed_with_what_it_started() {
    let dir = Scratch::new("timeout");
    let pid_file = dir.0.join("sleeper");
    let script = dir.script(
        "slow",
        &format!("sleep 60 &\necho $! > {}\nwait", pid_file.display()),
    );
    let started = Instant::now();
    let outcome = run_of(script, &[]).run(Duration::from_millis(500)).await;
    assert_eq!(outcome, Outcome::Killed);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The background sleep was in the script's process group: gone too
    // (reaped by init, or at worst a zombie no longer running).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next());
        if matches!(state, None | Some("Z")) {
            break;
        }
        assert!(Instant::now() < deadline, "sleep {pid} still runs: {stat}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_missing_script_is_reported_not_fatal() {
    let run = run_of(PathBuf::from("/nonexistent/racoon3-hook"), &[]);
    assert_eq!(run.run(Duration::from_secs(1)).await, Outcome::NotStarted);
}

#[tokio::test]
async fn commit_runs_the_script_in_the_background_and_finish_waits_for_it() {
    let dir = Scratch::new("commit");
    let done = dir.0.join("done");
    let up = dir.script(
        "up",
        &format!("sleep 0.3\necho \"$REMOTE_ADDR\" > {}", done.display()),
    );
    let mut h = hooks(Scripts {
        phase1_up: Some(up),
        ..Scripts::default()
    });
    let p = h.plan(&tag(1), &established(), Some(sock("192.0.2.1:500")));
    let started = Instant::now();
    h.commit(p);
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "commit does not wait"
    );
    assert!(!done.exists());
    h.finish().await;
    assert_eq!(std::fs::read_to_string(&done).unwrap(), "198.51.100.2\n");
    assert!(h.ike.contains_key(&1));
}
