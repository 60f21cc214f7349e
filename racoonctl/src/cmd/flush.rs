//! `flush`: remove every SA. iked first deletes its IKE SAs (so the peers
//! learn it), then spmd empties the SAD of what is left.

use libracoon::ctl::proto::Request;

use super::{Ctx, Daemon, Session, print};
use crate::error::CliError;
use crate::render;

/// Both daemons, in this order; a daemon that is not running is skipped
/// (said on stderr), but at least one must answer.
pub(crate) async fn run(ctx: &Ctx) -> Result<(), CliError> {
    let mut last_error = None;
    let mut answered = false;
    for daemon in [Daemon::Iked, Daemon::Spmd] {
        let mut session = match Session::open(ctx, daemon).await {
            Ok(s) => s,
            Err(e @ CliError::NotRunning { .. }) => {
                eprintln!("racoonctl: {e}; skipped");
                last_error = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let body = session.call(Request::Flush).await?;
        answered = true;
        let text = render::body(&body, ctx.json);
        print(&if ctx.json {
            text
        } else {
            format!("{daemon}: {text}")
        })?;
    }
    match (answered, last_error) {
        (false, Some(e)) => Err(e),
        _ => Ok(()),
    }
}
