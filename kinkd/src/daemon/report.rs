//! One log line per protocol event, saying what happened; the same
//! sentence goes to `racoonctl watch`.

use crate::proto::Event;

/// How loud an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Warn,
    Error,
}

/// An event as the operator sees it: level, a kind for scripts, a sentence.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) level: Level,
    pub(crate) kind: &'static str,
    /// The remote block, for `watch`'s SA column.
    pub(crate) peer: Option<String>,
    pub(crate) message: String,
}

impl Report {
    /// Writes the log line.
    pub(crate) fn log(&self) {
        match self.level {
            Level::Info => tracing::info!("{}", self.message),
            Level::Warn => tracing::warn!("{}", self.message),
            Level::Error => tracing::error!("{}", self.message),
        }
    }
}

/// Describes one event of the protocol core.
pub(crate) fn describe(ev: &Event) -> Report {
    let report = |level, kind, peer: &str, message| Report {
        level,
        kind,
        peer: Some(peer.to_owned()),
        message,
    };
    match ev {
        Event::Established {
            peer,
            spi_in,
            spi_out,
            esp,
            rekey,
            three_way,
        } => {
            let how = match (rekey, three_way) {
                (true, _) => "rekeyed",
                (false, true) => "ESTABLISHED (with ACK)",
                (false, false) => "ESTABLISHED",
            };
            report(
                Level::Info,
                if *rekey {
                    "sa_rekeyed"
                } else {
                    "sa_established"
                },
                peer,
                format!(
                    "KINK SAs with {peer} {how}: ESP {esp}, SPIs in {spi_in:08x} out {spi_out:08x}"
                ),
            )
        }
        Event::Failed { peer, reason } => report(
            Level::Error,
            "sa_failed",
            peer,
            format!("KINK negotiation with {peer} failed: {reason}"),
        ),
        Event::Deleted {
            peer,
            spi_in,
            reason,
        } => report(
            Level::Info,
            "sa_deleted",
            peer,
            format!("KINK SAs with {peer} (SPI in {spi_in:08x}) deleted: {reason}"),
        ),
        Event::Dropped { from, reason } => Report {
            level: Level::Warn,
            kind: "dropped",
            peer: None,
            message: format!("dropped a message from {from}: {reason}"),
        },
        Event::PeerRestarted { peer } => report(
            Level::Warn,
            "peer_restarted",
            peer,
            format!("{peer} restarted (its KINK epoch changed): its SAs are gone"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn established_and_failed_read_well() {
        let r = describe(&Event::Established {
            peer: "b".into(),
            spi_in: 0xc1a2_b3c4,
            spi_out: 1,
            esp: "AES_GCM_16-128".into(),
            rekey: false,
            three_way: false,
        });
        assert_eq!(
            (r.level, r.kind, r.peer.as_deref()),
            (Level::Info, "sa_established", Some("b"))
        );
        assert_eq!(
            r.message,
            "KINK SAs with b ESTABLISHED: ESP AES_GCM_16-128, SPIs in c1a2b3c4 out 00000001"
        );
        let r = describe(&Event::Failed {
            peer: "b".into(),
            reason: "KDC unreachable".into(),
        });
        assert_eq!(r.level, Level::Error);
        assert_eq!(r.message, "KINK negotiation with b failed: KDC unreachable");
        let r = describe(&Event::Dropped {
            from: "192.0.2.2:910".parse().unwrap(),
            reason: "bad checksum".into(),
        });
        assert_eq!(r.peer, None);
        assert_eq!(
            r.message,
            "dropped a message from 192.0.2.2:910: bad checksum"
        );
    }
}
