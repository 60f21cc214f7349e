//! `initiate REMOTE`: start an IKE SA with a configured remote.

use libracoon::ctl::proto::Request;

use super::{Ctx, Daemon, one_shot};
use crate::error::CliError;

/// IKE SAs belong to iked.
const DAEMON: Daemon = Daemon::Iked;

/// Asks iked to initiate; prints what it says it does.
pub(crate) async fn run(ctx: &Ctx, remote: String) -> Result<(), CliError> {
    one_shot(ctx, DAEMON, Request::Initiate { remote }).await
}
