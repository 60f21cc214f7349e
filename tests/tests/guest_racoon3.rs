//! racoon3 on a kernel that carries ESP: spmd and iked on both sides of a
//! namespace pair inside a qemu guest running Debian's stock kernel
//! (`interop::qemu`), through the XFRM backend (chosen explicitly and by
//! auto-detection) and through the PF_KEY v2 backend. The kernel's ACQUIRE starts the negotiation, the
//! kernel's ESP carries pings both ways (its SA counters prove it), a soft
//! expiry makes iked rekey, terminating the IKE SA removes the kernel SAs,
//! and spmd removes its policies on exit.
//!
//! Ignored by default (boots a guest; needs root on first use); CI runs
//! them with `cargo nextest run --run-ignored all`.

use std::time::Duration;

use interop::LabDir;
use interop::qemu::{Guest, GuestOutput, target_binary};

/// A run takes 10-40 s under TCG; guests share 2 CPUs with other tests.
const TIMEOUT: Duration = Duration::from_secs(240);

const PSK: &str = "racoon3 guest test key";

#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

/// One side's racoon2.conf: `me`/`peer` are 'a' or 'b' of the guest prelude's
/// `lab_two_hosts` (a: 192.0.2.1 / 2001:db8::1, LAN 198.51.100.1 /
/// 2001:db8:a::1; b: 192.0.2.2 / 2001:db8::2, LAN 203.0.113.1 / 2001:db8:b::1).
/// ESP algorithms: AEAD for XFRM; Linux's PF_KEY has no AEAD.
const GCM: &str = "esp_enc_alg { aes128_gcm16; };";
const CBC_SHA256: &str = "esp_enc_alg { aes128_cbc; }; esp_auth_alg { hmac_sha2_256; };";

fn conf(me: char, family: Family, mode: &str, child_lifetime: &str, esp: &str) -> String {
    let addr = |h: char| match (h, family) {
        ('a', Family::V4) => ("192.0.2.1", "198.51.100.1"),
        (_, Family::V4) => ("192.0.2.2", "203.0.113.1"),
        ('a', Family::V6) => ("2001:db8::1", "2001:db8:a::1"),
        (_, Family::V6) => ("2001:db8::2", "2001:db8:b::1"),
    };
    let peer = if me == 'a' { 'b' } else { 'a' };
    let ((my, my_lan), (their, their_lan)) = (addr(me), addr(peer));
    let (src, dst) = if mode == "transport" {
        (my, their)
    } else {
        (my_lan, their_lan)
    };
    format!(
        r#"interface {{ ike {{ {my} port 500; }}; }};
remote peer {{
  acceptable_kmp {{ ikev2; }};
  ikev2 {{
    my_id fqdn "{me}.guest.test";
    peers_id fqdn "{peer}.guest.test";
    peers_ipaddr {their} port 500;
    kmp_enc_alg {{ aes128_gcm16; }};
    kmp_prf_alg {{ hmac_sha2_256; }};
    kmp_dh_group {{ curve25519; }};
    kmp_auth_method {{ psk; }};
    pre_shared_key "/etc/r3/psk";
    interval_to_send 2 sec;
  }};
}};
selector out {{ direction outbound; src {src}; dst {dst}; upper_layer_protocol "any"; policy_index pol; }};
selector in {{ direction inbound; src {dst}; dst {src}; upper_layer_protocol "any"; policy_index pol; }};
policy pol {{ action auto_ipsec; remote_index peer; ipsec_mode {mode}; ipsec_index {{ ipsec_esp; }};
             ipsec_level require; peers_sa_ipaddr {their}; my_sa_ipaddr {my}; }};
ipsec ipsec_esp {{ ipsec_sa_lifetime_time {child_lifetime}; sa_index esp; }};
sa esp {{ sa_protocol esp; {esp} }};
"#
    )
}

/// The guest script: daemons up with `--kernel KERNEL`, pings from A's LAN
/// address until the ACQUIRE-started negotiation lets them through, then
/// sections the test reads (`=== name`).
fn script(kernel: &str, family: Family, mode: &str, wait_rekey: bool) -> String {
    // Tunnel mode protects the LANs, transport mode the hosts themselves.
    let (a, b) = match (family, mode) {
        (Family::V4, "transport") => ("192.0.2.1", "192.0.2.2"),
        (Family::V4, _) => ("198.51.100.1", "203.0.113.1"),
        (Family::V6, "transport") => ("2001:db8::1", "2001:db8::2"),
        (Family::V6, _) => ("2001:db8:a::1", "2001:db8:b::1"),
    };
    let (a_src, b_dst, b_src, a_dst) = (a, b, b, a);
    let ping = match family {
        Family::V4 => "ping",
        Family::V6 => "ping -6",
    };
    let rekey = if wait_rekey {
        r#"
i=0
until grep -q "reached its soft lifetime: rekeying" /tmp/a-iked.log /tmp/b-iked.log; do
  i=$((i + 1)); [ $i -lt 300 ] || fail "no rekey on the soft expiry"; sleep 0.1
done
i=0
until [ "$(grep -c INSTALLED /tmp/a-iked.log)" -ge 2 ]; do
  i=$((i + 1)); [ $i -lt 300 ] || fail "no second CHILD SA"; sleep 0.1
done
ip netns exec a $PING -c 3 -i 0.2 -W 2 -I $A_SRC $B_DST >/dev/null || fail "ping after the rekey"
echo "=== rekeyed"
grep -h "rekeying\|INSTALLED" /tmp/a-iked.log /tmp/b-iked.log
"#
    } else {
        ""
    };
    format!(
        r#"set -e
PING="{ping}"; A_SRC={a_src}; B_DST={b_dst}
fail() {{
  echo "FAILED: $1"
  for f in /tmp/*.log; do echo "--- $f"; tail -n 40 $f; done
  for h in a b; do
    echo "--- $h: xfrm state, policy, stats, routes"
    ip -n $h -s xfrm state; ip -n $h xfrm policy
    ip netns exec $h cat /proc/net/xfrm_stat | grep -v " 0$"
    ip -n $h route; ip -n $h -6 route
  done
  exit 1
}}
lab_two_hosts
# Tunnel mode: each gateway routes the other LAN via the peer, as an
# operator would (racoon2 installs no routes either).
ip -n a route add 203.0.113.1/32 via 192.0.2.2
ip -n b route add 198.51.100.1/32 via 192.0.2.1
ip -n a -6 route add 2001:db8:b::1/128 via 2001:db8::2
ip -n b -6 route add 2001:db8:a::1/128 via 2001:db8::1
mkdir -p /run/r3-a /run/r3-b
for h in b a; do
  ip netns exec $h spmd -F -f /etc/r3/$h.conf -D 1 -l /tmp/$h-spmd.log --run-dir /run/r3-$h --kernel {kernel} &
done
for h in a b; do
  i=0; until grep -q "spmd started" /tmp/$h-spmd.log 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 300 ] || fail "spmd $h did not start"; sleep 0.1
  done
done
for h in b a; do
  ip netns exec $h iked -F -f /etc/r3/$h.conf -D 1 -l /tmp/$h-iked.log --run-dir /run/r3-$h --kernel {kernel} &
done
for h in a b; do
  i=0; until grep -q "iked started" /tmp/$h-iked.log 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 300 ] || fail "iked $h did not start"; sleep 0.1
  done
done
echo "=== backend"
grep -h "kernel backend\|holds ESP" /tmp/a-spmd.log /tmp/a-iked.log
# No SA yet: the first packets raise the kernel's ACQUIRE.
i=0
until ip netns exec a $PING -c 1 -W 1 -I $A_SRC $B_DST >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 30 ] || fail "no ping passed"
done
ip netns exec a $PING -c 3 -i 0.2 -W 2 -I $A_SRC $B_DST >/dev/null || fail "ping a -> b"
ip netns exec b $PING -c 3 -i 0.2 -W 2 -I {b_src} {a_dst} >/dev/null || fail "ping b -> a"
echo "=== acquire"
grep -h "ACQUIRE" /tmp/a-spmd.log /tmp/a-iked.log
echo "=== xfrm a"
ip -n a -s xfrm state
echo "=== show sa"
racoonctl --run-dir /run/r3-a show sa
{rekey}
racoonctl --run-dir /run/r3-a terminate all
i=0
until [ -z "$(ip -n a xfrm state)" ] && [ -z "$(ip -n b xfrm state)" ]; do
  i=$((i + 1)); [ $i -lt 100 ] || fail "kernel SAs left after terminate"; sleep 0.1
done
echo "=== after terminate"
ip -n a xfrm state; ip -n b xfrm state
# spmd's policies have a direction; per-socket policies say "socket".
echo "=== policies before exit"
ip -n a xfrm policy | grep -c "dir " || true
# Stop by the daemons' pid files (iked first: it deletes its SAs).
for d in iked spmd; do
  for h in a b; do kill "$(cat /run/r3-$h/$d.pid)" || fail "no $d pid file on $h"; done
  for h in a b; do
    i=0; while [ -e /run/r3-$h/$d.pid ]; do
      i=$((i + 1)); [ $i -lt 100 ] || fail "$d on $h did not stop"; sleep 0.1
    done
  done
done
echo "=== spmd exit"
tail -n 5 /tmp/a-spmd.log
echo "=== policies after exit"
ip -n a xfrm policy | grep "dir " || true
ip -n b xfrm policy | grep "dir " || true
echo "=== end"
"#
    )
}

/// Debug binaries carry ~90 MB of debug info each: the guest gets them
/// stripped, so the initramfs fits its memory.
fn stripped(dir: &LabDir, name: &str) -> std::path::PathBuf {
    let out = dir.path().join(name);
    let status = std::process::Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(target_binary(name))
        .status()
        .expect("run strip (binutils)");
    assert!(status.success(), "strip {name}");
    out
}

fn run_pair(
    kernel: &str,
    family: Family,
    mode: &str,
    child_lifetime: &str,
    wait_rekey: bool,
) -> GuestOutput {
    let esp = if kernel == "pfkey" { CBC_SHA256 } else { GCM };
    let bins = LabDir::new("r3guestbin").expect("scratch dir");
    let guest = Guest::new()
        .unwrap_or_else(|e| panic!("guest kernel: {e}"))
        .memory_mb(768)
        .binary(stripped(&bins, "spmd"))
        .binary(stripped(&bins, "iked"))
        .binary(stripped(&bins, "racoonctl"))
        .file(
            "/etc/r3/a.conf",
            conf('a', family, mode, child_lifetime, esp),
        )
        .file(
            "/etc/r3/b.conf",
            conf('b', family, mode, child_lifetime, esp),
        )
        .file_mode("/etc/r3/psk", PSK, 0o600);
    let out = guest
        .run(&script(kernel, family, mode, wait_rekey), TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "guest ran in {:.1} s, exit {}:\n{}",
        out.elapsed.as_secs_f64(),
        out.exit_code,
        out.output
    );
    out.success().unwrap_or_else(|e| panic!("{e}"))
}

/// The lines between `=== name` and the next line starting with `=== `.
fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text
        .find(&format!("=== {name}\n"))
        .map(|i| i + name.len() + 5)
        .unwrap_or_else(|| panic!("no section {name} in:\n{text}"));
    let rest = &text[start..];
    // Log lines contain " === " (traffic selectors): sections start a line.
    let end = if rest.starts_with("=== ") {
        0
    } else {
        rest.find("\n=== ").map_or(rest.len(), |i| i + 1)
    };
    &rest[..end]
}

/// The `N(packets)` counters of `ip -s xfrm state`, one per SA.
fn packet_counters(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').strip_suffix("(packets)"))
        .filter_map(|n| n.parse().ok())
        .collect()
}

fn check(out: &GuestOutput, expect_backend: &str, mode: &str) {
    let o = &out.output;
    assert!(section(o, "backend").contains(expect_backend), "{o}");
    assert!(section(o, "acquire").contains("ACQUIRE for"), "{o}");
    let xfrm = section(o, "xfrm a");
    assert!(xfrm.contains(&format!("mode {mode}")), "{xfrm}");
    let counters = packet_counters(xfrm);
    assert_eq!(counters.len(), 2, "two SAs on A: {xfrm}");
    assert!(
        counters.iter().all(|&n| n >= 3),
        "the kernel's ESP counted packets: {xfrm}"
    );
    assert!(section(o, "show sa").contains("ESTABLISHED"), "{o}");
    assert!(section(o, "after terminate").trim().is_empty(), "{o}");
    let before: u32 = section(o, "policies before exit")
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(before >= 2, "spmd installed its policies: {o}");
    assert!(
        section(o, "policies after exit").trim().is_empty(),
        "spmd removed its policies on exit: {o}"
    );
}

#[test]
#[ignore = "boots a qemu guest; needs root on first use (run with --run-ignored all)"]
fn xfrm_chosen_by_auto_detection_carries_an_ipv4_tunnel_and_rekeys_on_the_soft_expiry() {
    let out = run_pair("auto", Family::V4, "tunnel", "8 sec", true);
    check(&out, "holds ESP", "tunnel");
    assert!(
        section(&out.output, "rekeyed").contains("rekeying"),
        "{}",
        out.output
    );
}

#[test]
#[ignore = "boots a qemu guest; needs root on first use (run with --run-ignored all)"]
fn xfrm_carries_ipv6_transport_mode() {
    let out = run_pair("xfrm", Family::V6, "transport", "infinite", false);
    check(&out, "kernel backend 'xfrm'", "transport");
}

#[test]
#[ignore = "boots a qemu guest; needs root on first use (run with --run-ignored all)"]
fn xfrm_carries_an_ipv6_tunnel_and_ipv4_transport_mode() {
    let out = run_pair("xfrm", Family::V6, "tunnel", "infinite", false);
    check(&out, "kernel backend 'xfrm'", "tunnel");
    let out = run_pair("xfrm", Family::V4, "transport", "infinite", false);
    check(&out, "kernel backend 'xfrm'", "transport");
}

#[test]
#[ignore = "boots a qemu guest; needs root on first use (run with --run-ignored all)"]
fn pfkey_carries_an_ipv4_tunnel_with_aes_cbc_and_hmac_sha256() {
    let out = run_pair("pfkey", Family::V4, "tunnel", "infinite", false);
    check(&out, "kernel backend 'pfkey'", "tunnel");
    assert!(
        section(&out.output, "xfrm a").contains("cbc(aes)"),
        "{}",
        out.output
    );
}

#[test]
#[ignore = "boots a qemu guest; needs root on first use (run with --run-ignored all)"]
fn pfkey_carries_ipv6_transport_mode() {
    let out = run_pair("pfkey", Family::V6, "transport", "infinite", false);
    check(&out, "kernel backend 'pfkey'", "transport");
}
