//! The guest's initramfs: busybox, iproute2's `ip`, iputils' `ping`, kernel modules, the
//! binaries under test with their shared libraries, an `/init`, and the test script.
//!
//! Libraries come from `ldd` and keep their host paths, so the guest's userland *is* the host's
//! (glibc always matches). Modules come with their dependencies from the kernel's
//! `modules.dep`, and the guest gets a `modules.dep` listing only what was packed, for
//! busybox's `modprobe -a` (one exec for all modules: each exec costs 35-50 ms under TCG).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cpio::Archive;
use super::kernel::{GuestKernel, find_tool};
use crate::{Error, Result, io_context};

/// Modules every guest loads: the IPsec stack, veth/tun, and the ciphers racoon3 negotiates.
///
/// Order matters (busybox `modprobe -a` loads in argument order). ESP wraps its AEAD in
/// `seqiv`/`echainiv`, which need the default RNG (`drbg`); `drbg` seeds from
/// `jitterentropy_rng`, which in Debian 6.1 looks up sha3-256 at load time, so `sha3_generic`
/// comes first. `modules.dep` names none of these links.
pub const REQUIRED_MODULES: &[&str] = &[
    "sha3_generic",
    "jitterentropy_rng",
    "drbg",
    "esp4",
    "esp6",
    "ah4",
    "ah6",
    "af_key",
    "xfrm_user",
    "xfrm_interface",
    "xfrm4_tunnel",
    "xfrm6_tunnel",
    "veth",
    "tun",
    "authenc",
    "authencesn",
    "seqiv",
    "echainiv",
    "gcm",
    "ghash_generic",
    "ctr",
    "cbc",
    "hmac",
    "sha1_generic",
    "sha256_generic",
    "sha512_generic",
    "chacha20poly1305",
    "chacha_generic",
    "poly1305_generic",
];

/// Modules loaded when the kernel has them: accelerated ciphers (`-cpu max` gives the guest
/// AES-NI and PCLMUL) and virtio networking for multi-VM set-ups.
pub const OPTIONAL_MODULES: &[&str] = &[
    "aesni_intel",
    "ghash_clmulni_intel",
    "chacha_x86_64",
    "poly1305_x86_64",
    "sha1_ssse3",
    "sha256_ssse3",
    "sha512_ssse3",
    "des3_ede_x86_64",
    "des_generic",
    "cmac",
    "xcbc",
    "virtio_pci",
    "virtio_net",
];

/// iproute2's and iputils' programs, shadowing busybox's applets of the same name (busybox
/// `ip` has no `xfrm` and no `netns`).
const REAL_TOOLS: &[(&str, &str)] = &[("ip", "/sbin/ip"), ("ping", "/bin/ping")];

/// Where the test script and its prelude live in the guest.
pub const SCRIPT_PATH: &str = "/etc/racoon3/test.sh";
/// Shell functions sourced before the script.
pub const PRELUDE_PATH: &str = "/etc/racoon3/prelude.sh";
/// Directory of the binaries under test (on the guest's `PATH`).
pub const GUEST_BIN_DIR: &str = "/usr/local/bin";

/// Sourced before the test script.
///
/// busybox's shell may prefer its own applets even when a real program comes first in `PATH`,
/// so `ip` and `ping` are pinned to the real ones. `lab_two_hosts` builds the topology of
/// [`crate::netns::Lab::two_hosts`] inside the guest, so daemon tests read the same there.
pub const PRELUDE: &str = r#"ip() { /sbin/ip "$@"; }
ping() { /bin/ping "$@"; }

# lab_two_hosts: namespaces `a` and `b` joined by veth, as interop::netns::Lab::two_hosts:
#   a: veth-a 192.0.2.1/24 2001:db8::1/64, lo 198.51.100.1/32 2001:db8:a::1/128
#   b: veth-b 192.0.2.2/24 2001:db8::2/64, lo 203.0.113.1/32 2001:db8:b::1/128
# Returns once both ends are operationally up (IPv6 addresses without DAD).
lab_two_hosts() {
  /sbin/ip netns add a && /sbin/ip netns add b &&
    /sbin/ip -n a link add veth-a type veth peer name veth-b netns b &&
    lab_host a veth-a 192.0.2.1 2001:db8::1 198.51.100.1 2001:db8:a::1 &&
    lab_host b veth-b 192.0.2.2 2001:db8::2 203.0.113.1 2001:db8:b::1 || return 1
  lab_i=0
  until /sbin/ip -n a -o link show dev veth-a | grep -q ' state UP ' &&
    /sbin/ip -n b -o link show dev veth-b | grep -q ' state UP '; do
    lab_i=$((lab_i + 1))
    [ $lab_i -lt 100 ] || { echo "lab_two_hosts: veth not up" >&2; return 1; }
    sleep 0.05
  done
}

# lab_host NS IFNAME V4 V6 LAN_V4 LAN_V6
lab_host() {
  /sbin/ip -n $1 link set lo up &&
    /sbin/ip -n $1 addr add $5/32 dev lo &&
    /sbin/ip -n $1 addr add $6/128 dev lo &&
    /sbin/ip -n $1 addr add $3/24 dev $2 &&
    /sbin/ip -n $1 addr add $4/64 dev $2 nodad &&
    /sbin/ip -n $1 link set $2 up
}
"#;

/// Everything that goes into one guest's initramfs.
#[derive(Debug)]
pub struct Contents<'a> {
    /// The kernel whose modules are packed.
    pub kernel: &'a GuestKernel,
    /// Module names (required ones from [`REQUIRED_MODULES`] plus the caller's).
    pub modules: Vec<String>,
    /// Host binaries, placed in [`GUEST_BIN_DIR`] under their file names.
    pub binaries: &'a [PathBuf],
    /// (guest path, contents, permission bits).
    pub files: &'a [(String, Vec<u8>, u32)],
    /// The test script.
    pub script: &'a str,
    /// Unique marker word for this run.
    pub nonce: &'a str,
    /// Seconds after which the guest powers itself off, whatever the script is doing.
    pub deadline_secs: u64,
}

/// Builds the initramfs image.
///
/// # Errors
/// A tool or binary is missing, `ldd` reports an unresolved library, or a module is neither
/// a module file nor built into the kernel.
pub fn build(c: &Contents<'_>) -> Result<Vec<u8>> {
    let mut a = Archive::new();
    // The caller's files first: the first entry at a path wins, so they may replace defaults
    // such as /etc/hosts, but not what the harness itself runs.
    for (path, data, perm) in c.files {
        let reserved = ["/init", SCRIPT_PATH, PRELUDE_PATH];
        if reserved.iter().any(|r| Archive::same_path(r, path)) {
            return Err(Error::Guest(format!("{path} is the harness's own file")));
        }
        a.file(path, *perm, data);
    }
    for dir in [
        "/proc", "/sys", "/dev", "/tmp", "/run", "/root", "/var/run", "/etc",
    ] {
        a.dir(dir);
    }
    a.char_device("/dev/console", 0o600, 5, 1);
    a.char_device("/dev/null", 0o666, 1, 3);
    a.file("/etc/hosts", 0o644, b"127.0.0.1 localhost\n::1 localhost\n");
    a.file("/etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n");
    a.file("/etc/group", 0o644, b"root:x:0:\n");

    let busybox = find_tool("busybox").ok_or_else(|| Error::Guest("busybox not found".into()))?;
    add_program(&mut a, &busybox, "/bin/busybox")?;
    for applet in busybox_applets(&busybox)? {
        if !REAL_TOOLS.iter().any(|(name, _)| *name == applet) {
            a.symlink(&format!("/bin/{applet}"), "busybox");
        }
    }
    for (name, guest) in REAL_TOOLS {
        let host = find_tool(name)
            .and_then(|p| p.canonicalize().ok())
            .filter(|p| p.file_name().is_some_and(|f| f != "busybox"))
            .ok_or_else(|| {
                Error::Guest(format!(
                    "`{name}` (iproute2/iputils-ping) not found on the host"
                ))
            })?;
        add_program(&mut a, &host, guest)?;
    }
    for bin in c.binaries {
        let name = bin
            .file_name()
            .ok_or_else(|| Error::Guest(format!("{} has no file name", bin.display())))?;
        if !bin.is_file() {
            return Err(Error::Guest(format!(
                "binary {} not found (build it first, e.g. `cargo build -p iked -p racoonctl`)",
                bin.display()
            )));
        }
        add_program(
            &mut a,
            bin,
            &format!("{GUEST_BIN_DIR}/{}", name.to_string_lossy()),
        )?;
    }

    let modules = add_modules(&mut a, c.kernel, &c.modules)?;

    a.file(PRELUDE_PATH, 0o644, PRELUDE.as_bytes());
    a.file(SCRIPT_PATH, 0o755, c.script.as_bytes());
    let init = init_script(&modules, c.nonce, c.deadline_secs);
    a.file("/init", 0o755, init.as_bytes());
    Ok(a.finish())
}

/// `/init`: mounts, loads modules, runs the script between markers, powers off.
///
/// Kernel messages are silenced (`printk` level 1) so they do not interleave with the output,
/// and after preloading the kernel's module helper becomes `/bin/true`: every `crypto-*`
/// autoload miss would otherwise exec `modprobe` (SADB_REGISTER alone costs about 2 s).
///
/// The deadline is the guest's own watchdog: the host kills qemu when its timeout passes, but
/// if the test process itself was killed, nobody would until the next run's sweep.
pub fn init_script(modules: &[String], nonce: &str, deadline_secs: u64) -> String {
    format!(
        r#"#!/bin/sh
export PATH={GUEST_BIN_DIR}:/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TERM=dumb NO_COLOR=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
echo 1 > /proc/sys/kernel/printk
hostname guest
finish() {{
  echo "RACOON3-GUEST-END {nonce} rc=$1"
  sync
  poweroff -f
  sleep 10
}}
if ! err=$(modprobe -a {mods} 2>&1); then
  echo "RACOON3-GUEST-ERROR {nonce} modprobe: $err"
  finish 125
fi
echo /bin/true > /proc/sys/kernel/modprobe
/sbin/ip link set lo up
(
  sleep {deadline_secs}
  echo "RACOON3-GUEST-ERROR {nonce} the guest's own deadline of {deadline_secs} s passed"
  poweroff -f
) </dev/null >/dev/console 2>&1 &
echo "RACOON3-GUEST-BEGIN {nonce} uptime=$(cut -d' ' -f1 /proc/uptime)"
(cd /tmp && . {PRELUDE_PATH} && . {SCRIPT_PATH}) </dev/null 2>&1
finish $?
"#,
        mods = modules.join(" "),
    )
}

/// Adds `host` at `guest` and every library `ldd` lists at its host path.
fn add_program(a: &mut Archive, host: &Path, guest: &str) -> Result<()> {
    let data = fs::read(host).map_err(io_context(format!("read {}", host.display())))?;
    a.file(guest, 0o755, &data);
    for lib in shared_libraries(host)? {
        if a.contains(&lib.to_string_lossy()) {
            continue;
        }
        let bytes = fs::read(&lib).map_err(io_context(format!("read {}", lib.display())))?;
        let perm = fs::metadata(&lib)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o755);
        a.file(&lib.to_string_lossy(), perm, &bytes);
    }
    Ok(())
}

/// The libraries `ldd` resolves for `program` (none for a static binary).
fn shared_libraries(program: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(program)
        .output()
        .map_err(io_context("run ldd"))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if text.contains("not a dynamic executable") || text.contains("statically linked") {
            return Ok(Vec::new());
        }
        return Err(Error::Guest(format!(
            "ldd {} failed: {}",
            program.display(),
            text.trim()
        )));
    }
    parse_ldd(&text).map_err(|why| Error::Guest(format!("ldd {}: {why}", program.display())))
}

/// Library paths from `ldd` output; an error names a library that was not found.
pub fn parse_ldd(text: &str) -> std::result::Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.contains("=> not found") {
            return Err(format!("library not found: {line}"));
        }
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        let path = path.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// busybox's applet names.
fn busybox_applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(io_context(format!("run {} --list", busybox.display())))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .map(str::to_owned)
        .collect())
}

/// One line of `modules.dep`: a module file and the files it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepEntry {
    /// Path relative to the modules directory, e.g. `kernel/net/ipv4/esp4.ko`.
    pub path: String,
    /// Dependencies, in `modules.dep` order (load order reversed).
    pub deps: Vec<String>,
}

/// `modules.dep` by module name (`-` folded to `_`, as the kernel names modules).
pub fn parse_modules_dep(text: &str) -> BTreeMap<String, DepEntry> {
    text.lines()
        .filter_map(|line| {
            let (path, deps) = line.split_once(':')?;
            let path = path.trim().to_owned();
            Some((
                module_name(&path),
                DepEntry {
                    deps: deps.split_whitespace().map(str::to_owned).collect(),
                    path,
                },
            ))
        })
        .collect()
}

/// `kernel/crypto/sha3_generic.ko.xz` -> `sha3_generic`.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// Module names from `modules.builtin`.
pub fn parse_builtin(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(module_name)
        .collect()
}

/// Packs `names` (required) plus the available [`OPTIONAL_MODULES`] with their dependencies
/// and a trimmed `modules.dep`; returns the names to `modprobe` (built-ins left out).
fn add_modules(a: &mut Archive, kernel: &GuestKernel, names: &[String]) -> Result<Vec<String>> {
    let dir = &kernel.modules_dir;
    let read = |file: &str| {
        fs::read_to_string(dir.join(file))
            .map_err(io_context(format!("read {}", dir.join(file).display())))
    };
    let deps = parse_modules_dep(&read("modules.dep")?);
    let builtin = parse_builtin(&read("modules.builtin")?);
    let mut load = Vec::new();
    let mut missing = Vec::new();
    let optional = OPTIONAL_MODULES.iter().map(|s| (*s, false));
    for (name, required) in names.iter().map(|s| (s.as_str(), true)).chain(optional) {
        let name = name.replace('-', "_");
        if deps.contains_key(&name) {
            if !load.contains(&name) {
                load.push(name);
            }
        } else if required && !builtin.contains(&name) {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        return Err(Error::Guest(format!(
            "kernel {} has no module {} (neither in modules.dep nor built in)",
            kernel.release,
            missing.join(", ")
        )));
    }
    let mut files: BTreeSet<&str> = BTreeSet::new();
    for name in &load {
        if let Some(entry) = deps.get(name) {
            files.insert(&entry.path);
            files.extend(entry.deps.iter().map(String::as_str));
        }
    }
    let base = format!("/lib/modules/{}", kernel.release);
    let mut dep_file = String::new();
    for entry in deps.values().filter(|e| files.contains(e.path.as_str())) {
        let data = read_module(&dir.join(&entry.path))?;
        a.file(&format!("{base}/{}", plain_ko(&entry.path)), 0o644, &data);
        let deps: Vec<String> = entry.deps.iter().map(|d| plain_ko(d)).collect();
        dep_file.push_str(&format!("{}: {}\n", plain_ko(&entry.path), deps.join(" ")));
    }
    a.file(&format!("{base}/modules.dep"), 0o644, dep_file.as_bytes());
    Ok(load)
}

/// A module path with any compression suffix removed (the archive holds plain `.ko`).
fn plain_ko(path: &str) -> String {
    match path.find(".ko") {
        Some(i) => format!("{}.ko", &path[..i]),
        None => path.to_owned(),
    }
}

/// A module file, decompressed when the kernel package ships `.ko.xz` / `.ko.zst`.
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some("xz")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else {
        None
    };
    match tool {
        None => fs::read(path).map_err(io_context(format!("read {name}"))),
        Some(tool) => {
            let out = Command::new(tool)
                .arg("-dc")
                .arg(path)
                .output()
                .map_err(io_context(format!("run {tool} -dc {name}")))?;
            if out.status.success() {
                Ok(out.stdout)
            } else {
                Err(Error::Guest(format!("{tool} -dc {name} failed")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_yields_library_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f7e)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f7e3bf7a000)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
        assert_eq!(
            parse_ldd("\tstatically linked\n").unwrap(),
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn modules_dep_is_keyed_by_kernel_name() {
        let dep = parse_modules_dep(
            "kernel/net/ipv4/esp4.ko: kernel/net/xfrm/xfrm_algo.ko kernel/crypto/authenc.ko\n\
             kernel/crypto/sha3_generic.ko.xz:\n\
             kernel/drivers/net/xen-netfront.ko: kernel/drivers/xen/xenbus.ko\n",
        );
        assert_eq!(dep["esp4"].deps.len(), 2);
        assert!(dep["sha3_generic"].deps.is_empty());
        assert_eq!(
            dep["xen_netfront"].path,
            "kernel/drivers/net/xen-netfront.ko"
        );
        assert_eq!(
            plain_ko("kernel/crypto/sha3_generic.ko.xz"),
            "kernel/crypto/sha3_generic.ko"
        );
        assert!(parse_builtin("kernel/crypto/cbc.ko\n\n").contains("cbc"));
    }

    #[test]
    fn modules_come_with_their_dependencies_and_nothing_else() {
        let lab = crate::LabDir::new("modunit").expect("lab dir");
        let dir = lab.path().join("lib/modules/9.9.9-test");
        for (file, data) in [
            (
                "modules.dep",
                "kernel/net/ipv4/esp4.ko: kernel/net/xfrm/xfrm_algo.ko\n\
                 kernel/net/xfrm/xfrm_algo.ko:\n\
                 kernel/sound/snd.ko:\n",
            ),
            ("modules.builtin", "kernel/crypto/cbc.ko\n"),
            ("kernel/net/ipv4/esp4.ko", "esp4"),
            ("kernel/net/xfrm/xfrm_algo.ko", "algo"),
            ("kernel/sound/snd.ko", "snd"),
        ] {
            let path = dir.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, data).unwrap();
        }
        let kernel = GuestKernel {
            package: "linux-image-test".into(),
            release: "9.9.9-test".into(),
            boot_image: PathBuf::from("/nonexistent"),
            modules_dir: dir,
        };
        let mut a = Archive::new();
        let load = add_modules(&mut a, &kernel, &["esp4".into(), "cbc".into()]).unwrap();
        assert_eq!(load, ["esp4"], "built-in cbc is not loaded");
        let base = "/lib/modules/9.9.9-test";
        assert!(a.contains(&format!("{base}/kernel/net/ipv4/esp4.ko")));
        assert!(a.contains(&format!("{base}/kernel/net/xfrm/xfrm_algo.ko")));
        assert!(a.contains(&format!("{base}/modules.dep")));
        assert!(!a.contains(&format!("{base}/kernel/sound/snd.ko")));

        let err = add_modules(&mut Archive::new(), &kernel, &["no_such".into()]).unwrap_err();
        assert!(err.to_string().contains("has no module no_such"), "{err}");
    }

    #[test]
    fn init_brackets_the_script_with_markers() {
        let init = init_script(&["esp4".into(), "drbg".into()], "n0nce", 70);
        assert!(init.contains("sleep 70\n"));
        assert!(init.contains("modprobe -a esp4 drbg"));
        assert!(init.contains("RACOON3-GUEST-BEGIN n0nce"));
        assert!(init.contains("RACOON3-GUEST-END n0nce rc=$1"));
        assert!(init.contains("poweroff -f"));
        assert!(init.starts_with("#!/bin/sh\n"));
    }
}
