//! What spmd has installed, on disk, so that a successor can remove what a
//! crashed spmd left in the kernel: a daemon restart leaves no stale
//! kernel state.
//!
//! The journal is `RUN_DIR/spmd.policies`: a JSON array of the installed
//! policies, rewritten (write to a temporary file, then rename) after every
//! change, so it is never half-written. A clean exit removes the policies
//! and then the file; a file found at start means the predecessor died
//! without cleaning up.

use std::path::{Path, PathBuf};

use pfkey::PolicySpec;

/// The journal file of one run directory.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// The journal in `run_dir`.
    pub fn in_dir(run_dir: &Path) -> Self {
        Self {
            path: run_dir.join("spmd.policies"),
        }
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What a predecessor left, if anything.
    ///
    /// # Errors
    /// The file exists but cannot be read or is not a journal; the message
    /// names it so the operator can inspect and remove it.
    pub fn leftovers(&self) -> Result<Vec<PolicySpec>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not a policy journal ({e}); remove it after checking `ip xfrm policy`",
                self.path.display()
            )
        })
    }

    /// Records `installed` as the current state.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn record(&self, installed: &[PolicySpec]) -> std::io::Result<()> {
        let tmp = self.path.with_extension("policies.tmp");
        let text = serde_json::to_string_pretty(installed).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)
    }

    /// Forgets everything (after a clean removal).
    pub fn clear(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pfkey::{PolicyAction, SaDirection, Selector};

    #[test]
    fn recorded_policies_come_back_as_leftovers_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::in_dir(dir.path());
        assert!(j.leftovers().unwrap().is_empty());
        let p = PolicySpec {
            selector: Selector::ranges(
                ("192.0.2.1".parse().unwrap(), "192.0.2.1".parse().unwrap()),
                ("192.0.2.2".parse().unwrap(), "192.0.2.2".parse().unwrap()),
            ),
            direction: SaDirection::Outbound,
            action: PolicyAction::Discard,
            tunnel: None,
        };
        j.record(std::slice::from_ref(&p)).unwrap();
        assert_eq!(j.leftovers().unwrap(), vec![p]);
        j.clear();
        assert!(j.leftovers().unwrap().is_empty());
    }

    #[test]
    fn a_corrupt_journal_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::in_dir(dir.path());
        std::fs::write(j.path(), "{not json").unwrap();
        let err = j.leftovers().unwrap_err();
        assert!(err.contains("spmd.policies"), "{err}");
    }
}
