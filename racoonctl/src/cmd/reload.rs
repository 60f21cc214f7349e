//! `reload`: spmd re-reads the configuration and applies policy changes,
//! keeping every SA the change does not touch.

use libracoon::ctl::proto::Request;

use super::{Ctx, Daemon, one_shot};
use crate::error::CliError;

/// Policies are spmd's.
const DAEMON: Daemon = Daemon::Spmd;

/// Asks spmd to reload; it answers with what it added and removed, or
/// with the configuration error (and keeps running the old one).
pub(crate) async fn run(ctx: &Ctx) -> Result<(), CliError> {
    one_shot(ctx, DAEMON, Request::Reload).await
}
