//! [`PfKeyKernel`]: the [`Kernel`] trait over a PF_KEY v2 socket
//! (`socket(PF_KEY, SOCK_RAW, PF_KEY_V2)`, RFC 2367), as Linux's `af_key`
//! module provides it.
//!
//! **Shape.** One reader task receives every message and routes it:
//! replies go to the request waiting for their (`sadb_msg_pid`,
//! `sadb_msg_seq`) and type; dump entries, which carry a countdown instead
//! of our sequence number, go to the one dump in progress (Linux allows one
//! per socket); kernel messages (pid 0) become [`KernelEvent`]s. Other key
//! managers' broadcasts are ignored. Requests time out after
//! [`REPLY_TIMEOUT`].
//!
//! **Events.** The socket registers for ESP at open, so ACQUIREs and
//! EXPIREs arrive. A Linux ACQUIRE names its policy by index but carries
//! no request ID, so the backend asks for the policy (SADB_X_SPDGET) and
//! raises [`KernelEvent::Acquire`] with the policy's reqid and protocol;
//! its addresses are the SA's endpoints, as Linux says nothing about the
//! packet. EXPIRE is hard when it carries the hard lifetime, soft
//! otherwise; expiries of larval SAs (SPI reservations never filled in)
//! raise nothing. SADB_X_MIGRATE becomes [`KernelEvent::Migrate`]. **The
//! stream ending means the socket failed**: later requests fail too.
//!
//! **SPIs.** [`Kernel::alloc_spi`] sends GETSPI, which leaves a larval SA;
//! `add_sa` of that (destination, SPI) fills it in with UPDATE, any other
//! with ADD. Linux hands a second GETSPI with the same addresses and reqid
//! the same larval SA; the backend notices and asks again with a private
//! reqid (the larval SA's reqid is replaced by UPDATE). Linux deletes
//! larval SAs after `net.core.xfrm_acq_expires` (30 s); `add_sa` then
//! falls back to ADD.
//!
//! **Limits of Linux PF_KEY**, refused with [`KernelError::Unsupported`]:
//! ESN; ChaCha20-Poly1305; AEAD ciphers generally (`af_key` looks cipher
//! numbers up only in its non-AEAD table, so AES-GCM is refused before
//! sending when the REGISTER reply does not list it, and its ENOSYS is
//! explained if sent); policy reqids above 16383; selectors that are not
//! prefixes. The replay window is at most 32 packets (larger requests are
//! clamped; 0 gives 32). SA traffic selectors are not sent (PF_KEY has no
//! field for them; policies carry them). PF_KEY does not know SA
//! directions: the backend remembers those it installed and otherwise
//! takes an SA to a local address as inbound.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use super::convert::{self, BACKEND};
use super::msg::{Message, MsgType, PF_KEY_V2, SaType};
use crate::{
    Kernel, KernelError, KernelEvent, PolicySpec, SaDirection, SaId, SaInfo, SaSpec, Selector,
};

/// How long a request waits for its reply. Linux answers from inside
/// `sendmsg`, so only a full receive queue (a lost reply) reaches it.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Receive buffer asked for, so dumps and event bursts are not dropped.
const RCVBUF: usize = 1 << 20;
/// The longest message `sadb_msg_len` can describe.
const MAX_MSG: usize = 0xffff * 8;

/// Sequence numbers of our requests. Process-wide, as replies are
/// matched by (pid, seq) and every socket of a process has the same pid;
/// the high bit is always set so that a GETSPI never carries the small
/// sequence numbers Linux gives its ACQUIREs (`pfkey_getspi` looks a
/// nonzero `sadb_msg_seq` up as an ACQUIRE's first).
static NEXT_SEQ: AtomicU32 = AtomicU32::new(1);
/// Request IDs for a repeated GETSPI (see the module docs), above any a
/// policy can carry.
static PRIVATE_REQID: AtomicU32 = AtomicU32::new(0);

fn next_seq() -> u32 {
    NEXT_SEQ.fetch_add(1, Ordering::Relaxed) | 0x8000_0000
}

/// The PF_KEY v2 backend. See the module docs.
#[derive(Debug)]
pub struct PfKeyKernel {
    shared: Arc<Shared>,
    reader: tokio::task::JoinHandle<()>,
    events: Mutex<Option<mpsc::UnboundedReceiver<KernelEvent>>>,
    /// Algorithm numbers the REGISTER reply listed (empty: not checked).
    encrypt_algs: Vec<u8>,
    auth_algs: Vec<u8>,
}

/// What the reader task and the requests share.
#[derive(Debug)]
struct Shared {
    sock: AsyncFd<Socket>,
    pid: u32,
    waiters: Mutex<HashMap<u32, (MsgType, mpsc::UnboundedSender<Message>)>>,
    dump: Mutex<Option<(MsgType, mpsc::UnboundedSender<Message>)>>,
    dump_lock: tokio::sync::Mutex<()>,
    /// SPIs reserved with GETSPI and not yet filled in.
    larval: Mutex<HashSet<SaId>>,
    /// Directions of the SAs this backend installed.
    directions: Mutex<HashMap<SaId, SaDirection>>,
    /// Dropped when the reader stops, which ends the event stream.
    events: Mutex<Option<mpsc::UnboundedSender<KernelEvent>>>,
    /// Set when the reader stopped: requests fail at once.
    closed: std::sync::atomic::AtomicBool,
}

/// Why a request failed: the kernel's errno, or our own error.
#[derive(Debug)]
enum Refusal {
    Errno(u8),
    Local(KernelError),
}

impl PfKeyKernel {
    /// Opens the PF_KEY socket, starts the reader task and registers for
    /// ESP. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// [`KernelError::Unsupported`] on a kernel without AF_KEY ("load the
    /// af_key module or use --kernel xfrm"); [`KernelError::Failed`]
    /// without `CAP_NET_ADMIN` or if REGISTER is refused.
    pub async fn open() -> Result<Arc<Self>, KernelError> {
        Self::start(open_socket()?).await.map(Arc::new)
    }

    /// Starts the reader over `sock` and registers for ESP. `sock` is the
    /// AF_KEY socket, or in tests one end of a socket pair whose other end
    /// plays the kernel.
    async fn start(sock: AsyncFd<Socket>) -> Result<Self, KernelError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            sock,
            pid: std::process::id(),
            waiters: Mutex::default(),
            dump: Mutex::default(),
            dump_lock: tokio::sync::Mutex::default(),
            larval: Mutex::default(),
            directions: Mutex::default(),
            events: Mutex::new(Some(tx)),
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        let reader = tokio::spawn(read_loop(Arc::clone(&shared)));
        let mut kernel = Self {
            shared,
            reader,
            events: Mutex::new(Some(rx)),
            encrypt_algs: Vec::new(),
            auth_algs: Vec::new(),
        };
        let reply = kernel
            .shared
            .request(Message::new(MsgType::Register, SaType::Esp, 0, 0))
            .await
            .map_err(|r| refused(r, "registering for ESP (SADB_REGISTER)"))?;
        let ids = |encrypt| {
            reply
                .supported(encrypt)
                .map(|algs| algs.iter().map(|a| a.id).collect())
                .unwrap_or_default()
        };
        kernel.encrypt_algs = ids(true);
        kernel.auth_algs = ids(false);
        Ok(kernel)
    }

    /// Refuses algorithms the REGISTER reply did not list, before the
    /// kernel answers a bare ENOSYS.
    fn check_algorithms(&self, sa: &SaSpec) -> Result<(), KernelError> {
        let encrypt = convert::encr_alg(sa.encr)?;
        let auth = convert::auth_alg(sa.auth)?;
        let offered = |list: &[u8], id: u8| list.is_empty() || id == 0 || list.contains(&id);
        if !offered(&self.encrypt_algs, encrypt) {
            return Err(KernelError::Unsupported {
                backend: BACKEND,
                what: format!(
                    "this kernel's PF_KEY does not offer ENCR transform {} (PF_KEY algorithm \
                     {encrypt}; its SADB_REGISTER reply lists {:?}; Linux af_key has no AEAD \
                     ciphers such as AES-GCM); use --kernel xfrm",
                    sa.encr.id, self.encrypt_algs
                ),
            });
        }
        if !offered(&self.auth_algs, auth) {
            return Err(KernelError::Unsupported {
                backend: BACKEND,
                what: format!(
                    "this kernel's PF_KEY does not offer PF_KEY authentication algorithm \
                     {auth} (its SADB_REGISTER reply lists {:?})",
                    self.auth_algs
                ),
            });
        }
        Ok(())
    }

    async fn getspi(&self, src: IpAddr, dst: IpAddr, reqid: u32) -> Result<u32, KernelError> {
        let reply = self
            .shared
            .request(convert::getspi_message(src, dst, reqid)?)
            .await
            .map_err(|r| refused(r, "reserving an SPI (SADB_GETSPI)"))?;
        reply
            .sa()
            .map(|sa| sa.spi)
            .ok_or_else(|| failed("the GETSPI reply carries no SA extension"))
    }

    fn direction(&self, id: SaId) -> SaDirection {
        if let Some(d) = lock(&self.shared.directions).get(&id) {
            return *d;
        }
        // Binding succeeds only to an address of this host (unless
        // net.ipv4.ip_nonlocal_bind is set).
        if std::net::UdpSocket::bind(SocketAddr::new(id.dst, 0)).is_ok() {
            SaDirection::Inbound
        } else {
            SaDirection::Outbound
        }
    }

    async fn install(&self, msg_type: MsgType, sa: &SaSpec) -> Result<(), Refusal> {
        let msg = convert::sa_message(msg_type, sa).map_err(Refusal::Local)?;
        self.shared.request(msg).await.map(|_| ())
    }
}

impl Drop for PfKeyKernel {
    fn drop(&mut self) {
        // The reader holds the socket; stopping it closes the socket.
        self.reader.abort();
    }
}

impl Kernel for PfKeyKernel {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn carries_traffic(&self) -> bool {
        true
    }

    async fn alloc_spi(&self, src: IpAddr, dst: IpAddr, reqid: u32) -> Result<u32, KernelError> {
        let spi = self.getspi(src, dst, reqid).await?;
        if lock(&self.shared.larval).insert(SaId { dst, spi }) {
            return Ok(spi);
        }
        let private = 0x4000_0000 | PRIVATE_REQID.fetch_add(1, Ordering::Relaxed);
        let spi = self.getspi(src, dst, private).await?;
        if lock(&self.shared.larval).insert(SaId { dst, spi }) {
            return Ok(spi);
        }
        Err(failed(format!(
            "the kernel handed out SPI {spi:#010x} twice for {src} -> {dst}"
        )))
    }

    async fn add_sa(&self, sa: SaSpec) -> Result<(), KernelError> {
        self.check_algorithms(&sa)?;
        let larval = lock(&self.shared.larval).remove(&sa.id);
        let mut result = if larval {
            self.install(MsgType::Update, &sa).await
        } else {
            self.install(MsgType::Add, &sa).await
        };
        if larval && matches!(result, Err(Refusal::Errno(e)) if errno_is(e, libc::ESRCH)) {
            // The reservation expired before the key exchange finished.
            result = self.install(MsgType::Add, &sa).await;
        }
        result.map_err(|r| sa_error(r, &sa, "installing"))?;
        lock(&self.shared.directions).insert(sa.id, sa.direction);
        Ok(())
    }

    async fn update_sa(&self, sa: SaSpec) -> Result<(), KernelError> {
        self.check_algorithms(&sa)?;
        self.install(MsgType::Update, &sa)
            .await
            .map_err(|r| sa_error(r, &sa, "updating"))
    }

    async fn delete_sa(&self, id: SaId) -> Result<(), KernelError> {
        let msg = convert::sa_ref_message(MsgType::Delete, id);
        let result = self.shared.request(msg).await;
        lock(&self.shared.directions).remove(&id);
        lock(&self.shared.larval).remove(&id);
        result.map(|_| ()).map_err(|r| id_error(r, id, "deleting"))
    }

    async fn get_sa(&self, id: SaId) -> Result<SaInfo, KernelError> {
        let msg = convert::sa_ref_message(MsgType::Get, id);
        let reply = self
            .shared
            .request(msg)
            .await
            .map_err(|r| id_error(r, id, "reading"))?;
        convert::sa_info(&reply, self.direction(id))
            .ok_or_else(|| failed("the GET reply lacks the SA, address or SA2 extension"))
    }

    async fn list_sas(&self) -> Vec<SaId> {
        let msg = Message::new(MsgType::Dump, SaType::Esp, 0, 0);
        match self.shared.dump(msg).await {
            Ok(entries) => entries
                .iter()
                .filter(|m| convert::is_installed_sa(m))
                .filter_map(convert::sa_id)
                .collect(),
            Err(r) => {
                tracing::warn!("listing SAs failed: {}", refused(r, "SADB_DUMP"));
                Vec::new()
            }
        }
    }

    async fn flush_sas(&self) -> Result<(), KernelError> {
        let msg = Message::new(MsgType::Flush, SaType::Esp, 0, 0);
        self.shared
            .request(msg)
            .await
            .map_err(|r| refused(r, "flushing ESP SAs (SADB_FLUSH)"))?;
        lock(&self.shared.larval).clear();
        lock(&self.shared.directions).clear();
        Ok(())
    }

    async fn add_policy(&self, policy: PolicySpec) -> Result<(), KernelError> {
        let mut installed = Vec::new();
        for (msg, dir) in convert::policy_messages(MsgType::XSpdAdd, &policy)? {
            let mut result = self.shared.request(msg).await;
            if matches!(result, Err(Refusal::Errno(e)) if errno_is(e, libc::EEXIST)) {
                // Replace, as the other backends do for the same selector.
                let (update, _) = convert::policy_messages(MsgType::XSpdUpdate, &policy)?
                    .into_iter()
                    .find(|(_, d)| *d == dir)
                    .ok_or_else(|| failed("policy directions changed between calls"))?;
                result = self.shared.request(update).await;
            }
            if let Err(r) = result {
                for d in installed {
                    let undo = convert::policy_delete_message(&policy.selector, d)?;
                    let _ = self.shared.request(undo).await;
                }
                return Err(refused(r, "installing a policy (SADB_X_SPDADD)"));
            }
            installed.push(dir);
        }
        Ok(())
    }

    async fn delete_policy(
        &self,
        selector: Selector,
        direction: SaDirection,
    ) -> Result<(), KernelError> {
        let mut first = true;
        for dir in convert::dirs(direction, &crate::PolicyAction::Bypass) {
            let msg = convert::policy_delete_message(&selector, dir)?;
            match self.shared.request(msg).await {
                Ok(_) => {}
                // A FWD twin exists only for some actions.
                Err(Refusal::Errno(e)) if !first && errno_is(e, libc::ENOENT) => {}
                Err(Refusal::Errno(e)) if errno_is(e, libc::ENOENT) => {
                    return Err(failed("no such policy"));
                }
                Err(r) => return Err(refused(r, "deleting a policy (SADB_X_SPDDELETE)")),
            }
            first = false;
        }
        Ok(())
    }

    async fn list_policies(&self) -> Vec<PolicySpec> {
        let msg = Message::new(MsgType::XSpdDump, SaType::Unspec, 0, 0);
        match self.shared.dump(msg).await {
            Ok(entries) => entries
                .iter()
                .filter_map(convert::policy_spec)
                .filter(|(_, dir)| *dir != super::ext::PolicyDir::Fwd)
                .map(|(spec, _)| spec)
                .collect(),
            Err(r) => {
                tracing::warn!("listing policies failed: {}", refused(r, "SADB_X_SPDDUMP"));
                Vec::new()
            }
        }
    }

    async fn flush_policies(&self) -> Result<(), KernelError> {
        let msg = Message::new(MsgType::XSpdFlush, SaType::Unspec, 0, 0);
        self.shared
            .request(msg)
            .await
            .map(|_| ())
            .map_err(|r| refused(r, "flushing policies (SADB_X_SPDFLUSH)"))
    }

    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<KernelEvent>> {
        lock(&self.events).take()
    }
}

impl Shared {
    /// Sends `msg` with a fresh sequence number and waits for its reply.
    async fn request(&self, mut msg: Message) -> Result<Message, Refusal> {
        let seq = next_seq();
        let msg_type = msg.header.msg_type;
        msg.header.seq = seq;
        msg.header.pid = self.pid;
        let bytes = msg
            .emit()
            .map_err(|e| Refusal::Local(failed(e.to_string())))?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        lock(&self.waiters).insert(seq, (msg_type, tx));
        let _waiter = Waiter(&self.waiters, seq);
        self.send(&bytes).await.map_err(Refusal::Local)?;
        answer(
            tokio::time::timeout(REPLY_TIMEOUT, rx.recv()).await,
            msg_type,
        )
    }

    /// Sends a dump request and collects its entries up to the last
    /// (`sadb_msg_seq` 0, Linux `pfkey_do_dump`). An empty table answers
    /// ENOENT, which is an empty list here.
    async fn dump(&self, mut msg: Message) -> Result<Vec<Message>, Refusal> {
        let _one_at_a_time = self.dump_lock.lock().await;
        let msg_type = msg.header.msg_type;
        msg.header.seq = next_seq();
        msg.header.pid = self.pid;
        let bytes = msg
            .emit()
            .map_err(|e| Refusal::Local(failed(e.to_string())))?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        *lock(&self.dump) = Some((msg_type, tx));
        let _sink = DumpSink(&self.dump);
        self.send(&bytes).await.map_err(Refusal::Local)?;
        let mut entries = Vec::new();
        loop {
            let entry = tokio::time::timeout(REPLY_TIMEOUT, rx.recv()).await;
            let entry = match answer(entry, msg_type) {
                Err(Refusal::Errno(e)) if entries.is_empty() && errno_is(e, libc::ENOENT) => {
                    return Ok(entries);
                }
                other => other?,
            };
            let last = entry.header.seq == 0;
            entries.push(entry);
            if last {
                return Ok(entries);
            }
        }
    }

    async fn send(&self, bytes: &[u8]) -> Result<(), KernelError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(failed("the PF_KEY socket failed earlier"));
        }
        let sent = self
            .sock
            .async_io(Interest::WRITABLE, |s| {
                let mut w: &Socket = s;
                w.write(bytes)
            })
            .await
            .map_err(|e| failed(format!("sending to the PF_KEY socket: {e}")))?;
        if sent != bytes.len() {
            return Err(failed("short write to the PF_KEY socket"));
        }
        Ok(())
    }

    /// Hands a received message to its request, its dump, or the event
    /// stream.
    fn route(self: &Arc<Self>, msg: Message) {
        let h = msg.header;
        if h.pid == self.pid {
            if let Some((t, tx)) = lock(&self.dump).as_ref()
                && *t == h.msg_type
            {
                let _ = tx.send(msg);
                return;
            }
            if let Some((t, tx)) = lock(&self.waiters).get(&h.seq)
                && *t == h.msg_type
            {
                let _ = tx.send(msg);
            }
            return;
        }
        if h.pid != 0 || h.errno != 0 {
            return; // another key manager's request or reply
        }
        match h.msg_type {
            MsgType::Acquire if h.satype == SaType::Esp => self.on_acquire(&msg),
            MsgType::Expire => self.on_expire(&msg),
            MsgType::XMigrate => {
                if let Some(ev) = convert::migrate_event(&msg) {
                    self.emit(ev);
                }
            }
            _ => {}
        }
    }

    fn emit(&self, ev: KernelEvent) {
        if let Some(tx) = lock(&self.events).as_ref() {
            let _ = tx.send(ev);
        }
    }

    /// After the socket failed: ends the event stream and fails every
    /// waiting request at once rather than at its timeout.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        lock(&self.events).take();
        lock(&self.waiters).clear();
        lock(&self.dump).take();
    }

    fn on_acquire(self: &Arc<Self>, msg: &Message) {
        let Some((policy, src, dst)) = convert::acquire_parts(msg) else {
            tracing::debug!("ignoring an ACQUIRE without addresses or policy");
            return;
        };
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            let reply = shared.request(convert::policy_get_message(policy)).await;
            match reply.map(|r| convert::acquire_event(src, dst, &r)) {
                Ok(Some(ev)) => shared.emit(ev),
                Ok(None) => tracing::warn!(
                    "ACQUIRE for {src} -> {dst}: policy {policy} is not an ESP protect policy"
                ),
                Err(r) => tracing::warn!(
                    "ACQUIRE for {src} -> {dst}: {}",
                    refused(r, "reading its policy (SADB_X_SPDGET)")
                ),
            }
        });
    }

    fn on_expire(&self, msg: &Message) {
        let Some(id) = convert::sa_id(msg) else {
            return;
        };
        match convert::expire_event(msg) {
            Some(ev) => {
                if matches!(ev, KernelEvent::Expire { hard: true, .. }) {
                    lock(&self.directions).remove(&id);
                }
                self.emit(ev);
            }
            None => {
                lock(&self.larval).remove(&id);
            }
        }
    }
}

/// The reader task: every message the socket receives, until it fails.
async fn read_loop(shared: Arc<Shared>) {
    let mut buf = vec![0; MAX_MSG];
    loop {
        match read_one(&shared.sock, &mut buf).await {
            Ok(n) => match Message::parse(buf.get(..n).unwrap_or_default()) {
                Ok(msg) => shared.route(msg),
                Err(e) => tracing::debug!("ignoring an undecodable PF_KEY message: {e}"),
            },
            Err(e) => {
                tracing::error!("the PF_KEY socket failed, no more kernel events: {e}");
                shared.close();
                break;
            }
        }
    }
}

/// Receives one message into `buf`. A socket that can no longer be read
/// is an error: tokio keeps reporting a read-closed socket readable, so
/// retrying would spin. (AF_KEY sockets cannot be shut down; the socket
/// pairs of the tests can.)
async fn read_one(sock: &AsyncFd<Socket>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = sock.readable().await?;
        let closed = guard.ready().is_read_closed();
        match guard.try_io(|s| {
            let mut r: &Socket = s.get_ref();
            r.read(buf)
        }) {
            // PF_KEY never sends an empty message.
            Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(result) => return result,
            Err(_would_block) if closed => return Err(io::ErrorKind::UnexpectedEof.into()),
            Err(_would_block) => {}
        }
    }
}

/// Removes a request's waiter however the request ends.
struct Waiter<'a>(
    &'a Mutex<HashMap<u32, (MsgType, mpsc::UnboundedSender<Message>)>>,
    u32,
);

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        lock(self.0).remove(&self.1);
    }
}

/// Ends a dump's routing however the dump ends.
struct DumpSink<'a>(&'a Mutex<Option<(MsgType, mpsc::UnboundedSender<Message>)>>);

impl Drop for DumpSink<'_> {
    fn drop(&mut self) {
        *lock(self.0) = None;
    }
}

fn answer(
    got: Result<Option<Message>, tokio::time::error::Elapsed>,
    msg_type: MsgType,
) -> Result<Message, Refusal> {
    match got {
        Ok(Some(m)) if m.header.errno == 0 => Ok(m),
        Ok(Some(m)) => Err(Refusal::Errno(m.header.errno)),
        Ok(None) => Err(Refusal::Local(failed("the PF_KEY reader task stopped"))),
        Err(_) => Err(Refusal::Local(failed(format!(
            "no reply to {msg_type:?} within {REPLY_TIMEOUT:?}"
        )))),
    }
}

fn open_socket() -> Result<AsyncFd<Socket>, KernelError> {
    let protocol = Protocol::from(i32::from(PF_KEY_V2));
    let sock =
        Socket::new(Domain::from(libc::PF_KEY), Type::RAW, Some(protocol)).map_err(open_error)?;
    sock.set_nonblocking(true)
        .map_err(|e| failed(format!("PF_KEY socket: {e}")))?;
    // Best effort: the default may be lower and is enough for small tables.
    let _ = sock.set_recv_buffer_size(RCVBUF);
    crate::sys::register(sock)
        .map_err(|e| failed(format!("registering the PF_KEY socket with tokio: {e}")))
}

fn open_error(e: io::Error) -> KernelError {
    match e.raw_os_error() {
        Some(libc::EAFNOSUPPORT) => KernelError::Unsupported {
            backend: BACKEND,
            what: "this kernel has no PF_KEY (AF_KEY) socket support: load the af_key module \
                   or use --kernel xfrm"
                .into(),
        },
        Some(libc::EPROTONOSUPPORT) => KernelError::Unsupported {
            backend: BACKEND,
            what: "this kernel's AF_KEY sockets do not speak PF_KEY v2".into(),
        },
        Some(libc::EPERM | libc::EACCES) => {
            failed("opening a PF_KEY socket needs CAP_NET_ADMIN (run as root)")
        }
        _ => failed(format!("cannot open a PF_KEY socket: {e}")),
    }
}

fn failed(what: impl Into<String>) -> KernelError {
    KernelError::Failed {
        backend: BACKEND,
        what: what.into(),
    }
}

fn errno_is(errno: u8, want: i32) -> bool {
    i32::from(errno) == want
}

fn errno_text(errno: u8) -> io::Error {
    io::Error::from_raw_os_error(errno.into())
}

/// A refusal as an error, saying what was being done.
fn refused(r: Refusal, doing: &str) -> KernelError {
    match r {
        Refusal::Local(e) => e,
        Refusal::Errno(n) => failed(format!("the kernel refused {doing}: {}", errno_text(n))),
    }
}

/// Errors of ADD and UPDATE: EEXIST, ESRCH and ENOSYS mean something.
fn sa_error(r: Refusal, sa: &SaSpec, doing: &str) -> KernelError {
    match r {
        Refusal::Errno(e) if errno_is(e, libc::ENOSYS) => KernelError::Unsupported {
            backend: BACKEND,
            what: format!(
                "the kernel has no algorithm for ENCR {} / INTEG {:?} over PF_KEY (ENOSYS); \
                 Linux af_key cannot install AEAD ciphers such as AES-GCM: use --kernel xfrm",
                sa.encr.id,
                sa.auth.map(|a| a.id)
            ),
        },
        r => id_error(r, sa.id, doing),
    }
}

/// Errors of requests naming one SA.
fn id_error(r: Refusal, id: SaId, doing: &str) -> KernelError {
    match r {
        Refusal::Errno(e) if errno_is(e, libc::EEXIST) => KernelError::Exists(id.spi),
        Refusal::Errno(e) if errno_is(e, libc::ESRCH) || errno_is(e, libc::ENOENT) => {
            KernelError::NotFound(id.spi)
        }
        r => refused(r, &format!("{doing} SA {:#010x} to {}", id.spi, id.dst)),
    }
}

/// A poisoned lock only means another thread panicked mid-update; the
/// maps stay consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
