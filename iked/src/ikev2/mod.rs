//! IKEv2 ([RFC 7296](https://www.rfc-editor.org/rfc/rfc7296)): wire codec
//! and the sans-IO protocol core.
//!
//! Entry point: [`endpoint::Endpoint`]. Feed it datagrams
//! (`handle_datagram`) and timer expiries (`handle_timeout`), start SAs
//! with `initiate`, then drain `poll_output` and sleep until
//! `poll_timeout`.

pub mod auth;
pub mod child;
pub mod config;
pub mod cookie;
pub(crate) mod create_child;
pub mod endpoint;
pub mod error;
pub(crate) mod ike_auth;
pub(crate) mod info;
pub(crate) mod init;
pub mod keys;
pub mod natd;
pub mod output;
pub mod proposal;
pub mod sa;
pub mod sk;
pub mod ts;
pub mod wire;

pub use init::NAT_T_PORT;
