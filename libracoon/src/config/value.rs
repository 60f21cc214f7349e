//! Directive values: variable expansion, the value cursor, and the small
//! typed parsers (booleans, numbers, times, byte counts, lists, references,
//! algorithm lists). Addresses are in `addr.rs`.
//!
//! Values are expanded when they are used, after every file has been read,
//! as racoon2 does: `${NAME}` comes from `setval` (recursively), then
//! `$[NAME]` from the environment (inserted verbatim).

use std::collections::HashMap;

use super::lexer::Span;
use super::parser::{Arg, ArgKind, Directive};
use super::{ConfigError, ErrorKind, Warning};

/// How deep `${A}` -> `${B}` -> ... may go before it is called a loop.
const MAX_EXPANSION_DEPTH: usize = 16;
/// Longest string an expansion may produce (guards `${A}${A}` doubling).
const MAX_EXPANDED_LEN: usize = 64 * 1024;

/// The environment lookup callers inject (`std::env::var` in production).
pub(crate) type EnvFn<'e> = &'e dyn Fn(&str) -> Option<String>;

/// Interpretation context: variables, environment and collected warnings.
pub(crate) struct Cx<'e> {
    vars: HashMap<String, String>,
    env: EnvFn<'e>,
    pub(crate) warnings: Vec<Warning>,
}

impl<'e> Cx<'e> {
    pub(crate) fn new(env: EnvFn<'e>) -> Self {
        Self {
            vars: HashMap::new(),
            env,
            warnings: Vec::new(),
        }
    }

    /// Defines a `setval` variable; `false` if it already exists.
    pub(crate) fn define(&mut self, name: &str, value: String) -> bool {
        if self.vars.contains_key(name) {
            return false;
        }
        self.vars.insert(name.to_owned(), value);
        true
    }

    pub(crate) fn warn(&mut self, span: &Span, message: String) {
        self.warnings.push(Warning {
            span: span.clone(),
            message,
        });
    }

    /// Expands `${NAME}` and `$[NAME]` in `text`.
    ///
    /// # Errors
    ///
    /// An undefined variable, an unset environment variable, a malformed
    /// or looping reference, positioned at `span`.
    pub(crate) fn expand(&self, text: &str, span: &Span) -> Result<String, ConfigError> {
        let mut out = String::new();
        expand_into(text, Some(&self.vars), self.env, 0, &mut out)
            .map_err(|kind| ConfigError::at(span.clone(), kind))?;
        Ok(out)
    }
}

/// Expands only `$[NAME]`; `${NAME}` is an error (include paths, which
/// racoon2 resolves before `setval` is known).
pub(crate) fn expand_env(text: &str, env: EnvFn<'_>) -> Result<String, ErrorKind> {
    let mut out = String::new();
    expand_into(text, None, env, 0, &mut out)?;
    Ok(out)
}

fn expand_into(
    text: &str,
    vars: Option<&HashMap<String, String>>,
    env: EnvFn<'_>,
    depth: usize,
    out: &mut String,
) -> Result<(), ErrorKind> {
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let close = match rest.as_bytes().get(1) {
            Some(b'{') => '}',
            Some(b'[') => ']',
            _ => {
                out.push('$');
                rest = &rest[1..];
                continue;
            }
        };
        let Some(end) = rest.find(close) else {
            return Err(ErrorKind::Variable(format!(
                "unterminated reference {:?}",
                rest
            )));
        };
        let name = &rest[2..end];
        rest = &rest[end + 1..];
        if close == '}' {
            expand_var(name, vars, env, depth, out)?;
        } else {
            out.push_str(&env(name).ok_or_else(|| ErrorKind::UnsetEnv(name.to_owned()))?);
        }
        if out.len() > MAX_EXPANDED_LEN {
            return Err(ErrorKind::Variable(format!(
                "expansion longer than {MAX_EXPANDED_LEN} bytes"
            )));
        }
    }
    out.push_str(rest);
    Ok(())
}

fn expand_var(
    name: &str,
    vars: Option<&HashMap<String, String>>,
    env: EnvFn<'_>,
    depth: usize,
    out: &mut String,
) -> Result<(), ErrorKind> {
    let Some(vars) = vars else {
        return Err(ErrorKind::Variable(format!(
            "${{{name}}}: setval variables cannot be used in include paths"
        )));
    };
    let value = vars
        .get(name)
        .ok_or_else(|| ErrorKind::UndefinedVariable(name.to_owned()))?;
    if depth >= MAX_EXPANSION_DEPTH {
        return Err(ErrorKind::Variable(format!(
            "${{{name}}} nests deeper than {MAX_EXPANSION_DEPTH} levels (a loop?)"
        )));
    }
    expand_into(value, Some(vars), env, depth + 1, out)
}

/// One expanded argument.
#[derive(Debug, Clone)]
pub(crate) struct Val {
    pub(crate) text: String,
    pub(crate) span: Span,
    /// Written as a bare word (keywords such as `port` must be bare).
    pub(crate) bare: bool,
    pub(crate) comma: bool,
}

/// The values of one directive (or one list item), consumed left to right.
pub(crate) struct Cursor {
    directive: String,
    vals: Vec<Val>,
    pos: usize,
    end: Span,
}

impl Cursor {
    /// Expands `args`; `directive` names the directive in messages, `end`
    /// locates "missing value" errors.
    pub(crate) fn new(
        cx: &Cx<'_>,
        directive: &str,
        args: &[Arg],
        end: &Span,
    ) -> Result<Self, ConfigError> {
        let vals = args
            .iter()
            .map(|a| expand_arg(cx, a))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            directive: directive.to_owned(),
            vals,
            pos: 0,
            end: end.clone(),
        })
    }

    /// The next value, which must not be a comma.
    pub(crate) fn value(&mut self, what: &str) -> Result<Val, ConfigError> {
        match self.vals.get(self.pos) {
            Some(v) if !v.comma => {
                self.pos += 1;
                Ok(v.clone())
            }
            Some(v) => Err(self.invalid(&v.span, format!("expected {what}, found ','"))),
            None => Err(self.invalid(&self.end, format!("missing {what}"))),
        }
    }

    /// Consumes the next value if it is the bare word `word`.
    pub(crate) fn keyword(&mut self, word: &str) -> bool {
        let hit = self
            .vals
            .get(self.pos)
            .is_some_and(|v| v.bare && !v.comma && v.text == word);
        self.pos += usize::from(hit);
        hit
    }

    /// The next value if it is a bare word in `words` (consumed).
    pub(crate) fn one_of(&mut self, words: &[&str]) -> Option<Val> {
        let v = self.vals.get(self.pos)?;
        let hit = v.bare && !v.comma && words.contains(&v.text.as_str());
        hit.then(|| {
            self.pos += 1;
            v.clone()
        })
    }

    /// Consumes a comma if one is next.
    pub(crate) fn comma(&mut self) -> bool {
        let hit = self.vals.get(self.pos).is_some_and(|v| v.comma);
        self.pos += usize::from(hit);
        hit
    }

    pub(crate) fn is_done(&self) -> bool {
        self.pos >= self.vals.len()
    }

    /// How many values are left.
    pub(crate) fn remaining(&self) -> usize {
        self.vals.len().saturating_sub(self.pos)
    }

    /// Errors if anything is left.
    pub(crate) fn finish(self) -> Result<(), ConfigError> {
        match self.vals.get(self.pos) {
            None => Ok(()),
            Some(v) => Err(self.invalid(&v.span, format!("unexpected '{}'", v.text))),
        }
    }

    /// An invalid-value error for this directive.
    pub(crate) fn invalid(&self, span: &Span, reason: String) -> ConfigError {
        ConfigError::at(
            span.clone(),
            ErrorKind::InvalidValue {
                directive: self.directive.clone(),
                reason,
            },
        )
    }
}

fn expand_arg(cx: &Cx<'_>, arg: &Arg) -> Result<Val, ConfigError> {
    let comma = arg.kind == ArgKind::Comma;
    let text = if comma {
        arg.text.clone()
    } else {
        cx.expand(&arg.text, &arg.span)?
    };
    Ok(Val {
        text,
        span: arg.span.clone(),
        bare: arg.kind == ArgKind::Word,
        comma,
    })
}

/// The directive's name, for messages.
pub(crate) fn name_of(d: &Directive) -> &str {
    d.name().unwrap_or("?")
}

/// Parses `NAME VALUE...;` (no block) with `f`, which must consume every
/// value.
pub(crate) fn single<'e, T>(
    cx: &mut Cx<'e>,
    d: &Directive,
    f: impl FnOnce(&mut Cx<'e>, &mut Cursor) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    if let Some(block) = &d.block {
        return Err(invalid(
            d,
            &block.span,
            "does not take a { } list".to_owned(),
        ));
    }
    let mut c = Cursor::new(cx, name_of(d), d.args.get(1..).unwrap_or(&[]), &d.span)?;
    let v = f(cx, &mut c)?;
    c.finish()?;
    Ok(v)
}

/// Parses `NAME ITEM;` or `NAME { ITEM; ITEM; ... };`, calling `f` on each
/// item in order.
pub(crate) fn list<'e, T>(
    cx: &mut Cx<'e>,
    d: &Directive,
    mut f: impl FnMut(&mut Cx<'e>, &mut Cursor) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    let Some(block) = &d.block else {
        return single(cx, d, f).map(|v| vec![v]);
    };
    if let Some(extra) = d.args.get(1) {
        return Err(invalid(
            d,
            &extra.span,
            format!("unexpected '{}' before '{{'", extra.text),
        ));
    }
    if block.items.is_empty() {
        return Err(invalid(d, &block.span, "the list is empty".to_owned()));
    }
    let mut out = Vec::with_capacity(block.items.len());
    for item in &block.items {
        if let Some(inner) = &item.block {
            return Err(invalid(
                d,
                &inner.span,
                "list items cannot have blocks".to_owned(),
            ));
        }
        let mut c = Cursor::new(cx, name_of(d), &item.args, &item.span)?;
        out.push(f(cx, &mut c)?);
        c.finish()?;
    }
    Ok(out)
}

/// An invalid-value error for directive `d` at `span`.
pub(crate) fn invalid(d: &Directive, span: &Span, reason: String) -> ConfigError {
    ConfigError::at(
        span.clone(),
        ErrorKind::InvalidValue {
            directive: name_of(d).to_owned(),
            reason,
        },
    )
}

/// `on|off|enable|disable|yes|no`.
pub(crate) fn boolean(c: &mut Cursor) -> Result<bool, ConfigError> {
    let v = c.value("on or off")?;
    match v.text.as_str() {
        "on" | "enable" | "yes" => Ok(true),
        "off" | "disable" | "no" => Ok(false),
        other => Err(c.invalid(&v.span, format!("expected on or off, found '{other}'"))),
    }
}

/// A decimal or `0x` hexadecimal number.
pub(crate) fn number(c: &mut Cursor, what: &str) -> Result<u64, ConfigError> {
    let v = c.value(what)?;
    parse_number(&v.text)
        .ok_or_else(|| c.invalid(&v.span, format!("expected {what}, found '{}'", v.text)))
}

pub(crate) fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None if text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        None => None,
    }
}

/// A number that fits in `u32`.
pub(crate) fn number_u32(c: &mut Cursor, what: &str) -> Result<u32, ConfigError> {
    let span = c
        .vals
        .get(c.pos)
        .map_or_else(|| c.end.clone(), |v| v.span.clone());
    let n = number(c, what)?;
    u32::try_from(n).map_err(|_| c.invalid(&span, format!("{n} is too large")))
}

const TIME_UNITS: &[(&str, u64)] = &[
    ("sec", 1),
    ("secs", 1),
    ("second", 1),
    ("seconds", 1),
    ("min", 60),
    ("mins", 60),
    ("minute", 60),
    ("minutes", 60),
    ("hour", 3600),
    ("hours", 3600),
    ("day", 86400),
    ("days", 86400),
];

const BYTE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("byte", 1),
    ("bytes", 1),
    ("KB", 1 << 10),
    ("MB", 1 << 20),
    ("GB", 1 << 30),
];

/// `infinite | N [sec|min|hour|day...]`; `None` = infinite (`0` too).
pub(crate) fn time(c: &mut Cursor) -> Result<Option<u64>, ConfigError> {
    amount(c, "a time", TIME_UNITS)
}

/// `infinite | N [B|KB|MB|GB...]`; `None` = infinite (`0` too).
pub(crate) fn bytes(c: &mut Cursor) -> Result<Option<u64>, ConfigError> {
    amount(c, "a byte count", BYTE_UNITS)
}

fn amount(c: &mut Cursor, what: &str, units: &[(&str, u64)]) -> Result<Option<u64>, ConfigError> {
    if c.keyword("infinite") {
        return Ok(None);
    }
    let span = c
        .vals
        .get(c.pos)
        .map_or_else(|| c.end.clone(), |v| v.span.clone());
    let n = number(c, what)?;
    let names: Vec<&str> = units.iter().map(|(u, _)| *u).collect();
    let scale = match c.one_of(&names) {
        Some(unit) => units
            .iter()
            .find(|(u, _)| *u == unit.text)
            .map_or(1, |(_, s)| *s),
        None => 1,
    };
    let total = n
        .checked_mul(scale)
        .ok_or_else(|| c.invalid(&span, "value overflows".to_owned()))?;
    Ok((total != 0).then_some(total))
}

/// A reference to another block (`policy_index x;`), checked once every
/// block is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ref {
    pub(crate) name: String,
    /// Where the name is written.
    pub(crate) span: Span,
    /// The referencing directive.
    pub(crate) directive: &'static str,
}

/// Directive names already seen in one block, to reject repeats.
#[derive(Debug, Default)]
pub(crate) struct Seen(HashMap<String, Span>);

impl Seen {
    /// Records `d`; an error if its name was seen before in this block.
    pub(crate) fn once(&mut self, d: &Directive) -> Result<(), ConfigError> {
        let name = name_of(d).to_owned();
        if let Some(first) = self.0.get(&name) {
            return Err(ConfigError::at(
                d.span.clone(),
                ErrorKind::Duplicate {
                    what: "directive",
                    name,
                    first: first.clone(),
                },
            ));
        }
        self.0.insert(name, d.span.clone());
        Ok(())
    }
}

/// One word looked up with `lookup` (a `from_config_name`).
pub(crate) fn keyword<T>(
    c: &mut Cursor,
    lookup: fn(&str) -> Option<T>,
    what: &str,
) -> Result<T, ConfigError> {
    let v = c.value(what)?;
    lookup(&v.text)
        .ok_or_else(|| c.invalid(&v.span, format!("expected {what}, found '{}'", v.text)))
}

/// `NAME on|off;`
pub(crate) fn flag(cx: &mut Cx<'_>, d: &Directive) -> Result<bool, ConfigError> {
    single(cx, d, |_, c| boolean(c))
}

/// `NAME N;` with N in `u32`.
pub(crate) fn count(cx: &mut Cx<'_>, d: &Directive) -> Result<u32, ConfigError> {
    single(cx, d, |_, c| number_u32(c, "a number"))
}

/// `NAME infinite|N [unit];` as a [`Lifetime`](super::Lifetime).
pub(crate) fn lifetime(cx: &mut Cx<'_>, d: &Directive) -> Result<super::Lifetime, ConfigError> {
    let secs = single(cx, d, |_, c| time(c))?;
    Ok(secs.map_or(super::Lifetime::Infinite, super::Lifetime::Seconds))
}

/// `NAME N [unit];` as a duration; `infinite`/`0` give zero when
/// `zero_ok`, an error otherwise.
pub(crate) fn duration(
    cx: &mut Cx<'_>,
    d: &Directive,
    zero_ok: bool,
) -> Result<std::time::Duration, ConfigError> {
    let secs = single(cx, d, |_, c| time(c))?;
    match secs {
        Some(s) => Ok(std::time::Duration::from_secs(s)),
        None if zero_ok => Ok(std::time::Duration::ZERO),
        None => Err(invalid(
            d,
            &d.span,
            "must be a finite, non-zero time".to_owned(),
        )),
    }
}

/// `NAME "FILE";`
pub(crate) fn path(cx: &mut Cx<'_>, d: &Directive) -> Result<std::path::PathBuf, ConfigError> {
    let v = single(cx, d, |_, c| c.value("a file name"))?;
    if v.text.is_empty() {
        return Err(invalid(d, &v.span, "the file name is empty".to_owned()));
    }
    Ok(v.text.into())
}

/// `NAME INDEX;`
pub(crate) fn reference(
    cx: &mut Cx<'_>,
    d: &Directive,
    directive: &'static str,
) -> Result<Ref, ConfigError> {
    single(cx, d, |_, c| index(c, directive))
}

/// `NAME INDEX;` or `NAME { INDEX; ... };`
pub(crate) fn references(
    cx: &mut Cx<'_>,
    d: &Directive,
    directive: &'static str,
) -> Result<Vec<Ref>, ConfigError> {
    list(cx, d, |_, c| index(c, directive))
}

fn index(c: &mut Cursor, directive: &'static str) -> Result<Ref, ConfigError> {
    let v = c.value("an index")?;
    if v.text.is_empty() {
        return Err(c.invalid(&v.span, "the index is empty".to_owned()));
    }
    Ok(Ref {
        name: v.text,
        span: v.span,
        directive,
    })
}

/// `NAME ALG[,KEYLEN[,KEY]];` or a `{ }` list of those. Key lengths and
/// keys are checked and ignored with a warning.
pub(crate) fn algorithms<T>(
    cx: &mut Cx<'_>,
    d: &Directive,
    lookup: fn(&str) -> Option<T>,
    what: &'static str,
) -> Result<Vec<T>, ConfigError> {
    list(cx, d, |cx, c| {
        let v = c.value(what)?;
        let alg = lookup(&v.text)
            .ok_or_else(|| c.invalid(&v.span, format!("'{}' is not {what}", v.text)))?;
        if c.comma() {
            key_extras(c)?;
            cx.warn(
                &v.span,
                format!("key length and key after '{}' are ignored", v.text),
            );
        }
        Ok(alg)
    })
}

/// After `ALG,`: `KEYLEN[,KEY]` or `,KEY`.
fn key_extras(c: &mut Cursor) -> Result<(), ConfigError> {
    if !c.comma() {
        bytes(c)?;
        if !c.comma() {
            return Ok(());
        }
    }
    c.value("a key").map(drop)
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::lexer::lex;
    use crate::config::parser::parse;

    pub(crate) fn env(name: &str) -> Option<String> {
        (name == "HOME").then(|| "/home/r".to_owned())
    }

    /// Runs `f` on a cursor over the first directive of `text`, with
    /// `${A}`, `${B}`, `${LOOP}` and `$[HOME]` defined; shared with addr.rs.
    pub(crate) fn with_first<T>(
        text: &str,
        f: impl FnOnce(&mut Cx<'_>, &mut Cursor) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        let file: Arc<str> = Arc::from("v.conf");
        let ds = parse(&lex(text, &file)?)?;
        let mut cx = Cx::new(&env);
        cx.define("A", "x${B}y".to_owned());
        cx.define("B", "$[HOME]".to_owned());
        cx.define("LOOP", "${LOOP}".to_owned());
        let d = &ds[0];
        let mut c = Cursor::new(&cx, name_of(d), &d.args[1..], &d.span)?;
        let v = f(&mut cx, &mut c)?;
        c.finish()?;
        Ok(v)
    }

    fn first_text(text: &str) -> Result<String, ConfigError> {
        with_first(text, |_, c| Ok(c.value("x")?.text))
    }

    #[test]
    fn setval_and_env_expand_recursively() {
        assert_eq!(
            first_text("d \"${A}/$[HOME]\";").unwrap(),
            "x/home/ry//home/r"
        );
        assert_eq!(
            first_text("d a$b;").unwrap_err().to_string(),
            "v.conf:1:4: unexpected character '$'"
        );
        assert_eq!(first_text("d \"a$b\";").unwrap(), "a$b");
    }

    #[test]
    fn expansion_errors_name_the_variable() {
        let e = first_text("d \"${NOPE}\";").unwrap_err();
        assert_eq!(e.to_string(), "v.conf:1:3: undefined variable ${NOPE}");
        let e = first_text("d $[NOPE];").unwrap_err();
        assert_eq!(
            e.to_string(),
            "v.conf:1:3: environment variable $[NOPE] is not set"
        );
        let e = first_text("d \"${LOOP}\";").unwrap_err();
        assert!(e.to_string().contains("a loop?"), "{e}");
        let e = first_text("d \"${OPEN\";").unwrap_err();
        assert!(e.to_string().contains("unterminated reference"), "{e}");
        assert!(expand_env("${A}", &env).is_err());
        assert_eq!(expand_env("$[HOME]/x", &env).unwrap(), "/home/r/x");
    }

    #[test]
    fn doubling_expansion_is_bounded() {
        let file: Arc<str> = Arc::from("v.conf");
        let ds = parse(&lex("d \"${V0}\";", &file).unwrap()).unwrap();
        let mut cx = Cx::new(&env);
        for i in 0..15 {
            cx.define(
                &format!("V{i}"),
                format!("${{V{0}}}${{V{0}}}${{V{0}}}${{V{0}}}", i + 1),
            );
        }
        cx.define("V15", "0123456789".repeat(10));
        let d = &ds[0];
        let e = Cursor::new(&cx, "d", &d.args[1..], &d.span).err().unwrap();
        assert!(e.to_string().contains("expansion longer"), "{e}");
    }

    #[test]
    fn booleans_numbers_times_bytes() {
        assert!(with_first("d yes;", |_, c| boolean(c)).unwrap());
        assert!(!with_first("d disable;", |_, c| boolean(c)).unwrap());
        assert!(with_first("d maybe;", |_, c| boolean(c)).is_err());
        assert_eq!(with_first("d 0x1f;", |_, c| number(c, "n")).unwrap(), 31);
        assert!(with_first("d -1;", |_, c| number(c, "n")).is_err());
        assert_eq!(
            with_first("d 2 hours;", |_, c| time(c)).unwrap(),
            Some(7200)
        );
        assert_eq!(with_first("d 45;", |_, c| time(c)).unwrap(), Some(45));
        assert_eq!(with_first("d 0 sec;", |_, c| time(c)).unwrap(), None);
        assert_eq!(with_first("d infinite;", |_, c| time(c)).unwrap(), None);
        assert_eq!(with_first("d 16 B;", |_, c| bytes(c)).unwrap(), Some(16));
        assert_eq!(with_first("d 2 KB;", |_, c| bytes(c)).unwrap(), Some(2048));
        let e = with_first("d 10 fortnights;", |_, c| time(c)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "v.conf:1:6: invalid value for 'd': unexpected 'fortnights'"
        );
        let e = with_first("d 0xffffffffffffffff days;", |_, c| time(c)).unwrap_err();
        assert!(e.to_string().contains("overflows"));
        let e = with_first("d 5000000000;", |_, c| number_u32(c, "n")).unwrap_err();
        assert!(e.to_string().contains("too large"));
    }
}
