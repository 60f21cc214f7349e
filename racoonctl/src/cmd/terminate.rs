//! `terminate [--daemon iked|kinkd] REMOTE|SPI|all`: delete IKE SAs and
//! their CHILD SAs (iked), or a remote's KINK SA pairs (kinkd).

use libracoon::ctl::proto::Request;

use super::{Ctx, Daemon, one_shot};
use crate::error::CliError;

/// Asks `daemon` to delete; it decides what the target names (a remote,
/// an initiator SPI for iked, or `all`) and says what it deleted.
pub(crate) async fn run(ctx: &Ctx, daemon: Daemon, target: String) -> Result<(), CliError> {
    one_shot(ctx, daemon, Request::Terminate { target }).await
}
