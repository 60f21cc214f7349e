#!/usr/bin/env bash
# racoon3's main job on an embedded default configuration:
# two peers in network namespaces; a ping from A's LAN to B's LAN makes
# A's datapath (hosted by spmd) raise an ACQUIRE, spmd routes it to iked,
# iked negotiates IKEv2 (PSK, Curve25519, AES-GCM), pings pass through ESP
# (racoon3's userspace datapath), the policies, SAs and ESP counters are
# shown, and everything is torn down again.
#
#   sudo bash scripts/demo.sh
#
# Needs root (network namespaces) and a Rust toolchain; builds spmd, iked and
# racoonctl first.
# Uses only documentation addresses inside its own namespaces:
#   r3demo-a: veth 192.0.2.1/24, LAN 198.51.100.1/32
#   r3demo-b: veth 192.0.2.2/24, LAN 203.0.113.1/32
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "demo.sh needs root to create network namespaces: run it with sudo" >&2
  exit 1
fi

echo "==> building spmd, iked and racoonctl"
cargo build -q -p spmd --bin spmd -p iked --bin iked -p racoonctl --bin racoonctl
SPMD=$PWD/target/debug/spmd
IKED=$PWD/target/debug/iked
RACOONCTL=$PWD/target/debug/racoonctl

WORK=$(mktemp -d /tmp/racoon3-demo.XXXXXX)
PIDS=()
SPMD_PIDS=()
# iked first (it deletes its SAs through spmd's datapath), then spmd.
stop_all() {
  for pids in "${PIDS[*]}" "${SPMD_PIDS[*]}"; do
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    for pid in $pids; do wait "$pid" 2>/dev/null || true; done
  done
  PIDS=()
  SPMD_PIDS=()
}
cleanup() {
  stop_all
  ip netns del r3demo-a 2>/dev/null || true
  ip netns del r3demo-b 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "==> creating two hosts in network namespaces"
ip netns del r3demo-a 2>/dev/null || true
ip netns del r3demo-b 2>/dev/null || true
ip netns add r3demo-a
ip netns add r3demo-b
ip link add r3demo-va netns r3demo-a type veth peer name r3demo-vb netns r3demo-b
ip -n r3demo-a addr add 192.0.2.1/24 dev r3demo-va
ip -n r3demo-b addr add 192.0.2.2/24 dev r3demo-vb
ip -n r3demo-a addr add 198.51.100.1/32 dev lo
ip -n r3demo-b addr add 203.0.113.1/32 dev lo
for ns in r3demo-a r3demo-b; do ip -n $ns link set lo up; done
ip -n r3demo-a link set r3demo-va up
ip -n r3demo-b link set r3demo-vb up

printf 'racoon3 demo secret' >"$WORK/psk"
chmod 600 "$WORK/psk"

# conf ME PEER MY_LAN PEER_LAN MY_ID PEER_ID
conf() {
  cat <<CONF
interface { ike { $1 port 500; }; };
remote peer {
  acceptable_kmp { ikev2; };
  ikev2 {
    my_id fqdn "$5";
    peers_id fqdn "$6";
    peers_ipaddr $2 port 500;
    kmp_enc_alg { aes128_gcm16; };
    kmp_prf_alg { hmac_sha2_256; };
    kmp_dh_group { curve25519; };
    kmp_auth_method { psk; };
    pre_shared_key "$WORK/psk";
  };
};
selector out { direction outbound; src $3; dst $4; upper_layer_protocol "any"; policy_index pol; };
selector in { direction inbound; src $4; dst $3; upper_layer_protocol "any"; policy_index pol; };
policy pol { action auto_ipsec; remote_index peer; ipsec_mode tunnel; ipsec_index { ipsec_esp; };
             ipsec_level require; peers_sa_ipaddr $2; my_sa_ipaddr $1; };
ipsec ipsec_esp { ipsec_sa_lifetime_time 1 hour; sa_index esp; };
sa esp { sa_protocol esp; esp_enc_alg { aes128_gcm16; }; };
CONF
}
conf 192.0.2.1 192.0.2.2 198.51.100.0/24 203.0.113.0/24 a.example b.example >"$WORK/a.conf"
conf 192.0.2.2 192.0.2.1 203.0.113.0/24 198.51.100.0/24 b.example a.example >"$WORK/b.conf"

echo "==> starting spmd (policies, userspace ESP datapath) and iked on both hosts"
for h in b a; do
  ip netns exec r3demo-$h "$SPMD" -F -f "$WORK/$h.conf" -l "$WORK/$h-spmd.log" --run-dir "$WORK/run-$h" &
  SPMD_PIDS+=($!)
done
ip netns exec r3demo-b "$IKED" -F -f "$WORK/b.conf" -l "$WORK/b.log" --run-dir "$WORK/run-b" &
PIDS+=($!)
ip netns exec r3demo-a "$IKED" -F -f "$WORK/a.conf" -l "$WORK/a.log" --run-dir "$WORK/run-a" &
PIDS+=($!)
for _ in $(seq 50); do
  if grep -q "iked started" "$WORK/a.log" 2>/dev/null && grep -q "iked started" "$WORK/b.log" 2>/dev/null; then break; fi
  sleep 0.1
done

echo "==> first ping from A's LAN: no SA yet, so A's datapath raises an ACQUIRE (this packet is dropped)"
ip netns exec r3demo-a ping -n -c 1 -W 1 -I 198.51.100.1 203.0.113.1 >/dev/null || true
for _ in $(seq 50); do
  if grep -q INSTALLED "$WORK/a.log" 2>/dev/null && grep -q INSTALLED "$WORK/b.log" 2>/dev/null; then break; fi
  sleep 0.1
done

if ! grep -q INSTALLED "$WORK/a.log"; then
  echo "==> negotiation failed; full logs:" >&2
  cat "$WORK/a.log" "$WORK/b.log" >&2
  exit 1
fi
echo "==> ping 198.51.100.1 -> 203.0.113.1 through ESP"
ip netns exec r3demo-a ping -n -c 3 -i 0.2 -W 2 -I 198.51.100.1 203.0.113.1
echo "==> ping 203.0.113.1 -> 198.51.100.1 through ESP"
ip netns exec r3demo-b ping -n -c 3 -i 0.2 -W 2 -I 203.0.113.1 198.51.100.1
echo "==> racoonctl show policy (on A)"
"$RACOONCTL" --run-dir "$WORK/run-a" show policy
echo "==> racoonctl show sa (on A, then B)"
"$RACOONCTL" --run-dir "$WORK/run-a" show sa
"$RACOONCTL" --run-dir "$WORK/run-b" show sa
echo "==> tearing down (iked deletes its SAs on SIGTERM and logs their ESP counters; spmd removes its policies)"
stop_all
grep -h "ACQUIRE\|deleted (SPIs\|datapath:\|removed" "$WORK/a-spmd.log" "$WORK/a.log" "$WORK/b.log" | sed "s/^[^ ]* *//"
echo "==> done"
