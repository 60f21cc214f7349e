//! `show sa`, `show policy`, `show status`: read-only views.

use libracoon::ctl::proto::Request;

use super::{Ctx, Daemon, one_shot};
use crate::error::CliError;

/// `show sa [iked|kinkd]`: iked's IKE SAs and their CHILD SAs, or
/// kinkd's SA pairs.
pub(crate) async fn sa(ctx: &Ctx, daemon: Daemon) -> Result<(), CliError> {
    one_shot(ctx, daemon, Request::ShowSa).await
}

/// `show policy`: spmd's installed policies.
pub(crate) async fn policy(ctx: &Ctx) -> Result<(), CliError> {
    one_shot(ctx, Daemon::Spmd, Request::ShowPolicy).await
}

/// `show status [DAEMON]`: a daemon's own state.
pub(crate) async fn status(ctx: &Ctx, daemon: Daemon) -> Result<(), CliError> {
    one_shot(ctx, daemon, Request::ShowStatus).await
}
