//! Everything that talks to the KDC, off the event loop.
//!
//! kinkd keeps two MIT backends on one credential cache (`MEMORY:kinkd-PID`
//! unless `KRB5CCNAME` names another): the *fetcher*, behind
//! [`Shared`], runs the blocking calls (AS-REQ for our TGT, TGS-REQs for the
//! peers' tickets) on tokio's blocking pool; the *engine's* backend is owned
//! by the event loop and only computes. A service ticket the fetcher stores
//! in the shared cache is found there by the engine's backend without a KDC
//! round trip (`Kerberos::load_ticket`, cache only: a service ticket by the
//! library's matching, a user-to-user ticket by walking the cache for the
//! one issued against the peer's TGT, which MIT's matching does not find;
//! `kinkd/tests/ccache_sharing.rs` proves both with the KDC stopped).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::krb5::{Kerberos, MitKerberos, Shared, TicketInfo, TicketKind};

/// How long to wait before asking the KDC again after a failure.
pub(crate) const RETRY: Duration = Duration::from_secs(30);
/// Renew the TGT when this share (per mille) of its remaining life is gone.
const RENEW_PERMILLE: u64 = 800;

/// What the KDC side reports to the event loop.
#[derive(Debug)]
pub(crate) enum KdcEvent {
    /// A (new) TGT is in the shared cache.
    Tgt(TicketInfo),
    /// The outcome of an `Output::FetchTicket`.
    Ticket {
        /// The peer's principal.
        peer: String,
        /// Which ticket.
        kind: TicketKind,
        /// `Err` with the KDC's complaint.
        result: Result<(), String>,
    },
}

/// The fetcher backend and where its results go.
#[derive(Clone)]
pub(crate) struct Kdc {
    fetcher: Shared<MitKerberos>,
    tx: mpsc::Sender<KdcEvent>,
}

impl Kdc {
    pub(crate) fn new(fetcher: MitKerberos, tx: mpsc::Sender<KdcEvent>) -> Self {
        Self {
            fetcher: Shared::new(fetcher),
            tx,
        }
    }

    /// Gets our TGT now, then again at 80 % of each TGT's life; every 30 s
    /// after a failure. Runs until the daemon stops.
    pub(crate) async fn keep_tgt(self) {
        let env = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        let keytab = env("KRB5_KTNAME");
        let where_ = format!(
            "keytab {}, krb5.conf {}",
            keytab
                .as_deref()
                .unwrap_or("(default: krb5.conf's default_keytab_name, else /etc/krb5.keytab)"),
            env("KRB5_CONFIG").as_deref().unwrap_or("/etc/krb5.conf")
        );
        if let Some(path) = keytab.as_deref().and_then(keytab_file)
            && !path.exists()
        {
            tracing::error!(
                "keytab {} does not exist: kinkd cannot get its TGT until it does (KRB5_KTNAME names the keytab with our principal's key)",
                path.display()
            );
        }
        loop {
            let result = self.fetcher.run(MitKerberos::get_tgt).await;
            let wait = match result {
                Ok(Ok(info)) => {
                    let wait = renew_after(info.end_time, unix_now());
                    tracing::info!(
                        "got a TGT for {} from the KDC, valid for {}s; renewing in {}s",
                        info.client,
                        info.end_time.saturating_sub(unix_now()),
                        wait.as_secs()
                    );
                    if self.tx.send(KdcEvent::Tgt(info)).await.is_err() {
                        return; // the daemon is stopping
                    }
                    wait
                }
                Ok(Err(e)) => {
                    tracing::error!(
                        "cannot get a TGT from the KDC: {e}; retrying in {}s ({where_})",
                        RETRY.as_secs()
                    );
                    RETRY
                }
                Err(_) => return, // runtime shutting down
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Runs an `Output::FetchTicket` on the blocking pool; the outcome comes
    /// back as [`KdcEvent::Ticket`].
    pub(crate) fn fetch(&self, peer: String, kind: TicketKind, peer_tgt: Option<Vec<u8>>) {
        let this = self.clone();
        tokio::spawn(async move {
            let name = peer.clone();
            let result = this
                .fetcher
                .run(move |k| match (kind, peer_tgt) {
                    (TicketKind::Service, _) => k.get_service_ticket(&name),
                    (TicketKind::UserToUser, Some(tgt)) => k.get_user_to_user_ticket(&name, &tgt),
                    (TicketKind::UserToUser, None) => Err(crate::krb5::Error::local(
                        "get_user_to_user_ticket",
                        "no peer TGT to ask for a user-to-user ticket with",
                    )),
                })
                .await;
            let result = match result {
                Ok(Ok(info)) => {
                    tracing::debug!("got a {kind:?} ticket for {} from the KDC", info.server);
                    Ok(())
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let _ = this.tx.send(KdcEvent::Ticket { peer, kind, result }).await;
        });
    }
}

/// The file of a keytab name (`FILE:/path`, `WRFILE:/path` or a bare
/// path); `None` for other keytab types.
fn keytab_file(name: &str) -> Option<PathBuf> {
    let path = name
        .strip_prefix("FILE:")
        .or_else(|| name.strip_prefix("WRFILE:"))
        .unwrap_or(name);
    path.starts_with('/').then(|| PathBuf::from(path))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// When to renew a TGT ending at `end` (Unix seconds) seen at `now`: at
/// 80 % of its remaining life, never sooner than [`RETRY`] (a TGT about
/// to end, or a clock far off, must not make us hammer the KDC).
pub(crate) fn renew_after(end: i64, now: i64) -> Duration {
    let left = u64::try_from(end.saturating_sub(now)).unwrap_or(0);
    Duration::from_secs(left * RENEW_PERMILLE / 1000).max(RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keytab_files_are_recognised() {
        assert_eq!(keytab_file("FILE:/etc/k"), Some(PathBuf::from("/etc/k")));
        assert_eq!(keytab_file("WRFILE:/etc/k"), Some(PathBuf::from("/etc/k")));
        assert_eq!(keytab_file("/etc/k"), Some(PathBuf::from("/etc/k")));
        assert_eq!(keytab_file("MEMORY:kt"), None);
    }

    #[test]
    fn renews_at_80_percent_and_not_too_often() {
        assert_eq!(
            renew_after(1000 + 36_000, 1000),
            Duration::from_secs(28_800)
        );
        assert_eq!(renew_after(1000 + 10, 1000), RETRY);
        assert_eq!(renew_after(0, 1000), RETRY, "already expired");
    }
}
