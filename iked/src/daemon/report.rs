//! One log line per event, saying what happened and, for failures, what
//! to fix. Operators of strongSwan read `ESTABLISHED`/`INSTALLED`; so do
//! ours. The same sentence goes to `racoonctl watch`.

use crate::ikev2::endpoint::SaTag;
use crate::ikev2::error::Error;
use crate::ikev2::output::Event;

/// How loud an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Error,
}

/// An event as the operator sees it: level, a kind for scripts, a sentence.
pub(crate) struct Report {
    pub(crate) level: Level,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

impl Report {
    pub(crate) fn info(kind: &'static str, message: String) -> Self {
        Self {
            level: Level::Info,
            kind,
            message,
        }
    }

    /// Writes the log line.
    pub(crate) fn log(&self) {
        match self.level {
            Level::Info => tracing::info!("{}", self.message),
            Level::Error => tracing::error!("{}", self.message),
        }
    }
}

/// Describes one event of the SA `tag`.
pub(crate) fn describe(tag: &SaTag, ev: &Event) -> Report {
    let name = &tag.name;
    let peer = tag.peer;
    let error = |kind, message| Report {
        level: Level::Error,
        kind,
        message,
    };
    match ev {
        Event::IkeEstablished {
            peer_id,
            suite,
            nat,
        } => {
            let nat = if *nat {
                ", NAT detected: IKE and ESP on UDP 4500"
            } else {
                ""
            };
            let msg = format!(
                "IKE SA {name}[{:016x}] ESTABLISHED with {peer} '{peer_id}', {suite}{nat}",
                tag.spi
            );
            Report::info("ike_established", msg)
        }
        Event::ChildFailed(e) => error(
            "child_failed",
            format!("CHILD SA {name} with {peer} failed: {e}"),
        ),
        Event::IkeRekeyed { new_spi } => Report::info(
            "ike_rekeyed",
            format!(
                "IKE SA {name}[{:016x}] rekeyed with {peer}: now {name}[{new_spi:016x}]",
                tag.spi
            ),
        ),
        Event::ChildDeletedByPeer => Report::info(
            "child_deleted",
            format!("CHILD SA {name} deleted by {peer}"),
        ),
        Event::IkeClosed(Error::LocallyClosed) => Report::info(
            "ike_deleted",
            format!("IKE SA {name}[{:016x}] with {peer} deleted", tag.spi),
        ),
        Event::IkeClosed(Error::DeletedByPeer) => Report::info(
            "ike_deleted",
            format!("IKE SA {name}[{:016x}] deleted by {peer}", tag.spi),
        ),
        Event::IkeClosed(Error::InvalidKe { got, want }) => Report::info(
            "invalid_ke",
            format!("{peer} offered DH group {got}; asked it to retry with group {want}"),
        ),
        Event::IkeClosed(Error::HalfOpenTimeout) => Report::info(
            "half_open_expired",
            format!("half-open IKE SA from {peer} expired without a valid IKE_AUTH"),
        ),
        Event::IkeClosed(e) => error(
            "ike_failed",
            format!("IKE SA {name} with {peer} failed: {e}"),
        ),
    }
}
