//! Debian's stock kernel under qemu, for tests that need kernel ESP or `AF_KEY`.
//!
//! The host kernel has neither, so such tests boot a guest: qemu with TCG (this machine's
//! `/dev/kvm` is PVM and cannot run stock kernels), Debian's `linux-image-amd64` kernel
//! ([`kernel`]), and an initramfs built per run ([`initramfs`]) holding busybox, iproute2's
//! `ip`, iputils' `ping`, the IPsec modules, the binaries under test and their libraries.
//! `/init` loads the modules, runs the test script, prints an end marker with its exit code on
//! the serial console and powers off. A run costs about 3 s of boot and module loading.
//!
//! ```no_run
//! use std::time::Duration;
//! use interop::qemu::Guest;
//! let out = Guest::new()?
//!     .racoon3_binary("racoonctl")
//!     .file("/etc/racoon2/psk.txt", "secret\n")
//!     .run("racoonctl --help && ip xfrm state", Duration::from_secs(60))?;
//! assert_eq!(out.exit_code, 0, "{}", out.output);
//! # Ok::<(), interop::Error>(())
//! ```
//!
//! Guest conventions: binaries sit in `/usr/local/bin` (on `PATH`); files keep the guest path
//! given; the script is sourced by busybox `sh` in `/tmp` after [`initramfs::PRELUDE`], which
//! pins `ip` and `ping` to the real programs (`/sbin/ip`, `/bin/ping`) and defines
//! `lab_two_hosts` (the [`crate::netns::Lab`] topology in two guest namespaces); stdout and
//! stderr both come back in [`GuestOutput::output`]; `exit N` ends the script with code N.
//! Two guests can share an Ethernet link ([`link`], [`Guest::link`]).
//!
//! docs/testing-guest-kernel.md has the costs, the cache layout and the environment variables
//! (`RACOON3_GUEST_CACHE`, `RACOON3_GUEST_KERNEL_PKG`, `RACOON3_GUEST_ACCEL`).
//!
//! The qemu process is a [`ChildGuard`]: killed by PID when the timeout passes (qemu pauses
//! rather than exits on some errors), when the run is dropped, or by the next run's sweep if
//! the test process itself was killed.

pub mod cpio;
pub mod initramfs;
pub mod kernel;
pub mod link;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use kernel::GuestKernel;
pub use link::{Link, LinkEnd};

use crate::iked::Iked;
use crate::lab::LabDir;
use crate::process::{ChildGuard, Launch, log_tail, wait_for};
use crate::{Error, Result, io_context};

/// Environment variable choosing the accelerator (`tcg` or `kvm`); default: `kvm` only when
/// the CPU shows `vmx`/`svm` and `/dev/kvm` exists, else `tcg`.
pub const ACCEL_ENV: &str = "RACOON3_GUEST_ACCEL";
/// Console lines quoted in boot errors.
const TAIL_LINES: usize = 30;
/// The guest's own watchdog for [`Guest::start`] unless [`Guest::deadline`] sets another.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);
/// How much later than the host's timeout the guest's own watchdog fires in [`Guest::run`].
const DEADLINE_SLACK: Duration = Duration::from_secs(10);

/// A guest to boot: kernel, binaries, files, modules and qemu options.
#[derive(Clone, Debug)]
#[must_use]
pub struct Guest {
    kernel: GuestKernel,
    binaries: Vec<PathBuf>,
    files: Vec<(String, Vec<u8>, u32)>,
    modules: Vec<String>,
    qemu_args: Vec<String>,
    memory_mb: u32,
    wait_for_socket: Option<PathBuf>,
    deadline: Duration,
}

impl Guest {
    /// Prepares the host (packages, cached kernel; see [`kernel::prepare`]) and returns a guest
    /// with the default modules and no binaries.
    ///
    /// # Errors
    /// As [`kernel::prepare`].
    pub fn new() -> Result<Self> {
        Ok(Self {
            kernel: kernel::prepare()?,
            binaries: Vec::new(),
            files: Vec::new(),
            modules: initramfs::REQUIRED_MODULES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            qemu_args: Vec::new(),
            memory_mb: 1024,
            wait_for_socket: None,
            deadline: DEFAULT_DEADLINE,
        })
    }

    /// The kernel this guest boots.
    pub fn kernel(&self) -> &GuestKernel {
        &self.kernel
    }

    /// Packs a host binary (and its `ldd` libraries) as `/usr/local/bin/<file name>`.
    pub fn binary(mut self, host: impl Into<PathBuf>) -> Self {
        self.binaries.push(host.into());
        self
    }

    /// Packs a racoon3 binary from the cargo target dir in use (see [`target_binary`]).
    pub fn racoon3_binary(self, name: &str) -> Self {
        self.binary(target_binary(name))
    }

    /// Places `contents` at `guest_path` (mode 0644); parents are created.
    pub fn file(self, guest_path: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.file_mode(guest_path, contents, 0o644)
    }

    /// Places `contents` at `guest_path` with permission bits `perm` (PSK files want 0600).
    pub fn file_mode(mut self, guest_path: &str, contents: impl Into<Vec<u8>>, perm: u32) -> Self {
        self.files
            .push((guest_path.to_owned(), contents.into(), perm));
        self
    }

    /// Copies the host file `host` to `guest_path`.
    ///
    /// # Errors
    /// The host file cannot be read.
    pub fn host_file(self, host: &Path, guest_path: &str) -> Result<Self> {
        let data = fs::read(host).map_err(io_context(format!("read {}", host.display())))?;
        Ok(self.file(guest_path, data))
    }

    /// Loads one more kernel module (with its dependencies) at boot.
    pub fn module(mut self, name: &str) -> Self {
        self.modules.push(name.to_owned());
        self
    }

    /// Appends raw qemu arguments (for example `-netdev stream,...` and a `virtio-net-pci`
    /// device to join two guests).
    pub fn qemu_args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.qemu_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Puts `eth0` on one end of `link` (see [`link`]); `pcap`, if given, receives a capture
    /// of the link. Start the [`LinkEnd::Listen`] guest first.
    pub fn link(mut self, link: &Link, end: LinkEnd, pcap: Option<&Path>) -> Self {
        self.qemu_args.extend(link.qemu_args(end, pcap));
        if end == LinkEnd::Connect {
            self.wait_for_socket = Some(link.socket().to_owned());
        }
        self
    }

    /// After `deadline` the guest powers itself off, whatever its script is doing (default
    /// [`DEFAULT_DEADLINE`]; [`Guest::run`] uses its timeout plus 10 s). This bounds a qemu
    /// whose test process was killed before it could kill qemu.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Guest memory in MiB (default 1024: unstripped debug binaries are large).
    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }

    /// Boots the guest with `script`, waits for it to finish, returns its output.
    ///
    /// A script that exits non-zero is *not* an error here: check [`GuestOutput::exit_code`]
    /// or call [`GuestOutput::success`].
    ///
    /// # Errors
    /// The initramfs cannot be built, qemu cannot start, the guest did not finish within
    /// `timeout` (the error quotes the last console lines), or modules failed to load.
    pub fn run(&self, script: &str, timeout: Duration) -> Result<GuestOutput> {
        self.clone()
            .deadline(timeout + DEADLINE_SLACK)
            .start(script)?
            .wait(timeout)
    }

    /// Boots the guest with `script` and returns at once (to run several guests together).
    ///
    /// # Errors
    /// The initramfs cannot be built or qemu cannot start.
    pub fn start(&self, script: &str) -> Result<RunningGuest> {
        if let Some(socket) = &self.wait_for_socket
            && !wait_for(|| socket.exists(), Duration::from_secs(10))
        {
            return Err(Error::Guest(format!(
                "link socket {} did not appear: start the listening guest first",
                socket.display()
            )));
        }
        let lab = LabDir::new("guest")?;
        let nonce = nonce();
        let modules = self.modules.clone();
        let image = initramfs::build(&initramfs::Contents {
            kernel: &self.kernel,
            modules,
            binaries: &self.binaries,
            files: &self.files,
            script,
            nonce: &nonce,
            deadline_secs: self.deadline.as_secs().max(1),
        })?;
        let initrd = lab.path().join("initramfs.cpio");
        fs::write(&initrd, &image).map_err(io_context(format!("write {}", initrd.display())))?;
        let console = lab.path().join("console.log");
        let accel = accel();
        let launch = Launch::new(qemu_binary()?, &console)
            .args(qemu_argv(
                &accel,
                self.memory_mb,
                &self.kernel.boot_image,
                &initrd,
            ))
            .args(self.qemu_args.iter())
            .term_timeout(Duration::from_secs(2));
        let started = Instant::now();
        let child = launch.spawn()?;
        Ok(RunningGuest {
            child,
            console,
            nonce,
            started,
            accel,
            _lab: lab,
        })
    }
}

/// A booted guest; qemu is killed if this drops before the guest powered off.
#[derive(Debug)]
pub struct RunningGuest {
    child: ChildGuard,
    console: PathBuf,
    nonce: String,
    started: Instant,
    accel: String,
    _lab: LabDir,
}

impl RunningGuest {
    /// The qemu process ID.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Time since qemu started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits up to `timeout` until the console holds `needle` (for example a line the script
    /// prints when a daemon is ready); returns whether it did. qemu keeps running either way.
    pub fn wait_for_console(&self, needle: &str, timeout: Duration) -> bool {
        wait_for(|| read_console(&self.console).contains(needle), timeout)
    }

    /// Waits until qemu exits (the guest powered off) or `timeout` passes since the start.
    ///
    /// # Errors
    /// Timeout (qemu is killed), qemu exited without the end marker (kernel panic, bad
    /// option), or the guest's set-up failed; each error quotes the console's last lines.
    pub fn wait(mut self, timeout: Duration) -> Result<GuestOutput> {
        let deadline = self.started + timeout;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let exited = wait_for(|| self.child.try_exit_status().is_some(), remaining);
        let elapsed = self.started.elapsed();
        let console = read_console(&self.console);
        match parse_console(&console, &self.nonce) {
            Ok((exit_code, output)) => {
                if !exited {
                    // The marker is there but poweroff hung: the result stands.
                    self.child.stop();
                }
                Ok(GuestOutput {
                    exit_code,
                    output,
                    console,
                    elapsed,
                })
            }
            Err(ConsoleError::Setup(msg)) => {
                self.child.stop();
                Err(Error::Guest(format!(
                    "guest failed: {msg}; last console lines:\n{}",
                    log_tail(&self.console, TAIL_LINES)
                )))
            }
            Err(ConsoleError::NoMarker) if !exited => {
                self.child.stop();
                Err(Error::Guest(format!(
                    "guest (accel={}) did not finish within {timeout:?}; qemu pid {} killed; \
                     last console lines:\n{}",
                    self.accel,
                    self.child.pid(),
                    log_tail(&self.console, TAIL_LINES)
                )))
            }
            Err(ConsoleError::NoMarker) => Err(Error::Guest(format!(
                "qemu exited ({}) after {:.1} s without the end marker; last console lines:\n{}",
                self.child
                    .try_exit_status()
                    .map_or_else(|| "?".to_owned(), |s| s.to_string()),
                elapsed.as_secs_f64(),
                log_tail(&self.console, TAIL_LINES)
            ))),
        }
    }
}

/// What a guest run produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestOutput {
    /// The script's exit code.
    pub exit_code: i32,
    /// The script's stdout and stderr, interleaved as written, `\r` removed.
    pub output: String,
    /// The whole serial console (kernel messages, `/init`, the script), for debugging.
    pub console: String,
    /// Wall time from qemu start to the end of the run.
    pub elapsed: Duration,
}

impl GuestOutput {
    /// `Ok(self)` when the script exited 0; otherwise an error quoting its output.
    ///
    /// # Errors
    /// The script's exit code was not 0.
    pub fn success(self) -> Result<Self> {
        if self.exit_code == 0 {
            Ok(self)
        } else {
            Err(Error::Guest(format!(
                "guest script exited {}; output:\n{}",
                self.exit_code, self.output
            )))
        }
    }
}

/// A racoon3 binary in the cargo target dir in use: the directory of [`Iked::binary`]
/// (`$CARGO_TARGET_DIR/debug` or the workspace's `target/debug`).
pub fn target_binary(name: &str) -> PathBuf {
    Iked::binary().with_file_name(name)
}

/// Why a console holds no result.
#[derive(Debug, PartialEq, Eq)]
enum ConsoleError {
    /// `/init` reported a failure (module loading, the guest's own deadline).
    Setup(String),
    /// No end marker (yet).
    NoMarker,
}

/// Extracts (exit code, output) between this run's begin and end markers.
fn parse_console(console: &str, nonce: &str) -> std::result::Result<(i32, String), ConsoleError> {
    let begin = format!("RACOON3-GUEST-BEGIN {nonce}");
    let end = format!("RACOON3-GUEST-END {nonce} rc=");
    let error = format!("RACOON3-GUEST-ERROR {nonce} ");
    let mut output: Option<String> = None;
    for line in console.lines() {
        if let Some(msg) = line.strip_prefix(&error) {
            return Err(ConsoleError::Setup(msg.to_owned()));
        }
        if line.starts_with(&begin) {
            output = Some(String::new());
        } else if let Some(rc) = line.strip_prefix(&end) {
            let code = rc.trim().parse().map_err(|_| ConsoleError::NoMarker)?;
            return Ok((code, output.unwrap_or_default()));
        } else if let Some(out) = output.as_mut() {
            out.push_str(line);
            out.push('\n');
        }
    }
    Err(ConsoleError::NoMarker)
}

fn read_console(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
        .unwrap_or_default()
}

/// A marker word no script prints by accident: PID, counter and clock.
fn nonce() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{:x}-{n}-{nanos:x}", std::process::id())
}

fn qemu_binary() -> Result<PathBuf> {
    kernel::find_tool("qemu-system-x86_64")
        .ok_or_else(|| Error::Guest("qemu-system-x86_64 not found (qemu-system-x86)".into()))
}

/// `tcg`, unless `RACOON3_GUEST_ACCEL` says otherwise or the CPU can run KVM guests.
fn accel() -> String {
    if let Ok(accel) = std::env::var(ACCEL_ENV)
        && !accel.is_empty()
    {
        return accel;
    }
    let hw_virt = fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
    });
    if hw_virt && Path::new("/dev/kvm").exists() {
        "kvm".into()
    } else {
        "tcg".into()
    }
}

/// The guest kernel's command line.
///
/// * `panic=-1` with qemu's `-no-reboot`: a panic ends qemu at once instead of hanging.
/// * `no_timer_check`: on a loaded host TCG can be too slow for the IO-APIC timer check, and
///   the kernel then panics with "IO-APIC + timer doesn't work!" (seen at load average 12).
/// * `cryptomgr.notests=1`: skips the crypto self-tests, about 1.5 s of module loading.
pub const KERNEL_CMDLINE: &str =
    "console=ttyS0 panic=-1 quiet loglevel=3 no_timer_check cryptomgr.notests=1 rdinit=/init";

/// qemu's command line: one CPU, no default devices, serial console on stdout, no reboot.
fn qemu_argv(accel: &str, memory_mb: u32, kernel: &Path, initrd: &Path) -> Vec<String> {
    let cpu = if accel == "kvm" { "host" } else { "max" };
    [
        "-accel",
        accel,
        "-machine",
        "pc",
        "-cpu",
        cpu,
        "-smp",
        "1",
        "-m",
        &format!("{memory_mb}M"),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        &kernel.to_string_lossy(),
        "-initrd",
        &initrd.to_string_lossy(),
        "-append",
        KERNEL_CMDLINE,
    ]
    .map(str::to_owned)
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_output_between_markers() {
        let console = "[    1.0] kernel noise\nRACOON3-GUEST-BEGIN ab-0 uptime=1.9\nhello\n\
                       err line\nRACOON3-GUEST-END ab-0 rc=3\nreboot: Power down\n";
        assert_eq!(
            parse_console(console, "ab-0"),
            Ok((3, "hello\nerr line\n".to_owned()))
        );
    }

    #[test]
    fn console_without_end_or_with_other_nonce_has_no_result() {
        let partial = "RACOON3-GUEST-BEGIN ab-0\nhello\n";
        assert_eq!(parse_console(partial, "ab-0"), Err(ConsoleError::NoMarker));
        let forged = "RACOON3-GUEST-BEGIN ab-0\nRACOON3-GUEST-END zz-9 rc=0\n";
        assert_eq!(parse_console(forged, "ab-0"), Err(ConsoleError::NoMarker));
        assert_eq!(parse_console("", "ab-0"), Err(ConsoleError::NoMarker));
    }

    #[test]
    fn setup_errors_are_reported() {
        let console = "RACOON3-GUEST-ERROR ab-0 modprobe: module esp4 not found\n\
                       RACOON3-GUEST-END ab-0 rc=125\n";
        assert_eq!(
            parse_console(console, "ab-0"),
            Err(ConsoleError::Setup(
                "modprobe: module esp4 not found".into()
            ))
        );
    }

    #[test]
    fn qemu_argv_uses_tcg_and_the_serial_console() {
        let argv = qemu_argv("tcg", 512, Path::new("/k/vmlinux"), Path::new("/l/i.cpio"));
        let joined = argv.join(" ");
        assert!(joined.starts_with("-accel tcg -machine pc -cpu max"));
        assert!(joined.contains("-m 512M"));
        assert!(joined.contains("-kernel /k/vmlinux -initrd /l/i.cpio"));
        assert!(joined.contains("-no-reboot"));
        assert!(argv.last().is_some_and(|a| a.contains("panic=-1")));
        assert!(nonce() != nonce());
    }
}
