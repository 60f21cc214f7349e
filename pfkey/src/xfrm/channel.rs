//! The netlink socket: one request at a time, replies matched by sequence
//! number, dumps collected until `NLMSG_DONE`; and the event socket bound
//! to XFRM's multicast groups.

use std::io::{self, Read};
use std::os::fd::AsRawFd;

use nix::sys::socket::{NetlinkAddr, bind};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::msg::{Body, Message};
use super::netlink::{DecodeError, flags};

/// Receive buffer: the kernel's dump messages stay below 32 KiB.
const RECV_BUF: usize = 64 * 1024;
/// Socket receive queue of the event socket, so an ACQUIRE storm is not
/// lost (`ENOBUFS`) before the listener task drains it.
const EVENT_RCVBUF: usize = 1 << 20;

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum TransactError {
    /// The kernel answered with an error.
    Kernel {
        /// Positive errno.
        errno: i32,
        /// The kernel's extended-ack text, if any.
        message: Option<String>,
    },
    /// The socket failed.
    Io(io::Error),
    /// A reply did not parse.
    Decode(DecodeError),
}

/// Opens a non-blocking `NETLINK_XFRM` socket bound to `groups` (a bit
/// mask of `1 << (XFRMNLGRP_* - 1)`, 0 for a request socket), registered
/// with tokio.
///
/// # Panics
/// Outside a tokio runtime.
pub(crate) fn open_socket(groups: u32) -> io::Result<AsyncFd<Socket>> {
    let sock = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::RAW,
        Some(Protocol::from(libc::NETLINK_XFRM)),
    )?;
    sock.set_nonblocking(true)?;
    bind(sock.as_raw_fd(), &NetlinkAddr::new(0, groups)).map_err(io::Error::from)?;
    let on = 1i32.to_ne_bytes();
    // Extended acks carry the kernel's reason ("Requested type not
    // found"); capped acks keep errors short. Both are optional (Linux
    // 4.12+), so failure to set them is not an error.
    let fd = std::os::fd::AsFd::as_fd(&sock);
    let _ = crate::sys::setsockopt_bytes(fd, libc::SOL_NETLINK, libc::NETLINK_EXT_ACK, &on);
    let _ = crate::sys::setsockopt_bytes(fd, libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, &on);
    if groups != 0
        && nix::sys::socket::setsockopt(
            &sock,
            nix::sys::socket::sockopt::RcvBufForce,
            &EVENT_RCVBUF,
        )
        .is_err()
    {
        let _ = sock.set_recv_buffer_size(EVENT_RCVBUF);
    }
    crate::sys::register(sock)
}

/// Reads one datagram into `buf`, waiting for it.
pub(crate) async fn recv(sock: &AsyncFd<Socket>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = sock.readable().await?;
        match guard.try_io(|s| s.get_ref().read(buf)) {
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

/// A request socket with its sequence counter.
#[derive(Debug)]
pub(crate) struct Channel {
    sock: AsyncFd<Socket>,
    seq: u32,
    buf: Vec<u8>,
}

impl Channel {
    /// Opens the request socket.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub(crate) fn open() -> io::Result<Self> {
        Ok(Self {
            sock: open_socket(0)?,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Sends `body` with an ACK request and waits for the acknowledgement.
    pub(crate) async fn ack(&mut self, body: Body) -> Result<(), TransactError> {
        self.transact(body, flags::ACK).await.map(|_| ())
    }

    /// Sends a GET-style `body` and returns the kernel's one reply.
    pub(crate) async fn get(&mut self, body: Body) -> Result<Body, TransactError> {
        let mut replies = self.transact(body, 0).await?;
        replies
            .pop()
            .ok_or(TransactError::Decode(DecodeError::Truncated(
                "reply (none came)",
            )))
    }

    /// Dumps a table (`XFRM_MSG_GETSA` or `_GETPOLICY`).
    pub(crate) async fn dump(&mut self, msg_type: u16) -> Result<Vec<Body>, TransactError> {
        self.transact(Body::Dump(msg_type), flags::DUMP).await
    }

    /// Sends one request and collects the replies carrying its sequence
    /// number: for a dump every entry until `NLMSG_DONE` (entries that do
    /// not parse are skipped with a warning), otherwise the first reply or
    /// the acknowledgement. Replies to earlier requests whose caller gave
    /// up (a cancelled future) are discarded by their sequence number.
    async fn transact(&mut self, body: Body, nl_flags: u16) -> Result<Vec<Body>, TransactError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = Message::request(body, nl_flags, seq).to_bytes();
        self.send(&bytes).await.map_err(TransactError::Io)?;
        let dump = nl_flags & flags::DUMP != 0;
        let mut replies = Vec::new();
        loop {
            let n = recv(&self.sock, &mut self.buf)
                .await
                .map_err(TransactError::Io)?;
            for msg in Message::parse_all(&self.buf[..n]) {
                let msg = match msg {
                    Ok(m) if m.header.seq != seq => continue,
                    Ok(m) => m,
                    Err(e) if dump => {
                        tracing::warn!("xfrm: skipping a dump entry that does not parse: {e}");
                        continue;
                    }
                    Err(e) => return Err(TransactError::Decode(e)),
                };
                match msg.body {
                    Body::Error(e) if e.error == 0 => return Ok(replies),
                    Body::Error(e) => {
                        return Err(TransactError::Kernel {
                            errno: e.errno(),
                            message: e.message(),
                        });
                    }
                    Body::Done => return Ok(replies),
                    other => {
                        replies.push(other);
                        if !dump && nl_flags & flags::ACK == 0 {
                            return Ok(replies);
                        }
                    }
                }
            }
        }
    }

    async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        loop {
            let mut guard = self.sock.writable().await?;
            match guard.try_io(|s| s.get_ref().send(bytes)) {
                Ok(result) => return result.map(|_| ()),
                Err(_would_block) => continue,
            }
        }
    }
}
