//! The backend iked and kinkd use when spmd hosts the SAD: every [`Kernel`]
//! call becomes a [`Request::Kernel`] on spmd's control socket, and the
//! kernel events spmd addresses to this daemon come back on a `watch`.
//!
//! spmd may go away (it crashed, or its operator restarted it), and the
//! SAs it held go with it. The event task then raises
//! [`KernelEvent::Reset`] and keeps reconnecting; when spmd is back it
//! bumps [`SpmdKernel::generation`] for whoever must re-attach (the
//! ESP-in-UDP hand-off, [`crate::handoff`]). Requests reconnect once
//! before failing.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use libracoon::ctl::io::{ClientError, ControlClient};
use libracoon::ctl::kernel::{KernelOp, KernelReply};
use libracoon::ctl::proto::{CtlError, ErrorCode, Request, ResponseBody};
use tokio::sync::{mpsc, watch};

use crate::{
    Kernel, KernelError, KernelEvent, PolicySpec, SaDirection, SaId, SaInfo, SaSpec, Selector,
};

const BACKEND: &str = "spmd";

/// How long one kernel operation may take before iked gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the event task retries a lost spmd.
const RECONNECT_EVERY: Duration = Duration::from_millis(500);

/// spmd's kernel backend, reached over its control socket.
#[derive(Debug)]
pub struct SpmdKernel {
    socket: PathBuf,
    daemon: String,
    requests: tokio::sync::Mutex<Option<ControlClient>>,
    backend: Mutex<String>,
    carries_traffic: AtomicBool,
    events: Mutex<Option<mpsc::UnboundedReceiver<KernelEvent>>>,
    generation: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl SpmdKernel {
    /// Connects to spmd at `socket` as `daemon` (`iked`, `kinkd`), attaches
    /// (so spmd routes ACQUIREs here) and starts following its events.
    ///
    /// # Errors
    /// [`KernelError::Failed`] naming the socket when spmd is not running.
    pub async fn connect(socket: &Path, daemon: &str) -> Result<Arc<Self>, KernelError> {
        let mut client = dial(socket, daemon).await?;
        let (backend, carries) = attach(&mut client, daemon).await?;
        let watcher = watching(socket, daemon).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (gen_tx, generation) = watch::channel(0);
        let task = tokio::spawn(follow(
            socket.to_owned(),
            daemon.to_owned(),
            watcher,
            tx,
            gen_tx,
        ));
        Ok(Arc::new(Self {
            socket: socket.to_owned(),
            daemon: daemon.to_owned(),
            requests: tokio::sync::Mutex::new(Some(client)),
            backend: Mutex::new(backend),
            carries_traffic: AtomicBool::new(carries),
            events: Mutex::new(Some(rx)),
            generation,
            task,
        }))
    }

    /// The backend spmd runs (`userspace`, `xfrm`, ...).
    pub fn backend(&self) -> String {
        self.backend
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Bumped each time a new spmd process is found: the ESP-in-UDP
    /// hand-off must attach its sockets again.
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.generation.clone()
    }

    /// The directory of spmd's sockets.
    pub fn run_dir(&self) -> &Path {
        self.socket.parent().unwrap_or_else(|| Path::new("/"))
    }

    /// Sends one operation, reconnecting once if spmd went away.
    async fn call(&self, op: KernelOp) -> Result<KernelReply, KernelError> {
        let mut slot = self.requests.lock().await;
        for attempt in 0..2 {
            if slot.is_none() {
                let mut client = dial(&self.socket, &self.daemon).await?;
                let (backend, carries) = attach(&mut client, &self.daemon).await?;
                *self.backend.lock().unwrap_or_else(PoisonError::into_inner) = backend;
                self.carries_traffic.store(carries, Ordering::Relaxed);
                *slot = Some(client);
            }
            let Some(client) = slot.as_mut() else {
                continue;
            };
            let request = Request::Kernel {
                from: self.daemon.clone(),
                op: Box::new(op.clone()),
            };
            let answer = tokio::time::timeout(REQUEST_TIMEOUT, client.request(request)).await;
            match answer {
                Ok(Ok(result)) => {
                    let result = result.into_result().map_err(from_ctl).and_then(reply);
                    // A retried AddSa whose first try did land.
                    if attempt == 1
                        && matches!(op, KernelOp::AddSa { .. })
                        && matches!(result, Err(KernelError::Exists(_)))
                    {
                        return Ok(KernelReply::Done);
                    }
                    return result;
                }
                Ok(Err(e)) if attempt == 0 => {
                    tracing::debug!("spmd connection lost ({e}); reconnecting");
                    *slot = None;
                }
                Ok(Err(e)) => return Err(lost(&self.socket, &e)),
                Err(_) => {
                    // A stalled spmd must not stall the key exchange.
                    *slot = None;
                    return Err(failed(format!(
                        "spmd at {} did not answer within {REQUEST_TIMEOUT:?}",
                        self.socket.display()
                    )));
                }
            }
        }
        Err(failed(format!(
            "spmd at {} does not answer",
            self.socket.display()
        )))
    }
}

impl Drop for SpmdKernel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Kernel for SpmdKernel {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn carries_traffic(&self) -> bool {
        self.carries_traffic.load(Ordering::Relaxed)
    }

    async fn alloc_spi(&self, src: IpAddr, dst: IpAddr, reqid: u32) -> Result<u32, KernelError> {
        match self.call(KernelOp::AllocSpi { src, dst, reqid }).await? {
            KernelReply::Spi { spi } => Ok(spi),
            other => Err(unexpected(&other)),
        }
    }

    async fn add_sa(&self, sa: SaSpec) -> Result<(), KernelError> {
        self.call(KernelOp::AddSa { sa }).await.map(drop)
    }

    async fn update_sa(&self, sa: SaSpec) -> Result<(), KernelError> {
        self.call(KernelOp::UpdateSa { sa }).await.map(drop)
    }

    async fn delete_sa(&self, id: SaId) -> Result<(), KernelError> {
        self.call(KernelOp::DeleteSa { id }).await.map(drop)
    }

    async fn get_sa(&self, id: SaId) -> Result<SaInfo, KernelError> {
        match self.call(KernelOp::GetSa { id }).await? {
            KernelReply::Sa { sa } => Ok(sa),
            other => Err(unexpected(&other)),
        }
    }

    async fn list_sas(&self) -> Vec<SaId> {
        match self.call(KernelOp::ListSas).await {
            Ok(KernelReply::Sas { sas }) => sas,
            _ => Vec::new(),
        }
    }

    /// Not offered to key-exchange daemons: `racoonctl flush` asks spmd
    /// directly.
    async fn flush_sas(&self) -> Result<(), KernelError> {
        Err(KernelError::Unsupported {
            backend: BACKEND,
            what: "flushing spmd's SAD from a key-exchange daemon (use racoonctl flush)".into(),
        })
    }

    async fn add_policy(&self, policy: PolicySpec) -> Result<(), KernelError> {
        self.call(KernelOp::AddPolicy { policy }).await.map(drop)
    }

    async fn delete_policy(
        &self,
        selector: Selector,
        direction: SaDirection,
    ) -> Result<(), KernelError> {
        self.call(KernelOp::DeletePolicy {
            selector,
            direction,
        })
        .await
        .map(drop)
    }

    async fn list_policies(&self) -> Vec<PolicySpec> {
        match self.call(KernelOp::ListPolicies).await {
            Ok(KernelReply::Policies { policies }) => policies,
            _ => Vec::new(),
        }
    }

    /// Not offered: spmd owns its configured policies.
    async fn flush_policies(&self) -> Result<(), KernelError> {
        Err(KernelError::Unsupported {
            backend: BACKEND,
            what: "flushing spmd's policies from a key-exchange daemon".into(),
        })
    }

    /// ACQUIREs spmd routes to this daemon, expiries of the SAs it
    /// installed, and [`KernelEvent::Reset`] after spmd restarted. The
    /// stream never ends on its own: a lost spmd is retried.
    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<KernelEvent>> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

async fn dial(socket: &Path, daemon: &str) -> Result<ControlClient, KernelError> {
    ControlClient::connect_as(socket, daemon)
        .await
        .map_err(|e| lost(socket, &e))
}

async fn attach(client: &mut ControlClient, daemon: &str) -> Result<(String, bool), KernelError> {
    let request = Request::Kernel {
        from: daemon.to_owned(),
        op: Box::new(KernelOp::Attach),
    };
    let result = client
        .request(request)
        .await
        .map_err(|e| failed(format!("attaching to spmd: {e}")))?;
    match result.into_result().map_err(from_ctl).and_then(reply)? {
        KernelReply::Attached {
            backend,
            carries_traffic,
        } => Ok((backend, carries_traffic)),
        other => Err(unexpected(&other)),
    }
}

async fn watching(socket: &Path, daemon: &str) -> Result<ControlClient, KernelError> {
    let mut client = dial(socket, &format!("{daemon}-events")).await?;
    client
        .request(Request::Watch)
        .await
        .map_err(|e| lost(socket, &e))?
        .into_result()
        .map_err(from_ctl)?;
    Ok(client)
}

/// Forwards the events addressed to `daemon`. When spmd goes away the SAs
/// it held went with it (it hosts the datapath): [`KernelEvent::Reset`] at
/// once, then reconnect, and bump the generation once a new spmd answers.
async fn follow(
    socket: PathBuf,
    daemon: String,
    mut client: ControlClient,
    tx: mpsc::UnboundedSender<KernelEvent>,
    generation: watch::Sender<u64>,
) {
    loop {
        match client.next_event().await {
            Ok(record) if record.kind == "lagged" => {
                // Kernel events were dropped for us: an expiry may be among
                // them, so say so loudly (ACQUIREs are raised again).
                tracing::error!("missed kernel events from spmd: {}", record.message);
            }
            Ok(record) => {
                if let Some(notice) = record.kernel
                    && notice.to == daemon
                    && tx.send(notice.event).is_err()
                {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(
                    "lost spmd ({e}): its SAs are gone; retrying every {RECONNECT_EVERY:?}"
                );
                if tx.send(KernelEvent::Reset).is_err() {
                    return;
                }
                client = loop {
                    tokio::time::sleep(RECONNECT_EVERY).await;
                    if let Ok(mut c) = watching(&socket, &daemon).await
                        && attach(&mut c, &daemon).await.is_ok()
                    {
                        break c;
                    }
                };
                tracing::info!("spmd is back (pid {})", client.daemon_pid());
                generation.send_modify(|g| *g += 1);
            }
        }
    }
}

fn reply(body: ResponseBody) -> Result<KernelReply, KernelError> {
    match body {
        ResponseBody::Kernel(r) => Ok(r),
        ResponseBody::Done { .. } => Ok(KernelReply::Done),
        other => Err(failed(format!("spmd answered {other:?}"))),
    }
}

/// Maps spmd's error back to the backend error the caller would have got
/// in-process.
fn from_ctl(e: CtlError) -> KernelError {
    let spi = || {
        e.message
            .split_whitespace()
            .find_map(|w| u32::from_str_radix(w.strip_prefix("0x")?, 16).ok())
            .unwrap_or(0)
    };
    match e.code {
        ErrorCode::NotFound => KernelError::NotFound(spi()),
        ErrorCode::Exists => KernelError::Exists(spi()),
        ErrorCode::Unsupported => KernelError::Unsupported {
            backend: BACKEND,
            what: e.message,
        },
        _ => failed(e.message),
    }
}

fn lost(socket: &Path, e: &ClientError) -> KernelError {
    failed(format!(
        "spmd is not reachable at {} ({e}): start spmd first (systemctl start spmd, or spmd -f CONFIG)",
        socket.display()
    ))
}

fn unexpected(r: &KernelReply) -> KernelError {
    failed(format!("spmd answered {r:?}"))
}

fn failed(what: String) -> KernelError {
    KernelError::Failed {
        backend: BACKEND,
        what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spmd_errors_map_back_to_backend_errors() {
        let nf = CtlError::new(ErrorCode::NotFound, "no SA with SPI 0x0000c0de");
        assert_eq!(from_ctl(nf), KernelError::NotFound(0xc0de));
        let ex = CtlError::new(
            ErrorCode::Exists,
            "an SA with SPI 0x00001234 already exists",
        );
        assert_eq!(from_ctl(ex), KernelError::Exists(0x1234));
        let other = from_ctl(CtlError::new(ErrorCode::Kernel, "boom"));
        assert!(matches!(other, KernelError::Failed { .. }), "{other:?}");
    }
}
