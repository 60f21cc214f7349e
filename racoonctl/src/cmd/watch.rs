//! `watch [--daemon iked|kinkd]`: print a daemon's events as they happen.

use libracoon::ctl::proto::{Request, ResponseBody};

use super::{Ctx, Daemon, Session, print};
use crate::error::CliError;
use crate::render;

/// Subscribes, then prints one line per event until the daemon stops (exit
/// code 3) or the user interrupts. With `--json`, each line is one event
/// object and nothing else reaches stdout.
pub(crate) async fn run(ctx: &Ctx, daemon: Daemon) -> Result<(), CliError> {
    let mut session = Session::open(ctx, daemon).await?;
    let subscribed = session.call(Request::Watch).await?;
    if let (false, ResponseBody::Done { message }) = (ctx.json, &subscribed) {
        eprintln!("racoonctl: {message} (Ctrl-C to stop)");
    }
    loop {
        let event = session.next_event().await?;
        print(&render::event(&event, ctx.json))?;
    }
}
