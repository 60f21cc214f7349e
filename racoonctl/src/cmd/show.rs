//! `show sa`, `show status`: read-only views of iked.

use libracoon::ctl::proto::Request;

use super::{Ctx, Daemon, one_shot};
use crate::error::CliError;

/// Both views come from iked (spmd's policy view will be `show policy`).
const DAEMON: Daemon = Daemon::Iked;

/// `show sa`: the IKE SAs and their CHILD SAs.
pub(crate) async fn sa(ctx: &Ctx) -> Result<(), CliError> {
    one_shot(ctx, DAEMON, Request::ShowSa).await
}

/// `show status`: the daemon's own state.
pub(crate) async fn status(ctx: &Ctx) -> Result<(), CliError> {
    one_shot(ctx, DAEMON, Request::ShowStatus).await
}
