//! IKEv2 ([RFC 7296](https://www.rfc-editor.org/rfc/rfc7296)): wire codec
//! and the sans-IO protocol core.
//!
//! Entry point: [`endpoint::Endpoint`]. Feed it datagrams
//! (`handle_datagram`) and timer expiries (`handle_timeout`), start SAs
//! with `initiate`, rekey them with `rekey_child`/`rekey_ike` (or let
//! `on_soft_expire` and the IKE SA lifetime do it), then drain
//! `poll_output` and sleep until `poll_timeout`.

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
pub mod lifetime;
pub mod natd;
pub mod output;
pub mod proposal;
pub(crate) mod rekey_child;
pub(crate) mod rekey_ike;
pub mod sa;
pub mod sk;
pub mod ts;
pub mod wire;

pub use init::NAT_T_PORT;
