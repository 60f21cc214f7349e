#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs every check CI runs.
#
#   bash scripts/test.sh            # from anywhere in the repository
#   FUZZ_SECONDS=60 bash scripts/test.sh
#
# Works on a fresh Debian 12 machine that has only the Rust toolchain (cargo, rustc, clippy,
# rustfmt, cargo-nextest). Interop tests need root (network namespaces, charon); as root this
# script installs strongSwan & co. with apt-get (skipped when already installed) and
# cargo-fuzz with `cargo install` (skipped when present).
#
# Steps, stopping at the first failure with the step's name:
#   fmt, clippy, doc, build (so interop tests find the daemons' binaries), nextest (with the
#   ignored interop tests, including the qemu guest tests, which download Debian's kernel
#   into /var/cache/racoon3-guest on first use), the README demo, then a fuzz smoke run of
#   every target in fuzz/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

APT_PACKAGES=(
  strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins
  tshark iputils-ping iproute2
  # The qemu guest tests (tests/tests/guest_kernel.rs, docs/testing-guest-kernel.md): qemu,
  # depmod for the downloaded kernel's modules, xz for its vmlinux. The harness installs the
  # same when missing (for runs without this script) and fetches the kernel itself, cached.
  qemu-system-x86 kmod xz-utils
  # kinkd links MIT libkrb5 (kinkd/build.rs, headers and pkg-config file from libkrb5-dev);
  # its Kerberos tests (kinkd/tests/kerberos.rs) start a throwaway MIT KDC (interop::kdc):
  # krb5kdc and kdb5_util, kadmin.local, kinit.
  libkrb5-dev krb5-kdc krb5-admin-server krb5-user
  # kinkd's end-to-end clock-skew test (tests/tests/kinkd.rs) runs one kinkd under libfaketime.
  faketime
)
# Any busybox will do for the guest (its libraries are copied); busybox-static conflicts with
# Debian's dynamic busybox, so install it only when there is none.
if ! command -v busybox >/dev/null 2>&1; then
  APT_PACKAGES+=(busybox-static)
fi
FUZZ_SECONDS=${FUZZ_SECONDS:-20}

script_start=$SECONDS
current_step=""

on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -n "$current_step" ]; then
    echo "==> FAILED: step '$current_step' (exit $rc) after $((SECONDS - script_start)) s" >&2
  fi
}
trap on_exit EXIT

# step NAME COMMAND...: runs COMMAND, prints its elapsed time, stops the script if it fails.
step() {
  local name=$1
  shift
  current_step=$name
  echo "==> [$name] $*"
  local t0=$SECONDS
  "$@"
  echo "==> [$name] ok in $((SECONDS - t0)) s"
  current_step=""
}

missing_packages() {
  local pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
      echo "$pkg"
    fi
  done
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "all packages present: ${APT_PACKAGES[*]}"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages ${missing[*]}, and not root: install them, or run as root" >&2
    return 1
  fi
  # Service starts are pointless here (tests start their own charon); policy-rc.d keeps
  # maintainer scripts from starting strongswan-starter on machines with an init system.
  local policy=/usr/sbin/policy-rc.d created_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
  fi
  local rc=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  } || rc=$?
  if [ -n "$created_policy" ]; then rm -f "$policy"; fi
  return "$rc"
}

install_cargo_fuzz() {
  if cargo fuzz --version >/dev/null 2>&1; then
    cargo fuzz --version
    return 0
  fi
  cargo install cargo-fuzz --locked
}

fuzz_smoke() {
  local targets t
  mapfile -t targets < <(cd fuzz && cargo fuzz list)
  if [ "${#targets[@]}" -eq 0 ]; then
    echo "no fuzz targets in fuzz/Cargo.toml" >&2
    return 1
  fi
  for t in "${targets[@]}"; do
    current_step="fuzz $t"
    echo "--> fuzz $t for ${FUZZ_SECONDS} s"
    local t0=$SECONDS
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" -- -max_total_time="$FUZZ_SECONDS")
    echo "--> fuzz $t ok in $((SECONDS - t0)) s"
  done
  current_step="fuzz"
}

step "apt packages" install_packages
step "cargo-fuzz" install_cargo_fuzz
step "fmt" cargo fmt --all --check
step "clippy" cargo clippy --workspace --all-targets -- -D warnings
step "doc" env RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --document-private-items
step "build" cargo build --workspace --bins
step "nextest" cargo nextest run --workspace --run-ignored all --no-fail-fast
# The README's first command must keep working: two peers, ACQUIRE, pings through ESP.
step "demo" bash scripts/demo.sh
step "fuzz" fuzz_smoke

echo "==> all steps passed in $((SECONDS - script_start)) s"
