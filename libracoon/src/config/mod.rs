//! racoon2.conf: parse, expand and validate into a typed [`Config`].
//!
//! The syntax is racoon2's (`doc/config-usage.txt` of racoon2), read in four
//! steps, one module each:
//!
//! 1. `lexer`: characters -> tokens with a [`Span`] (`file:line:col`);
//! 2. `parser`: tokens -> a generic directive tree (nom, no semantics);
//! 3. `include`: `include "GLOB";` replaced by the files it names, relative
//!    to the including file's directory, with loops detected;
//! 4. `build` (with `remote`, `spd`, `value`, `addr`, `directives`): the tree ->
//!    [`Config`]. `setval` variables (`${NAME}`) and environment variables
//!    (`$[NAME]`) are expanded once every file has been read, `default`
//!    values are merged in, every `*_index` reference is checked.
//!
//! An unknown directive is an error naming `file:line:col`. A directive that
//! racoon2 understood but racoon3 does not implement is a [`Warning`] naming
//! `file:line`; the list is in `directives.rs`.
//!
//! Differences from racoon2, all deliberate:
//! - keywords are not reserved: an index may be called `main` or `ike`;
//! - host names are rejected (racoon3 does not resolve names at load time),
//!   and so are interface names where an address is expected;
//! - `${NAME}` and `$[NAME]` also work in bare words, not only in quotes;
//! - new names: `aes128_gcm16`, `aes256_gcm16`, `chacha20_poly1305`,
//!   `ecp256`, `ecp384`, `ecp521`, `curve25519` (DH groups 19-21, 31) and
//!   `ecdsasig`; with AEAD ciphers `kmp_hash_alg` / `esp_auth_alg` may be
//!   omitted;
//! - racoon2's file ownership and mode checks (`safefile`) are not made.

mod addr;
mod build;
mod directives;
mod include;
mod lexer;
mod model;
mod names;
mod parser;
mod remote;
mod scripts;
mod spd;
mod value;

use std::fmt;
use std::path::Path;

pub use self::lexer::Span;
pub use self::model::{
    AddressPool, AddressRange, Config, IdKind, Identity, Ikev2Params, Interface, IpPrefix, Ipsec,
    KinkParams, Lifetime, ListenAddr, PeerAddr, Policy, Remote, Sa, Selector,
};
pub use self::names::{
    AuthAlgName, AuthMethod, DhGroupName, Direction, EncAlgName, IpsecLevel, IpsecMode, Kmp,
    PolicyAction, SaProtocol,
};
pub use self::scripts::{HookEvent, Scripts};

/// A parsed configuration and the warnings found on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// Understood-but-unimplemented directives and similar notes, in file
    /// order.
    pub warnings: Vec<Warning>,
}

/// Reads, expands and validates the configuration at `path` and everything
/// it includes, with the process environment for `$[NAME]`.
///
/// # Errors
///
/// The first problem found: unreadable file, syntax error, unknown
/// directive, bad value, missing setting or dangling reference.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// [`load`] with an injected environment lookup (tests, sandboxes).
///
/// # Errors
///
/// As [`load`].
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let directives = include::load_file(&include::RealFiles, path, env)?;
    build::build(&directives, env)
}

/// Parses configuration text; `file` names it in spans. `include` paths
/// that are relative resolve against the current directory.
///
/// # Errors
///
/// As [`load`].
pub fn parse_str(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let directives = include::load_text(&include::RealFiles, text, file, Path::new(""), env)?;
    build::build(&directives, env)
}

/// Reads a `pre_shared_key` file: as in racoon2, the whole file is the key,
/// byte for byte (a trailing newline is part of it).
///
/// # Errors
///
/// [`ErrorKind::Psk`] naming the path when the file cannot be read or is
/// empty.
pub fn read_psk(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let psk_error = |reason: String| {
        ConfigError::new(ErrorKind::Psk {
            path: path.display().to_string(),
            reason,
        })
    };
    let key = std::fs::read(path).map_err(|e| psk_error(e.to_string()))?;
    if key.is_empty() {
        return Err(psk_error("the file is empty".to_owned()));
    }
    Ok(key)
}

/// A configuration error, located when it comes from the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the problem is, if it is in a file.
    pub span: Option<Span>,
    /// What it is.
    pub kind: ErrorKind,
}

impl ConfigError {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Self { span: None, kind }
    }

    pub(crate) fn at(span: Span, kind: ErrorKind) -> Self {
        Self {
            span: Some(span),
            kind,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.span {
            Some(span) => write!(f, "{span}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why a configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The system's explanation.
        reason: String,
    },
    /// A character sequence that is not a token.
    #[error("{0}")]
    Lex(String),
    /// The token stream does not fit the grammar.
    #[error("syntax error: expected {expected}, found {found}")]
    Syntax {
        /// What the grammar wanted.
        expected: &'static str,
        /// What was there.
        found: String,
    },
    /// A directive racoon2 does not have.
    #[error("unknown directive '{name}' in {context}")]
    UnknownDirective {
        /// The directive name.
        name: String,
        /// The enclosing block.
        context: String,
    },
    /// A known directive in a block where it does not belong.
    #[error("'{name}' is not valid in {context} (it belongs in {valid_in})")]
    Misplaced {
        /// The directive name.
        name: String,
        /// The enclosing block.
        context: String,
        /// Where it may appear.
        valid_in: &'static str,
    },
    /// A value that does not fit its directive.
    #[error("invalid value for '{directive}': {reason}")]
    InvalidValue {
        /// The directive name.
        directive: String,
        /// What is wrong.
        reason: String,
    },
    /// A required setting is absent (from the block and from `default`).
    #[error("{block}: missing '{directive}'{hint}")]
    Missing {
        /// The block, e.g. `remote 'gw'`.
        block: String,
        /// The directive.
        directive: &'static str,
        /// Extra explanation, starting with a space or empty.
        hint: &'static str,
    },
    /// A block or directive defined twice.
    #[error("duplicate {what} '{name}' (first at {first})")]
    Duplicate {
        /// What kind of thing, e.g. `remote`.
        what: &'static str,
        /// Its name.
        name: String,
        /// Where the first definition is.
        first: Span,
    },
    /// An `*_index` naming no block.
    #[error("'{directive}' refers to {target} '{name}', which is not defined")]
    UndefinedReference {
        /// The referencing directive.
        directive: &'static str,
        /// The kind of block referred to.
        target: &'static str,
        /// The missing name.
        name: String,
    },
    /// `${NAME}` with no `setval` for NAME.
    #[error("undefined variable ${{{0}}}")]
    UndefinedVariable(String),
    /// `$[NAME]` with NAME not in the environment.
    #[error("environment variable $[{0}] is not set")]
    UnsetEnv(String),
    /// A malformed, looping or oversized variable reference.
    #[error("variable expansion: {0}")]
    Variable(String),
    /// An `include` that cannot be followed (no match, loop, too deep).
    #[error("include: {0}")]
    Include(String),
    /// A combination of settings that cannot work.
    #[error("{0}")]
    Invalid(String),
    /// A `pre_shared_key` file that cannot be used.
    #[error("pre-shared key file {path}: {reason}")]
    Psk {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// A note about the configuration that does not stop it from loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where the directive is.
    pub span: Span,
    /// What racoon3 does with it.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.span.file_line(), self.message)
    }
}

impl std::error::Error for Warning {}

/// Fuzzing entry points (`cargo fuzz run conf_parse`).
#[cfg(any(fuzzing, test))]
pub mod fuzzing {
    use std::path::Path;

    use super::{build, include};

    /// Parses arbitrary bytes as a configuration. Never touches the file
    /// system: every `include` fails cleanly. Must never panic.
    pub fn parse(data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let env = |name: &str| (name == "HOME").then(|| "/nonexistent".to_owned());
        if let Ok(directives) =
            include::load_text(&include::NoFiles, &text, "fuzz.conf", Path::new(""), &env)
        {
            let _ = build::build(&directives, &env);
        }
    }
}

#[cfg(test)]
mod tests;
