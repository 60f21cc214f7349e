//! The datapath task: one tokio task that owns the [`Sad`], the TUN
//! device, the raw ESP sockets and every packet buffer (see
//! [`super::datapath`] for the shape and the control side).
//!
//! - TUN read → [`Sad::encapsulate`] → raw socket (plain ESP) or an
//!   attached UDP socket (ESP-in-UDP, RFC 3948, no marker). With TUN
//!   offloads (`IFF_VNET_HDR`, TSO/USO; see [`super::datapath`]) one read
//!   can be a GSO super-packet: tun-rs splits it into MTU-sized inner
//!   packets first, so SA counters, lifetimes and sequence numbers count
//!   inner packets as without offloads. The sealed packets of one read go
//!   out with one `sendmmsg` per run of packets sharing a path;
//! - raw sockets read with `recvmmsg`, attached port-4500 sockets read
//!   with `UDP_GRO` (one read, many ESP datagrams; whatever is not ESP
//!   goes back to iked through the socket's [`NonEspSink`]), or queued
//!   [`Datagram`]s (ESP iked read itself) →
//!   [`Sad::decapsulate`] → a [`TunBatch`] of inner packets (transport
//!   mode: rebuilt header + payload), written after each event, coalesced
//!   by tun-rs's GRO (TCP, and UDP where the kernel has USO) into few
//!   writes. Non-coalescable packets (ICMP, fragments, IPv6 with extension
//!   headers…) are written one by one, as before;
//! - control [`Command`]s, and after each event the ACQUIREs and expiries
//!   the [`Sad`] queued, forwarded as [`KernelEvent`]s. A hard expiry has
//!   already removed the SA from the [`Sad`]; the task also takes it out of
//!   the shared [`Control`] registry and deletes the routes only it held.
//!
//! The task ends when the last [`Command`] sender goes (the kernel object
//! is dropped) or, unexpectedly, when the TUN device fails. Either way it
//! drops the event sender, so [`crate::Kernel::take_events`] ends: that is
//! how the daemon learns the datapath is gone.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use socket2::Socket;
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tun_rs::{AsyncDevice, ExpandBuffer, GROTable, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

use super::datapath::{Control, NonEspSink};
use super::natt::{self, NatTDatagram};
use super::route;
use super::sad::{Exists, Lifetime, Sad, SadEntry, Transmit};
use super::socket;
use super::stats::DropReason;
use crate::{KernelEvent, PolicySpec, SaDirection, SaId, Selector, UdpEncap};

/// Largest packet handled (an IP datagram's maximum).
const MAX_PACKET: usize = 65_535;
/// Room for ESP header, IV, padding and ICV beyond the inner packet.
const MAX_OVERHEAD: usize = 8 + 16 + 16 + 2 + 32;
/// Packets handled per readiness event before yielding to other sources.
const BURST: usize = 64;
/// How long ESP-in-UDP goes without UDP GSO after the kernel refused it.
const GSO_RETRY: Duration = Duration::from_secs(60);
/// Reads of an attached UDP socket per readiness event (each one datagram
/// or up to 64 KB of them coalesced).
const UDP_READS: usize = 8;
/// Datagrams read from a raw socket with one `recvmmsg`.
const RECV_BATCH: usize = 32;
/// Where the inner packets of a TUN read start in their buffers: room for
/// the ESP header and the largest IV (16, AES-CBC), sealed in place.
const SEG_AT: usize = 8 + 16;
/// Where inner packets start in a [`TunBatch`] buffer: after the virtio
/// header, with room in front for what a raw socket delivers before the
/// inner packet, so that the common case decrypts in place and needs no
/// copy (see [`RECV_AT_V4`]).
const INNER_AT: usize = 64;
/// Where an IPv4 raw socket's datagram is received into a [`TunBatch`]
/// buffer: a 20-byte IPv4 header, the 8-byte ESP header and an 8-byte IV
/// (AES-GCM, ChaCha20-Poly1305) then put a tunnel-mode inner packet right
/// at [`INNER_AT`]. Other layouts are moved there after decryption.
const RECV_AT_V4: usize = INNER_AT - 20 - 8 - 8;
/// The same for IPv6 raw sockets, which deliver no IP header.
const RECV_AT_V6: usize = INNER_AT - 8 - 8;

/// Control requests to the datapath task, answered once applied.
pub(super) enum Command {
    Add(Box<SadEntry>, oneshot::Sender<Result<(), Exists>>),
    Delete(SaId, oneshot::Sender<bool>),
    SetLifetime(SaId, Lifetime, oneshot::Sender<bool>),
    Update(SaId, Lifetime, Option<UdpEncap>, oneshot::Sender<bool>),
    /// A port-4500 socket bound to the address, to read and send from, and
    /// the number of the hand-off connection that attached it.
    Attach(SocketAddr, Arc<UdpSocket>, NonEspSink, u64),
    /// That connection ended: let go of the socket, unless a newer
    /// connection attached one for the same address since.
    Detach(SocketAddr, u64),
    AddPolicy(PolicySpec, oneshot::Sender<()>),
    DeletePolicy(Selector, SaDirection, oneshot::Sender<bool>),
}

/// An ESP-in-UDP datagram handed over by `handle_udp_esp`, in a pooled
/// buffer.
pub(super) struct Datagram {
    pub(super) buf: Vec<u8>,
}

/// The datapath task's state.
pub(super) struct Datapath {
    pub(super) sad: Sad,
    pub(super) io: Io,
    pub(super) bufs: Buffers,
    pub(super) ctl: mpsc::UnboundedReceiver<Command>,
    pub(super) udp: mpsc::Receiver<Datagram>,
    pub(super) pool: Arc<ArrayQueue<Vec<u8>>>,
    pub(super) events: Events,
}

/// Where the task reports: the event stream, and the control side's
/// registry of SAs, which hard expiries update.
pub(super) struct Events {
    pub(super) tx: mpsc::UnboundedSender<KernelEvent>,
    pub(super) control: Arc<Mutex<Control>>,
    /// The TUN device's name, for deleting the routes of expired SAs.
    pub(super) tun_name: String,
}

/// Why the task ended.
enum Exit {
    /// Every control handle is gone: a deliberate shutdown.
    Shutdown,
    /// The TUN device failed.
    Tun(std::io::Error),
}

/// The datapath's devices and sockets.
pub(super) struct Io {
    pub(super) tun: AsyncDevice,
    pub(super) raw4: AsyncFd<Socket>,
    pub(super) raw6: Option<AsyncFd<Socket>>,
    pub(super) udp: HashMap<SocketAddr, Arc<UdpSocket>>,
    /// The same sockets, read here too, with where their IKE goes.
    pub(super) readers: Vec<UdpReader>,
}

/// An attached port-4500 socket the task reads.
pub(super) struct UdpReader {
    local: SocketAddr,
    sock: Arc<UdpSocket>,
    to_iked: NonEspSink,
    /// The hand-off connection that attached it.
    owner: u64,
}

/// The task's packet buffers, allocated once (zeroed allocations: pages
/// nobody writes to stay untouched).
pub(super) struct Buffers {
    /// One TUN read: the virtio header (with offloads) and the packet,
    /// possibly a GSO super-packet.
    tun_in: Vec<u8>,
    /// The inner packets of one TUN read, after GSO splitting, each at
    /// [`SEG_AT`] (room for the ESP header and IV in
    /// front, padding and ICV behind: sealed in place), and their lengths.
    segs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    /// Lengths of the datagrams of one `recvmmsg` on a raw socket (they
    /// are received straight into [`TunBatch`] buffers).
    raw_lens: Vec<usize>,
    /// One read of an attached UDP socket: a datagram, or the datagrams
    /// `UDP_GRO` coalesced, decrypted in place; and its control messages.
    udp_in: Vec<u8>,
    udp_control: Vec<u8>,
    /// Destinations whose path refused a UDP GSO send, and until when
    /// their ESP-in-UDP goes out one datagram each (see [`GSO_RETRY`]).
    gso_refused: HashMap<SocketAddr, Instant>,
    /// The sealed packets of one TUN read: where each is and goes.
    txs: Vec<Sealed>,
    to_tun: TunBatch,
}

impl Buffers {
    pub(super) fn new() -> Self {
        Self {
            tun_in: vec![0; VIRTIO_NET_HDR_LEN + MAX_PACKET],
            segs: (0..IDEAL_BATCH_SIZE)
                .map(|_| vec![0; SEG_AT + MAX_PACKET + MAX_OVERHEAD])
                .collect(),
            sizes: vec![0; IDEAL_BATCH_SIZE],
            raw_lens: vec![0; RECV_BATCH],
            udp_in: vec![0; MAX_PACKET],
            udp_control: natt::gro_control_buffer(),
            gso_refused: HashMap::new(),
            txs: Vec::with_capacity(IDEAL_BATCH_SIZE),
            to_tun: TunBatch {
                bufs: (0..BURST).map(|_| PacketBuf::new()).collect(),
                pending: 0,
                gro: GROTable::new(),
            },
        }
    }
}

/// A packet buffer of fixed capacity and a length: a `recvmmsg` fills it
/// without zeroing it first, and GRO appends to it within its capacity.
struct PacketBuf {
    data: Box<[u8]>,
    len: usize,
}

impl PacketBuf {
    /// Room for a whole coalesced packet after [`INNER_AT`] (GRO appends
    /// only within a buffer's capacity, and asks for twice the offset).
    fn new() -> Self {
        Self {
            data: vec![0; 2 * INNER_AT + MAX_PACKET].into_boxed_slice(),
            len: 0,
        }
    }
}

impl PacketBuf {
    /// All of the buffer from `at` on, whatever its length: where a
    /// datagram is received.
    fn room(&mut self, at: usize) -> &mut [u8] {
        self.data.get_mut(at..).unwrap_or_default()
    }
}

impl AsRef<[u8]> for PacketBuf {
    fn as_ref(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

impl AsMut<[u8]> for PacketBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.data[..self.len]
    }
}

impl ExpandBuffer for PacketBuf {
    fn buf_capacity(&self) -> usize {
        self.data.len()
    }

    /// Clamped to the capacity (GRO checks it before growing a buffer).
    fn buf_resize(&mut self, new_len: usize, value: u8) {
        let new_len = new_len.min(self.data.len());
        if new_len > self.len {
            self.data[self.len..new_len].fill(value);
        }
        self.len = new_len;
    }

    /// Clamped to the capacity, as [`Self::buf_resize`].
    fn buf_extend_from_slice(&mut self, src: &[u8]) {
        let end = (self.len + src.len()).min(self.data.len());
        let n = end - self.len;
        self.data[self.len..end].copy_from_slice(&src[..n]);
        self.len = end;
    }
}

/// Decapsulated inner packets waiting for the TUN write, each at
/// [`INNER_AT`] of its buffer (the virtio header goes just before it):
/// written together, coalesced (GRO) into few writes when the device has
/// offloads. Raw sockets receive straight into the free buffers
/// ([`Self::free`]), which are then decrypted in place and
/// [committed](Self::commit).
struct TunBatch {
    bufs: Vec<PacketBuf>,
    pending: usize,
    gro: GROTable,
}

impl TunBatch {
    /// Queues `header` + `payload` as one inner packet (a copy); writes the
    /// batch when it is full.
    fn push(&mut self, io: &Io, sad: &Sad, header: &[u8], payload: &[u8]) {
        let buf = &mut self.bufs[self.pending];
        let at = INNER_AT + header.len();
        let Some(room) = buf.data.get_mut(INNER_AT..at + payload.len()) else {
            sad.count_drop(DropReason::Malformed);
            return;
        };
        room[..header.len()].copy_from_slice(header);
        room[header.len()..].copy_from_slice(payload);
        buf.len = at + payload.len();
        self.pending += 1;
        if self.pending == self.bufs.len() {
            self.flush(io, sad);
        }
    }

    /// At least `n` free buffers, after the queued ones: writes the batch
    /// first if there are fewer.
    fn free(&mut self, io: &Io, sad: &Sad, n: usize) -> &mut [PacketBuf] {
        if self.bufs.len() - self.pending < n {
            self.flush(io, sad);
        }
        &mut self.bufs[self.pending..]
    }

    /// Queues free buffer `i` (at or after the queued ones) whose inner
    /// packet is `header` followed by `data[payload]`: moved to
    /// [`INNER_AT`] unless it is there already (the common case).
    fn commit(&mut self, i: usize, header: &[u8], payload: std::ops::Range<usize>) {
        let buf = &mut self.bufs[i];
        let at = INNER_AT + header.len();
        let len = payload.len();
        if at + len > buf.data.len() {
            return;
        }
        if payload.start != at {
            buf.data.copy_within(payload, at);
        }
        buf.data[INNER_AT..at].copy_from_slice(header);
        buf.len = at + len;
        self.bufs.swap(i, self.pending);
        self.pending += 1;
    }

    /// Writes the queued packets (non-blocking, as before: a full device
    /// queue drops). A failed write counts one [`DropReason::SendFailed`],
    /// even when it carried coalesced packets.
    fn flush(&mut self, io: &Io, sad: &Sad) {
        if self.pending == 0 {
            return;
        }
        let bufs = &mut self.bufs[..self.pending];
        self.pending = 0;
        // The device's own (synchronous) method on the non-blocking fd;
        // it writes the virtio header just before `INNER_AT`.
        let dev = Deref::deref(&io.tun);
        if dev.send_multiple(&mut self.gro, bufs, INNER_AT).is_err() {
            sad.count_drop(DropReason::SendFailed);
        }
    }
}

impl Datapath {
    pub(super) async fn run(self) {
        let Self {
            mut sad,
            mut io,
            mut bufs,
            mut ctl,
            mut udp,
            pool,
            events,
        } = self;
        let mut next_reader = 0;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let exit = loop {
            // Unbiased (random start), so that no source starves the
            // others under load; `add_sa` waits for its reply, so an SA is
            // in place before anything it protects can be sent.
            tokio::select! {
                cmd = ctl.recv() => match cmd {
                    Some(cmd) => apply(cmd, &mut sad, &mut io),
                    None => break Exit::Shutdown,
                },
                Some(mut d) = udp.recv() => {
                    inbound(&mut sad, &io, &mut d.buf[..], &mut bufs.to_tun);
                    let _ = pool.push(d.buf);
                    for _ in 1..BURST {
                        let Ok(mut d) = udp.try_recv() else { break };
                        inbound(&mut sad, &io, &mut d.buf[..], &mut bufs.to_tun);
                        let _ = pool.push(d.buf);
                    }
                }
                r = io.tun.recv_multiple(&mut bufs.tun_in, &mut bufs.segs, &mut bufs.sizes, SEG_AT) => match r {
                    Ok(n) => {
                        let now = Instant::now();
                        outbound_segs(&mut sad, &io, now, &mut bufs, n);
                        drain_tun(&mut sad, &io, now, &mut bufs);
                    }
                    // Not the device's error but the split's: a malformed
                    // GSO packet, dropped.
                    Err(e) if e.raw_os_error().is_none() => sad.count_drop(DropReason::Malformed),
                    // Nothing sensible to do without the device.
                    Err(e) => break Exit::Tun(e),
                },
                Ok(mut guard) = io.raw4.readable() => {
                    for _ in 0..BURST / RECV_BATCH {
                        let Ok(r) = guard.try_io(|s| {
                            let free = bufs.to_tun.free(&io, &sad, RECV_BATCH);
                            let free = free.iter_mut().map(|b| b.room(RECV_AT_V4));
                            socket::recv_batch(s.get_ref(), free, &mut bufs.raw_lens)
                        }) else {
                            break;
                        };
                        let Ok(n) = r else { break };
                        inbound_raw(&mut sad, &mut bufs, n, RECV_AT_V4, true);
                    }
                }
                Ok(mut guard) = readable(io.raw6.as_ref()) => {
                    for _ in 0..BURST / RECV_BATCH {
                        let Ok(r) = guard.try_io(|s| {
                            let free = bufs.to_tun.free(&io, &sad, RECV_BATCH);
                            let free = free.iter_mut().map(|b| b.room(RECV_AT_V6));
                            socket::recv_batch(s.get_ref(), free, &mut bufs.raw_lens)
                        }) else {
                            break;
                        };
                        let Ok(n) = r else { break };
                        inbound_raw(&mut sad, &mut bufs, n, RECV_AT_V6, false);
                    }
                }
                i = udp_readable(&io.readers, next_reader) => {
                    inbound_udp(&mut sad, &io, &mut bufs, i);
                    next_reader = i + 1;
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    sad.handle_timeout(now);
                    bufs.gso_refused.retain(|_, until| *until > now);
                }
            }
            bufs.to_tun.flush(&io, &sad);
            forward_events(&mut sad, &events);
        };
        if let Exit::Tun(e) = exit {
            tracing::error!(
                error = %e,
                "TUN read failed; the userspace datapath stops and its event stream closes \
                 (protected traffic now meets the blackhole routes, not the main table)"
            );
        }
        // Closes the stream `take_events` handed out (this is its only
        // sender); the TUN device goes with `io`, and the kernel deletes its
        // routes, leaving the blackhole fallbacks (see `route`).
        drop(events);
    }
}

/// Waits until the optional socket is readable; never, if there is none.
async fn readable(
    sock: Option<&AsyncFd<Socket>>,
) -> std::io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, Socket>> {
    match sock {
        Some(s) => s.readable().await,
        None => std::future::pending().await,
    }
}

fn apply(cmd: Command, sad: &mut Sad, io: &mut Io) {
    match cmd {
        Command::Add(entry, reply) => {
            let _ = reply.send(sad.insert(*entry));
        }
        Command::Delete(id, reply) => {
            let _ = reply.send(sad.remove(id).is_some());
        }
        Command::SetLifetime(id, lifetime, reply) => {
            let _ = reply.send(sad.set_lifetime(id, lifetime));
        }
        Command::Update(id, lifetime, encap, reply) => {
            let _ = reply.send(sad.update(id, lifetime, encap));
        }
        Command::Attach(local, sock, to_iked, owner) => {
            io.udp.insert(local, sock.clone());
            io.readers.retain(|r| r.local != local);
            io.readers.push(UdpReader {
                local,
                sock,
                to_iked,
                owner,
            });
        }
        Command::Detach(local, owner) => {
            let ours = |r: &UdpReader| r.local == local && r.owner == owner;
            if io.readers.iter().any(ours) {
                io.udp.remove(&local);
                io.readers.retain(|r| !ours(r));
            }
        }
        Command::AddPolicy(spec, reply) => {
            sad.insert_policy(spec);
            let _ = reply.send(());
        }
        Command::DeletePolicy(selector, direction, reply) => {
            let _ = reply.send(sad.remove_policy(&selector, direction).is_some());
        }
    }
}

/// Hands ACQUIREs and expiries to whoever holds the event stream (a
/// dropped receiver is fine: nobody listens), and forgets hard-expired SAs
/// on the control side.
fn forward_events(sad: &mut Sad, events: &Events) {
    while let Some(ev) = sad.poll_acquire() {
        let _ = events.tx.send(ev);
    }
    while let Some(e) = sad.poll_expiry() {
        if e.hard {
            forget_expired(events, e.id);
        }
        let _ = events.tx.send(KernelEvent::Expire {
            id: e.id,
            hard: e.hard,
        });
    }
}

/// Takes hard-expired SA `id` (already gone from the [`Sad`]) out of the
/// control registry and deletes the routes no other SA or policy holds; a
/// trap policy's route stays, so the next packet raises an ACQUIRE.
fn forget_expired(events: &Events, id: SaId) {
    let gone = events
        .control
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .forget_sa(id)
        .unwrap_or_default();
    if gone.is_empty() {
        return;
    }
    let dev = events.tun_name.clone();
    tokio::spawn(async move {
        for prefix in gone {
            route::del(&dev, prefix).await;
        }
    });
}

/// Reads what else the TUN device has queued, up to a burst.
fn drain_tun(sad: &mut Sad, io: &Io, now: Instant, bufs: &mut Buffers) {
    for _ in 1..BURST {
        match io
            .tun
            .try_recv_multiple(&mut bufs.tun_in, &mut bufs.segs, &mut bufs.sizes, SEG_AT)
        {
            Ok(n) => outbound_segs(sad, io, now, bufs, n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // Not the device's error but the split's: a malformed GSO
            // packet, dropped.
            Err(e) if e.raw_os_error().is_none() => sad.count_drop(DropReason::Malformed),
            Err(_) => break,
        }
    }
}

/// A packet sealed in place in `segs[seg]`, from byte `start` on.
#[derive(Clone, Copy)]
struct Sealed {
    seg: usize,
    start: usize,
    tx: Transmit,
}

/// Seals the first `n` inner packets of `bufs.segs` in place and sends
/// them, each run of packets that share a path with one `sendmmsg`.
fn outbound_segs(sad: &mut Sad, io: &Io, now: Instant, bufs: &mut Buffers, n: usize) {
    bufs.txs.clear();
    for (seg, (buf, &len)) in bufs.segs.iter_mut().zip(&bufs.sizes).take(n).enumerate() {
        if let Ok((at, tx)) = sad.encapsulate_in_place(now, buf, SEG_AT..SEG_AT + len) {
            bufs.txs.push(Sealed {
                seg,
                start: at.start,
                tx,
            });
        }
    }
    let mut start = 0;
    while let Some(first) = bufs.txs.get(start) {
        let run = bufs.txs[start..]
            .iter()
            .take_while(|s| same_path(&s.tx, &first.tx))
            .count();
        let range = start..start + run;
        let sealed = &bufs.txs[range];
        let (sent, reason) = match transmit(io, &bufs.segs, sealed, now, &mut bufs.gso_refused) {
            Ok(sent) => (sent, DropReason::SendFailed),
            Err(reason) => (0, reason),
        };
        for _ in sent..run {
            sad.count_drop(reason);
        }
        start += run;
    }
}

/// Whether `a` and `b` leave by the same socket to the same peer.
fn same_path(a: &Transmit, b: &Transmit) -> bool {
    a.src == b.src && a.dst == b.dst && a.encap == b.encap
}

/// Decapsulates the `n` datagrams a raw socket just received into the free
/// buffers of `bufs.to_tun` at `at` (with their IPv4 header when `v4`),
/// in place, and queues those that pass.
fn inbound_raw(sad: &mut Sad, bufs: &mut Buffers, n: usize, at: usize, v4: bool) {
    let to_tun = &mut bufs.to_tun;
    let first = to_tun.pending;
    for (k, &len) in bufs.raw_lens.iter().enumerate().take(n) {
        let i = first + k;
        let Some(datagram) = to_tun.bufs[i].data.get_mut(at..at + len) else {
            continue;
        };
        let esp = if v4 {
            match socket::ipv4_esp_payload(datagram) {
                Some(esp) => esp,
                None => continue,
            }
        } else {
            0..len
        };
        let start = at + esp.start;
        let Ok(inner) = sad.decapsulate(&mut datagram[esp]) else {
            continue;
        };
        let payload = start + inner.payload.start..start + inner.payload.end;
        to_tun.commit(i, inner.header(), payload);
    }
}

/// The index of an attached socket with something to read, looking from
/// `first` on (round robin, so that a busy socket does not starve the
/// others); never, if none is attached.
fn udp_readable(readers: &[UdpReader], first: usize) -> impl Future<Output = usize> + '_ {
    std::future::poll_fn(move |cx| {
        let n = readers.len();
        for k in 0..n {
            let i = (first + k) % n;
            if readers[i].sock.poll_recv_ready(cx).is_ready() {
                return std::task::Poll::Ready(i);
            }
        }
        std::task::Poll::Pending
    })
}

/// Reads attached socket `i` until it is empty (or for a burst): ESP is
/// decrypted in place and queued for the TUN device, IKE goes back to
/// iked, NAT keepalives are dropped (they only keep a NAT mapping open).
fn inbound_udp(sad: &mut Sad, io: &Io, bufs: &mut Buffers, i: usize) {
    let Some(reader) = io.readers.get(i) else {
        return;
    };
    for _ in 0..UDP_READS {
        let got = reader.sock.try_io(tokio::io::Interest::READABLE, || {
            natt::recv_gro(&*reader.sock, &mut bufs.udp_in, &mut bufs.udp_control)
        });
        let read = match got {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                sad.count_drop(DropReason::Malformed);
                continue;
            }
            // An ICMP error queued on the socket, reported once.
            Err(e) => {
                tracing::debug!(local = %reader.local, error = %e, "ESP-in-UDP read failed");
                return;
            }
        };
        let Some(data) = bufs.udp_in.get_mut(..read.len) else {
            return;
        };
        for datagram in data.chunks_mut(read.segment) {
            match natt::classify(datagram) {
                NatTDatagram::Esp(_) => inbound(sad, io, datagram, &mut bufs.to_tun),
                NatTDatagram::Ike(_) => (reader.to_iked)(reader.local, read.remote, datagram),
                NatTDatagram::Keepalive => {}
            }
        }
    }
}

fn inbound(sad: &mut Sad, io: &Io, esp: &mut [u8], to_tun: &mut TunBatch) {
    let Ok(inner) = sad.decapsulate(esp) else {
        return;
    };
    // Transport mode: the rebuilt header, then the payload; tunnel mode:
    // no header.
    to_tun.push(io, sad, inner.header(), &esp[inner.payload.clone()]);
}

/// Sends the sealed packets `sealed` (in `segs`), which all share the
/// first one's path (one `sendmsg` for a single packet, else `sendmmsg`,
/// or UDP GSO where the path takes it); returns how many went out.
fn transmit(
    io: &Io,
    segs: &[Vec<u8>],
    sealed: &[Sealed],
    now: Instant,
    gso_refused: &mut HashMap<SocketAddr, Instant>,
) -> Result<usize, DropReason> {
    let Some(&Sealed { tx, .. }) = sealed.first() else {
        return Ok(0);
    };
    let esp = |s: &Sealed| -> &[u8] {
        segs.get(s.seg)
            .and_then(|b| b.get(s.start..s.start + s.tx.len))
            .unwrap_or_default()
    };
    let sent = match tx.encap {
        None => {
            let sock = match tx.dst {
                IpAddr::V4(_) => Some(&io.raw4),
                IpAddr::V6(_) => io.raw6.as_ref(),
            };
            let sock = sock.ok_or(DropReason::SendFailed)?.get_ref();
            if let [s] = sealed {
                socket::send(sock, tx.src, tx.dst, esp(s)).map(|_| 1)
            } else {
                let packets = sealed.iter().map(esp);
                socket::send_batch(sock, Some(tx.src), SocketAddr::new(tx.dst, 0), packets)
            }
        }
        Some(encap) => {
            let any = match tx.src {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            let sock = io
                .udp
                .get(&SocketAddr::new(tx.src, encap.sport))
                .or_else(|| io.udp.get(&SocketAddr::new(any, encap.sport)))
                .ok_or(DropReason::NoSocket)?;
            let dst = SocketAddr::new(tx.dst, encap.dport);
            if let [s] = sealed {
                sock.try_send_to(esp(s), dst).map(|_| 1)
            } else if gso_allowed(gso_refused, dst, now) {
                return transmit_gso(sock, dst, sealed, esp, (now, gso_refused));
            } else {
                socket::send_batch(&**sock, None, dst, sealed.iter().map(esp))
            }
        }
    };
    sent.map_err(|_| DropReason::SendFailed)
}

/// Whether ESP-in-UDP to `dst` may go out with UDP GSO at `now`.
fn gso_allowed(refused: &mut HashMap<SocketAddr, Instant>, dst: SocketAddr, now: Instant) -> bool {
    if refused.is_empty() {
        return true;
    }
    match refused.get(&dst) {
        Some(&until) if now < until => false,
        Some(_) => {
            refused.remove(&dst);
            true
        }
        None => true,
    }
}

/// Sends the ESP-in-UDP packets `sealed` to `dst`: each run of equal sizes
/// (a TUN GSO read's segments, the last maybe shorter) with one UDP GSO
/// `sendmsg`, lone packets with one `send`. When the kernel refuses GSO
/// for this path (its MTU is below the packet size: `EMSGSIZE`, or
/// `EINVAL`; a device without checksum offload: `EIO`), sends the rest
/// one datagram each (`sendmmsg`, the kernel fragmenting) and does so for
/// this destination for [`GSO_RETRY`]; other peers keep GSO.
fn transmit_gso<'a>(
    sock: &UdpSocket,
    dst: SocketAddr,
    sealed: &'a [Sealed],
    esp: impl Fn(&'a Sealed) -> &'a [u8] + Copy,
    (now, refused): (Instant, &mut HashMap<SocketAddr, Instant>),
) -> Result<usize, DropReason> {
    let mut sent = 0;
    while sent < sealed.len() {
        let rest = &sealed[sent..];
        let run = socket::gso_run(rest.iter().map(|s| s.tx.len));
        let r = match (run, u16::try_from(rest[0].tx.len)) {
            (2.., Ok(segment)) => socket::send_gso(sock, dst, segment, rest[..run].iter().map(esp)),
            _ => sock.try_send_to(esp(&rest[0]), dst).map(|_| 1),
        };
        match r {
            Ok(n) => sent += n,
            Err(e)
                if run > 1
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EMSGSIZE | libc::EINVAL | libc::EIO)
                    ) =>
            {
                tracing::info!(
                    "UDP GSO refused ({e}, to {dst}); ESP-in-UDP goes out one datagram each for {} s",
                    GSO_RETRY.as_secs()
                );
                refused.insert(dst, now + GSO_RETRY);
                let more = socket::send_batch(sock, None, dst, rest.iter().map(esp));
                return Ok(sent + more.unwrap_or(0));
            }
            Err(_) => break,
        }
    }
    Ok(sent)
}
