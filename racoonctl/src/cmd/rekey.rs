//! `rekey SA`: renew one CHILD SA or IKE SA now.

use libracoon::ctl::proto::Request;

use super::{Ctx, Daemon, one_shot};
use crate::error::CliError;

/// SAs are negotiated by iked.
const DAEMON: Daemon = Daemon::Iked;

/// Asks iked to rekey `target` (a CHILD SA's SPI or an IKE SA's SPI).
pub(crate) async fn run(ctx: &Ctx, target: String) -> Result<(), CliError> {
    one_shot(ctx, DAEMON, Request::Rekey { target }).await
}
