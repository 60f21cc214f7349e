//! Host preparation: the apt packages the harness needs, and Debian's stock kernel, cached.
//!
//! The kernel is the package `linux-image-amd64` depends on (today `linux-image-6.1.0-NN-amd64`),
//! fetched with `apt-get download` and unpacked with `dpkg -x` into
//! `$RACOON3_GUEST_CACHE/<package>/` (default `/var/cache/racoon3-guest`). It is never installed
//! on the host. The cache is keyed by package name, which carries the kernel ABI, so a point
//! release with a new ABI lands in a new directory. `RACOON3_GUEST_KERNEL_PKG` pins a package.
//!
//! Preparation runs under an exclusive `flock` on `$CACHE/.lock`, so parallel test processes
//! wait for one download instead of racing; a directory only appears under its final name once
//! it is complete (unpacked into `*.tmp`, then renamed).

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use rustix::fs::{FlockOperation, flock};

use crate::process::{find_in_path, run_checked};
use crate::{Error, Result, io_context};

/// Environment variable naming the cache directory.
pub const CACHE_ENV: &str = "RACOON3_GUEST_CACHE";
/// Default cache directory (shared by all worktrees and target dirs of the machine).
pub const DEFAULT_CACHE: &str = "/var/cache/racoon3-guest";
/// Environment variable pinning the kernel package (e.g. `linux-image-6.1.0-56-amd64`).
pub const KERNEL_PKG_ENV: &str = "RACOON3_GUEST_KERNEL_PKG";
/// The Debian metapackage that names the current kernel.
const META_PKG: &str = "linux-image-amd64";
/// File that marks a cache entry as complete.
const COMPLETE: &str = ".complete";

/// Host packages the harness installs when their tool is missing: (tool, package).
///
/// busybox: any build works (its ldd libraries are copied), so `busybox-static` is installed
/// only when there is no `busybox` at all; it conflicts with Debian's dynamic `busybox`.
pub const HOST_TOOLS: [(&str, &str); 4] = [
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("depmod", "kmod"),
    ("xz", "xz-utils"),
    ("busybox", "busybox-static"),
];

/// An unpacked Debian kernel in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestKernel {
    /// The package it came from, e.g. `linux-image-6.1.0-56-amd64`.
    pub package: String,
    /// `uname -r` of the guest, e.g. `6.1.0-56-amd64`.
    pub release: String,
    /// What qemu boots: the ELF `vmlinux` (PVH entry, about 2.5 s faster under TCG than the
    /// bzImage, whose xz decompressor is slow when emulated), or `vmlinuz` as a fallback.
    pub boot_image: PathBuf,
    /// `lib/modules/<release>` with a `modules.dep` made by `depmod`.
    pub modules_dir: PathBuf,
}

/// The cache directory.
pub fn cache_dir() -> PathBuf {
    std::env::var_os(CACHE_ENV).map_or_else(|| PathBuf::from(DEFAULT_CACHE), PathBuf::from)
}

/// Installs missing host tools and returns the cached kernel, fetching it on first use.
///
/// Done once per process; other processes wait on the cache lock.
///
/// # Errors
/// A package cannot be installed (not root, no network), the kernel cannot be resolved,
/// downloaded or unpacked, or `depmod` fails.
pub fn prepare() -> Result<GuestKernel> {
    static DONE: OnceLock<GuestKernel> = OnceLock::new();
    static BUSY: Mutex<()> = Mutex::new(());
    let _busy = BUSY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(kernel) = DONE.get() {
        return Ok(kernel.clone());
    }
    let cache = cache_dir();
    fs::create_dir_all(&cache).map_err(io_context(format!("create {}", cache.display())))?;
    let lock_path = cache.join(".lock");
    let lock =
        File::create(&lock_path).map_err(io_context(format!("create {}", lock_path.display())))?;
    flock(&lock, FlockOperation::LockExclusive).map_err(|e| Error::Io {
        context: format!("flock {}", lock_path.display()),
        source: e.into(),
    })?;
    install_host_tools()?;
    let kernel = fetch_kernel(&cache)?;
    drop(lock);
    Ok(DONE.get_or_init(|| kernel).clone())
}

/// Installs the packages of [`HOST_TOOLS`] whose tool is not in `PATH` (or `/usr/sbin`).
///
/// # Errors
/// Something is missing and we are not root, or `apt-get` fails.
pub fn install_host_tools() -> Result<()> {
    let missing: Vec<&str> = HOST_TOOLS
        .iter()
        .filter(|(tool, _)| find_tool(tool).is_none())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !rustix::process::geteuid().is_root() {
        return Err(Error::Guest(format!(
            "missing host packages {missing:?} and not root: apt-get install \
             --no-install-recommends {}",
            missing.join(" ")
        )));
    }
    eprintln!("[guest] installing host packages: {}", missing.join(" "));
    let install = || {
        run_checked(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    if install().is_err() {
        // A fresh machine may have no package lists yet.
        run_checked(
            Command::new("apt-get")
                .args(["update", "-q"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .and_then(|_| install())
        .map_err(|e| {
            Error::Guest(format!(
                "installing the qemu guest's host packages {missing:?} failed: {e}"
            ))
        })?;
    }
    Ok(())
}

/// A tool in `PATH`, or in `/usr/sbin` / `/sbin` (not in a non-root `PATH`).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    find_in_path(OsStr::new(name)).or_else(|| {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|p| p.is_file())
    })
}

/// Resolves the kernel package and returns its cache entry, downloading it when absent.
fn fetch_kernel(cache: &Path) -> Result<GuestKernel> {
    let package = match std::env::var(KERNEL_PKG_ENV) {
        Ok(pinned) if !pinned.is_empty() => pinned,
        _ => match resolve_package() {
            Ok(package) => package,
            Err(err) => {
                // Offline: any complete kernel in the cache will do.
                return newest_cached(cache).ok_or_else(|| {
                    Error::Guest(format!(
                        "cannot resolve the kernel package ({err}) and the cache {} is empty",
                        cache.display()
                    ))
                })?;
            }
        },
    };
    let dir = cache.join(&package);
    if !dir.join(COMPLETE).is_file() {
        download(cache, &package)?;
    }
    load_entry(&dir, &package)
}

/// `linux-image-amd64`'s kernel dependency, from `apt-cache depends`.
fn resolve_package() -> Result<String> {
    let out = run_checked(Command::new("apt-cache").args(["depends", META_PKG]))?;
    parse_depends(&out).ok_or_else(|| {
        Error::Guest(format!(
            "`apt-cache depends {META_PKG}` names no linux-image package:\n{out}"
        ))
    })
}

/// The first `Depends: linux-image-...` line of `apt-cache depends` output.
pub fn parse_depends(out: &str) -> Option<String> {
    out.lines().find_map(|line| {
        let dep = line
            .trim()
            .trim_start_matches('|')
            .strip_prefix("Depends:")?;
        let dep = dep.trim();
        (dep.starts_with("linux-image-") && !dep.contains(char::is_whitespace))
            .then(|| dep.to_owned())
    })
}

fn newest_cached(cache: &Path) -> Option<Result<GuestKernel>> {
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(cache)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join(COMPLETE).is_file())
        .filter_map(|p| Some((p.join(COMPLETE).metadata().ok()?.modified().ok()?, p)))
        .collect();
    entries.sort();
    let (_, dir) = entries.pop()?;
    let package = dir.file_name()?.to_string_lossy().into_owned();
    Some(load_entry(&dir, &package))
}

/// `apt-get download`, `dpkg -x`, `depmod`, vmlinux extraction, into `cache/package`.
fn download(cache: &Path, package: &str) -> Result<()> {
    let t0 = std::time::Instant::now();
    eprintln!("[guest] fetching {package} into {}", cache.display());
    let tmp = cache.join(format!("{package}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_context(format!("remove {}", tmp.display())))?;
    }
    let root = tmp.join("root");
    fs::create_dir_all(&root).map_err(io_context(format!("create {}", root.display())))?;
    let fetched = run_checked(
        Command::new("apt-get")
            .args(["download", "-q", package])
            .current_dir(&tmp),
    );
    if let Err(first) = fetched {
        // Stale package lists name a .deb the mirror no longer has.
        if run_checked(Command::new("apt-get").args(["update", "-q"])).is_err() {
            return Err(Error::Guest(format!(
                "download of {package} failed: {first}"
            )));
        }
        run_checked(
            Command::new("apt-get")
                .args(["download", "-q", package])
                .current_dir(&tmp),
        )
        .map_err(|e| Error::Guest(format!("download of {package} failed: {e}")))?;
    }
    let deb = fs::read_dir(&tmp)
        .map_err(io_context(format!("list {}", tmp.display())))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| Error::Guest(format!("apt-get download {package} left no .deb")))?;
    run_checked(Command::new("dpkg").arg("-x").arg(&deb).arg(&root))?;
    fs::remove_file(&deb).map_err(io_context(format!("remove {}", deb.display())))?;
    let release = release_in(&root)?;
    let depmod = find_tool("depmod").ok_or_else(|| Error::Guest("depmod not found".into()))?;
    run_checked(Command::new(depmod).arg("-b").arg(&root).arg(&release))?;
    let vmlinuz = root.join(format!("boot/vmlinuz-{release}"));
    match extract_vmlinux(&vmlinuz) {
        Ok(elf) => fs::write(tmp.join("vmlinux"), elf).map_err(io_context(format!(
            "write {}",
            tmp.join("vmlinux").display()
        )))?,
        Err(why) => eprintln!("[guest] no PVH vmlinux ({why}); booting the bzImage"),
    }
    fs::write(tmp.join(COMPLETE), format!("{package}\n{release}\n"))
        .map_err(io_context("write cache marker"))?;
    let dir = cache.join(package);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(io_context(format!("remove {}", dir.display())))?;
    }
    fs::rename(&tmp, &dir).map_err(io_context(format!("rename to {}", dir.display())))?;
    eprintln!(
        "[guest] {package} ready in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The one directory name under `root/lib/modules`.
fn release_in(root: &Path) -> Result<String> {
    let modules = root.join("lib/modules");
    let mut names: Vec<String> = fs::read_dir(&modules)
        .map_err(io_context(format!("list {}", modules.display())))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(Error::Guest(format!(
            "expected one kernel release under {}, found {names:?}",
            modules.display()
        ))),
    }
}

fn load_entry(dir: &Path, package: &str) -> Result<GuestKernel> {
    let root = dir.join("root");
    let release = release_in(&root)?;
    let vmlinux = dir.join("vmlinux");
    let boot_image = if vmlinux.is_file() {
        vmlinux
    } else {
        root.join(format!("boot/vmlinuz-{release}"))
    };
    if !boot_image.is_file() {
        return Err(Error::Guest(format!(
            "cache entry {} has no kernel image",
            dir.display()
        )));
    }
    Ok(GuestKernel {
        package: package.to_owned(),
        modules_dir: root.join("lib/modules").join(&release),
        release,
        boot_image,
    })
}

/// The ELF kernel inside a bzImage: the xz stream after the setup code, decompressed.
fn extract_vmlinux(vmlinuz: &Path) -> std::result::Result<Vec<u8>, String> {
    const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
    let image = fs::read(vmlinuz).map_err(|e| format!("read {}: {e}", vmlinuz.display()))?;
    let start = image
        .windows(XZ_MAGIC.len())
        .position(|w| w == XZ_MAGIC)
        .ok_or("no xz stream in the bzImage")?;
    let mut child = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("run xz: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("xz stdin")?;
    let payload = image[start..].to_vec();
    let writer = std::thread::spawn(move || {
        // xz stops reading after the stream; a broken pipe then is expected.
        let _ = stdin.write_all(&payload);
    });
    let mut elf = Vec::new();
    child
        .stdout
        .take()
        .ok_or("xz stdout")?
        .read_to_end(&mut elf)
        .map_err(|e| format!("read xz output: {e}"))?;
    let _ = child.wait();
    let _ = writer.join();
    if elf.starts_with(b"\x7fELF") {
        Ok(elf)
    } else {
        Err("the xz stream is not an ELF image".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_names_the_image_package() {
        let out = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            parse_depends(out).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        let alt = "linux-image-amd64\n |Depends: linux-image-6.1.0-9-amd64\n  Depends: x\n";
        assert_eq!(
            parse_depends(alt).as_deref(),
            Some("linux-image-6.1.0-9-amd64")
        );
        assert_eq!(
            parse_depends("linux-image-amd64\n  Depends: <none>\n"),
            None
        );
        assert_eq!(parse_depends(""), None);
    }

    #[test]
    fn release_is_the_single_modules_dir() {
        let dir = crate::LabDir::new("kunit").expect("lab dir");
        let root = dir.path().join("root");
        assert!(release_in(&root).is_err());
        fs::create_dir_all(root.join("lib/modules/6.1.0-56-amd64")).unwrap();
        assert_eq!(release_in(&root).unwrap(), "6.1.0-56-amd64");
        fs::create_dir_all(root.join("lib/modules/6.1.0-57-amd64")).unwrap();
        assert!(release_in(&root).is_err());
    }
}
