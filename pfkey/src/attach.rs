//! How a key-exchange daemon (iked, kinkd) finds where its SAs go: spmd
//! decides (it owns the policies the SAs must match), the daemon follows,
//! and an explicit `--kernel` must agree with spmd.
//!
//! Shared so both daemons say the same things the same way; each keeps
//! the dispatch to its own generic event loop.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Kernel;
use crate::remote::SpmdKernel;

/// How long a daemon waits at start for spmd's control socket (systemd
/// starts spmd first; by hand, both may be started together).
pub const SPMD_WAIT: Duration = Duration::from_secs(10);

/// A key-exchange daemon's `--kernel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelChoice {
    /// Whatever spmd hosts (the userspace ESP datapath on kernels without
    /// ESP), reached over spmd's control socket.
    Spmd,
    /// Records SAs only; protects no traffic (for tests without a datapath).
    Memory,
    /// SAs into the kernel over XFRM netlink; policies and ACQUIREs through
    /// spmd ([`crate::split::SplitKernel`]).
    Xfrm,
    /// SAs into the kernel over PF_KEY v2; policies and ACQUIREs through
    /// spmd.
    PfKey,
    /// Whatever spmd runs: SAs into the kernel when spmd uses XFRM or
    /// PF_KEY, through spmd otherwise.
    Auto,
}

impl std::str::FromStr for KernelChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "userspace" => Ok(Self::Spmd),
            "xfrm" => Ok(Self::Xfrm),
            "pfkey" => Ok(Self::PfKey),
            "memory" => Ok(Self::Memory),
            other => Err(format!(
                "--kernel {other}: expected auto, xfrm, pfkey, userspace or memory"
            )),
        }
    }
}

impl KernelChoice {
    /// The backend spmd must run for this choice, if it names one.
    fn spmd_backend(self) -> Option<&'static str> {
        match self {
            Self::Xfrm => Some("xfrm"),
            Self::PfKey => Some("pfkey"),
            Self::Spmd => Some("userspace"),
            Self::Auto | Self::Memory => None,
        }
    }

    /// Refuses a choice that disagrees with the `backend` spmd at `socket`
    /// runs: the daemon's SAs would go where no policy sends traffic.
    ///
    /// # Errors
    /// The message for the operator, naming `daemon`.
    pub fn check_against(self, daemon: &str, backend: &str, socket: &Path) -> Result<(), String> {
        match self.spmd_backend() {
            Some(wanted) if wanted != backend => Err(format!(
                "{daemon} --kernel {wanted}, but spmd at {} runs the {backend} backend: start \
                 both with the same --kernel, or {daemon} with --kernel auto to follow spmd",
                socket.display()
            )),
            _ => Ok(()),
        }
    }
}

/// Connects to spmd at `socket` as `daemon`, waiting up to [`SPMD_WAIT`]
/// for it to come up (and saying once that it waits).
///
/// # Errors
/// spmd did not answer in time: its last error.
pub async fn connect_spmd(socket: &Path, daemon: &str) -> Result<Arc<SpmdKernel>, String> {
    let deadline = Instant::now() + SPMD_WAIT;
    let mut said = false;
    loop {
        match SpmdKernel::connect(socket, daemon).await {
            Ok(k) => return Ok(k),
            Err(e) if Instant::now() >= deadline => return Err(e.to_string()),
            Err(_) => {
                if !said {
                    tracing::info!("waiting for spmd at {}", socket.display());
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Removes the SAs with one of `reqids` from `sas`: what a crashed
/// predecessor left in the kernel (an old outbound SA would satisfy the
/// policy and swallow traffic under keys the peer no longer has). Returns
/// how many went.
pub async fn remove_stale_sas<K: Kernel + ?Sized>(sas: &K, reqids: &[u32]) -> usize {
    let mut stale = 0;
    for id in sas.list_sas().await {
        if let Ok(info) = sas.get_sa(id).await
            && reqids.contains(&info.reqid)
            && sas.delete_sa(id).await.is_ok()
        {
            stale += 1;
        }
    }
    stale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryKernel;

    #[test]
    fn choices_parse_and_disagreements_are_refused() {
        assert_eq!("userspace".parse(), Ok(KernelChoice::Spmd));
        assert!("ebpf".parse::<KernelChoice>().is_err());
        let sock = Path::new("/run/racoon3/spmd.sock");
        assert!(
            KernelChoice::Auto
                .check_against("iked", "xfrm", sock)
                .is_ok()
        );
        assert!(
            KernelChoice::Xfrm
                .check_against("iked", "xfrm", sock)
                .is_ok()
        );
        let e = KernelChoice::Spmd
            .check_against("kinkd", "xfrm", sock)
            .expect_err("mismatch");
        assert!(
            e.contains(
                "kinkd --kernel userspace, but spmd at /run/racoon3/spmd.sock runs the xfrm backend"
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn stale_sas_of_our_reqids_go_and_others_stay() {
        let k = MemoryKernel::new();
        for (spi, reqid) in [(0x100, 1), (0x101, 2), (0x102, 9)] {
            let mut sa = crate::memory::tests::spec(spi);
            sa.reqid = reqid;
            k.add_sa(sa).await.expect("add");
        }
        assert_eq!(remove_stale_sas(&k, &[1, 2]).await, 2);
        assert_eq!(k.list_sas().await.len(), 1);
    }
}
