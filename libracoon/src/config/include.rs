//! `include "GLOB";`: splices the directives of the named files in place.
//!
//! As in racoon2, `include` is a top-level statement, its path may use
//! `$[ENV]` (not `${NAME}`, which is only known after every file is read)
//! and a leading `~/`, and is a glob whose matches are read in sorted order;
//! a pattern matching nothing is an error. Unlike racoon2, a relative path
//! is taken relative to the including file's directory, and a file that
//! (directly or not) includes itself is reported as a loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lexer::lex;
use super::parser::{ArgKind, Directive, parse};
use super::value::{EnvFn, expand_env};
use super::{ConfigError, ErrorKind};

/// Deepest include nesting accepted (racoon2: 10).
const MAX_INCLUDE_DEPTH: usize = 16;

/// The file system as the loader sees it (a no-op one for fuzzing).
pub(crate) trait Files {
    /// The regular files matching a glob pattern, sorted.
    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String>;
    /// A whole file as text.
    fn read(&self, path: &Path) -> Result<String, String>;
    /// What identifies a file for loop detection (its canonical path).
    fn identity(&self, path: &Path) -> PathBuf;
}

/// The real file system.
pub(crate) struct RealFiles;

impl Files for RealFiles {
    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String> {
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let mut found = Vec::new();
        for entry in glob::glob_with(pattern, options).map_err(|e| e.to_string())? {
            let path = entry.map_err(|e| e.to_string())?;
            if path.is_file() {
                found.push(path);
            }
        }
        found.sort();
        Ok(found)
    }

    fn read(&self, path: &Path) -> Result<String, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        String::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_owned())
    }

    fn identity(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// No file system: every include fails (fuzzing must not touch files).
#[cfg(any(fuzzing, test))]
pub(crate) struct NoFiles;

#[cfg(any(fuzzing, test))]
impl Files for NoFiles {
    fn glob(&self, _pattern: &str) -> Result<Vec<PathBuf>, String> {
        Err("includes are disabled here".to_owned())
    }

    fn read(&self, _path: &Path) -> Result<String, String> {
        Err("file access is disabled here".to_owned())
    }

    fn identity(&self, path: &Path) -> PathBuf {
        path.to_path_buf()
    }
}

/// Reads `path` and everything it includes.
///
/// # Errors
///
/// An unreadable file, a syntax error in any file, or a bad include.
pub(crate) fn load_file(
    files: &dyn Files,
    path: &Path,
    env: EnvFn<'_>,
) -> Result<Vec<Directive>, ConfigError> {
    let text = files.read(path).map_err(|reason| {
        ConfigError::new(ErrorKind::Io {
            path: path.display().to_string(),
            reason,
        })
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new(""));
    let mut stack = vec![files.identity(path)];
    let mut loader = Loader {
        files,
        env,
        stack: &mut stack,
    };
    loader.text(&text, &path.display().to_string(), base)
}

/// Parses `text` (named `file`) and everything it includes; relative
/// includes resolve against `base` (empty = current directory).
///
/// # Errors
///
/// As [`load_file`].
pub(crate) fn load_text(
    files: &dyn Files,
    text: &str,
    file: &str,
    base: &Path,
    env: EnvFn<'_>,
) -> Result<Vec<Directive>, ConfigError> {
    let mut stack = Vec::new();
    let mut loader = Loader {
        files,
        env,
        stack: &mut stack,
    };
    loader.text(text, file, base)
}

struct Loader<'a, 'e> {
    files: &'a dyn Files,
    env: EnvFn<'e>,
    /// Identities of the files being read, outermost first.
    stack: &'a mut Vec<PathBuf>,
}

impl Loader<'_, '_> {
    fn text(&mut self, text: &str, file: &str, base: &Path) -> Result<Vec<Directive>, ConfigError> {
        let name: Arc<str> = Arc::from(file);
        let directives = parse(&lex(text, &name)?)?;
        let mut out = Vec::with_capacity(directives.len());
        for d in directives {
            if d.name() == Some("include") {
                self.include(&d, base, &mut out)?;
            } else {
                out.push(d);
            }
        }
        Ok(out)
    }

    fn include(
        &mut self,
        d: &Directive,
        base: &Path,
        out: &mut Vec<Directive>,
    ) -> Result<(), ConfigError> {
        let pattern = self.pattern(d, base)?;
        let fail = |msg: String| ConfigError::at(d.span.clone(), ErrorKind::Include(msg));
        let matches = self
            .files
            .glob(&pattern)
            .map_err(|reason| fail(format!("\"{pattern}\": {reason}")))?;
        if matches.is_empty() {
            return Err(fail(format!("no file matches \"{pattern}\"")));
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(fail(format!(
                "nested deeper than {MAX_INCLUDE_DEPTH} files"
            )));
        }
        for path in matches {
            let id = self.files.identity(&path);
            if self.stack.contains(&id) {
                return Err(fail(format!("loop: {}", self.chain(&id))));
            }
            let text = self.files.read(&path).map_err(|reason| {
                ConfigError::at(
                    d.span.clone(),
                    ErrorKind::Io {
                        path: path.display().to_string(),
                        reason,
                    },
                )
            })?;
            self.stack.push(id);
            let inner = self.text(
                &text,
                &path.display().to_string(),
                path.parent().unwrap_or_else(|| Path::new("")),
            );
            self.stack.pop();
            out.extend(inner?);
        }
        Ok(())
    }

    /// The expanded glob pattern, joined to `base` when relative.
    fn pattern(&self, d: &Directive, base: &Path) -> Result<String, ConfigError> {
        let arg = match (d.args.as_slice(), &d.block) {
            ([_, arg], None) if arg.kind != ArgKind::Comma => arg,
            _ => {
                return Err(ConfigError::at(
                    d.span.clone(),
                    ErrorKind::InvalidValue {
                        directive: "include".to_owned(),
                        reason: "expected include \"PATH\";".to_owned(),
                    },
                ));
            }
        };
        let mut pattern = expand_env(&arg.text, self.env)
            .map_err(|kind| ConfigError::at(arg.span.clone(), kind))?;
        if let (Some(rest), Some(home)) = (pattern.strip_prefix("~/"), (self.env)("HOME")) {
            pattern = format!("{home}/{rest}");
        }
        if Path::new(&pattern).is_absolute() || base.as_os_str().is_empty() {
            return Ok(pattern);
        }
        let dir = glob::Pattern::escape(&base.to_string_lossy());
        Ok(format!("{dir}/{pattern}"))
    }

    fn chain(&self, again: &Path) -> String {
        let mut names: Vec<String> = self.stack.iter().map(|p| p.display().to_string()).collect();
        names.push(again.display().to_string());
        names.join(" -> ")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::fs;

    use super::*;

    /// A scratch directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("racoon3-conf-{tag}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).unwrap();
            }
            fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn names(ds: &[Directive]) -> Vec<String> {
        ds.iter().map(|d| d.args[1].text.clone()).collect()
    }

    #[test]
    fn relative_glob_includes_in_sorted_order() {
        let t = TempDir::new("glob");
        t.write("conf.d/20-b.conf", "x b;\n");
        t.write("conf.d/10-a.conf", "x a;\ninclude \"../leaf.conf\";\n");
        t.write("conf.d/.hidden.conf", "x hidden;\n");
        t.write("conf.d/notes.txt", "x txt;\n");
        t.write("leaf.conf", "x leaf;\n");
        let top = t.write(
            "top.conf",
            "x first;\ninclude \"conf.d/*.conf\";\nx last;\n",
        );
        let ds = load_file(&RealFiles, &top, &no_env).unwrap();
        assert_eq!(names(&ds), ["first", "a", "leaf", "b", "last"]);
        let leaf = &ds[2];
        assert!(leaf.span.file.ends_with("leaf.conf"), "{}", leaf.span.file);
        assert_eq!(leaf.span.line, 1);
    }

    #[test]
    fn env_and_tilde_in_include_paths() {
        let t = TempDir::new("env");
        t.write("sub/vals.conf", "x v;\n");
        let dir = t.0.display().to_string();
        let env = move |n: &str| match n {
            "CONFDIR" => Some(dir.clone()),
            "HOME" => Some(format!("{}/sub", dir)),
            _ => None,
        };
        let top = t.write(
            "top.conf",
            "include \"$[CONFDIR]/sub/vals.conf\";\ninclude \"~/vals.conf\";\n",
        );
        let ds = load_file(&RealFiles, &top, &env).unwrap();
        assert_eq!(names(&ds), ["v", "v"]);
        let bad = t.write("bad.conf", "include \"${X}/a.conf\";\n");
        let err = load_file(&RealFiles, &bad, &env).unwrap_err();
        assert!(
            err.to_string().contains("cannot be used in include paths"),
            "{err}"
        );
    }

    #[test]
    fn include_loops_are_detected() {
        let t = TempDir::new("loop");
        t.write("a.conf", "x a;\ninclude \"b.conf\";\n");
        t.write("b.conf", "x b;\n\ninclude \"a.conf\";\n");
        let top = t.0.join("a.conf");
        let err = load_file(&RealFiles, &top, &no_env).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("b.conf:3:1: include: loop: "), "{msg}");
        assert!(msg.ends_with("a.conf"), "{msg}");
        let me = t.write("self.conf", "include \"self.conf\";\n");
        assert!(
            load_file(&RealFiles, &me, &no_env)
                .unwrap_err()
                .to_string()
                .contains("loop")
        );
    }

    #[test]
    fn missing_and_malformed_includes() {
        let t = TempDir::new("missing");
        let top = t.write("top.conf", "\n  include \"nothing-*.conf\";\n");
        let err = load_file(&RealFiles, &top, &no_env).unwrap_err();
        assert!(
            err.to_string()
                .contains("top.conf:2:3: include: no file matches"),
            "{err}"
        );
        let top = t.write("two.conf", "include a b;\n");
        let err = load_file(&RealFiles, &top, &no_env).unwrap_err();
        assert!(
            err.to_string().contains("expected include \"PATH\";"),
            "{err}"
        );
        let err = load_file(&RealFiles, &t.0.join("absent.conf"), &no_env).unwrap_err();
        assert!(err.span.is_none());
        assert!(err.to_string().starts_with("cannot read "), "{err}");
    }

    #[test]
    fn syntax_errors_in_included_files_name_that_file() {
        let t = TempDir::new("syntax");
        t.write("inc.conf", "ok;\nbroken\n");
        let top = t.write("top.conf", "include \"inc.conf\";\n");
        let err = load_file(&RealFiles, &top, &no_env).unwrap_err();
        let span = err.span.unwrap();
        assert!(span.file.ends_with("inc.conf"));
        assert_eq!((span.line, span.col), (3, 1));
    }

    #[test]
    fn no_files_fails_cleanly() {
        let err = load_text(
            &NoFiles,
            "include \"/etc/passwd\";",
            "f.conf",
            Path::new(""),
            &no_env,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.conf:1:1: include: \"/etc/passwd\": includes are disabled here"
        );
    }
}
