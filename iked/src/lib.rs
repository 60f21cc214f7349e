//! iked: racoon3's IKEv2 daemon.
//!
//! The [`ikev2`] module is a sans-IO protocol core: it never touches a
//! socket, the clock or the OS random generator. Time and randomness are
//! parameters, datagrams go in through `handle_datagram` and come out through
//! `poll_output`. The [`daemon`] module is the thin tokio driver around it.

pub mod daemon;
pub mod ikev2;

#[cfg(test)]
mod tests;
