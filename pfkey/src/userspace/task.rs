//! The datapath task: one tokio task that owns the [`Sad`], the TUN
//! device, the raw ESP sockets and every packet buffer (see
//! [`super::datapath`] for the shape and the control side).
//!
//! - TUN read → [`Sad::encapsulate`] → raw socket (plain ESP) or an
//!   attached UDP socket (ESP-in-UDP, RFC 3948, no marker);
//! - raw socket read, or a queued [`Datagram`] → [`Sad::decapsulate`] →
//!   TUN write (transport mode: rebuilt header + payload, one `writev`);
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
use std::io::IoSlice;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use socket2::Socket;
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tun_rs::AsyncDevice;

use super::datapath::Control;
use super::route;
use super::sad::{Exists, Lifetime, Sad, SadEntry, Transmit};
use super::socket;
use super::stats::DropReason;
use crate::{KernelEvent, PolicySpec, SaDirection, SaId, Selector};

/// Largest packet handled (an IP datagram's maximum).
const MAX_PACKET: usize = 65_535;
/// Room for ESP header, IV, padding and ICV beyond the inner packet.
const MAX_OVERHEAD: usize = 8 + 16 + 16 + 2 + 32;
/// Packets handled per readiness event before yielding to other sources.
const BURST: usize = 64;

/// Control requests to the datapath task, answered once applied.
pub(super) enum Command {
    Add(Box<SadEntry>, oneshot::Sender<Result<(), Exists>>),
    Delete(SaId, oneshot::Sender<bool>),
    SetLifetime(SaId, Lifetime, oneshot::Sender<bool>),
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

/// The task's packet buffers, allocated once.
pub(super) struct Buffers {
    tun_in: Vec<u8>,
    raw_in: Vec<u8>,
    out: Vec<u8>,
}

impl Buffers {
    pub(super) fn new() -> Self {
        Self {
            tun_in: vec![0; MAX_PACKET],
            raw_in: vec![0; MAX_PACKET],
            out: vec![0; MAX_PACKET + MAX_OVERHEAD],
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
                    inbound(&mut sad, &io, &mut d.buf[..]);
                    let _ = pool.push(d.buf);
                }
                r = io.tun.recv(&mut bufs.tun_in) => match r {
                    Ok(n) => {
                        let now = Instant::now();
                        outbound(&mut sad, &io, now, &bufs.tun_in[..n], &mut bufs.out);
                        drain_tun(&mut sad, &io, now, &mut bufs);
                    }
                    // Nothing sensible to do without the device.
                    Err(e) => break Exit::Tun(e),
                },
                Ok(mut guard) = io.raw4.readable() => {
                    for _ in 0..BURST {
                        let Ok(r) = guard.try_io(|s| socket::recv(s.get_ref(), &mut bufs.raw_in)) else {
                            break;
                        };
                        let Ok(n) = r else { break };
                        if let Some(esp) = socket::ipv4_esp_payload(&bufs.raw_in[..n]) {
                            inbound(&mut sad, &io, &mut bufs.raw_in[esp]);
                        }
                    }
                }
                Ok(mut guard) = readable(io.raw6.as_ref()) => {
                    for _ in 0..BURST {
                        let Ok(r) = guard.try_io(|s| socket::recv(s.get_ref(), &mut bufs.raw_in)) else {
                            break;
                        };
                        let Ok(n) = r else { break };
                        inbound(&mut sad, &io, &mut bufs.raw_in[..n]);
                    }
                }
                _ = tick.tick() => sad.handle_timeout(Instant::now()),
            }
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
        match io.tun.try_recv(&mut bufs.tun_in) {
            Ok(n) => outbound(sad, io, now, &bufs.tun_in[..n], &mut bufs.out),
            Err(_) => break,
        }
    }
}

fn outbound(sad: &mut Sad, io: &Io, now: Instant, inner: &[u8], out: &mut [u8]) {
    let Ok(tx) = sad.encapsulate(now, inner, out) else {
        return;
    };
    if let Err(reason) = transmit(io, tx, &out[..tx.len]) {
        sad.count_drop(reason);
    }
}

fn inbound(sad: &mut Sad, io: &Io, esp: &mut [u8]) {
    let Ok(inner) = sad.decapsulate(esp) else {
        return;
    };
    let payload = &esp[inner.payload.clone()];
    let sent = if inner.header().is_empty() {
        io.tun.try_send(payload)
    } else {
        // Transport mode: the rebuilt header, then the payload in place.
        io.tun
            .try_send_vectored(&[IoSlice::new(inner.header()), IoSlice::new(payload)])
    };
    if sent.is_err() {
        sad.count_drop(DropReason::SendFailed);
    }
}

fn transmit(io: &Io, tx: Transmit, packet: &[u8]) -> Result<(), DropReason> {
    match tx.encap {
        None => {
            let sock = match tx.dst {
                IpAddr::V4(_) => Some(&io.raw4),
                IpAddr::V6(_) => io.raw6.as_ref(),
            };
            let sock = sock.ok_or(DropReason::SendFailed)?;
            socket::send(sock.get_ref(), tx.src, tx.dst, packet)
                .map_err(|_| DropReason::SendFailed)?;
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
            sock.try_send_to(packet, SocketAddr::new(tx.dst, encap.dport))
                .map_err(|_| DropReason::SendFailed)?;
        }
    }
    Ok(())
}
