//! racoon2.conf grammar (nom over tokens) -> a directive tree, no semantics.
//!
//! Every racoon2 construct has the same outer shape, so the tree is generic:
//!
//! ```text
//! file      = directive* EOF
//! directive = arg+ block? ";" | block ";"
//! block     = "{" directive* "}"
//! arg       = WORD | QUOTED | ","
//! ```
//!
//! `remote r1 { ... };`, `kmp_enc_alg { aes128_cbc; 3des_cbc; };`,
//! `MY_IP port 500;` and `"10.0.0.1" - "10.0.0.9";` are all directives. What
//! the words mean is decided in `model.rs`, which knows the context.

use nom::error::{ErrorKind as NomErrorKind, ParseError};
use nom::{IResult, Input, Needed, Parser as _};

use super::lexer::{Span, Token, TokenKind};
use super::{ConfigError, ErrorKind};

/// Deepest `{` nesting accepted. racoon2's deepest construct is
/// `default { remote { ikev2 { provide { dns { .. }; }; }; }; };` (5).
const MAX_DEPTH: usize = 16;

/// One `args [block] ;` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    /// The words, strings and commas before the block (possibly none).
    pub(crate) args: Vec<Arg>,
    /// The `{ ... }` part, if any.
    pub(crate) block: Option<Block>,
    /// Where the directive starts.
    pub(crate) span: Span,
}

/// The contents of `{ ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) items: Vec<Directive>,
    /// Position of the `{`.
    pub(crate) span: Span,
}

/// How an argument was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgKind {
    Word,
    Quoted,
    Comma,
}

/// One argument with its (unexpanded) text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arg {
    pub(crate) kind: ArgKind,
    pub(crate) text: String,
    pub(crate) span: Span,
}

impl Directive {
    /// The directive's name: its first argument when that is a bare word.
    pub(crate) fn name(&self) -> Option<&str> {
        match self.args.first() {
            Some(a) if a.kind == ArgKind::Word => Some(&a.text),
            _ => None,
        }
    }
}

/// Parses a token stream (ending in [`TokenKind::Eof`]) into directives.
///
/// # Errors
///
/// The first syntax error, positioned at the offending token.
pub(crate) fn parse(tokens: &[Token]) -> Result<Vec<Directive>, ConfigError> {
    let input = Tokens(tokens);
    match file(input) {
        Ok((_, items)) => Ok(items),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e.into_config_error(tokens)),
        Err(nom::Err::Incomplete(_)) => Err(ConfigError::new(ErrorKind::Syntax {
            expected: "more input",
            found: "end of file".to_owned(),
        })),
    }
}

/// A token slice as nom input.
#[derive(Debug, Clone, Copy)]
struct Tokens<'a>(&'a [Token]);

impl<'a> Tokens<'a> {
    fn first(&self) -> Option<&'a Token> {
        self.0.first()
    }
}

impl<'a> Input for Tokens<'a> {
    type Item = &'a Token;
    type Iter = std::slice::Iter<'a, Token>;
    type IterIndices = std::iter::Enumerate<Self::Iter>;

    fn input_len(&self) -> usize {
        self.0.len()
    }

    fn take(&self, index: usize) -> Self {
        Tokens(&self.0[..index])
    }

    fn take_from(&self, index: usize) -> Self {
        Tokens(&self.0[index..])
    }

    fn take_split(&self, index: usize) -> (Self, Self) {
        let (prefix, suffix) = self.0.split_at(index);
        (Tokens(suffix), Tokens(prefix))
    }

    fn position<P>(&self, predicate: P) -> Option<usize>
    where
        P: Fn(Self::Item) -> bool,
    {
        self.0.iter().position(predicate)
    }

    fn iter_elements(&self) -> Self::Iter {
        self.0.iter()
    }

    fn iter_indices(&self) -> Self::IterIndices {
        self.0.iter().enumerate()
    }

    fn slice_index(&self, count: usize) -> Result<usize, Needed> {
        if self.0.len() >= count {
            Ok(count)
        } else {
            Err(Needed::new(count - self.0.len()))
        }
    }
}

/// A syntax error: what was expected, and how many tokens were left (which
/// locates the offending token in the original slice).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SyntaxError {
    remaining: usize,
    expected: &'static str,
    note: Option<String>,
}

impl SyntaxError {
    fn new(input: Tokens<'_>, expected: &'static str) -> Self {
        Self {
            remaining: input.0.len(),
            expected,
            note: None,
        }
    }

    fn into_config_error(self, tokens: &[Token]) -> ConfigError {
        let at = tokens.len().saturating_sub(self.remaining);
        let Some(token) = tokens.get(at).or_else(|| tokens.last()) else {
            return ConfigError::new(ErrorKind::Syntax {
                expected: self.expected,
                found: "nothing".to_owned(),
            });
        };
        let mut found = token.kind.describe();
        if let Some(note) = self.note {
            found = format!("{found} ({note})");
        }
        ConfigError::at(
            token.span.clone(),
            ErrorKind::Syntax {
                expected: self.expected,
                found,
            },
        )
    }
}

impl<'a> ParseError<Tokens<'a>> for SyntaxError {
    fn from_error_kind(input: Tokens<'a>, _kind: NomErrorKind) -> Self {
        Self::new(input, "a directive")
    }

    fn append(_input: Tokens<'a>, _kind: NomErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, O> = IResult<Tokens<'a>, O, SyntaxError>;

fn fail<'a, O>(input: Tokens<'a>, expected: &'static str) -> PResult<'a, O> {
    Err(nom::Err::Failure(SyntaxError::new(input, expected)))
}

/// `directive* EOF`
fn file(input: Tokens<'_>) -> PResult<'_, Vec<Directive>> {
    let (input, items) = directives(input, 0)?;
    match input.first().map(|t| &t.kind) {
        Some(TokenKind::Eof) => Ok((input, items)),
        _ => fail(input, "a directive"),
    }
}

/// `directive*`, stopping (without consuming) at `}` or end of file.
fn directives(mut input: Tokens<'_>, depth: usize) -> PResult<'_, Vec<Directive>> {
    let mut items = Vec::new();
    while let Some(token) = input.first() {
        if matches!(token.kind, TokenKind::Close | TokenKind::Eof) {
            break;
        }
        let (rest, item) = directive(input, depth)?;
        items.push(item);
        input = rest;
    }
    Ok((input, items))
}

/// `arg+ block? ";" | block ";"`
fn directive(input: Tokens<'_>, depth: usize) -> PResult<'_, Directive> {
    let Some(start) = input.first() else {
        return fail(input, "a directive");
    };
    let (input, args) = nom::multi::many0(arg).parse(input)?;
    let (input, block) = if is(input, &TokenKind::Open) {
        let (input, block) = block(input, depth + 1)?;
        (input, Some(block))
    } else {
        (input, None)
    };
    if args.is_empty() && block.is_none() {
        return fail(input, "a directive");
    }
    let expected = if block.is_some() {
        "';' after '}'"
    } else {
        "';'"
    };
    let (input, ()) = expect(input, &TokenKind::Semi, expected)?;
    let span = start.span.clone();
    Ok((input, Directive { args, block, span }))
}

/// `"{" directive* "}"`
fn block(input: Tokens<'_>, depth: usize) -> PResult<'_, Block> {
    let Some(open) = input.first() else {
        return fail(input, "'{'");
    };
    if depth > MAX_DEPTH {
        return fail(input, "at most 16 nested blocks");
    }
    let (input, ()) = expect(input, &TokenKind::Open, "'{'")?;
    let (input, items) = directives(input, depth)?;
    if !is(input, &TokenKind::Close) {
        let mut err = SyntaxError::new(input, "'}'");
        err.note = Some(format!("the block opened at {} is not closed", open.span));
        return Err(nom::Err::Failure(err));
    }
    let span = open.span.clone();
    Ok((input.take_from(1), Block { items, span }))
}

/// A word, quoted string or comma.
fn arg(input: Tokens<'_>) -> PResult<'_, Arg> {
    let Some(token) = input.first() else {
        return Err(nom::Err::Error(SyntaxError::new(input, "an argument")));
    };
    let (kind, text) = match &token.kind {
        TokenKind::Word(w) => (ArgKind::Word, w.clone()),
        TokenKind::Quoted(q) => (ArgKind::Quoted, q.clone()),
        TokenKind::Comma => (ArgKind::Comma, ",".to_owned()),
        _ => return Err(nom::Err::Error(SyntaxError::new(input, "an argument"))),
    };
    let span = token.span.clone();
    Ok((input.take_from(1), Arg { kind, text, span }))
}

fn is(input: Tokens<'_>, kind: &TokenKind) -> bool {
    input.first().is_some_and(|t| &t.kind == kind)
}

fn expect<'a>(input: Tokens<'a>, kind: &TokenKind, expected: &'static str) -> PResult<'a, ()> {
    if is(input, kind) {
        Ok((input.take_from(1), ()))
    } else {
        fail(input, expected)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::lexer::lex;

    fn parse_text(text: &str) -> Result<Vec<Directive>, ConfigError> {
        let file: Arc<str> = Arc::from("p.conf");
        parse(&lex(text, &file)?)
    }

    fn texts(d: &Directive) -> Vec<&str> {
        d.args.iter().map(|a| a.text.as_str()).collect()
    }

    #[test]
    fn nested_blocks_and_lists() {
        let ds = parse_text(
            "remote r1 {\n acceptable_kmp { ikev2; ikev1; };\n ikev2 { kmp_enc_alg aes,128; };\n};",
        )
        .unwrap();
        assert_eq!(ds.len(), 1);
        assert_eq!(ds[0].name(), Some("remote"));
        assert_eq!(texts(&ds[0]), ["remote", "r1"]);
        let body = &ds[0].block.as_ref().unwrap().items;
        assert_eq!(body.len(), 2);
        let kmp = &body[0].block.as_ref().unwrap().items;
        assert_eq!(texts(&kmp[1]), ["ikev1"]);
        let v2 = &body[1].block.as_ref().unwrap().items;
        assert_eq!(texts(&v2[0]), ["kmp_enc_alg", "aes", ",", "128"]);
        assert_eq!(v2[0].span.line, 3);
        assert_eq!(v2[0].span.col, 10);
    }

    #[test]
    fn quoted_first_arguments_have_no_name() {
        let ds = parse_text("addresspool p { \"10.0.0.1\" - \"10.0.0.9\"; };").unwrap();
        let item = &ds[0].block.as_ref().unwrap().items[0];
        assert_eq!(item.name(), None);
        assert_eq!(item.args[0].kind, ArgKind::Quoted);
        assert_eq!(texts(item), ["10.0.0.1", "-", "10.0.0.9"]);
    }

    #[test]
    fn empty_blocks_and_files_parse() {
        assert!(parse_text("").unwrap().is_empty());
        let ds = parse_text("# only a comment\nrequest { };").unwrap();
        assert!(ds[0].block.as_ref().unwrap().items.is_empty());
    }

    #[test]
    fn missing_semicolon_is_reported_at_the_next_token() {
        let err = parse_text("interface {\n  ike MY_IP\n};").unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.conf:3:1: syntax error: expected ';', found '}'"
        );
        let err = parse_text("sa s { sa_protocol esp; }\nsa t {};").unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.conf:2:1: syntax error: expected ';' after '}', found 'sa'"
        );
    }

    #[test]
    fn unclosed_block_names_where_it_opened() {
        let err = parse_text("remote r {\n ikev2 { };\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.conf:3:1: syntax error: expected '}', found end of file \
             (the block opened at p.conf:1:10 is not closed)"
        );
    }

    #[test]
    fn stray_close_and_lone_semicolon_are_errors() {
        let err = parse_text("a;\n};").unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.conf:2:1: syntax error: expected a directive, found '}'"
        );
        let err = parse_text("a;\n ;").unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.conf:2:2: syntax error: expected a directive, found ';'"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}{}", "a {".repeat(40), "}; ".repeat(40));
        let err = parse_text(&deep).unwrap_err();
        assert!(
            err.to_string().contains("at most 16 nested blocks"),
            "{err}"
        );
        let ok = format!("{}{}", "a {".repeat(10), "}; ".repeat(10));
        assert!(parse_text(&ok).is_ok());
    }
}
