//! iked against iked: two racoon3 peers in two namespaces, and an iked
//! that is sent garbage and must keep serving.
//!
//! Ignored by default (needs root and namespaces); CI runs them with
//! `cargo nextest run --run-ignored all`.

use std::net::IpAddr;
use std::time::Duration;

use interop::racoon2conf::{self, Algs, Family};
use interop::{Iked, Lab, require_root_and_tools};

const WAIT: Duration = Duration::from_secs(10);

fn algs() -> Algs {
    Algs {
        ike_enc: "aes256_gcm16",
        ike_hash: "hmac_sha2_256",
        dh: "curve25519",
        esp_enc: "aes128_cbc",
        esp_auth: "hmac_sha1",
    }
}

/// Starts iked on both hosts; A initiates to B.
fn pair(lab: &Lab, family: Family, mode: &str, extra: &[&str]) -> (Iked, Iked) {
    let (conf_a, conf_b) = racoon2conf::tunnel_pair(lab, family, &algs(), mode);
    let b = Iked::start_with(&lab.dir, &lab.b.netns, "b", &conf_b, None, extra).expect("iked b");
    b.wait_for_log("iked started", WAIT).expect("b up");
    let peer: IpAddr = match family {
        Family::V4 => lab.b.outer_v4.into(),
        Family::V6 => lab.b.outer_v6.into(),
    };
    let a =
        Iked::start_with(&lab.dir, &lab.a.netns, "a", &conf_a, Some(peer), extra).expect("iked a");
    (a, b)
}

/// Pings between the LANs over IPv4, A to B and B to A; on failure panics
/// with both logs (`when` follows "ping A -> B" in the message).
fn pings_pass_both_ways(lab: &Lab, a: &Iked, b: &Iked, when: &str) {
    for (from, to) in [(&lab.a, &lab.b), (&lab.b, &lab.a)] {
        if let Err(out) = racoon2conf::ping_lan(from, to, Family::V4) {
            panic!(
                "ping {} -> {}{when}:\n{out}\n{}\n{}",
                from.label,
                to.label,
                a.log(),
                b.log()
            );
        }
    }
}

fn check_up(a: &Iked, b: &Iked, installed: &str) {
    for (side, d) in [("A", a), ("B", b)] {
        d.wait_for_log("ESTABLISHED", WAIT)
            .unwrap_or_else(|e| panic!("{side}: {e}"));
        d.wait_for_log(installed, WAIT)
            .unwrap_or_else(|e| panic!("{side}: {e}"));
        assert!(
            d.log().contains("AES_CBC-128/HMAC_SHA1_96"),
            "{side}:\n{}",
            d.log()
        );
        assert!(
            !d.log().contains("NAT detected"),
            "{side}: no NAT between the namespaces"
        );
    }
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn two_racoon3_peers_negotiate_a_tunnel_over_ipv4_and_delete_it() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let (mut a, b) = pair(&lab, Family::V4, "tunnel", &[]);
    check_up(&a, &b, "CHILD SA peer INSTALLED, Tunnel ESP");
    pings_pass_both_ways(&lab, &a, &b, "");
    a.child_mut().stop();
    b.wait_for_log("deleted by", WAIT)
        .expect("B hears A's Delete");
    b.wait_for_log("CHILD SA of peer deleted", WAIT)
        .expect("B removes the CHILD SA");
    assert!(b.is_running());
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn two_racoon3_peers_carry_transport_mode_over_ipv6() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let (a, b) = pair(&lab, Family::V6, "transport", &[]);
    check_up(&a, &b, "CHILD SA peer INSTALLED, Transport ESP");
    // Host to host: the peer's own address is inside the SA, so the IKE
    // sockets must bypass the datapath's routes (fwmark) for this to work.
    let (src, dst) = (lab.a.outer_v6.to_string(), lab.b.outer_v6.to_string());
    let out = lab
        .a
        .netns
        .run(
            "ping",
            &["-n", "-c", "3", "-i", "0.2", "-W", "2", "-I", &src, &dst],
        )
        .expect("ping");
    assert!(
        out.contains("3 received"),
        "{out}\n{}\n{}",
        a.log(),
        b.log()
    );
    drop(a);
    b.wait_for_log("CHILD SA of peer deleted (SPIs in", WAIT)
        .expect("B deletes");
    let log = b.log();
    let line = log
        .lines()
        .find(|l| l.contains("CHILD SA of peer deleted"))
        .expect("line");
    assert!(
        line.contains(" 3 packets/"),
        "the pings went through ESP: {line}"
    );
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn garbage_datagrams_do_not_disturb_iked() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let (conf_a, conf_b) = racoon2conf::tunnel_pair(&lab, Family::V4, &algs(), "tunnel");
    let b = Iked::start(&lab.dir, &lab.b.netns, "b", &conf_b, None).expect("iked b");
    b.wait_for_log("iked started", WAIT).expect("b up");
    // Truncated headers, a header claiming huge lengths, a valid-looking
    // IKE_SA_INIT with an unknown critical payload, random bytes, and ESP
    // and keepalives on 4500.
    let script = format!(
        r#"
import os, socket, struct
dst = "{dst}"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
hdr = lambda nxt, length: os.urandom(8) + bytes(8) + bytes([nxt, 0x20, 34, 0x08]) + bytes(4) + struct.pack("!I", length)
crit = bytes([0, 0x80, 0, 8]) + b"abcd"
msgs = [b"", b"\x00", os.urandom(27), hdr(33, 0xffffffff), hdr(200, 36) + crit]
msgs += [os.urandom(n) for n in range(1, 400, 7)]
for m in msgs:
    s.sendto(m, (dst, 500))
for m in [b"\xff", os.urandom(60), bytes(4) + os.urandom(40)]:
    s.sendto(m, (dst, 4500))
"#,
        dst = lab.b.outer_v4
    );
    lab.a
        .netns
        .run("python3", &["-c", &script])
        .expect("send garbage");
    std::thread::sleep(Duration::from_millis(300));
    assert!(b.is_running(), "iked died on garbage:\n{}", b.log());
    // And it still negotiates afterwards.
    let a = Iked::start(
        &lab.dir,
        &lab.a.netns,
        "a",
        &conf_a,
        Some(lab.b.outer_v4.into()),
    )
    .expect("iked a");
    check_up(&a, &b, "CHILD SA peer INSTALLED, Tunnel ESP");
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn first_packet_triggers_negotiation_through_acquire() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let (conf_a, conf_b) = racoon2conf::tunnel_pair(&lab, Family::V4, &algs(), "tunnel");
    let b = Iked::start(&lab.dir, &lab.b.netns, "b", &conf_b, None).expect("iked b");
    let a = Iked::start(&lab.dir, &lab.a.netns, "a", &conf_a, None).expect("iked a");
    for d in [&a, &b] {
        d.wait_for_log("iked started", WAIT).expect("up");
    }
    assert!(
        !a.log().contains("initiating"),
        "nothing is negotiated before traffic"
    );
    // The first packets are dropped while negotiating (no queueing); ping
    // until they pass.
    let passed = interop::wait_for(
        || racoon2conf::ping_lan(&lab.a, &lab.b, Family::V4).is_ok(),
        WAIT,
    );
    assert!(passed, "no ping passed:\n{}\n{}", a.log(), b.log());
    a.wait_for_log("ACQUIRE for 198.51.100.1 -> 203.0.113.1 (reqid 1)", WAIT)
        .expect("ACQUIRE logged");
    assert_eq!(
        a.log().matches("initiating IKE SA").count(),
        1,
        "one negotiation, no ACQUIRE storm:\n{}",
        a.log()
    );
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn spmd_exits_with_an_error_when_its_datapath_dies_and_iked_waits_for_a_new_one() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let (_, conf_b) = racoon2conf::tunnel_pair(&lab, Family::V4, &algs(), "tunnel");
    let mut b = Iked::start(&lab.dir, &lab.b.netns, "b", &conf_b, None).expect("iked b");
    b.wait_for_log("iked started", WAIT).expect("b up");
    lab.b
        .netns
        .ip(&["link", "del", "r3esp0"])
        .expect("delete the TUN device");
    let spmd_exits = interop::wait_for(|| b.spmd_mut().is_some_and(|s| !s.is_running()), WAIT);
    assert!(spmd_exits, "spmd exits:\n{}", b.spmd_log());
    assert!(
        b.spmd_log()
            .contains("the kernel backend 'userspace' stopped; stopping spmd"),
        "{}",
        b.spmd_log()
    );
    b.wait_for_log("lost spmd", WAIT).expect("iked notices");
    assert!(b.is_running(), "iked lives on, waiting for spmd");
}

/// UDP datagrams received so far in `host`'s namespace (`/proc/net/snmp`,
/// `Udp: InDatagrams`).
fn udp_in_datagrams(host: &interop::Host) -> u64 {
    let snmp = host
        .netns
        .run("cat", &["/proc/net/snmp"])
        .expect("/proc/net/snmp");
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next().expect("names"), udp.next().expect("values"));
    let at = names
        .split_whitespace()
        .position(|n| n == "InDatagrams")
        .expect("InDatagrams");
    values
        .split_whitespace()
        .nth(at)
        .and_then(|v| v.parse().ok())
        .expect("a count")
}

#[test]
#[ignore = "needs root and network namespaces (run with --run-ignored all)"]
fn force_udp_encap_carries_esp_in_udp_4500_between_two_racoon3_peers_without_a_nat() {
    require_root_and_tools();
    let lab = Lab::two_hosts().expect("lab");
    let (conf_a, conf_b) = racoon2conf::tunnel_pair(&lab, Family::V4, &algs(), "tunnel");
    // Only A forces: B must follow the NAT A announces.
    let conf_a = conf_a.replacen("  ikev2 {\n", "  ikev2 {\n    force_udp_encap on;\n", 1);
    assert!(conf_a.contains("force_udp_encap on;") && !conf_b.contains("force_udp_encap"));
    let b = Iked::start_with(&lab.dir, &lab.b.netns, "b", &conf_b, None, &[]).expect("iked b");
    b.wait_for_log("iked started", WAIT).expect("b up");
    let a = Iked::start_with(
        &lab.dir,
        &lab.a.netns,
        "a",
        &conf_a,
        Some(lab.b.outer_v4.into()),
        &[],
    )
    .expect("iked a");
    for (side, d) in [("A", &a), ("B", &b)] {
        d.wait_for_log("CHILD SA peer INSTALLED, UDP-encapsulated Tunnel ESP", WAIT)
            .unwrap_or_else(|e| panic!("{side}: {e}\n{}", d.log()));
    }
    let before = (udp_in_datagrams(&lab.a), udp_in_datagrams(&lab.b));
    pings_pass_both_ways(&lab, &a, &b, "");
    // Six echo requests and six replies, three each way per ping run: each
    // host received at least six ESP-in-UDP datagrams on port 4500 (plain
    // ESP would not count as UDP at all).
    let after = (udp_in_datagrams(&lab.a), udp_in_datagrams(&lab.b));
    assert!(
        after.0 - before.0 >= 6 && after.1 - before.1 >= 6,
        "UDP datagrams received: A {before:?} -> {after:?}\n{}\n{}",
        a.log(),
        b.log()
    );
    // spmd's datapath reads port 4500 itself on both sides, so IKE on that
    // port now reaches iked through spmd: a CHILD SA rekey (an exchange on
    // 4500 after the float) must still complete, and traffic flow under
    // the new SAs.
    for (side, d) in [("A", &a), ("B", &b)] {
        assert!(
            d.spmd_log().contains("the datapath reads it")
                && d.log().contains("iked's readers pause"),
            "{side}: spmd did not take over reading port 4500:\n{}\n{}",
            d.log(),
            d.spmd_log()
        );
    }
    for (side, d) in [("A", &a), ("B", &b)] {
        let (_, out, _) = d.racoonctl(&["--json", "show", "status"]).expect("status");
        let status: serde_json::Value = serde_json::from_str(&out).expect("JSON status");
        assert_eq!(
            status["status"]["counters"]["port_4500_read_by_spmd"], 1,
            "{side}: {status}"
        );
    }
    let spi = a.first_child_spi_in().expect("a CHILD SA SPI");
    let installed = |d: &Iked| d.log().matches("UDP-encapsulated Tunnel ESP").count();
    let before = (installed(&a), installed(&b));
    let (code, out, err) = a.racoonctl(&["rekey", &spi]).expect("rekey");
    assert_eq!(code, 0, "{out}{err}");
    let rekeyed = interop::wait_for(
        || installed(&a) > before.0 && installed(&b) > before.1,
        WAIT,
    );
    assert!(
        rekeyed,
        "the CHILD SA rekey over port 4500 did not complete:\n{}\n{}",
        a.log(),
        b.log()
    );
    pings_pass_both_ways(&lab, &a, &b, " after the rekey");
}
