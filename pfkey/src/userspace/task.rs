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
//! - raw sockets read with `recvmmsg`, or queued [`Datagram`]s →
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
use tun_rs::{AsyncDevice, GROTable, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

use super::datapath::Control;
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
/// Datagrams read from a raw socket with one `recvmmsg`.
const RECV_BATCH: usize = 32;

/// Control requests to the datapath task, answered once applied.
pub(super) enum Command {
    Add(Box<SadEntry>, oneshot::Sender<Result<(), Exists>>),
    Delete(SaId, oneshot::Sender<bool>),
    SetLifetime(SaId, Lifetime, oneshot::Sender<bool>),
    Update(SaId, Lifetime, Option<UdpEncap>, oneshot::Sender<bool>),
    Attach(SocketAddr, Arc<UdpSocket>),
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
}

/// The task's packet buffers, allocated once (zeroed allocations: pages
/// nobody writes to stay untouched).
pub(super) struct Buffers {
    /// One TUN read: the virtio header (with offloads) and the packet,
    /// possibly a GSO super-packet.
    tun_in: Vec<u8>,
    /// The inner packets of one TUN read, after GSO splitting, and their
    /// lengths.
    segs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    /// Datagrams of one `recvmmsg` on a raw socket, and their lengths.
    raw_in: Vec<Vec<u8>>,
    raw_lens: Vec<usize>,
    /// The sealed packets of one TUN read, and where each goes.
    out: Vec<Vec<u8>>,
    txs: Vec<Transmit>,
    to_tun: TunBatch,
}

impl Buffers {
    pub(super) fn new() -> Self {
        Self {
            tun_in: vec![0; VIRTIO_NET_HDR_LEN + MAX_PACKET],
            segs: (0..IDEAL_BATCH_SIZE).map(|_| vec![0; MAX_PACKET]).collect(),
            sizes: vec![0; IDEAL_BATCH_SIZE],
            raw_in: (0..RECV_BATCH).map(|_| vec![0; MAX_PACKET]).collect(),
            raw_lens: vec![0; RECV_BATCH],
            out: (0..IDEAL_BATCH_SIZE)
                .map(|_| vec![0; MAX_PACKET + MAX_OVERHEAD])
                .collect(),
            txs: Vec::with_capacity(IDEAL_BATCH_SIZE),
            to_tun: TunBatch {
                // Room for a whole coalesced packet in each: GRO appends
                // only within a buffer's capacity.
                bufs: (0..BURST)
                    .map(|_| Vec::with_capacity(2 * VIRTIO_NET_HDR_LEN + MAX_PACKET))
                    .collect(),
                pending: 0,
                gro: GROTable::new(),
            },
        }
    }
}

/// Decapsulated inner packets waiting for the TUN write, each after
/// [`VIRTIO_NET_HDR_LEN`] bytes of room: written together, coalesced (GRO)
/// into few writes when the device has offloads.
struct TunBatch {
    bufs: Vec<Vec<u8>>,
    pending: usize,
    gro: GROTable,
}

impl TunBatch {
    /// Queues `header` + `payload` as one inner packet; writes the batch
    /// when it is full.
    fn push(&mut self, io: &Io, sad: &Sad, header: &[u8], payload: &[u8]) {
        let buf = &mut self.bufs[self.pending];
        buf.clear();
        buf.resize(VIRTIO_NET_HDR_LEN, 0);
        buf.extend_from_slice(header);
        buf.extend_from_slice(payload);
        self.pending += 1;
        if self.pending == self.bufs.len() {
            self.flush(io, sad);
        }
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
        // The device's own (synchronous) method on the non-blocking fd.
        let dev = Deref::deref(&io.tun);
        if dev
            .send_multiple(&mut self.gro, bufs, VIRTIO_NET_HDR_LEN)
            .is_err()
        {
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
                r = io.tun.recv_multiple(&mut bufs.tun_in, &mut bufs.segs, &mut bufs.sizes, 0) => match r {
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
                            socket::recv_batch(s.get_ref(), &mut bufs.raw_in, &mut bufs.raw_lens)
                        }) else {
                            break;
                        };
                        let Ok(n) = r else { break };
                        for (buf, &len) in bufs.raw_in.iter_mut().zip(&bufs.raw_lens).take(n) {
                            if let Some(esp) = socket::ipv4_esp_payload(&buf[..len]) {
                                inbound(&mut sad, &io, &mut buf[esp], &mut bufs.to_tun);
                            }
                        }
                    }
                }
                Ok(mut guard) = readable(io.raw6.as_ref()) => {
                    for _ in 0..BURST / RECV_BATCH {
                        let Ok(r) = guard.try_io(|s| {
                            socket::recv_batch(s.get_ref(), &mut bufs.raw_in, &mut bufs.raw_lens)
                        }) else {
                            break;
                        };
                        let Ok(n) = r else { break };
                        for (buf, &len) in bufs.raw_in.iter_mut().zip(&bufs.raw_lens).take(n) {
                            inbound(&mut sad, &io, &mut buf[..len], &mut bufs.to_tun);
                        }
                    }
                }
                _ = tick.tick() => sad.handle_timeout(Instant::now()),
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
        Command::Attach(local, sock) => {
            io.udp.insert(local, sock);
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
            .try_recv_multiple(&mut bufs.tun_in, &mut bufs.segs, &mut bufs.sizes, 0)
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

/// Seals the first `n` inner packets of `bufs.segs` and sends them,
/// each run of packets that share a path with one `sendmmsg`.
fn outbound_segs(sad: &mut Sad, io: &Io, now: Instant, bufs: &mut Buffers, n: usize) {
    bufs.txs.clear();
    for (seg, &len) in bufs.segs.iter().zip(&bufs.sizes).take(n) {
        let out = &mut bufs.out[bufs.txs.len()];
        if let Ok(tx) = sad.encapsulate(now, &seg[..len], out) {
            bufs.txs.push(tx);
        }
    }
    let mut start = 0;
    while let Some(&first) = bufs.txs.get(start) {
        let run = bufs.txs[start..]
            .iter()
            .take_while(|tx| same_path(tx, &first))
            .count();
        let packets = bufs.out[start..start + run]
            .iter()
            .zip(&bufs.txs[start..start + run])
            .map(|(out, tx)| &out[..tx.len]);
        let (sent, reason) = match transmit(io, first, packets) {
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

fn inbound(sad: &mut Sad, io: &Io, esp: &mut [u8], to_tun: &mut TunBatch) {
    let Ok(inner) = sad.decapsulate(esp) else {
        return;
    };
    // Transport mode: the rebuilt header, then the payload; tunnel mode:
    // no header.
    to_tun.push(io, sad, inner.header(), &esp[inner.payload.clone()]);
}

/// Sends `packets`, which all share `tx`'s path (one `sendmsg` for a
/// single packet, else one `sendmmsg`); returns how many went out.
fn transmit<'a>(
    io: &Io,
    tx: Transmit,
    mut packets: impl ExactSizeIterator<Item = &'a [u8]>,
) -> Result<usize, DropReason> {
    let single = packets.len() == 1;
    let sent = match tx.encap {
        None => {
            let sock = match tx.dst {
                IpAddr::V4(_) => Some(&io.raw4),
                IpAddr::V6(_) => io.raw6.as_ref(),
            };
            let sock = sock.ok_or(DropReason::SendFailed)?.get_ref();
            if single {
                let p = packets.next().unwrap_or_default();
                socket::send(sock, tx.src, tx.dst, p).map(|_| 1)
            } else {
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
            if single {
                let p = packets.next().unwrap_or_default();
                sock.try_send_to(p, dst).map(|_| 1)
            } else {
                socket::send_batch(&**sock, None, dst, packets)
            }
        }
    };
    sent.map_err(|_| DropReason::SendFailed)
}
