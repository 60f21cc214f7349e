//! How ESP-in-UDP crosses between iked and spmd when spmd hosts the
//! userspace datapath.
//!
//! UDP port 4500 carries IKE (behind a four-zero non-ESP marker) and ESP
//! (RFC 3948). racoon3's choice: **iked owns the port** (binds it, keeps
//! it across spmd restarts) and **the datapath reads it**. At attach, iked
//! passes spmd a duplicate of each port-4500 socket (`SCM_RIGHTS`) over a
//! Unix `SOCK_SEQPACKET` connection (`RUN_DIR/spmd-esp.sock`); the
//! datapath sends ESP-in-UDP from it and reads it with the `UDP_GRO` iked
//! set, decrypting coalesced reads in place, and passes every datagram
//! that is not ESP (IKE, rare) back to iked over the same connection.
//! spmd confirms each socket it reads; once all are confirmed, iked's own
//! readers pause for as long as the connection lasts. Until then (and
//! without spmd) iked reads the port and forwards the ESP it gets to spmd
//! (records of one or of GRO-coalesced datagrams). When the connection
//! ends, each side lets go: iked reads the port again, spmd closes its
//! duplicates (so a restarted iked can bind the port). Plain ESP (IP
//! protocol 50) never touches iked.
//!
//! The first design had iked read port 4500 and forward all ESP: a
//! pipeline of two processes whose stages waited on each other (bulk TCP
//! through ESP-in-UDP 18 % slower than plain ESP; reading in the datapath
//! made it 25 % faster than plain ESP, see bench/README.md).
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

pub use io::{FromSpmd, HandoffReceiver, HandoffSender, MAX_RECORD, ToIked};
pub use wire::{HandoffMessage, decode, encode_esp, encode_reading, for_iked_header};

/// The socket's file name in the run directory.
pub const SOCKET_NAME: &str = "spmd-esp.sock";
