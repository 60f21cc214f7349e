//! `script { phase1_up "PATH"; ... };`: the hook scripts a key-exchange
//! daemon runs on SA events (racoon2's `script` directive of the
//! `ikev1`/`ikev2`/`kink` blocks).
//!
//! racoon2 names the events `phase1_up`, `phase1_down`, `phase1_rekey`,
//! `phase2_up`, `phase2_down`, `phase2_rekey` and `migration`, and accepts
//! `ike_sa_*` / `child_*` as synonyms of the `phase1_*` / `phase2_*`
//! names. A script is run with the racoon2 name as `argv[1]` whichever
//! spelling the configuration used, so both resolve to one [`HookEvent`].

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::parser::Directive;
use super::value::{self, Cx};
use super::{ConfigError, ErrorKind};

/// An SA event a script can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum HookEvent {
    /// The IKE SA (phase 1) is established.
    Phase1Up,
    /// The IKE SA is gone (deleted, expired, failed after establishment).
    Phase1Down,
    /// The IKE SA was replaced by a rekeyed one.
    Phase1Rekey,
    /// A CHILD SA (phase 2) is installed.
    Phase2Up,
    /// A CHILD SA is removed, other than by a rekey.
    Phase2Down,
    /// A CHILD SA was replaced by a rekeyed one.
    Phase2Rekey,
    /// The SA endpoints moved (MIGRATE).
    Migration,
}

impl HookEvent {
    /// Every event, in racoon2's order.
    pub const ALL: [Self; 7] = [
        Self::Phase1Up,
        Self::Phase1Down,
        Self::Phase2Up,
        Self::Phase2Down,
        Self::Phase1Rekey,
        Self::Phase2Rekey,
        Self::Migration,
    ];

    /// racoon2's name, which scripts receive as `argv[1]`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Phase1Up => "phase1_up",
            Self::Phase1Down => "phase1_down",
            Self::Phase1Rekey => "phase1_rekey",
            Self::Phase2Up => "phase2_up",
            Self::Phase2Down => "phase2_down",
            Self::Phase2Rekey => "phase2_rekey",
            Self::Migration => "migration",
        }
    }

    /// The event a `script { }` key names, synonyms included.
    pub fn from_config_name(name: &str) -> Option<Self> {
        Some(match name {
            "phase1_up" | "ike_sa_up" => Self::Phase1Up,
            "phase1_down" | "ike_sa_down" => Self::Phase1Down,
            "phase1_rekey" | "ike_sa_rekey" => Self::Phase1Rekey,
            "phase2_up" | "child_up" => Self::Phase2Up,
            "phase2_down" | "child_down" => Self::Phase2Down,
            "phase2_rekey" | "child_rekey" => Self::Phase2Rekey,
            "migration" => Self::Migration,
            _ => return None,
        })
    }
}

/// The keys `script { }` accepts, for messages (racoon2's spellings first).
pub(crate) const SCRIPT_KEYS: &[&str] = &[
    "phase1_up",
    "phase1_down",
    "phase1_rekey",
    "phase2_up",
    "phase2_down",
    "phase2_rekey",
    "ike_sa_up",
    "ike_sa_down",
    "ike_sa_rekey",
    "child_up",
    "child_down",
    "child_rekey",
    "migration",
];

/// The scripts of one KMP block, by event. Paths are kept as written: a
/// relative one is resolved against the daemon's working directory when
/// it runs, as racoon2 does (and warned about when parsed).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Scripts {
    /// `phase1_up` / `ike_sa_up`.
    pub phase1_up: Option<PathBuf>,
    /// `phase1_down` / `ike_sa_down`.
    pub phase1_down: Option<PathBuf>,
    /// `phase1_rekey` / `ike_sa_rekey`.
    pub phase1_rekey: Option<PathBuf>,
    /// `phase2_up` / `child_up`.
    pub phase2_up: Option<PathBuf>,
    /// `phase2_down` / `child_down`.
    pub phase2_down: Option<PathBuf>,
    /// `phase2_rekey` / `child_rekey`.
    pub phase2_rekey: Option<PathBuf>,
    /// `migration`.
    pub migration: Option<PathBuf>,
}

impl Scripts {
    /// The script for `event`, if one is configured.
    pub fn get(&self, event: HookEvent) -> Option<&Path> {
        self.slot(event).as_deref()
    }

    /// Whether no script is configured at all.
    pub fn is_empty(&self) -> bool {
        HookEvent::ALL.iter().all(|e| self.get(*e).is_none())
    }

    /// Each event's own script, else `default`'s (racoon2 looks a script
    /// up in the remote, then in `default`, event by event).
    pub(crate) fn merge(mut self, default: &Self) -> Self {
        for e in HookEvent::ALL {
            if self.get(e).is_none() {
                self.set(e, default.get(e).map(Path::to_path_buf));
            }
        }
        self
    }

    fn set(&mut self, event: HookEvent, path: Option<PathBuf>) {
        *self.slot_mut(event) = path;
    }

    fn slot(&self, event: HookEvent) -> &Option<PathBuf> {
        match event {
            HookEvent::Phase1Up => &self.phase1_up,
            HookEvent::Phase1Down => &self.phase1_down,
            HookEvent::Phase1Rekey => &self.phase1_rekey,
            HookEvent::Phase2Up => &self.phase2_up,
            HookEvent::Phase2Down => &self.phase2_down,
            HookEvent::Phase2Rekey => &self.phase2_rekey,
            HookEvent::Migration => &self.migration,
        }
    }

    fn slot_mut(&mut self, event: HookEvent) -> &mut Option<PathBuf> {
        match event {
            HookEvent::Phase1Up => &mut self.phase1_up,
            HookEvent::Phase1Down => &mut self.phase1_down,
            HookEvent::Phase1Rekey => &mut self.phase1_rekey,
            HookEvent::Phase2Up => &mut self.phase2_up,
            HookEvent::Phase2Down => &mut self.phase2_down,
            HookEvent::Phase2Rekey => &mut self.phase2_rekey,
            HookEvent::Migration => &mut self.migration,
        }
    }
}

/// `script KEY "PATH";` or `script { KEY "PATH"; ... };`.
///
/// # Errors
/// An unknown key, a missing or empty path, extra values, or two keys
/// naming the same event (`phase1_up` and its synonym `ike_sa_up`).
pub(crate) fn script(cx: &mut Cx<'_>, d: &Directive) -> Result<Scripts, ConfigError> {
    let Some(block) = &d.block else {
        let mut out = Scripts::default();
        let (event, path) = value::single(cx, d, |cx, c| {
            let key = c.value("a script event")?;
            let event = event_of(d, &key.text, &key.span)?;
            let v = c.value("a script path")?;
            Ok((event, checked_path(cx, d, v)?))
        })?;
        out.set(event, Some(path));
        return Ok(out);
    };
    let mut out = Scripts::default();
    let mut first: Vec<(HookEvent, &Directive)> = Vec::new();
    for item in &block.items {
        let Some(key) = item.args.first() else {
            return Err(value::invalid(
                d,
                &item.span,
                "expected a script event".to_owned(),
            ));
        };
        let event = event_of(d, &key.text, &key.span)?;
        if let Some((_, prev)) = first.iter().find(|(e, _)| *e == event) {
            return Err(ConfigError::at(
                item.span.clone(),
                ErrorKind::Duplicate {
                    what: "script for event",
                    name: event.name().to_owned(),
                    first: prev.span.clone(),
                },
            ));
        }
        first.push((event, item));
        let path = value::single(cx, item, |cx, c| {
            let v = c.value("a script path")?;
            checked_path(cx, d, v)
        })?;
        out.set(event, Some(path));
    }
    Ok(out)
}

fn event_of(d: &Directive, key: &str, span: &super::Span) -> Result<HookEvent, ConfigError> {
    HookEvent::from_config_name(key).ok_or_else(|| {
        let reason = format!("expected one of {}, found '{key}'", SCRIPT_KEYS.join(", "));
        value::invalid(d, span, reason)
    })
}

/// A non-empty path; a relative one is warned about, since it depends on
/// where the daemon was started.
fn checked_path(cx: &mut Cx<'_>, d: &Directive, v: value::Val) -> Result<PathBuf, ConfigError> {
    if v.text.is_empty() {
        return Err(value::invalid(
            d,
            &v.span,
            "the script path is empty".to_owned(),
        ));
    }
    let path = PathBuf::from(&v.text);
    if path.is_relative() {
        cx.warn(
            &v.span,
            format!(
                "script path '{}' is relative: it is resolved against the daemon's working directory",
                v.text
            ),
        );
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synonyms_resolve_to_racoon2_names() {
        for (alias, name) in [
            ("ike_sa_up", "phase1_up"),
            ("ike_sa_down", "phase1_down"),
            ("ike_sa_rekey", "phase1_rekey"),
            ("child_up", "phase2_up"),
            ("child_down", "phase2_down"),
            ("child_rekey", "phase2_rekey"),
        ] {
            let e = HookEvent::from_config_name(alias).unwrap();
            assert_eq!(e.name(), name);
            assert_eq!(HookEvent::from_config_name(name), Some(e));
        }
        assert_eq!(HookEvent::from_config_name("boot"), None);
    }

    #[test]
    fn every_key_names_an_event_and_every_event_has_a_key() {
        for k in SCRIPT_KEYS {
            assert!(HookEvent::from_config_name(k).is_some(), "{k}");
        }
        for e in HookEvent::ALL {
            assert!(SCRIPT_KEYS.contains(&e.name()), "{e:?}");
        }
    }

    #[test]
    fn merge_fills_each_event_from_default() {
        let own = Scripts {
            phase1_up: Some("/own/up".into()),
            ..Scripts::default()
        };
        let def = Scripts {
            phase1_up: Some("/def/up".into()),
            phase2_down: Some("/def/down".into()),
            ..Scripts::default()
        };
        let m = own.merge(&def);
        assert_eq!(m.get(HookEvent::Phase1Up), Some(Path::new("/own/up")));
        assert_eq!(m.get(HookEvent::Phase2Down), Some(Path::new("/def/down")));
        assert_eq!(m.get(HookEvent::Migration), None);
        assert!(!m.is_empty());
        assert!(Scripts::default().is_empty());
    }
}
