//! `initiate [--daemon iked|kinkd] REMOTE`: start an IKE SA (iked) or a
//! KINK CREATE (kinkd) with a configured remote.

use libracoon::ctl::proto::Request;

use super::{Ctx, Daemon, one_shot};
use crate::error::CliError;

/// Asks `daemon` (iked or kinkd) to initiate; prints what it says it does.
pub(crate) async fn run(ctx: &Ctx, daemon: Daemon, remote: String) -> Result<(), CliError> {
    one_shot(ctx, daemon, Request::Initiate { remote }).await
}
