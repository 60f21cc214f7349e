//! One log line per event, saying what happened and, for failures, what
//! to fix. Operators of strongSwan read `ESTABLISHED`/`INSTALLED`; so do ours.

use crate::ikev2::endpoint::SaTag;
use crate::ikev2::error::Error;
use crate::ikev2::output::Event;

/// Logs one event of the SA `tag`.
pub(crate) fn event(tag: &SaTag, ev: &Event) {
    let name = &tag.name;
    let peer = tag.peer;
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
            tracing::info!(
                "IKE SA {name}[{:016x}] ESTABLISHED with {peer} '{peer_id}', {suite}{nat}",
                tag.spi
            );
        }
        Event::ChildFailed(e) => tracing::error!("CHILD SA {name} with {peer} failed: {e}"),
        Event::ChildDeletedByPeer => tracing::info!("CHILD SA {name} deleted by {peer}"),
        Event::IkeClosed(Error::LocallyClosed) => {
            tracing::info!("IKE SA {name}[{:016x}] with {peer} deleted", tag.spi)
        }
        Event::IkeClosed(Error::DeletedByPeer) => {
            tracing::info!("IKE SA {name}[{:016x}] deleted by {peer}", tag.spi);
        }
        Event::IkeClosed(Error::InvalidKe { got, want }) => {
            tracing::info!("{peer} offered DH group {got}; asked it to retry with group {want}");
        }
        Event::IkeClosed(e) => tracing::error!("IKE SA {name} with {peer} failed: {e}"),
    }
}
