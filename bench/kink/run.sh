#!/usr/bin/env bash
# KINK benchmark: how fast kinkd keys SAs through Kerberos, between two
# network namespaces with a throwaway MIT KDC.
#
#   sudo bash bench/kink/run.sh
#
# Figures:
#   (i)  ACQUIRE to installed SAs: one ping from A to B (it hits spmd's
#        policy, spmd sends kinkd an ACQUIRE, kinkd runs CREATE over UDP 910),
#        timed from just before the ping is sent until `racoonctl show sa
#        kinkd --json` on A lists an established pair; RUNS times, with
#        `terminate --daemon kinkd peer-b-1` (and both sides empty) between
#        runs; median and p90 in ms. The first run also fetches A's TGT and
#        service ticket from the KDC and is reported separately ("cold");
#        later runs reuse the cached ticket, as kinkd does in operation.
#        Resolution: one racoonctl round trip (measured and printed).
#   (ii) CREATE exchanges per second against one responder: PARALLEL remotes
#        on A (tunnel mode, one /32 LAN pair each, so each is its own policy,
#        reqid and SA pair), each driven by its own loop `initiate --daemon
#        kinkd peer-b-N`, wait until established, `terminate`, wait until gone,
#        for DURATION seconds; CREATE/s = the increase of B's `creates`
#        counter (`show status kinkd --json`) over the elapsed time, and B's
#        kinkd CPU (utime+stime) per CREATE. The loops include racoonctl's
#        own start-up and polling, so this is a lower bound of what kinkd can
#        take; PARALLEL > 1 keeps several CREATEs in flight.
#
# Topology (documentation addresses, only inside the two namespaces):
#   A: veth 192.0.2.1/24, lo 198.51.100.1..P/32  <-->  B: veth 192.0.2.2/24, lo 203.0.113.1..P/32
#   KDC (krb5kdc, realm KINK.TEST) in B on 192.0.2.53:88, principals
#   kink/a.kink.test and kink/b.kink.test with keytabs. B routes the KDC's
#   replies through the main table (`ip rule from 192.0.2.53 lookup main`),
#   since spmd's datapath routes A's address into its TUN device.
#
# Environment knobs:
#   RUNS=20          latency runs (i)
#   DURATION=30      seconds of the CREATE/s run (ii)
#   PARALLEL=4       remotes driven in parallel in (ii)
#   ONLY="latency rate"   which figures
#   KINKD=path       use this kinkd (spmd and racoonctl from the same directory
#                    unless SPMD / RACOONCTL name them) instead of building
#   REV=commit       build from a clean snapshot of this commit (git archive)
#   NO_INSTALL=1     do not apt-get install anything (jq, krb5-kdc, ...)
#   KEEP=1           keep the scratch directory (configs, logs, KDC)
#   QUIET_WAIT=60    wait up to N s for the machine to be idle before each figure
#
# Needs root. Not part of CI. Fails loudly when kinkd cannot be built or found.
# Everything it creates (namespaces, processes, scratch directory) is removed
# on exit, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD

RUNS=${RUNS:-20}
DURATION=${DURATION:-30}
PARALLEL=${PARALLEL:-4}
ONLY=${ONLY:-latency rate}
KEEP=${KEEP:-0}
NO_INSTALL=${NO_INSTALL:-0}
QUIET_WAIT=${QUIET_WAIT:-60}

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/kink/run.sh needs root (network namespaces, TUN): run it with sudo" >&2
  exit 1
fi
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
die() { printf '!!! %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- names
ID=$$
NS_A=r3kink-$ID-a
NS_B=r3kink-$ID-b
VETH_A=r3k${ID}a
VETH_B=r3k${ID}b
OUT_A=192.0.2.1
OUT_B=192.0.2.2
KDC_ADDR=192.0.2.53
REALM=KINK.TEST
PRINC_A=kink/a.kink.test@$REALM
PRINC_B=kink/b.kink.test@$REALM
WORK=$(mktemp -d /tmp/r3kink-bench.XXXXXX)
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- cleanup
PIDS=()
NETNS_MADE=()
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
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "${#PIDS[@]}" -gt 0 ]; then stop_pids "${PIDS[@]}"; fi
  for ns in "${NETNS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
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
command -v jq >/dev/null || need_apt+=(jq)
[ -x /usr/sbin/krb5kdc ] || need_apt+=(krb5-kdc)
[ -x /usr/sbin/kadmin.local ] || need_apt+=(krb5-admin-server)
command -v kinit >/dev/null || need_apt+=(krb5-user)
if [ "${#need_apt[@]}" -gt 0 ] && [ "$NO_INSTALL" != 1 ]; then
  log "installing ${need_apt[*]}"
  apt-get update -qq >/dev/null 2>&1 || warn "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" \
    >"$WORK/apt.log" 2>&1 || { tail -n 5 "$WORK/apt.log" >&2; die "apt-get install ${need_apt[*]} failed"; }
fi
for tool in jq ip ping /usr/sbin/krb5kdc /usr/sbin/kdb5_util /usr/sbin/kadmin.local; do
  command -v "$tool" >/dev/null || die "missing $tool: apt-get install jq krb5-kdc krb5-admin-server krb5-user"
done

# ---------------------------------------------------------------- build
if [ -n "${KINKD:-}" ]; then
  FROM="kinkd given as KINKD=$KINKD"
elif [ -n "${REV:-}" ]; then
  commit=$(git -C "$ROOT" rev-parse --short "$REV^{commit}") || die "REV=$REV: no such commit"
  log "building spmd, kinkd and racoonctl from a snapshot of $commit (release, a few minutes)"
  mkdir -p "$WORK/src"
  git -C "$ROOT" archive "$commit" | tar -x -C "$WORK/src"
  if ! (cd "$WORK/src" && CARGO_TARGET_DIR=$WORK/target cargo build --release -p spmd -p kinkd -p racoonctl) \
    >"$WORK/build.log" 2>&1; then
    tail -n 30 "$WORK/build.log" >&2
    die "building spmd, kinkd and racoonctl at $commit failed (is there a kinkd binary yet?)"
  fi
  KINKD=$WORK/target/release/kinkd
  FROM="built from commit $commit"
else
  log "building spmd, kinkd and racoonctl (cargo build --release -p spmd -p kinkd -p racoonctl)"
  build=(cargo build --release -p spmd -p kinkd -p racoonctl)
  if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    build=(runuser -u "$SUDO_USER" -- env "PATH=$PATH" "${build[@]}")
  fi
  if ! "${build[@]}" >"$WORK/build.log" 2>&1; then
    tail -n 30 "$WORK/build.log" >&2
    die "building spmd, kinkd and racoonctl failed (is there a kinkd binary yet?)"
  fi
  KINKD=${CARGO_TARGET_DIR:-$ROOT/target}/release/kinkd
  rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
  git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || rev="$rev plus uncommitted changes"
  FROM="built from the work tree at $rev"
fi
SPMD=${SPMD:-$(dirname "$KINKD")/spmd}
RACOONCTL=${RACOONCTL:-$(dirname "$KINKD")/racoonctl}
for bin in "$KINKD" "$SPMD" "$RACOONCTL"; do
  [ -x "$bin" ] || die "binary $bin missing: kinkd, spmd and racoonctl are needed (KINKD=/path/to/kinkd)"
done
"$KINKD" -V >/dev/null 2>&1 || die "$KINKD -V failed: not a kinkd?"

# ---------------------------------------------------------------- topology
log "creating namespaces $NS_A and $NS_B"
for ns in "$NS_A" "$NS_B"; do
  if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
    die "network namespace $ns exists already (another run?); not touching it"
  fi
  ip netns add "$ns"
  NETNS_MADE+=("$ns")
  ip -n "$ns" link set lo up
done
ip link add "$VETH_A" netns "$NS_A" type veth peer name "$VETH_B" netns "$NS_B"
ip -n "$NS_A" addr add $OUT_A/24 dev "$VETH_A"
ip -n "$NS_B" addr add $OUT_B/24 dev "$VETH_B"
ip -n "$NS_B" addr add $KDC_ADDR/24 dev "$VETH_B"
ip -n "$NS_B" rule add pref 100 from $KDC_ADDR/32 lookup main
for i in $(seq "$PARALLEL"); do
  ip -n "$NS_A" addr add 198.51.100.$i/32 dev lo
  ip -n "$NS_B" addr add 203.0.113.$i/32 dev lo
done
ip -n "$NS_A" link set "$VETH_A" up
ip -n "$NS_B" link set "$VETH_B" up
sleep 1 # linkwatch: the veth carries nothing until it is operationally up

inA() { ip netns exec "$NS_A" "$@"; }

# ---------------------------------------------------------------- KDC
K=$WORK/kdc
mkdir -p "$K"
cat >"$K/krb5.conf" <<CONF
[libdefaults]
    default_realm = $REALM
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
[realms]
    $REALM = {
        kdc = $KDC_ADDR:88
    }
CONF
cat >"$K/kdc.conf" <<CONF
[kdcdefaults]
    kdc_listen = $KDC_ADDR:88
    kdc_tcp_listen = $KDC_ADDR:88
[realms]
    $REALM = {
        database_name = $K/principal
        key_stash_file = $K/stash
        acl_file = $K/kadm5.acl
        max_life = 10h 0m 0s
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes256-cts-hmac-sha384-192:normal
    }
[logging]
    kdc = STDERR
CONF
: >"$K/kadm5.acl"
export KRB5_CONFIG=$K/krb5.conf KRB5_KDC_PROFILE=$K/kdc.conf
kdb5_util -r $REALM create -s -P kink-bench-master-key >"$K/create.log" 2>&1 \
  || { cat "$K/create.log" >&2; die "kdb5_util create failed"; }
ip netns exec "$NS_B" /usr/sbin/krb5kdc -n -r $REALM >"$K/krb5kdc.log" 2>&1 9>&- &
track $!
KDC_PID=$!
for _ in $(seq 100); do
  grep -q "commencing operation" "$K/krb5kdc.log" 2>/dev/null && break
  kill -0 "$KDC_PID" 2>/dev/null || break
  sleep 0.1
done
grep -q "commencing operation" "$K/krb5kdc.log" || { cat "$K/krb5kdc.log" >&2; die "krb5kdc did not start"; }
KT_A=$K/a.kink.test.keytab
KT_B=$K/b.kink.test.keytab
kadmin.local -r $REALM -q "addprinc -randkey $PRINC_A" >>"$K/kadmin.log" 2>&1
kadmin.local -r $REALM -q "addprinc -randkey $PRINC_B" >>"$K/kadmin.log" 2>&1
kadmin.local -r $REALM -q "ktadd -norandkey -k $KT_A $PRINC_A" >>"$K/kadmin.log" 2>&1
kadmin.local -r $REALM -q "ktadd -norandkey -k $KT_B $PRINC_B" >>"$K/kadmin.log" 2>&1
[ -s "$KT_A" ] && [ -s "$KT_B" ] || { cat "$K/kadmin.log" >&2; die "keytabs not exported"; }
unset KRB5_KDC_PROFILE

# ---------------------------------------------------------------- racoon3
conf() { # SIDE: racoon2.conf for A (initiator, remotes peer-b-N) or B (peer-a-N)
  local side=$1 my peer my_p peer_p remote mylan peerlan i
  if [ "$side" = a ]; then
    my=$OUT_A peer=$OUT_B my_p=$PRINC_A peer_p=$PRINC_B remote=peer-b
  else
    my=$OUT_B peer=$OUT_A my_p=$PRINC_B peer_p=$PRINC_A remote=peer-a
  fi
  echo "# generated by bench/kink/run.sh"
  echo "interface { kink { $my; }; spmd { unix \"$WORK/run-$side/spmd.sock\"; }; };"
  for i in $(seq "$PARALLEL"); do
    if [ "$side" = a ]; then mylan=198.51.100.$i peerlan=203.0.113.$i; else mylan=203.0.113.$i peerlan=198.51.100.$i; fi
    cat <<CONF
remote $remote-$i {
  acceptable_kmp { kink; };
  kink { my_principal "$my_p"; peers_principal "$peer_p"; peers_ipaddr $peer; };
  selector_index sel-out-$i;
};
selector sel-out-$i { direction outbound; src $mylan/32; dst $peerlan/32; upper_layer_protocol "any"; policy_index pol-$i; };
selector sel-in-$i { direction inbound; src $peerlan/32; dst $mylan/32; upper_layer_protocol "any"; policy_index pol-$i; };
policy pol-$i { action auto_ipsec; remote_index $remote-$i; ipsec_mode tunnel; ipsec_index { ips; }; ipsec_level require; my_sa_ipaddr $my; peers_sa_ipaddr $peer; };
CONF
  done
  echo "ipsec ips { ipsec_sa_lifetime_time 600 sec; sa_index esp; };"
  echo "sa esp { sa_protocol esp; esp_enc_alg { aes128_gcm16; }; };"
}

declare -A DPID
start_side() { # SIDE NS KEYTAB: spmd, then kinkd; waits for both
  local side=$1 ns=$2 kt=$3
  local d=$WORK/run-$side s k
  mkdir -p "$d"
  conf "$side" >"$WORK/$side.conf"
  ip netns exec "$ns" env RUST_LIB_BACKTRACE=0 "$SPMD" -F -f "$WORK/$side.conf" -l "$WORK/spmd-$side.log" \
    --run-dir "$d" >"$WORK/spmd-$side.out" 2>&1 9>&- &
  s=$!
  track "$s"
  for _ in $(seq 200); do
    grep -q "spmd started" "$WORK/spmd-$side.log" 2>/dev/null && break
    kill -0 "$s" 2>/dev/null || break
    sleep 0.05
  done
  grep -q "spmd started" "$WORK/spmd-$side.log" 2>/dev/null \
    || { tail -n 20 "$WORK/spmd-$side.log" "$WORK/spmd-$side.out" >&2; die "spmd $side did not start"; }
  ip netns exec "$ns" env RUST_LIB_BACKTRACE=0 KRB5_CONFIG="$K/krb5.conf" KRB5_KTNAME="FILE:$kt" \
    "$KINKD" -F -D 2 -f "$WORK/$side.conf" -l "$WORK/kinkd-$side.log" --run-dir "$d" \
    >"$WORK/kinkd-$side.out" 2>&1 9>&- &
  k=$!
  track "$k"
  DPID[$side]=$k
  for _ in $(seq 200); do
    [ -S "$d/kinkd.sock" ] && break
    kill -0 "$k" 2>/dev/null || break
    sleep 0.05
  done
  [ -S "$d/kinkd.sock" ] \
    || { tail -n 20 "$WORK/kinkd-$side.log" "$WORK/kinkd-$side.out" >&2; die "kinkd $side did not open its socket"; }
}

ctl() { # SIDE args...: racoonctl against SIDE's run directory
  local side=$1
  shift
  "$RACOONCTL" --run-dir "$WORK/run-$side" "$@"
}
# The JSON shapes of racoonctl's kinkd answers, in one place each (see
# tests/src/kink.rs: sa_pairs, counter).
pairs() { # SIDE [REMOTE]: established SA pairs (of REMOTE)
  ctl "$1" show sa kinkd --json 2>/dev/null | jq --arg r "${2:-}" \
    '[.. | objects | select(has("spi_in") and has("spi_out"))
         | select((.state // "established") == "established")
         | select($r == "" or (.peer // .remote // "") == $r)] | length' 2>/dev/null || echo 0
}
counter() { # SIDE NAME
  ctl "$1" show status kinkd --json 2>/dev/null | jq --arg n "$2" 'first(.. | objects | .[$n]? | numbers) // empty'
}
wait_pairs() { # SIDE REMOTE OP N TIMEOUT_S: until pairs OP N (eq, ge)
  local end=$((SECONDS + $5)) n
  while :; do
    n=$(pairs "$1" "$2" | tail -n 1)
    n=${n:-0}
    case $3 in
      eq) [ "$n" -eq "$4" ] && return 0 ;;
      ge) [ "$n" -ge "$4" ] && return 0 ;;
    esac
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.01
  done
}
now_ns() { date +%s%N; }

cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'; }
sys_ticks() { awk '/^cpu / {t=0; for (i=2; i<=9; i++) t+=$i; print t-$5-$6-$9, t}' /proc/stat; }
busy_pct() {
  local a b
  a=$(sys_ticks); sleep "$1"; b=$(sys_ticks)
  echo "$a $b" | awk '{ if ($4 > $2) printf "%d", 100*($3-$1)/($4-$2); else print 0 }'
}
wait_quiet() {
  [ "$QUIET_WAIT" -gt 0 ] || return 0
  local end=$((SECONDS + QUIET_WAIT)) b
  while :; do
    b=$(busy_pct 2)
    [ "$b" -lt 15 ] && return 0
    if [ "$SECONDS" -ge "$end" ]; then
      warn "machine still ${b}% busy after ${QUIET_WAIT}s; measuring anyway"
      return 0
    fi
  done
}
percentile() { # P (0-100) of the numbers on stdin
  sort -n | awk -v p="$1" '{v[NR]=$1} END { if (NR==0) {print "-"; exit}
    i=int((p/100)*NR + 0.999999); if (i<1) i=1; if (i>NR) i=NR; printf "%.1f", v[i] }'
}

log "starting spmd + kinkd in B, then in A"
start_side b "$NS_B" "$KT_B"
start_side a "$NS_A" "$KT_A"
IDLE_BUSY=$(busy_pct 1)%

# ---------------------------------------------------------------- (i) latency
LAT_COLD=- LAT_MED=- LAT_P90=- LAT_N=0 CTL_MS=- IN_COLD=- IN_MED=- IN_P90=-
# kinkd's own view of the last run, from A's log timestamps (-D 2): the last
# ACQUIRE line to the ESTABLISHED line after it, in ms.
in_daemon_ms() {
  local a e
  read -r a e < <(awk '/ACQUIRE reqid/ {a=$1; e=""} /ESTABLISHED/ && a != "" {e=$1} END {print a, e}' "$WORK/kinkd-a.log")
  [ -n "$a" ] && [ -n "$e" ] || { echo -; return; }
  awk -v a="$(date -d "$a" +%s%N)" -v e="$(date -d "$e" +%s%N)" 'BEGIN{printf "%.2f", (e-a)/1e6}'
}
latency() {
  local t0 t1 ms i lats=() ins=() in_ms
  t0=$(now_ns); pairs a >/dev/null; t1=$(now_ns)
  CTL_MS=$(awk -v d=$((t1 - t0)) 'BEGIN{printf "%.1f", d/1e6}')
  wait_quiet
  for i in $(seq 0 "$RUNS"); do # run 0 is the cold one (KDC round trips)
    t0=$(now_ns)
    inA ping -n -c 1 -W 1 -I 198.51.100.1 203.0.113.1 >/dev/null 2>&1 &
    local ping_pid=$!
    track "$ping_pid"
    if ! wait_pairs a peer-b-1 ge 1 15; then
      tail -n 20 "$WORK/kinkd-a.log" "$WORK/kinkd-b.log" >&2
      die "run $i: no SA pair on A within 15 s after the ping"
    fi
    t1=$(now_ns)
    wait "$ping_pid" 2>/dev/null || true
    untrack "$ping_pid"
    ms=$(awk -v d=$((t1 - t0)) 'BEGIN{printf "%.1f", d/1e6}')
    in_ms=$(in_daemon_ms)
    if [ "$i" -eq 0 ]; then LAT_COLD=$ms IN_COLD=$in_ms; else lats+=("$ms") ins+=("$in_ms"); fi
    ctl a terminate --daemon kinkd peer-b-1 >/dev/null || die "terminate failed"
    wait_pairs a peer-b-1 eq 0 10 || die "run $i: A's pair did not go"
    wait_pairs b "" eq 0 10 || die "run $i: B's pair did not go (DELETE lost?)"
    sleep 0.2
  done
  LAT_N=${#lats[@]}
  LAT_MED=$(printf '%s\n' "${lats[@]}" | percentile 50)
  LAT_P90=$(printf '%s\n' "${lats[@]}" | percentile 90)
  IN_MED=$(printf '%s\n' "${ins[@]}" | grep -v '^-$' | percentile 50)
  IN_P90=$(printf '%s\n' "${ins[@]}" | grep -v '^-$' | percentile 90)
  printf '%s\n' "${lats[@]}" >"$WORK/latency-ms.txt"
}

# ---------------------------------------------------------------- (ii) rate
RATE=- RATE_CREATES=- RATE_SECS=- CPU_PER_CREATE=- RATE_FAIL=-
rate_loop() { # N END_SECONDS: initiate/wait/terminate/wait on peer-b-N until then
  local r=peer-b-$1 end=$2
  while [ "$SECONDS" -lt "$end" ]; do
    ctl a initiate --daemon kinkd "$r" >/dev/null 2>&1 || sleep 0.05
    wait_pairs a "$r" ge 1 10 || continue
    ctl a terminate --daemon kinkd "$r" >/dev/null 2>&1 || true
    wait_pairs a "$r" eq 0 10 || true
  done
}
rate() {
  wait_quiet
  local c0 c1 f0 f1 cpu0 cpu1 t0 t1 end i pids=()
  c0=$(counter b creates); f0=$(counter b failures)
  [ -n "$c0" ] || die "B's status has no 'creates' counter: $(ctl b show status kinkd --json 2>&1)"
  cpu0=$(cpu_ticks "${DPID[b]}")
  t0=$(now_ns)
  end=$((SECONDS + DURATION))
  for i in $(seq "$PARALLEL"); do
    rate_loop "$i" "$end" &
    pids+=("$!")
    track "$!"
  done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; untrack "$p"; done
  t1=$(now_ns)
  c1=$(counter b creates); f1=$(counter b failures)
  cpu1=$(cpu_ticks "${DPID[b]}")
  RATE_CREATES=$((c1 - c0))
  RATE_FAIL=$(( ${f1:-0} - ${f0:-0} ))
  RATE_SECS=$(awk -v d=$((t1 - t0)) 'BEGIN{printf "%.1f", d/1e9}')
  RATE=$(awk -v n="$RATE_CREATES" -v s="$RATE_SECS" 'BEGIN{ if (s>0) printf "%.1f", n/s; else print "-" }')
  CPU_PER_CREATE=$(awk -v c=$((cpu1 - cpu0)) -v n="$RATE_CREATES" -v hz="$CLK_TCK" \
    'BEGIN{ if (n>0) printf "%.2f", 1000*c/hz/n; else print "-" }')
}

for f in $ONLY; do
  case $f in
    latency) log "measuring ACQUIRE -> SAs, $RUNS runs (+1 cold)"; latency ;;
    rate) log "measuring CREATE/s, $PARALLEL remotes for ${DURATION}s"; rate ;;
    *) warn "unknown figure $f (expected latency rate)" ;;
  esac
done
for side in a b; do
  kill -0 "${DPID[$side]}" 2>/dev/null || die "kinkd $side died during the run: $(tail -n 5 "$WORK/kinkd-$side.log")"
done

# ---------------------------------------------------------------- report
echo
echo "## KINK $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "kinkd $FROM; kernel $(uname -r); $(nproc) CPUs (machine busy before: $IDLE_BUSY); MIT krb5kdc in B's namespace."
echo
echo "| figure | value |"
echo "| --- | --- |"
echo "| ACQUIRE -> SAs, cold (first run: TGT + service ticket from the KDC) | $LAT_COLD ms |"
echo "| ACQUIRE -> SAs, median of $LAT_N (ticket cached) | $LAT_MED ms |"
echo "| ACQUIRE -> SAs, p90 of $LAT_N | $LAT_P90 ms |"
echo "| resolution (one racoonctl show sa round trip) | $CTL_MS ms |"
echo "| inside kinkd A (log timestamps, ACQUIRE to ESTABLISHED): cold / median / p90 | $IN_COLD / $IN_MED / $IN_P90 ms |"
echo "| CREATE/s against one responder ($PARALLEL remotes, ${RATE_SECS}s) | $RATE ($RATE_CREATES CREATEs, $RATE_FAIL failures) |"
echo "| responder kinkd CPU per CREATE | $CPU_PER_CREATE ms |"
