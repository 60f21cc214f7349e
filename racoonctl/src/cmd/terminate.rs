//! `terminate REMOTE|SPI|all`: delete IKE SAs and their CHILD SAs.

use libracoon::ctl::proto::Request;

use super::{Ctx, Daemon, one_shot};
use crate::error::CliError;

/// IKE SAs belong to iked.
const DAEMON: Daemon = Daemon::Iked;

/// Asks iked to delete; iked decides what the target names (a remote, an
/// initiator SPI or `all`) and says what it deleted.
pub(crate) async fn run(ctx: &Ctx, target: String) -> Result<(), CliError> {
    one_shot(ctx, DAEMON, Request::Terminate { target }).await
}
