//! [`XfrmKernel`]: the [`Kernel`] trait over `NETLINK_XFRM`, for kernels
//! that carry ESP themselves.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use socket2::Socket;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use super::channel::{self, Channel, TransactError};
use super::convert::{self, BACKEND};
use super::msg::{Body, Message, WithAttrs, group, msg_type};
use super::structs::{IPPROTO_ESP, UsersaInfo, UserspiInfo, XfrmAddr, XfrmId};
use crate::{
    Kernel, KernelError, KernelEvent, PolicySpec, SaDirection, SaId, SaInfo, SaSpec, Selector,
};

/// Lowest SPI [`XfrmKernel::alloc_spi`] hands out (1-255 are reserved,
/// RFC 4303 §2.1).
const SPI_MIN: u32 = 0x100;

/// SAs and policies in the Linux kernel, through `NETLINK_XFRM`.
///
/// One socket carries requests, one at a time (a request waits for its
/// acknowledgement or reply, matched by sequence number); a second one,
/// bound to the ACQUIRE, EXPIRE and MIGRATE multicast groups, feeds
/// [`Kernel::take_events`] from a task that lives as long as this value.
///
/// Behaviour worth knowing:
/// - [`Kernel::alloc_spi`] uses `XFRM_MSG_ALLOCSPI`, which leaves a larval
///   SA in the kernel for `net.core.xfrm_acq_expires` seconds (30 by
///   default); [`Kernel::add_sa`] of that SPI then fills it in with
///   `XFRM_MSG_UPDSA` (a NEWSA would collide with it), falling back to
///   NEWSA if it has expired meanwhile.
/// - The kernel does not know an SA's direction before Linux 6.10; the
///   direction [`Kernel::get_sa`] reports is the one this value installed
///   it with, else the kernel's `XFRMA_SA_DIR`, else inbound.
/// - [`Kernel::flush_sas`] and [`Kernel::flush_policies`] flush the whole
///   network namespace's ESP SAs and (main-type) policies, as `ip xfrm
///   state flush proto esp` and `ip xfrm policy flush` do.
/// - [`Kernel::list_sas`] and [`Kernel::list_policies`] leave out larval
///   SAs and `fwd` policies (see [`super::convert`]).
#[derive(Debug)]
pub struct XfrmKernel {
    channel: tokio::sync::Mutex<Channel>,
    /// SPIs reserved by `alloc_spi` and not yet filled in.
    larval: Mutex<HashSet<SaId>>,
    /// Directions of the SAs installed here.
    directions: Mutex<HashMap<SaId, SaDirection>>,
    events: Mutex<Option<mpsc::UnboundedReceiver<KernelEvent>>>,
    listener: tokio::task::JoinHandle<()>,
}

impl XfrmKernel {
    /// Opens the request and event sockets in the current network
    /// namespace and starts the event listener.
    ///
    /// # Errors
    /// [`KernelError::Unsupported`] when the kernel has no XFRM netlink
    /// (`EPROTONOSUPPORT`); [`KernelError::Failed`] for other socket
    /// errors (`EPERM` without `CAP_NET_ADMIN` comes later, per request).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn open() -> Result<Arc<Self>, KernelError> {
        let channel = Channel::open().map_err(socket_error)?;
        let groups = [group::ACQUIRE, group::EXPIRE, group::MIGRATE]
            .iter()
            .fold(0, |mask, g| mask | 1 << (g - 1));
        let events_sock = channel::open_socket(groups).map_err(socket_error)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let listener = tokio::spawn(listen(events_sock, tx));
        Ok(Arc::new(Self {
            channel: tokio::sync::Mutex::new(channel),
            larval: Mutex::default(),
            directions: Mutex::default(),
            events: Mutex::new(Some(rx)),
            listener,
        }))
    }

    async fn ack(&self, body: Body) -> Result<(), TransactError> {
        self.channel.lock().await.ack(body).await
    }

    async fn new_sa(&self, spec: &SaSpec, update: bool) -> Result<(), KernelError> {
        let msg = convert::sa_message(spec)?;
        let body = if update {
            Body::UpdSa(msg)
        } else {
            Body::NewSa(msg)
        };
        let op = if update { "update SA" } else { "add SA" };
        self.ack(body)
            .await
            .map_err(|e| map_error(e, op, Some(spec.id.spi), &algorithm_names(spec)))
    }
}

impl Drop for XfrmKernel {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl Kernel for XfrmKernel {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn carries_traffic(&self) -> bool {
        true
    }

    async fn alloc_spi(&self, src: IpAddr, dst: IpAddr, reqid: u32) -> Result<u32, KernelError> {
        let (daddr, family) = XfrmAddr::from_ip(dst);
        let (saddr, _) = XfrmAddr::from_ip(src);
        let req = UserspiInfo {
            info: UsersaInfo {
                id: XfrmId {
                    daddr,
                    spi: 0,
                    proto: IPPROTO_ESP,
                },
                saddr,
                family,
                reqid,
                ..UsersaInfo::default()
            },
            min: SPI_MIN,
            max: u32::MAX,
        };
        let body = Body::AllocSpi(WithAttrs {
            fixed: req,
            attrs: Vec::new(),
        });
        let reply = self.channel.lock().await.get(body).await;
        let spi = match reply.map_err(|e| map_error(e, "allocate an SPI", None, ""))? {
            Body::NewSa(m) => m.info.id.spi,
            other => return Err(failed(format!("ALLOCSPI answered with {other:?}"))),
        };
        lock(&self.larval).insert(SaId { dst, spi });
        Ok(spi)
    }

    async fn add_sa(&self, sa: SaSpec) -> Result<(), KernelError> {
        let reserved = lock(&self.larval).remove(&sa.id);
        let mut result = if reserved {
            self.new_sa(&sa, true).await
        } else {
            self.new_sa(&sa, false).await
        };
        if reserved {
            match result {
                // The reservation expired (net.core.xfrm_acq_expires).
                Err(KernelError::NotFound(_)) => result = self.new_sa(&sa, false).await,
                Err(_) => {
                    lock(&self.larval).insert(sa.id);
                }
                Ok(()) => {}
            }
        }
        if result.is_ok() {
            lock(&self.directions).insert(sa.id, sa.direction);
        }
        result
    }

    async fn update_sa(&self, sa: SaSpec) -> Result<(), KernelError> {
        self.new_sa(&sa, true).await?;
        lock(&self.larval).remove(&sa.id);
        lock(&self.directions).insert(sa.id, sa.direction);
        Ok(())
    }

    async fn delete_sa(&self, id: SaId) -> Result<(), KernelError> {
        let body = Body::DelSa(WithAttrs {
            fixed: convert::sa_id(id),
            attrs: Vec::new(),
        });
        lock(&self.larval).remove(&id);
        lock(&self.directions).remove(&id);
        self.ack(body)
            .await
            .map_err(|e| map_error(e, "delete SA", Some(id.spi), ""))
    }

    async fn get_sa(&self, id: SaId) -> Result<SaInfo, KernelError> {
        let body = Body::GetSa(WithAttrs {
            fixed: convert::sa_id(id),
            attrs: Vec::new(),
        });
        let reply = self.channel.lock().await.get(body).await;
        let reply = reply.map_err(|e| map_error(e, "get SA", Some(id.spi), ""))?;
        let known = lock(&self.directions).get(&id).copied();
        match reply {
            Body::NewSa(m) => convert::sa_info(&m, known).ok_or(KernelError::NotFound(id.spi)),
            other => Err(failed(format!("GETSA answered with {other:?}"))),
        }
    }

    async fn list_sas(&self) -> Vec<SaId> {
        let dump = self.channel.lock().await.dump(msg_type::GETSA).await;
        match dump {
            Ok(bodies) => bodies
                .iter()
                .filter_map(|b| match b {
                    Body::NewSa(m) => convert::sa_info(m, None).map(|i| i.id),
                    _ => None,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(
                    "xfrm: SA dump failed: {}",
                    map_error(e, "dump SAs", None, "")
                );
                Vec::new()
            }
        }
    }

    async fn flush_sas(&self) -> Result<(), KernelError> {
        self.ack(Body::FlushSa(IPPROTO_ESP))
            .await
            .map_err(|e| map_error(e, "flush SAs", None, ""))?;
        lock(&self.larval).clear();
        lock(&self.directions).clear();
        Ok(())
    }

    async fn add_policy(&self, policy: PolicySpec) -> Result<(), KernelError> {
        let msgs = convert::policy_messages(&policy)?;
        for (i, m) in msgs.into_iter().enumerate() {
            if let Err(e) = self.ack(Body::UpdPolicy(m)).await {
                if i > 0 {
                    // Leave no half-installed inbound policy behind.
                    let _ = self
                        .delete_policy(policy.selector.clone(), policy.direction)
                        .await;
                }
                return Err(map_error(e, "add policy", None, ""));
            }
        }
        Ok(())
    }

    async fn delete_policy(
        &self,
        selector: Selector,
        direction: SaDirection,
    ) -> Result<(), KernelError> {
        let ids = convert::policy_ids(&selector, direction)?;
        for (i, id) in ids.into_iter().enumerate() {
            let body = Body::DelPolicy(WithAttrs {
                fixed: id,
                attrs: Vec::new(),
            });
            match self.ack(body).await {
                Ok(()) => {}
                // Only the first (in/out) policy must exist; the fwd one
                // exists for tunnel-mode protection only.
                Err(_) if i > 0 => {}
                Err(TransactError::Kernel { errno, .. }) if errno == libc::ENOENT => {
                    return Err(no_policy());
                }
                Err(e) => return Err(map_error(e, "delete policy", None, "")),
            }
        }
        Ok(())
    }

    async fn list_policies(&self) -> Vec<PolicySpec> {
        let dump = self.channel.lock().await.dump(msg_type::GETPOLICY).await;
        match dump {
            Ok(bodies) => bodies
                .iter()
                .filter_map(|b| match b {
                    Body::NewPolicy(m) => convert::policy_spec(m),
                    _ => None,
                })
                .collect(),
            Err(e) => {
                let e = map_error(e, "dump policies", None, "");
                tracing::warn!("xfrm: policy dump failed: {e}");
                Vec::new()
            }
        }
    }

    async fn flush_policies(&self) -> Result<(), KernelError> {
        self.ack(Body::FlushPolicy(Vec::new()))
            .await
            .map_err(|e| map_error(e, "flush policies", None, ""))
    }

    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<KernelEvent>> {
        lock(&self.events).take()
    }
}

/// The event listener: multicast messages in, [`KernelEvent`]s out, until
/// the receiver is gone or the socket fails.
async fn listen(sock: AsyncFd<Socket>, tx: mpsc::UnboundedSender<KernelEvent>) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match channel::recv(&sock, &mut buf).await {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                tracing::warn!("xfrm: kernel events were lost (socket buffer overflow)");
                continue;
            }
            Err(e) => {
                tracing::error!("xfrm: event socket failed, no more kernel events: {e}");
                return;
            }
        };
        for msg in Message::parse_all(&buf[..n]) {
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("xfrm: ignoring a kernel event that does not parse: {e}");
                    continue;
                }
            };
            for event in convert::events(&msg.body) {
                tracing::debug!("xfrm: {event:?}");
                if tx.send(event).is_err() {
                    return;
                }
            }
        }
    }
}

/// The algorithm names of `spec`, for "the kernel lacks ..." messages.
fn algorithm_names(spec: &SaSpec) -> String {
    convert::sa_message(spec)
        .map(|m| {
            m.attrs
                .iter()
                .filter_map(|a| match a {
                    super::attr::Attr::AlgAead(x)
                    | super::attr::Attr::AlgCrypt(x)
                    | super::attr::Attr::AlgAuthTrunc(x) => Some(x.name.to_string()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Maps a failed request to a [`KernelError`]: `op` names the request,
/// `spi` the SA it concerned, `algorithms` the algorithms it named.
pub(crate) fn map_error(
    e: TransactError,
    op: &str,
    spi: Option<u32>,
    algorithms: &str,
) -> KernelError {
    let (errno, message) = match e {
        TransactError::Kernel { errno, message } => (errno, message),
        TransactError::Io(e) => return failed(format!("{op}: {e}")),
        TransactError::Decode(e) => return failed(format!("{op}: bad reply from the kernel: {e}")),
    };
    let said = message
        .as_deref()
        .map(|m| format!(" (kernel: {m})"))
        .unwrap_or_default();
    let algorithm_missing = message
        .as_deref()
        .is_some_and(|m| m.to_ascii_lowercase().contains("algorithm"));
    match errno {
        libc::EEXIST => KernelError::Exists(spi.unwrap_or(0)),
        libc::EPROTONOSUPPORT => unsupported(format!(
            "{op}: the kernel has no ESP (esp4/esp6 not built or not loadable){said}"
        )),
        libc::ENOSYS => unsupported(format!(
            "{op}: the kernel lacks an algorithm of [{algorithms}]{said}"
        )),
        libc::ENOENT if algorithm_missing => unsupported(format!(
            "{op}: the kernel lacks an algorithm of [{algorithms}]{said}"
        )),
        libc::ENOENT | libc::ESRCH if spi.is_some() => {
            KernelError::NotFound(spi.unwrap_or_default())
        }
        errno => {
            let e = nix::errno::Errno::from_raw(errno);
            failed(format!("{op}: {e:?} ({}){said}", e.desc()))
        }
    }
}

fn socket_error(e: std::io::Error) -> KernelError {
    if e.raw_os_error() == Some(libc::EPROTONOSUPPORT) {
        unsupported("the kernel has no XFRM netlink (CONFIG_XFRM_USER)".into())
    } else {
        failed(format!("cannot open the XFRM netlink socket: {e}"))
    }
}

fn no_policy() -> KernelError {
    unsupported("no such policy".into())
}

fn unsupported(what: String) -> KernelError {
    KernelError::Unsupported {
        backend: BACKEND,
        what,
    }
}

fn failed(what: String) -> KernelError {
    KernelError::Failed {
        backend: BACKEND,
        what,
    }
}

/// A poisoned lock only means another thread panicked mid-update; the
/// tables stay consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn kernel(errno: i32, message: Option<&str>) -> TransactError {
        TransactError::Kernel {
            errno,
            message: message.map(str::to_owned),
        }
    }

    #[test]
    fn errnos_map_to_what_the_caller_can_act_on() {
        assert_eq!(
            map_error(kernel(libc::EEXIST, None), "add SA", Some(7), ""),
            KernelError::Exists(7)
        );
        assert_eq!(
            map_error(kernel(libc::ESRCH, None), "update SA", Some(7), ""),
            KernelError::NotFound(7)
        );
        let e = map_error(
            kernel(libc::EPROTONOSUPPORT, Some("Requested type not found")),
            "add SA",
            Some(7),
            "cbc(aes)",
        );
        let KernelError::Unsupported { what, .. } = e else {
            panic!("{e:?}")
        };
        assert!(what.contains("no ESP") && what.contains("Requested type not found"));
        let e = map_error(
            kernel(libc::ENOSYS, Some("Requested AEAD algorithm not found")),
            "add SA",
            Some(7),
            "rfc4106(gcm(aes))",
        );
        let KernelError::Unsupported { what, .. } = e else {
            panic!("{e:?}")
        };
        assert!(
            what.contains("lacks an algorithm of [rfc4106(gcm(aes))]"),
            "{what}"
        );
        let e = map_error(kernel(libc::EINVAL, None), "add policy", None, "");
        let KernelError::Failed { what, .. } = e else {
            panic!("{e:?}")
        };
        assert!(what.contains("EINVAL"), "{what}");
    }
}
