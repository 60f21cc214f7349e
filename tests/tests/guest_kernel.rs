//! Kernel IPsec in a qemu guest: Debian's stock kernel, which has the ESP and PF_KEY the host
//! kernel lacks, booted with TCG around a test script (see `interop::qemu` and
//! docs/testing-guest-kernel.md).
//!
//! Ignored by default (needs root to install qemu and fetch the kernel on first use, and about
//! 3 s of boot per test); CI runs them with `cargo nextest run --run-ignored all`.

use std::time::Duration;

use interop::LabDir;
use interop::qemu::link::pcap_ip_protocols;
use interop::qemu::{Guest, GuestOutput, Link, LinkEnd, target_binary};

/// Generous: a run takes 3-10 s under TCG, but guests share the 2 CPUs with other tests.
const TIMEOUT: Duration = Duration::from_secs(90);

/// The `pfkey-probe` helper binary of this crate (cargo builds it for integration tests).
const PFKEY_PROBE: &str = env!("CARGO_BIN_EXE_pfkey-probe");

/// Runs `script` in `guest`; panics with the output unless it exits 0.
fn run(guest: Guest, script: &str) -> GuestOutput {
    let out = guest.run(script, TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "guest ran in {:.1} s, exit {}:\n{}",
        out.elapsed.as_secs_f64(),
        out.exit_code,
        out.output
    );
    out.success().unwrap_or_else(|e| panic!("{e}"))
}

fn guest() -> Guest {
    Guest::new().unwrap_or_else(|e| panic!("guest kernel: {e}"))
}

/// The `N(packets)` counters of `ip -s xfrm state` output, one per SA (`lifetime current`).
fn packet_counters(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(|word| word.trim_end_matches(',').strip_suffix("(packets)"))
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// The lines between `=== name` and the next `===` line.
fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text
        .find(&format!("=== {name}\n"))
        .map(|i| i + name.len() + 5)
        .unwrap_or_else(|| panic!("no section {name} in:\n{text}"));
    let rest = &text[start..];
    &rest[..rest.find("===").unwrap_or(rest.len())]
}

#[test]
#[ignore = "boots a qemu guest; needs root on first use (run with --run-ignored all)"]
fn guest_kernel_accepts_an_esp_aead_state() {
    let out = run(
        guest(),
        r#"set -e
uname -r
ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1000 reqid 1 mode transport \
  aead 'rfc4106(gcm(aes))' 0x0102030405060708090a0b0c0d0e0f1011121314 128
ip xfrm state list
grep -A3 '^name *: rfc4106(gcm(aes))' /proc/crypto | grep driver
"#,
    );
    assert!(out.output.contains("spi 0x00001000"), "{}", out.output);
    assert!(
        out.output.contains("aead rfc4106(gcm(aes))"),
        "{}",
        out.output
    );
}

/// Two namespaces over veth (the prelude's `lab_two_hosts`), with hand-made SAs: IPv4 with AES-GCM, IPv6 with
/// ChaCha20-Poly1305, transport mode, one key per direction. Pings pass both ways and every
/// SA counts packets; with b's inbound IPv4 SA deleted, pings fail and b counts
/// `XfrmInNoStates`, so what crossed the veth was really ESP.
const NETNS_ESP: &str = r#"set -e
lab_two_hosts
GCM_AB=0x0102030405060708090a0b0c0d0e0f10a1a2a3a4
GCM_BA=0x1112131415161718191a1b1c1d1e1f20b1b2b3b4
CHA_AB=0x2122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40c1c2c3c4
CHA_BA=0x4142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f60d1d2d3d4
for ns in a b; do
  ip -n $ns xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0xa1 reqid 1 \
    mode transport replay-window 32 aead 'rfc4106(gcm(aes))' $GCM_AB 128
  ip -n $ns xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0xb1 reqid 1 \
    mode transport replay-window 32 aead 'rfc4106(gcm(aes))' $GCM_BA 128
  ip -n $ns xfrm state add src 2001:db8::1 dst 2001:db8::2 proto esp spi 0xa2 reqid 2 \
    mode transport replay-window 32 aead 'rfc7539esp(chacha20,poly1305)' $CHA_AB 128
  ip -n $ns xfrm state add src 2001:db8::2 dst 2001:db8::1 proto esp spi 0xb2 reqid 2 \
    mode transport replay-window 32 aead 'rfc7539esp(chacha20,poly1305)' $CHA_BA 128
done
# policy NS LOCAL REMOTE REQID
policy() {
  ip -n $1 xfrm policy add src $2 dst $3 dir out tmpl src $2 dst $3 proto esp reqid $4 mode transport
  ip -n $1 xfrm policy add src $3 dst $2 dir in tmpl src $3 dst $2 proto esp reqid $4 mode transport
}
policy a 192.0.2.1 192.0.2.2 1
policy b 192.0.2.2 192.0.2.1 1
policy a 2001:db8::1 2001:db8::2 2
policy b 2001:db8::2 2001:db8::1 2

ip netns exec a ping -c 3 -i 0.2 -W 2 192.0.2.2
ip netns exec b ping -c 3 -i 0.2 -W 2 192.0.2.1
ip netns exec a ping -c 3 -i 0.2 -W 2 2001:db8::2
ip netns exec b ping -c 3 -i 0.2 -W 2 2001:db8::1
ip -n b -o addr show dev lo
echo "=== a"
ip -n a -s xfrm state
echo "=== b"
ip -n b -s xfrm state

echo "=== negative"
ip -n b xfrm state delete src 192.0.2.1 dst 192.0.2.2 proto esp spi 0xa1
if ip netns exec a ping -c 1 -W 1 192.0.2.2; then
  echo "ping passed without b's inbound SA"
  exit 1
fi
ip netns exec b grep XfrmInNoStates /proc/net/xfrm_stat
echo "=== end"
"#;

#[test]
#[ignore = "boots a qemu guest; needs root on first use (run with --run-ignored all)"]
fn esp_between_two_namespaces_in_the_guest() {
    let out = run(guest(), NETNS_ESP);
    assert!(
        out.output.contains("inet 203.0.113.1/32"),
        "lab_two_hosts gives b its LAN address:\n{}",
        out.output
    );
    for ns in ["a", "b"] {
        let text = section(&out.output, ns);
        let counters = packet_counters(text);
        assert_eq!(counters.len(), 4, "4 SAs in {ns}:\n{text}");
        assert!(
            counters.iter().all(|&n| n >= 3),
            "every SA in {ns} counts the 3 pings: {counters:?}\n{text}"
        );
    }
    let negative = section(&out.output, "negative");
    let no_states: u64 = negative
        .lines()
        .find_map(|l| l.strip_prefix("XfrmInNoStates"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no XfrmInNoStates in:\n{negative}"));
    assert!(no_states >= 1, "{negative}");
}

/// PF_KEY v2 in the guest: `af_key` is loaded, `SADB_REGISTER` lists algorithms, and
/// `SADB_DUMP` sees an SA installed over netlink (so one SAD serves both interfaces).
#[test]
#[ignore = "boots a qemu guest; needs root on first use (run with --run-ignored all)"]
fn af_key_socket_works_in_the_guest() {
    let out = run(
        guest().binary(PFKEY_PROBE),
        r#"set -e
grep -w '^af_key' /proc/modules
pfkey-probe register
ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x4242 reqid 1 mode transport \
  aead 'rfc4106(gcm(aes))' 0x0102030405060708090a0b0c0d0e0f1011121314 128
pfkey-probe dump
"#,
    );
    assert!(out.output.contains("af_key "), "{}", out.output);
    assert!(
        out.output.contains("SADB_REGISTER(ESP) -> type=7 errno=0"),
        "{}",
        out.output
    );
    assert!(out.output.contains("SA spi=0x00004242"), "{}", out.output);
    assert!(
        out.output.contains("SADB_DUMP(ESP) listed 1 SA(s)"),
        "{}",
        out.output
    );
}

/// Host-built racoon3 binaries run in the guest (their ldd libraries came along), and extra
/// files land at their guest paths with their modes, replacing the harness's defaults.
#[test]
#[ignore = "boots a qemu guest; needs the binaries of `cargo build --workspace --bins` (run with --run-ignored all)"]
fn racoon3_binaries_run_in_the_guest() {
    for name in ["iked", "racoonctl"] {
        let path = target_binary(name);
        assert!(
            path.is_file(),
            "{} missing: run `cargo build -p iked -p racoonctl` first",
            path.display()
        );
    }
    let out = run(
        guest()
            .racoon3_binary("iked")
            .racoon3_binary("racoonctl")
            .file_mode("/etc/racoon2/psk/peer.psk", "guest test key\n", 0o600)
            .file("/etc/hosts", "192.0.2.2 peer.lab.example\n"),
        r#"set -e
iked -V
racoonctl --help
echo "psk: $(cat /etc/racoon2/psk/peer.psk) mode $(stat -c %a /etc/racoon2/psk/peer.psk)"
echo "hosts: $(cat /etc/hosts)"
"#,
    );
    assert!(out.output.contains("iked (racoon3)"), "{}", out.output);
    assert!(out.output.contains("Usage: racoonctl"), "{}", out.output);
    assert!(
        out.output.contains("psk: guest test key mode 600"),
        "{}",
        out.output
    );
    assert!(
        out.output.contains("hosts: 192.0.2.2 peer.lab.example\n"),
        "a caller's file replaces the default: {}",
        out.output
    );
}

/// A failing script is reported with its exit code and output, not as a harness error; a
/// script that never ends hits the timeout and qemu is killed, or the guest's own deadline
/// powers it off; an unknown module fails before boot.
#[test]
#[ignore = "boots a qemu guest; needs root on first use (run with --run-ignored all)"]
fn failures_and_timeouts_are_reported() {
    let guest = guest();
    let out = guest
        .run(
            "trap 'echo trap runs: dump daemon logs here' EXIT; echo about to fail >&2; exit 7",
            TIMEOUT,
        )
        .expect("guest run");
    assert_eq!(out.exit_code, 7);
    assert_eq!(
        out.output,
        "about to fail\ntrap runs: dump daemon logs here\n"
    );
    assert!(out.success().is_err());

    // The timeout counts from qemu's start; boot takes 3 s on an idle host and more on a busy
    // one, so time out 1 s after the script is known to be running.
    let running = guest
        .start("echo sleeping; sleep 600")
        .expect("start guest");
    let pid = running.pid();
    assert!(
        running.wait_for_console("sleeping", TIMEOUT),
        "the script never started"
    );
    let timeout = running.elapsed() + Duration::from_secs(1);
    let err = running
        .wait(timeout)
        .expect_err("a 600 s script cannot finish");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("did not finish within {timeout:?}")),
        "{msg}"
    );
    assert!(msg.contains("sleeping"), "{msg}");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
    assert!(
        !exe.is_ok_and(|p| p.to_string_lossy().contains("qemu")),
        "qemu {pid} survived the timeout"
    );

    // The guest's own watchdog, for a qemu whose test process died: it powers off by itself.
    let err = guest
        .clone()
        .deadline(Duration::from_secs(2))
        .start("sleep 600")
        .expect("start guest")
        .wait(TIMEOUT)
        .expect_err("the guest must stop itself after 2 s");
    assert!(
        err.to_string()
            .contains("the guest's own deadline of 2 s passed"),
        "{err}"
    );

    let err = guest
        .module("no_such_module")
        .run("true", TIMEOUT)
        .expect_err("an unknown module must fail before boot");
    assert!(
        err.to_string().contains("no module no_such_module"),
        "{err}"
    );
}

/// One side of the two-guest test: transport-mode ESP to the peer, `eth0` up, pings
/// until the peer is up, three more, then stays up until the peer's pings came through too.
/// IPv6 is off so that nothing but ESP (and ARP) crosses the link.
const TWO_GUESTS_SIDE: &str = r#"set -e
echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6
ip addr add $ME/24 dev eth0
ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0xa1 reqid 1 mode transport \
  replay-window 32 aead 'rfc4106(gcm(aes))' 0x0102030405060708090a0b0c0d0e0f10a1a2a3a4 128
ip xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0xb1 reqid 1 mode transport \
  replay-window 32 aead 'rfc4106(gcm(aes))' 0x1112131415161718191a1b1c1d1e1f20b1b2b3b4 128
ip xfrm policy add src $ME dst $PEER dir out tmpl src $ME dst $PEER proto esp reqid 1 mode transport
ip xfrm policy add src $PEER dst $ME dir in tmpl src $PEER dst $ME proto esp reqid 1 mode transport
# Up only now: a request arriving between our SAs and our policies would get a clear reply.
ip link set eth0 up
i=0
until ping -c 1 -W 1 $PEER >/dev/null; do
  i=$((i + 1))
  [ $i -lt 40 ] || { echo "peer $PEER unreachable"; exit 1; }
done
ping -c 3 -i 0.2 -W 2 $PEER
# Our 4 replies plus the peer's 4 requests: then the peer is done with us.
inbound() {
  ip -s xfrm state get src $PEER dst $ME proto esp spi $IN | sed -n 's/.* \([0-9][0-9]*\)(packets).*/\1/p'
}
i=0
until [ "$(inbound)" -ge 8 ] || [ $i -ge 75 ]; do
  sleep 0.2
  i=$((i + 1))
done
echo "=== state"
ip -s xfrm state
echo "==="
"#;

/// Two guests joined by a qemu link, each with kernel ESP: pings pass both ways, every SA counts
/// them, and the capture of the link holds only ESP.
#[test]
#[ignore = "boots two qemu guests; needs root on first use (run with --run-ignored all)"]
fn esp_between_two_guests_over_a_link() {
    let link = Link::new().expect("link");
    let dir = LabDir::new("twovm").expect("lab dir");
    let pcap = dir.path().join("link.pcap");
    let side = |me: &str, peer: &str, inbound_spi: &str| {
        format!("ME={me} PEER={peer} IN={inbound_spi}\n{TWO_GUESTS_SIDE}")
    };
    let a = guest()
        .link(&link, LinkEnd::Listen, Some(&pcap))
        .start(&side("192.0.2.1", "192.0.2.2", "0xb1"))
        .expect("start guest a");
    let b = guest()
        .link(&link, LinkEnd::Connect, None)
        .start(&side("192.0.2.2", "192.0.2.1", "0xa1"))
        .expect("start guest b");
    // Waited for in turn: if a fails, the panic drops b, which kills its qemu at once.
    for (name, running) in [("a", a), ("b", b)] {
        let out = running
            .wait(TIMEOUT)
            .unwrap_or_else(|e| panic!("guest {name}: {e}"));
        eprintln!(
            "guest {name}: {:.1} s\n{}",
            out.elapsed.as_secs_f64(),
            out.output
        );
        let out = out
            .success()
            .unwrap_or_else(|e| panic!("guest {name}: {e}"));
        let counters = packet_counters(section(&out.output, "state"));
        assert_eq!(counters.len(), 2, "{}", out.output);
        assert!(counters.iter().all(|&n| n >= 4), "{counters:?}");
    }
    let protocols = pcap_ip_protocols(&std::fs::read(&pcap).expect("read the link capture"));
    assert!(protocols.len() >= 16, "too few packets: {protocols:?}");
    assert!(
        protocols.iter().all(|&p| p == 50),
        "only ESP on the wire: {protocols:?}"
    );
}

#[test]
fn packet_counters_read_ip_s_xfrm_state() {
    let text = "src 192.0.2.1 dst 192.0.2.2\n\tlifetime config:\n\t  limit: soft (INF)(bytes), \
                hard (INF)(bytes)\n\t  limit: soft (INF)(packets), hard (INF)(packets)\n\t\
                lifetime current:\n\t  252(bytes), 3(packets)\n";
    assert_eq!(packet_counters(text), [3]);
    assert_eq!(section("=== a\nx\n=== b\ny\n", "a"), "x\n");
}
