//! The hand-off's two ends: iked's [`HandoffSender`] and spmd's
//! [`HandoffReceiver`], which passes back what is not ESP through
//! [`ToIked`].

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr, getsockopt, recvmsg, sendmsg,
    sockopt::PeerCredentials,
};
use socket2::{Domain, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::fd::adopt_received;
use super::wire::{self, HandoffMessage, SEGMENTED_HEADER_LEN};

/// Largest record: an ESP datagram of the largest UDP payload (or as many
/// bytes of coalesced ones), plus the longest header: the receive buffer
/// either end needs.
pub const MAX_RECORD: usize = 65_535 + SEGMENTED_HEADER_LEN;

/// Send buffer of iked's end: room for bursts while spmd catches up.
const SNDBUF: usize = 4 << 20;

/// iked's end: attaches its port-4500 sockets, forwards the ESP datagrams
/// iked reads, and receives the IKE datagrams spmd's datapath reads.
#[derive(Debug)]
pub struct HandoffSender {
    sock: AsyncFd<Socket>,
    dropped: AtomicU64,
}

impl HandoffSender {
    /// Connects to spmd's hand-off socket at `path`.
    ///
    /// # Errors
    /// The socket or `connect` error (spmd not running: `ENOENT` or
    /// `ECONNREFUSED`).
    pub fn connect(path: &Path) -> io::Result<Self> {
        let sock = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
        sock.connect(&SockAddr::unix(path)?)?;
        let _ = sock.set_send_buffer_size(SNDBUF);
        sock.set_nonblocking(true)?;
        Ok(Self {
            sock: crate::sys::register(sock)?,
            dropped: AtomicU64::new(0),
        })
    }

    /// Waits for the next record from spmd (a datagram passed back, or
    /// word that the datapath reads a socket), with its bytes in `buf`
    /// ([`MAX_RECORD`] long); `None` once spmd closed the connection.
    /// Records of other kinds are logged and skipped.
    ///
    /// # Errors
    /// A receive error other than the connection's end.
    pub async fn next_from_spmd<'b>(&self, buf: &'b mut [u8]) -> io::Result<Option<FromSpmd<'b>>> {
        loop {
            let len = self
                .sock
                .async_io(tokio::io::Interest::READABLE, |mut s| {
                    io::Read::read(&mut s, &mut *buf)
                })
                .await?;
            if len == 0 {
                return Ok(None);
            }
            match wire::decode(&buf[..len]) {
                Ok(HandoffMessage::ForIked { local, remote, .. }) => {
                    let datagram = buf.get(wire::HEADER_LEN..len).unwrap_or_default();
                    return Ok(Some(FromSpmd::Datagram {
                        local,
                        remote,
                        datagram,
                    }));
                }
                Ok(HandoffMessage::Reading { local }) => {
                    return Ok(Some(FromSpmd::Reading { local }));
                }
                Ok(other) => {
                    tracing::warn!("hand-off: unexpected {} record from spmd", other.kind());
                }
                Err(e) => tracing::warn!("hand-off from spmd: {e}; record skipped"),
            }
        }
    }

    /// Ends the connection both ways (spmd then lets go of the sockets).
    pub fn shutdown(&self) {
        let _ = self.sock.get_ref().shutdown(std::net::Shutdown::Both);
    }

    /// Gives spmd a duplicate of `udp`, bound to `local`: the datapath
    /// sends ESP-in-UDP from it and reads it (with the `UDP_GRO` iked set
    /// on it), passing back what is not ESP. spmd says
    /// [`FromSpmd::Reading`] once it does; iked may stop reading the
    /// socket from then on, while this connection lasts.
    ///
    /// # Errors
    /// The `sendmsg` error.
    pub fn attach(&self, local: SocketAddr, udp: &impl AsFd) -> io::Result<()> {
        let record = wire::encode_attach(local);
        let fds = [udp.as_fd().as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg::<UnixAddr>(
            self.sock.get_ref().as_raw_fd(),
            &[IoSlice::new(&record)],
            &cmsg,
            MsgFlags::empty(),
            None,
        )?;
        Ok(())
    }

    /// Forwards one ESP datagram without blocking or allocating; a full
    /// queue drops it (counted in [`Self::dropped`]), as a full socket
    /// buffer would.
    ///
    /// # Errors
    /// Anything but a full queue: spmd closed the connection.
    pub fn forward(&self, local: SocketAddr, remote: SocketAddr, packet: &[u8]) -> io::Result<()> {
        self.send(&wire::esp_header(local, remote), packet)
    }

    /// Forwards the ESP datagrams UDP GRO coalesced into `packets`, each
    /// `segment` bytes but the last, as one record (spmd splits it), as
    /// [`Self::forward`] does one datagram.
    ///
    /// # Errors
    /// As [`Self::forward`].
    pub fn forward_segmented(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        segment: u16,
        packets: &[u8],
    ) -> io::Result<()> {
        self.send(&wire::segmented_header(local, remote, segment), packets)
    }

    fn send(&self, header: &[u8], payload: &[u8]) -> io::Result<()> {
        send_or_drop(self.sock.get_ref(), header, payload, &self.dropped)
    }

    /// ESP datagrams dropped because spmd's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What spmd sends iked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromSpmd<'a> {
    /// A datagram the datapath read on `local` from `remote` that is not
    /// ESP, as read (non-ESP marker included).
    Datagram {
        /// The attached socket's address.
        local: SocketAddr,
        /// The sender.
        remote: SocketAddr,
        /// The UDP payload.
        datagram: &'a [u8],
    },
    /// The datapath reads the socket attached for `local`.
    Reading {
        /// The attached socket's address.
        local: SocketAddr,
    },
}

/// spmd's way back to iked on one hand-off connection: the datagrams the
/// datapath reads from that connection's attached sockets that are not
/// ESP (IKE, behind its non-ESP marker).
#[derive(Debug, Clone)]
pub struct ToIked {
    conn: Arc<AsyncFd<Socket>>,
    dropped: Arc<AtomicU64>,
    id: u64,
}

impl ToIked {
    /// Numbers the connection (from 1, per receiver), so that what one
    /// connection attached can be told from a later one's.
    #[must_use]
    pub fn connection(&self) -> u64 {
        self.id
    }

    /// Passes `datagram`, read on `local` from `remote`, to iked without
    /// blocking or allocating; a full queue drops it (IKE retransmits).
    ///
    /// # Errors
    /// Anything but a full queue: iked closed the connection.
    pub fn send(&self, local: SocketAddr, remote: SocketAddr, datagram: &[u8]) -> io::Result<()> {
        let header = wire::for_iked_header(local, remote);
        send_or_drop(self.conn.get_ref(), &header, datagram, &self.dropped)
    }

    /// Datagrams dropped because iked's queue was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Sends `header` + `payload` as one record; a full queue counts in
/// `dropped` instead of blocking.
fn send_or_drop(
    sock: &Socket,
    header: &[u8],
    payload: &[u8],
    dropped: &AtomicU64,
) -> io::Result<()> {
    match sock.send_vectored(&[IoSlice::new(header), IoSlice::new(payload)]) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            dropped.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// spmd's end: a listening `SOCK_SEQPACKET` socket, mode 0600, that only
/// root and spmd's own user may use.
#[derive(Debug)]
pub struct HandoffReceiver {
    listener: AsyncFd<Socket>,
    path: PathBuf,
}

impl HandoffReceiver {
    /// Binds `path`, replacing a stale socket a crashed spmd left.
    ///
    /// # Errors
    /// [`io::ErrorKind::AddrInUse`] when another spmd listens there; the
    /// socket, bind or chmod error.
    pub fn bind(path: &Path) -> io::Result<Self> {
        // A socket something still listens on belongs to a running spmd:
        // leave it alone. Only a stale one is replaced.
        if let Ok(probe) = Socket::new(Domain::UNIX, Type::SEQPACKET, None)
            && probe.connect(&SockAddr::unix(path)?).is_ok()
        {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("another spmd serves the hand-off socket {}", path.display()),
            ));
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let sock = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
        sock.bind(&SockAddr::unix(path)?)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        sock.listen(8)?;
        sock.set_nonblocking(true)?;
        Ok(Self {
            listener: crate::sys::register(sock)?,
            path: path.to_owned(),
        })
    }

    /// Serves connections until the task is dropped: attached sockets go
    /// to `on_attach` with the connection's way back to iked (the datapath
    /// reads them and returns what is not ESP; `true` once it does, which
    /// iked is then told), ESP datagrams iked read itself to `on_esp` (a
    /// coalesced record's one by one). When a connection ends (iked
    /// stopped), `on_detach` gets the address and connection number of
    /// each socket it attached: spmd must let go of them, or the port
    /// stays bound and a restarted iked cannot bind it. Malformed records
    /// are logged and skipped.
    pub async fn run<A, E, D>(self, on_attach: A, on_esp: E, on_detach: D)
    where
        A: Fn(SocketAddr, UdpSocket, ToIked) -> bool + Send + Sync + Clone + 'static,
        E: Fn(SocketAddr, SocketAddr, &[u8]) + Send + Sync + Clone + 'static,
        D: Fn(SocketAddr, u64) + Send + Sync + Clone + 'static,
    {
        let mut conns = tokio::task::JoinSet::new();
        let mut numbered = 0;
        loop {
            while conns.try_join_next().is_some() {}
            let accepted = self
                .listener
                .async_io(tokio::io::Interest::READABLE, Socket::accept)
                .await;
            let conn = match accepted {
                Ok((conn, _)) => conn,
                Err(e) => {
                    tracing::warn!("{}: accept failed: {e}", self.path.display());
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            if let Err(e) = check_peer(&conn) {
                tracing::warn!("{}: {e}", self.path.display());
                continue;
            }
            let (a, e, d) = (on_attach.clone(), on_esp.clone(), on_detach.clone());
            match conn
                .set_nonblocking(true)
                .and_then(|()| crate::sys::register(conn))
            {
                Ok(conn) => {
                    numbered += 1;
                    conns.spawn(serve(conn, numbered, (a, e, d)));
                }
                Err(e) => tracing::warn!("hand-off connection: {e}"),
            }
        }
    }
}

impl Drop for HandoffReceiver {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Root, or spmd's own user.
fn check_peer(conn: &Socket) -> io::Result<()> {
    let cred = getsockopt(conn, PeerCredentials)?;
    let me = nix::unistd::geteuid().as_raw();
    if cred.uid() == 0 || cred.uid() == me {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("refusing a hand-off connection from uid {}", cred.uid()),
    ))
}

async fn serve<A, E, D>(conn: AsyncFd<Socket>, id: u64, (on_attach, on_esp, on_detach): (A, E, D))
where
    A: Fn(SocketAddr, UdpSocket, ToIked) -> bool,
    E: Fn(SocketAddr, SocketAddr, &[u8]),
    D: Fn(SocketAddr, u64),
{
    let mut attached = Vec::new();
    let conn = Arc::new(conn);
    let to_iked = ToIked {
        conn: conn.clone(),
        dropped: Arc::default(),
        id,
    };
    let mut buf = vec![0u8; MAX_RECORD];
    loop {
        let got = conn
            .async_io(tokio::io::Interest::READABLE, |s| receive(s, &mut buf))
            .await;
        let (len, fd) = match got {
            Ok((0, _)) => break,
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("hand-off connection closed: {e}");
                break;
            }
        };
        match (wire::decode(&buf[..len]), fd) {
            (
                Ok(
                    m @ (HandoffMessage::Esp { local, remote, .. }
                    | HandoffMessage::Segmented { local, remote, .. }),
                ),
                _,
            ) => {
                for packet in m.datagrams() {
                    on_esp(local, remote, packet);
                }
            }
            (Ok(HandoffMessage::Attach { local }), Some(fd)) => {
                if on_attach(local, UdpSocket::from(fd), to_iked.clone()) {
                    attached.push(local);
                    let ack = wire::encode_reading(local);
                    if let Err(e) = send_or_drop(conn.get_ref(), &ack, &[], &to_iked.dropped) {
                        tracing::debug!(
                            "hand-off: cannot tell iked the datapath reads {local}: {e}"
                        );
                    }
                }
            }
            (Ok(m @ (HandoffMessage::ForIked { .. } | HandoffMessage::Reading { .. })), _) => {
                tracing::warn!("hand-off: a {} record came from iked; skipped", m.kind());
            }
            (Ok(HandoffMessage::Attach { local }), None) => {
                tracing::warn!("hand-off: attach of {local} without a socket; ignored");
            }
            (Err(e), _) => tracing::warn!("hand-off: {e}; record skipped"),
        }
    }
    for local in attached {
        on_detach(local, id);
    }
    if to_iked.dropped() > 0 {
        tracing::warn!(
            "{} datagrams for iked were dropped on the way back (its queue was full)",
            to_iked.dropped()
        );
    }
}

/// One record and the first descriptor it carried (others are closed).
fn receive(sock: &Socket, buf: &mut [u8]) -> io::Result<(usize, Option<std::os::fd::OwnedFd>)> {
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut first = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                let owned = adopt_received(fd);
                if first.is_none() {
                    first = Some(owned);
                }
            }
        }
    }
    Ok((msg.bytes, first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_receiver_leaves_a_live_socket_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spmd-esp.sock");
        let first = HandoffReceiver::bind(&path).unwrap();
        let err = HandoffReceiver::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        assert!(path.exists(), "the running one's socket is still there");
        drop(first);
        assert!(!path.exists());
        // A stale file (nobody listening) is replaced.
        std::fs::write(&path, b"").unwrap();
        let _again = HandoffReceiver::bind(&path).unwrap();
    }

    #[tokio::test]
    async fn the_attach_gives_spmd_a_way_back_that_iked_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spmd-esp.sock");
        let receiver = HandoffReceiver::bind(&path).unwrap();
        let detached = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = detached.clone();
        // spmd's side: on the attach, pass an IKE datagram back at once.
        let server = tokio::spawn(receiver.run(
            |local: SocketAddr, _sock: UdpSocket, to_iked: ToIked| {
                let remote = "192.0.2.9:4500".parse().unwrap();
                to_iked.send(local, remote, b"\0\0\0\0ike").unwrap();
                true
            },
            |_: SocketAddr, _: SocketAddr, _: &[u8]| {},
            move |local: SocketAddr, conn: u64| seen.lock().unwrap().push((local, conn)),
        ));
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let local = udp.local_addr().unwrap();
        let mut buf = vec![0u8; MAX_RECORD];
        let wait = std::time::Duration::from_secs(5);
        let first = HandoffSender::connect(&path).unwrap();
        first.attach(local, &udp).unwrap();
        let got = tokio::time::timeout(wait, first.next_from_spmd(&mut buf))
            .await
            .expect("a record back")
            .unwrap();
        assert_eq!(
            got,
            Some(FromSpmd::Datagram {
                local,
                remote: "192.0.2.9:4500".parse().unwrap(),
                datagram: b"\0\0\0\0ike"
            })
        );
        let got = tokio::time::timeout(wait, first.next_from_spmd(&mut buf))
            .await
            .expect("the acknowledgement")
            .unwrap();
        assert_eq!(got, Some(FromSpmd::Reading { local }));
        // A second connection attaches the same address; the first one's
        // end detaches only what the first attached (connection 1).
        let second = HandoffSender::connect(&path).unwrap();
        second.attach(local, &udp).unwrap();
        let _ = tokio::time::timeout(wait, second.next_from_spmd(&mut buf)).await;
        first.shutdown();
        drop(first);
        let detached_one = async {
            while detached.lock().unwrap().is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(wait, detached_one)
            .await
            .expect("detached");
        assert_eq!(*detached.lock().unwrap(), [(local, 1)]);
        // spmd going away ends the stream.
        server.abort();
        let _ = server.await;
        let end = loop {
            let next = tokio::time::timeout(wait, second.next_from_spmd(&mut buf))
                .await
                .expect("the end is seen");
            if !matches!(next, Ok(Some(_))) {
                break next;
            }
        };
        assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    }
}
