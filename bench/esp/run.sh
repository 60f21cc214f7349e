#!/usr/bin/env bash
# ESP data-plane benchmark: iperf3 TCP throughput and tunnel CPU per GB
# through each tunnel between two network namespaces, all in one run.
#
#   sudo bash bench/esp/run.sh
#
# Paths measured, one after the other, over the same veth pair:
#   veth        iperf3 between the outer addresses (no tunnel)
#   racoon3     target/release/spmd and iked in each namespace (spmd first: it
#               creates TUN r3esp0 and hosts the userspace ESP datapath,
#               default --kernel auto), plain ESP, AES-GCM-16-128
#   racoon3-udp the same with `force_udp_encap on;`: ESP in UDP 4500 (UDP
#               GSO sends, UDP GRO reads in spmd's datapath), like libipsec
#   libipsec    strongSwan charon with kernel-libipsec on both sides,
#               ESP-in-UDP (libipsec always encapsulates), AES-GCM-16-128
#   boringtun   boringtun-cli (userspace WireGuard, Rust), configured with wg
#   wg-go       wireguard-go (userspace WireGuard, Go), configured with wg
#
# Topology (documentation addresses, only inside the two namespaces):
#   A: veth 192.0.2.1/24, lo 198.51.100.1/32  <-->  B: veth 192.0.2.2/24, lo 203.0.113.1/32
# Tunnels carry 198.51.100.1 <-> 203.0.113.1; iperf3 client in A bound to
# 198.51.100.1, server in B on 203.0.113.1. Neither namespace has a route
# for the other's LAN except through the tunnel, so nothing can bypass it;
# the tunnel device's byte counters are checked after each run as well.
#
# For each path: Gbit/s (receiver side, `iperf3 -J`), one TCP stream for
# DURATION s, then PARALLEL streams (-P); CPU seconds per GB = utime+stime
# of the tunnel processes on both sides (from /proc/PID/stat, all threads;
# racoon3: spmd and iked),
# before/after the iperf3 run, divided by the GB (1e9 bytes) received.
# iperf3's own CPU is not counted. Both namespaces share the machine's
# cores, so the two tunnel endpoints and both iperf3 ends compete for them.
#
# Environment knobs:
#   DURATION=10      seconds per iperf3 run
#   PARALLEL=4       streams in the second run per path; 0 skips it
#   ONLY="veth racoon3 racoon3-udp libipsec boringtun wg-go"   paths to measure,
#                    in order (racoon3: plain ESP; racoon3-udp: the same with
#                    `force_udp_encap on;`, ESP in UDP 4500 with UDP GSO/GRO)
#   IKED=path        use this iked instead of building target/release/iked
#                    (spmd: SPMD=path, default: next to IKED)
#   REV=commit       build spmd and iked from a clean snapshot of this commit (git
#                    archive, built in the scratch directory) instead of the
#                    work tree, so uncommitted changes do not enter the figures
#   NO_INSTALL=1     do not apt-get install / cargo install anything
#   PROFILE=1        after the measurements, profile racoon3 once more:
#                    perf stat (task-clock, context switches, syscalls) and
#                    perf record (cpu-clock, call graphs) on both spmd and
#                    both iked; summary on stdout
#   KEEP=1           keep the scratch directory (logs, configs, JSON)
#   QUIET_WAIT=60    before each iperf3 run, wait up to this many seconds for
#                    the machine to be idle (< 15 % busy over 2 s); 0 = no wait.
#                    Runs disturbed by other load are flagged in the notes.
#
# Needs root. Not part of CI. Everything it creates (namespaces, processes,
# scratch directory, UAPI sockets) is removed on exit, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD

DURATION=${DURATION:-10}
PARALLEL=${PARALLEL:-4}
ONLY=${ONLY:-veth racoon3 racoon3-udp libipsec boringtun wg-go}
PROFILE=${PROFILE:-0}
KEEP=${KEEP:-0}
NO_INSTALL=${NO_INSTALL:-0}
QUIET_WAIT=${QUIET_WAIT:-60}

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/esp/run.sh needs root (network namespaces, TUN): run it with sudo" >&2
  exit 1
fi

# sudo resets PATH: find cargo and cargo-installed tools of the invoking user too.
for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
  if [ -d "$d" ]; then PATH="$PATH:$d"; fi
done
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
  UHOME=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  if [ -d "$UHOME/.cargo/bin" ]; then PATH="$PATH:$UHOME/.cargo/bin"; fi
fi
export PATH

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf '!!! %s\n' "$*" >&2; }

# ---------------------------------------------------------------- names
ID=$$
NS_A=r3esp-$ID-a
NS_B=r3esp-$ID-b
VETH_A=r3v${ID}a
VETH_B=r3v${ID}b
WG_A=r3w${ID}a # userspace WireGuard's UAPI socket is /var/run/wireguard/NAME.sock,
WG_B=r3w${ID}b # shared by both namespaces: the two ends need different names
OUT_A=192.0.2.1
OUT_B=192.0.2.2
LAN_A=198.51.100.1
LAN_B=203.0.113.1
WORK=$(mktemp -d /tmp/r3esp-bench.XXXXXX) # not under /run: charon bind-mounts over /run
CHARON=${CHARON:-/usr/lib/ipsec/charon}
CLK_TCK=$(getconf CLK_TCK)
KSOFTIRQD=$(pgrep '^ksoftirqd/' | tr '\n' ' ') # deferred softirq work is the benchmark's too

# ---------------------------------------------------------------- cleanup
# Every process this script started and has not reaped yet. Each is our direct
# child (`ip netns exec`, `unshare` and `env` exec, they do not fork), so its PID
# stays ours until we `wait` for it; it is dropped from the list right then.
PIDS=()
NETNS_MADE=() # namespaces this run created (only these are deleted)
track() { PIDS+=("$1"); }
untrack() {
  local p keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

stop_pids() { # SIGTERM, up to 5 s, then SIGKILL; reaps and untracks
  local pid
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    untrack "$pid"
  done
}

fg_run() { # run a command to completion, tracked, so a signal's cleanup can stop it
  "$@" &
  local pid=$! rc
  track "$pid"
  wait "$pid"
  rc=$?
  untrack "$pid"
  return "$rc"
}

flush_rules() { # libipsec (220) and racoon3 (3948) leave rules behind after SIGKILL
  local ns pref
  for ns in "$NS_A" "$NS_B"; do
    for pref in 220 3948; do
      while ip -n "$ns" rule del pref "$pref" 2>/dev/null; do :; done
      ip -n "$ns" route flush table "$pref" 2>/dev/null || true
    done
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "${#PIDS[@]}" -gt 0 ]; then stop_pids "${PIDS[@]}"; fi
  for ns in "${NETNS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -f "/var/run/wireguard/$WG_A.sock" "/var/run/wireguard/$WG_B.sock"
  if [ "$KEEP" = 1 ]; then
    log "scratch directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- install
need_apt=()
command -v iperf3 >/dev/null || need_apt+=(iperf3)
command -v jq >/dev/null || need_apt+=(jq)
command -v wg >/dev/null || need_apt+=(wireguard-tools)
command -v wireguard-go >/dev/null || need_apt+=(wireguard-go)
command -v swanctl >/dev/null || need_apt+=(strongswan-swanctl)
[ -x "$CHARON" ] || need_apt+=(strongswan-charon)
[ -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ] || need_apt+=(libcharon-extra-plugins)
[ -e /usr/lib/ipsec/plugins/libstrongswan-openssl.so ] || need_apt+=(libstrongswan-standard-plugins)
if [ "${#need_apt[@]}" -gt 0 ] && [ "$NO_INSTALL" != 1 ]; then
  log "installing ${need_apt[*]}"
  # --no-install-recommends: wireguard-tools recommends a kernel image.
  apt-get update -qq >/dev/null 2>&1 || warn "apt-get update failed"
  for p in "${need_apt[@]}"; do
    if apt-cache show "$p" >/dev/null 2>&1; then
      if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" \
        >"$WORK/apt-$p.log" 2>&1; then
        warn "apt-get install $p failed:"
        tail -n 3 "$WORK/apt-$p.log" >&2
      fi
    else
      warn "package $p is not available from apt here"
    fi
  done
fi
if ! command -v boringtun-cli >/dev/null && [ "$NO_INSTALL" != 1 ]; then
  if command -v cargo >/dev/null; then
    log "installing boringtun-cli (cargo install boringtun-cli --locked)"
    cargo install boringtun-cli --locked >"$WORK/cargo-install.log" 2>&1 \
      || { warn "cargo install boringtun-cli failed:"; tail -n 5 "$WORK/cargo-install.log" >&2; }
  else
    warn "cargo not found: cannot install boringtun-cli"
  fi
fi
for tool in iperf3 jq ip; do
  command -v "$tool" >/dev/null || { echo "missing $tool; install it and retry" >&2; exit 1; }
done

# ---------------------------------------------------------------- build
IKED_FROM=
if [ -n "${IKED:-}" ]; then
  IKED_FROM="iked given as IKED=$IKED, spmd ${SPMD:-next to it}"
elif [[ " $ONLY " == *" racoon3"* || "$PROFILE" = 1 ]]; then
  if [ -n "${REV:-}" ]; then
    # A clean snapshot of one commit, built in the scratch directory: the
    # figures then belong to that commit, not to uncommitted work.
    commit=$(git -C "$ROOT" rev-parse --short "$REV^{commit}") || { echo "REV=$REV: no such commit" >&2; exit 1; }
    log "building spmd and iked from a snapshot of $commit (cargo build --release -p spmd -p iked, a few minutes)"
    mkdir -p "$WORK/src"
    git -C "$ROOT" archive "$commit" | tar -x -C "$WORK/src"
    if ! (cd "$WORK/src" && CARGO_TARGET_DIR=$WORK/target cargo build --release -p spmd -p iked) >"$WORK/build.log" 2>&1; then
      warn "building spmd and iked at $commit failed:"
      tail -n 30 "$WORK/build.log" >&2
      exit 1
    fi
    IKED=$WORK/target/release/iked
    IKED_FROM="spmd and iked built from commit $commit"
  else
    log "building spmd and iked (cargo build --release -p spmd -p iked)"
    build=(cargo build --release -p spmd -p iked)
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
      build=(runuser -u "$SUDO_USER" -- env "PATH=$PATH" "${build[@]}")
    fi
    if ! "${build[@]}" >"$WORK/build.log" 2>&1; then
      warn "building spmd and iked failed:"
      tail -n 30 "$WORK/build.log" >&2
      exit 1
    fi
    IKED=${CARGO_TARGET_DIR:-$ROOT/target}/release/iked
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
    git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || rev="$rev plus uncommitted changes"
    IKED_FROM="spmd and iked built from the work tree at $rev"
  fi
fi
IKED=${IKED:-${CARGO_TARGET_DIR:-$ROOT/target}/release/iked}
SPMD=${SPMD:-$(dirname "$IKED")/spmd}

# ---------------------------------------------------------------- topology
log "creating namespaces $NS_A and $NS_B"
for ns in "$NS_A" "$NS_B"; do
  if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
    echo "network namespace $ns exists already (another run?); not touching it" >&2
    exit 1
  fi
  ip netns add "$ns"
  NETNS_MADE+=("$ns")
done
ip link add "$VETH_A" netns "$NS_A" type veth peer name "$VETH_B" netns "$NS_B"
ip -n "$NS_A" addr add $OUT_A/24 dev "$VETH_A"
ip -n "$NS_B" addr add $OUT_B/24 dev "$VETH_B"
ip -n "$NS_A" addr add $LAN_A/32 dev lo
ip -n "$NS_B" addr add $LAN_B/32 dev lo
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
ip -n "$NS_A" link set "$VETH_A" up
ip -n "$NS_B" link set "$VETH_B" up
# From here on, failures are handled where they happen: a path that does not
# come up is reported in the table and the next path is measured.
set +e

inA() { ip netns exec "$NS_A" "$@"; }
inB() { ip netns exec "$NS_B" "$@"; }

# ---------------------------------------------------------------- measuring
declare -A GBPS CPUGB CORES BUSY MTU NOTE

cpu_ticks() { # utime+stime of each PID, summed (fields 14 and 15 of /proc/PID/stat)
  local pid sum=0 t
  for pid in "$@"; do
    t=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}') || t=
    [ -n "$t" ] || { echo -1; return; }
    sum=$((sum + t))
  done
  echo "$sum"
}

sys_ticks() { # "busy total" jiffies of all CPUs: busy = user..softirq without idle and
  # iowait; total adds idle, iowait and steal (guest time is already in user)
  awk '/^cpu / {t=0; for (i=2; i<=9; i++) t+=$i; print t-$5-$6-$9, t}' /proc/stat
}

busy_pct() { # machine busy in % over $1 seconds
  local a b
  a=$(sys_ticks); sleep "$1"; b=$(sys_ticks)
  echo "$a $b" | awk '{ if ($4 > $2) printf "%d", 100*($3-$1)/($4-$2); else print 0 }'
}

wait_quiet() { # up to QUIET_WAIT seconds for < 15 % busy over 2 s
  [ "$QUIET_WAIT" -gt 0 ] || return 0
  local end=$((SECONDS + QUIET_WAIT)) b
  while :; do
    b=$(busy_pct 2)
    [ "$b" -lt 15 ] && return 0
    if [ "$SECONDS" -ge "$end" ]; then
      warn "machine still ${b}% busy after waiting ${QUIET_WAIT}s; measuring anyway"
      return 0
    fi
  done
}

dev_tx_bytes() { # NS DEV
  ip -n "$1" -j -s link show dev "$2" 2>/dev/null | jq -r '.[0].stats64.tx.bytes // 0'
}

wait_listen() { # NS PORT
  for _ in $(seq 50); do
    ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  return 1
}

# iperf_run NAME TAG STREAMS SERVER BIND DEV PIDS... : one iperf3 run; fills the arrays
iperf_run() {
  local name=$1 tag=$2 streams=$3 server=$4 bind=$5 dev=$6
  shift 6
  local json=$WORK/$name-$tag.json before after sys0 sys1 ksoft0 ksoft1 txb0 txb1 bytes bps err
  wait_quiet
  before=$(cpu_ticks "$@")
  sys0=$(sys_ticks)
  ksoft0=$(cpu_ticks $KSOFTIRQD)
  [ -n "$dev" ] && txb0=$(dev_tx_bytes "$NS_A" "$dev")
  fg_run timeout $((DURATION + 30)) ip netns exec "$NS_A" \
    iperf3 -c "$server" -B "$bind" -t "$DURATION" -P "$streams" -J --connect-timeout 5000 \
    >"$json" 2>"$WORK/$name-$tag.err" || true
  after=$(cpu_ticks "$@")
  sys1=$(sys_ticks)
  err=$(jq -r '.error // empty' "$json" 2>/dev/null || echo "no JSON from iperf3")
  bytes=$(jq -r '.end.sum_received.bytes // 0' "$json" 2>/dev/null || echo 0)
  if [ -n "$err" ] || [ "$bytes" = 0 ]; then
    NOTE[$name]+="iperf3 -P $streams failed: ${err:-no bytes received} $(head -c 300 "$WORK/$name-$tag.err"); "
    warn "$name ($tag): iperf3 failed: ${err:-no bytes received}"
    return 1
  fi
  bps=$(jq -r '.end.sum_received.bits_per_second' "$json")
  GBPS[$name,$tag]=$(awk -v b="$bps" 'BEGIN{printf "%.2f", b/1e9}')
  BUSY[$name,$tag]=$(echo "$sys0 $sys1" | awk '{ if ($4 > $2) printf "%d%%", 100*($3-$1)/($4-$2) }')
  # CPU of something else than this benchmark during the run (cores): machine busy
  # minus tunnel processes minus iperf3's own figures (client host_total, server
  # remote_total, each in % of one CPU). Softirq work lands on whoever runs, so
  # this is approximate; above ~0.2 cores the run was disturbed.
  local ipc other
  ksoft1=$(cpu_ticks $KSOFTIRQD)
  ipc=$(jq -r '(.end.cpu_utilization_percent.host_total // 0) + (.end.cpu_utilization_percent.remote_total // 0)' "$json")
  other=$(echo "$sys0 $sys1 $((after - before + ksoft1 - ksoft0)) $ipc" | awk -v hz="$CLK_TCK" -v d="$DURATION" -v n="$(nproc)" \
    '{ busy = n * ($3-$1)/($4-$2); t = ($5 > 0 ? $5/hz/d : 0); printf "%.2f", busy - t - $6/100 }')
  if awk -v o="$other" 'BEGIN{exit !(o > 0.2)}'; then
    NOTE[$name]+="$tag: ~$other cores of other load during the run; "
  fi
  if [ "$#" -gt 0 ]; then
    if [ "$before" -lt 0 ] || [ "$after" -lt 0 ]; then
      NOTE[$name]+="a tunnel process exited during the run; "
    else
      CPUGB[$name,$tag]=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v b="$bytes" \
        'BEGIN{printf "%.2f", (t/hz)/(b/1e9)}')
      CORES[$name,$tag]=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v d="$DURATION" \
        'BEGIN{printf "%.2f", (t/hz)/d}')
    fi
  fi
  if [ -n "$dev" ]; then
    txb1=$(dev_tx_bytes "$NS_A" "$dev")
    # The client sends the data: A's tunnel device must have carried at least as much.
    if [ $((txb1 - txb0)) -lt "$bytes" ]; then
      NOTE[$name]+="$dev in $NS_A sent $((txb1 - txb0)) bytes < $bytes received: traffic bypassed the tunnel?; "
    fi
  fi
  log "$name ($tag): ${GBPS[$name,$tag]} Gbit/s, CPU ${CPUGB[$name,$tag]:-n/a} s/GB"
}

# measure NAME SERVER BIND DEV PIDS... : warm-up, 1 stream, PARALLEL streams
measure() {
  local name=$1 server=$2 bind=$3 dev=$4 srv
  shift 4
  [ -n "$dev" ] && MTU[$name]=$(ip -n "$NS_A" -j link show dev "$dev" | jq -r '.[0].mtu')
  ip netns exec "$NS_B" iperf3 -s -B "$server" >"$WORK/$name-server.log" 2>&1 &
  srv=$!
  track "$srv"
  if ! wait_listen "$NS_B" 5201; then
    NOTE[$name]+="iperf3 server did not start; "
    stop_pids "$srv"
    return 1
  fi
  # Warm-up and reachability check: 2 s, must move data.
  if ! fg_run timeout 30 ip netns exec "$NS_A" iperf3 -c "$server" -B "$bind" -t 2 -J \
    --connect-timeout 5000 >"$WORK/$name-warmup.json" 2>&1 \
    || [ "$(jq -r '.end.sum_received.bytes // 0' "$WORK/$name-warmup.json" 2>/dev/null)" = 0 ]; then
    NOTE[$name]+="no traffic through the tunnel (warm-up: $(jq -r '.error // empty' "$WORK/$name-warmup.json" 2>/dev/null | head -c 200)); "
    warn "$name: warm-up iperf3 moved no data"
    stop_pids "$srv"
    return 1
  fi
  iperf_run "$name" 1 1 "$server" "$bind" "$dev" "$@" || true
  if [ "$PARALLEL" -gt 1 ]; then
    iperf_run "$name" P "$PARALLEL" "$server" "$bind" "$dev" "$@" || true
  fi
  stop_pids "$srv"
}

# ---------------------------------------------------------------- veth
run_veth() {
  measure veth $OUT_B $OUT_A ""
  MTU[veth]=$(ip -n "$NS_A" -j link show dev "$VETH_A" | jq -r '.[0].mtu')
}

# ---------------------------------------------------------------- racoon3
racoon3_conf() { # ME PEER MY_LAN PEER_LAN MY_ID PEER_ID
  cat <<CONF
# generated by bench/esp/run.sh
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
    pre_shared_key "$WORK/r3/psk";${R3_UDP:+
    force_udp_encap on;}
  };
};
selector out { direction outbound; src $3; dst $4; upper_layer_protocol "any"; policy_index pol; };
selector in { direction inbound; src $4; dst $3; upper_layer_protocol "any"; policy_index pol; };
policy pol { action auto_ipsec; remote_index peer; ipsec_mode tunnel; ipsec_index { ipsec_esp; };
             ipsec_level require; peers_sa_ipaddr $2; my_sa_ipaddr $1; };
ipsec ipsec_esp { ipsec_sa_lifetime_time infinite; sa_index esp; };
sa esp { sa_protocol esp; esp_enc_alg { aes128_gcm16; }; };
CONF
}

R3_PIDS=()
r3_wait_log() { # FILE NEEDLE PID TRIES: wait (0.05 s steps) for NEEDLE in FILE while PID lives
  for _ in $(seq "$4"); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

r3_start() { # SIDE NS [iked args...]: spmd (hosts the datapath, creates r3esp0), then iked
  local side=$1 ns=$2 d=$WORK/r3 s i
  shift 2
  ip netns exec "$ns" env RUST_LIB_BACKTRACE=0 "$SPMD" -F -f "$d/$side.conf" -l "$d/spmd-$side.log" \
    --run-dir "$d/run-$side" >"$d/spmd-$side.out" 2>&1 9>&- &
  s=$!
  track "$s"
  R3_PIDS+=("$s")
  r3_wait_log "$d/spmd-$side.log" "spmd started" "$s" 200 || return 1
  ip netns exec "$ns" env RUST_LIB_BACKTRACE=0 "$IKED" -F -f "$d/$side.conf" -l "$d/$side.log" \
    --run-dir "$d/run-$side" "$@" >"$d/$side.out" 2>&1 9>&- &
  i=$!
  track "$i"
  R3_PIDS+=("$i")
  r3_wait_log "$d/$side.log" "kernel backend" "$i" 100 || return 1
}

racoon3_up() {
  local bin
  for bin in "$SPMD" "$IKED"; do
    if [ ! -x "$bin" ]; then
      NOTE[$R3_NAME]+="binary $bin missing; "
      return 1
    fi
  done
  local d=$WORK/r3 why="" pid
  mkdir -p "$d"
  printf 'racoon3 esp bench secret' >"$d/psk"
  chmod 600 "$d/psk"
  racoon3_conf $OUT_A $OUT_B $LAN_A/32 $LAN_B/32 a.bench.example b.bench.example >"$d/a.conf"
  racoon3_conf $OUT_B $OUT_A $LAN_B/32 $LAN_A/32 b.bench.example a.bench.example >"$d/b.conf"
  R3_PIDS=()
  if r3_start b "$NS_B" && sleep 0.2 && r3_start a "$NS_A" -I $OUT_B; then
    for _ in $(seq 200); do
      if grep -q "CHILD SA peer INSTALLED" "$d/a.log" 2>/dev/null \
        && grep -q "CHILD SA peer INSTALLED" "$d/b.log" 2>/dev/null; then
        grep -h "CHILD SA peer INSTALLED" "$d/a.log" | sed 's/^/    A: /' >&2
        return 0
      fi
      for pid in "${R3_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || break 2; done
      sleep 0.1
    done
    why="no 'CHILD SA peer INSTALLED' in both iked logs within 20 s"
  else
    why="spmd or iked did not start"
  fi
  for pid in "${R3_PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || why="$why; PID $pid exited"
  done
  warn "$R3_NAME: $why"
  for side in a b; do
    for f in spmd-$side.log spmd-$side.out $side.log $side.out; do
      echo "--- $f (last 20 lines) ---" >&2
      tail -n 20 "$d/$f" >&2 2>/dev/null || true
    done
  done
  NOTE[$R3_NAME]+="tunnel not up: $why (logs on stderr); "
  return 1
}

racoon3_down() {
  stop_pids "${R3_PIDS[@]}"
  local d=$WORK/r3 side
  for side in a b; do
    grep -h "datapath:" "$d/spmd-$side.log" 2>/dev/null | sed "s/^/    $side: /" >&2 || true
  done
  R3_PIDS=()
  flush_rules
}

R3_NAME=racoon3
R3_UDP=
run_racoon3() { # [udp]: racoon3-udp, ESP in UDP 4500 (force_udp_encap on)
  R3_NAME=racoon3${1:+-$1}
  R3_UDP=${1:-}
  if racoon3_up; then
    measure "$R3_NAME" $LAN_B $LAN_A r3esp0 "${R3_PIDS[@]}"
  fi
  racoon3_down
  R3_NAME=racoon3
  R3_UDP=
}

# ---------------------------------------------------------------- strongSwan
SS_PIDS=()
ss_conf() { # DIR
  cat <<CONF
# generated by bench/esp/run.sh (recipe: the lab notes on strongSwan in namespaces, as in tests/src/strongswan.rs)
charon {
  load = random nonce openssl kdf pem pkcs1 pkcs8 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  filelog {
    bench {
      path = $1/charon.log
      time_format = %H:%M:%S
      append = no
      flush_line = yes
      default = 1
    }
  }
  syslog { daemon { default = -1 } }
  plugins {
    vici { socket = unix://$1/charon.vici }
    kernel-libipsec { allow_peer_ts = yes }
    kernel-netlink { fwmark = !0x42 }
    socket-default { fwmark = 0x42 }
  }
}
swanctl {
  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey
  socket = unix://$1/charon.vici
}
CONF
}

swanctl_conf() { # MY PEER MY_LAN PEER_LAN MY_ID PEER_ID
  cat <<CONF
connections {
  bench {
    version = 2
    local_addrs = $1
    remote_addrs = $2
    proposals = aes128-sha256-x25519
    local { auth = psk
            id = $5 }
    remote { auth = psk
             id = $6 }
    children {
      net {
        local_ts = $3
        remote_ts = $4
        esp_proposals = aes128gcm16
        mode = tunnel
        start_action = none
      }
    }
  }
}
secrets {
  ike-bench {
    id-local = $5
    id-remote = $6
    secret = "racoon3-esp-bench-psk-0123456789"
  }
}
CONF
}

ss_swanctl() { # DIR args...
  local d=$1
  shift
  STRONGSWAN_CONF=$d/strongswan.conf SWANCTL_DIR=$d/swanctl swanctl "$@" 2>&1 \
    | grep -v "opening directory" || true
}

ss_start() { # NS DIR
  local ns=$1 d=$2 pid
  mkdir -p "$d/run" "$d/swanctl"
  # charon's PID file path is compiled in (/var/run/charon.pid): private /run per instance.
  ip netns exec "$ns" unshare --mount --propagation slave -- sh -c \
    "mount --bind '$d/run' /run && exec env STRONGSWAN_CONF='$d/strongswan.conf' '$CHARON'" \
    >"$d/charon.out" 2>&1 9>&- &
  pid=$!
  track "$pid"
  SS_PIDS+=("$pid")
  for _ in $(seq 100); do
    [ -S "$d/charon.vici" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -S "$d/charon.vici" ]; then
    warn "charon in $ns did not open its vici socket"
    tail -n 20 "$d/charon.out" "$d/charon.log" >&2 2>/dev/null || true
    return 1
  fi
  ss_swanctl "$d" --load-all --noprompt >"$d/load.log"
}

run_libipsec() {
  if [ ! -x "$CHARON" ] || ! command -v swanctl >/dev/null \
    || [ ! -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ]; then
    NOTE[libipsec]+="strongSwan (charon, swanctl, kernel-libipsec plugin) not installed; "
    return 0
  fi
  local a=$WORK/ss-a b=$WORK/ss-b ok=1
  mkdir -p "$a" "$b"
  ss_conf "$a" >"$a/strongswan.conf"
  ss_conf "$b" >"$b/strongswan.conf"
  mkdir -p "$a/swanctl" "$b/swanctl"
  swanctl_conf $OUT_A $OUT_B $LAN_A/32 $LAN_B/32 a.bench.example b.bench.example >"$a/swanctl/swanctl.conf"
  swanctl_conf $OUT_B $OUT_A $LAN_B/32 $LAN_A/32 b.bench.example a.bench.example >"$b/swanctl/swanctl.conf"
  flush_rules
  if ss_start "$NS_B" "$b" && ss_start "$NS_A" "$a"; then
    fg_run timeout 40 env STRONGSWAN_CONF="$a/strongswan.conf" SWANCTL_DIR="$a/swanctl" \
      swanctl --initiate --child net --timeout 30 >"$a/initiate.log" 2>&1 || ok=0
    if [ "$ok" = 1 ] && ss_swanctl "$a" --list-sas | grep -q "INSTALLED"; then
      ss_swanctl "$a" --list-sas | grep -E "ESTABLISHED|INSTALLED" | sed 's/^/    A: /' >&2
      measure libipsec $LAN_B $LAN_A ipsec0 "${SS_PIDS[@]}"
    else
      warn "strongSwan: CHILD_SA not installed"
      tail -n 20 "$a/initiate.log" >&2
      NOTE[libipsec]+="CHILD_SA not installed (swanctl --initiate failed); "
    fi
  else
    NOTE[libipsec]+="charon did not start; "
  fi
  stop_pids "${SS_PIDS[@]}"
  SS_PIDS=()
  flush_rules
}

# ---------------------------------------------------------------- WireGuard
# wg_up NAME IMPL : start IMPL in both namespaces, configure with wg; sets WG_PIDS
WG_PIDS=()
wg_start_one() { # IMPL NS IFACE LOG
  local impl=$1 ns=$2 ifc=$3 logf=$4 pid
  rm -f "/var/run/wireguard/$ifc.sock"
  case $impl in
    boringtun)
      ip netns exec "$ns" env WG_SUDO=1 boringtun-cli --foreground --disable-drop-privileges \
        -l "$logf" "$ifc" >"$logf.out" 2>&1 9>&- &
      ;;
    wg-go)
      # Prints a banner recommending the kernel module, then runs.
      ip netns exec "$ns" env LOG_LEVEL=error wireguard-go -f "$ifc" >"$logf" 2>&1 9>&- &
      ;;
  esac
  pid=$!
  track "$pid"
  WG_PIDS+=("$pid")
  for _ in $(seq 100); do
    [ -S "/var/run/wireguard/$ifc.sock" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  warn "$impl in $ns: no UAPI socket /var/run/wireguard/$ifc.sock"
  tail -n 20 "$logf" "$logf.out" >&2 2>/dev/null || true
  return 1
}

run_wg() { # NAME IMPL BINARY
  local name=$1 impl=$2 bin=$3 d=$WORK/$1
  if ! command -v "$bin" >/dev/null; then
    NOTE[$name]+="$bin not installed; "
    warn "$name: $bin not installed, skipped"
    return 0
  fi
  if ! command -v wg >/dev/null; then
    NOTE[$name]+="wg (wireguard-tools) not installed; "
    return 0
  fi
  mkdir -p "$d"
  (umask 077; wg genkey >"$d/a.key"; wg genkey >"$d/b.key")
  wg pubkey <"$d/a.key" >"$d/a.pub"
  wg pubkey <"$d/b.key" >"$d/b.pub"
  if wg_start_one "$impl" "$NS_A" "$WG_A" "$d/a.log" && wg_start_one "$impl" "$NS_B" "$WG_B" "$d/b.log"; then
    inA wg set "$WG_A" private-key "$d/a.key" listen-port 51820 \
      peer "$(cat "$d/b.pub")" endpoint $OUT_B:51820 allowed-ips $LAN_B/32
    inB wg set "$WG_B" private-key "$d/b.key" listen-port 51820 \
      peer "$(cat "$d/a.pub")" endpoint $OUT_A:51820 allowed-ips $LAN_A/32
    ip -n "$NS_A" link set "$WG_A" mtu 1420 up
    ip -n "$NS_B" link set "$WG_B" mtu 1420 up
    ip -n "$NS_A" route add $LAN_B/32 dev "$WG_A" src $LAN_A
    ip -n "$NS_B" route add $LAN_A/32 dev "$WG_B" src $LAN_B
    measure "$name" $LAN_B $LAN_A "$WG_A" "${WG_PIDS[@]}"
    inA wg show "$WG_A" 2>/dev/null | grep -E "transfer" | sed 's/^ */    A: /' >&2 || true
  else
    NOTE[$name]+="$bin did not start; "
  fi
  stop_pids "${WG_PIDS[@]}"
  WG_PIDS=()
  rm -f "/var/run/wireguard/$WG_A.sock" "/var/run/wireguard/$WG_B.sock"
}

# ---------------------------------------------------------------- profile
profile_racoon3() {
  if ! command -v perf >/dev/null; then
    warn "PROFILE=1: perf not installed (apt-get install linux-perf), skipped"
    return 0
  fi
  racoon3_up || { racoon3_down; return 0; }
  local pids srv
  pids=$(IFS=,; echo "${R3_PIDS[*]}")
  ip netns exec "$NS_B" iperf3 -s -B $LAN_B >/dev/null 2>&1 &
  srv=$!
  track "$srv"
  wait_listen "$NS_B" 5201 || true
  log "profiling racoon3 (perf stat, then perf record) during ${DURATION}s iperf3 runs"
  wait_quiet
  perf stat -e task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter -p "$pids" \
    -o "$WORK/perf-stat.txt" -- sleep "$DURATION" &
  local ps=$!
  track "$ps"
  fg_run timeout $((DURATION + 30)) ip netns exec "$NS_A" iperf3 -c $LAN_B -B $LAN_A \
    -t "$DURATION" -J >"$WORK/profile-stat.json" 2>/dev/null || true
  wait "$ps" || true
  untrack "$ps"
  wait_quiet
  perf record -e cpu-clock -F 999 -g -p "$pids" -o "$WORK/perf.data" -- sleep "$DURATION" \
    >/dev/null 2>&1 &
  local pr=$!
  track "$pr"
  fg_run timeout $((DURATION + 30)) ip netns exec "$NS_A" iperf3 -c $LAN_B -B $LAN_A \
    -t "$DURATION" -J >"$WORK/profile-rec.json" 2>/dev/null || true
  wait "$pr" || true
  untrack "$pr"
  stop_pids "$srv"
  racoon3_down
  local bytes pkts
  bytes=$(jq -r '.end.sum_received.bytes // 0' "$WORK/profile-stat.json")
  pkts=$(awk -v b="$bytes" 'BEGIN{printf "%d", b/1348}') # 1400 MTU - 52 bytes TCP/IP headers (timestamps)
  echo
  echo "### racoon3 profile (perf, ${DURATION}s, 1 stream)"
  echo
  echo '```'
  grep -E "task-clock|context-switches|cpu-migrations|sys_enter|elapsed" "$WORK/perf-stat.txt" || true
  echo "payload bytes received: $bytes (~$pkts full-size inner packets)"
  awk -v p="$pkts" '/raw_syscalls:sys_enter/ {gsub(",","",$1); if (p>0) printf "syscalls per inner packet (spmd and iked, both sides): %.2f\n", $1/p}' \
    "$WORK/perf-stat.txt" || true
  echo
  echo "-- samples by object (cpu-clock, spmd and iked, both sides) --"
  perf report -i "$WORK/perf.data" --no-children --stdio --sort dso -g none \
    --percent-limit 0.5 2>/dev/null | grep -v '^#' | grep -v '^$' | cut -c1-100 | head -n 12 || true
  echo "-- where the time goes (children included; syscall entry points and the inner TCP stack) --"
  perf report -i "$WORK/perf.data" --children --stdio --sort sym -g none 2>/dev/null \
    | grep -E '\] (__libc_sendmsg|__libc_recv|__GI___libc_write|read|epoll_wait|tun_get_user|tun_do_read|raw_sendmsg|udp_sendmsg|tcp_v4_rcv|finish_task_switch[.a-z0-9]*|ring_core[a-z0-9_]*aes_gcm_(enc|dec)_update[a-z0-9_]*)$' \
    | cut -c1-110 || true
  echo "-- top symbols (self) --"
  perf report -i "$WORK/perf.data" --no-children --stdio --sort dso,sym -g none \
    --percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' | cut -c1-110 | head -n 40 || true
  echo '```'
}

# ---------------------------------------------------------------- run
# Other work on the machine skews every figure: say how busy it was before we started.
IDLE_BUSY=$(busy_pct 1)%
log "machine busy before the run (1 s, all CPUs): $IDLE_BUSY"
for p in $ONLY; do
  log "measuring: $p"
  case $p in
    veth) run_veth ;;
    racoon3) run_racoon3 ;;
    racoon3-udp) run_racoon3 udp ;;
    libipsec) run_libipsec ;;
    boringtun) run_wg boringtun boringtun boringtun-cli ;;
    wg-go) run_wg wg-go wg-go wireguard-go ;;
    *) warn "unknown path $p (expected veth racoon3 racoon3-udp libipsec boringtun wg-go)" ;;
  esac
done

# ---------------------------------------------------------------- report
echo
echo "## ESP throughput $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "${IKED_FROM:-racoon3 not measured}; kernel $(uname -r); $(nproc) CPUs (machine busy before the run: $IDLE_BUSY);"
echo "iperf3 TCP, ${DURATION}s per run, receiver-side throughput;"
echo "CPU = utime+stime of the tunnel processes on both sides; cores = that CPU / ${DURATION}s;"
echo "machine busy = all CPUs' non-idle time during the run (tunnels, iperf3, softirq), $(nproc) CPUs = 100%."
echo
p=$PARALLEL
if [ "$p" -gt 1 ]; then
  echo "| path | tunnel MTU | Gbit/s, 1 stream | CPU s/GB, 1 stream | tunnel cores, 1 stream | machine busy, 1 stream | Gbit/s, -P $p | CPU s/GB, -P $p | machine busy, -P $p | notes |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
else
  echo "| path | tunnel MTU | Gbit/s, 1 stream | CPU s/GB, 1 stream | tunnel cores, 1 stream | machine busy, 1 stream | notes |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
fi
for name in $ONLY; do
  row=("$name" "${MTU[$name]:--}" "${GBPS[$name,1]:--}" "${CPUGB[$name,1]:--}" "${CORES[$name,1]:--}" "${BUSY[$name,1]:--}")
  if [ "$p" -gt 1 ]; then row+=("${GBPS[$name,P]:--}" "${CPUGB[$name,P]:--}" "${BUSY[$name,P]:--}"); fi
  row+=("${NOTE[$name]:-}")
  printf '| %s ' "${row[@]}"
  echo '|'
done
echo
ratio() { # A B TAG
  local a=${GBPS[$1,$3]:-} b=${GBPS[$2,$3]:-}
  if [ -n "$a" ] && [ -n "$b" ]; then
    awk -v a="$a" -v b="$b" 'BEGIN{ if (b>0) printf "%.2fx", a/b; else print "-" }'
  else
    echo "-"
  fi
}
echo "Targets: racoon3 >= 2x boringtun and >= 5x libipsec (throughput)."
for r3 in racoon3 racoon3-udp; do
  [[ " $ONLY " == *" $r3 "* ]] || continue
  for other in boringtun libipsec; do
    line="- $r3 / $other: $(ratio $r3 $other 1) (1 stream)"
    if [ "$p" -gt 1 ]; then line+=", $(ratio $r3 $other P) (-P $p)"; fi
    echo "$line"
  done
done

if [ "$PROFILE" = 1 ]; then
  profile_racoon3
fi
