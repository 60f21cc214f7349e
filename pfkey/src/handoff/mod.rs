//! How ESP-in-UDP crosses from iked to spmd when spmd hosts the userspace
//! datapath.
//!
//! UDP port 4500 carries IKE (behind a four-zero non-ESP marker) and ESP
//! (RFC 3948), and only one process can read a UDP socket. racoon3's choice
//! (DESIGN.md, "UDP 4500 carries both IKE and ESP"): **iked owns the port**
//! and hands the other kind over. At attach, iked passes spmd a duplicate
//! of each port-4500 socket (`SCM_RIGHTS`), so the datapath *sends*
//! ESP-in-UDP from it directly; iked keeps *reading* it and forwards each
//! ESP datagram to spmd over a Unix `SOCK_SEQPACKET` connection
//! (`RUN_DIR/spmd-esp.sock`). Plain ESP (IP protocol 50) never touches iked.
//!
//! The alternative, `SO_REUSEPORT` with a classic BPF program steering by
//! the first four payload bytes, was rejected: a reuseport group indexes
//! its sockets by join order, which changes whenever either daemon
//! restarts, and a wrong index silently sends IKE to the datapath.
//!
//! [`wire`] is the sans-IO message format; [`io`] the two sockets.

mod fd;
pub mod io;
pub mod wire;

pub use io::{HandoffReceiver, HandoffSender};
pub use wire::{HandoffMessage, decode, encode_esp};

/// The socket's file name in the run directory.
pub const SOCKET_NAME: &str = "spmd-esp.sock";
