//! racoon2.conf tokens: words, quoted strings and punctuation, each with a
//! [`Span`].
//!
//! The character classes follow racoon2's `cftoken.l`: a bare word is made of
//! `[0-9A-Za-z%*-./:?@_]`, a quoted string runs to the next `"` (no escapes,
//! newlines allowed), `#` starts a comment that ends at the newline. Unlike
//! racoon2, a bare word may also contain `${NAME}` and `$[ENV]` references;
//! racoon2 only expanded them inside quotes. Keywords are not reserved here:
//! the model decides what a word means from where it stands.

use std::fmt;
use std::sync::Arc;

use super::{ConfigError, ErrorKind};

/// A position in a configuration file: 1-based line and column (in
/// characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Span {
    /// The file name as the loader saw it (the include path, joined to the
    /// including file's directory).
    pub file: Arc<str>,
    /// Line, starting at 1.
    pub line: u32,
    /// Column in characters, starting at 1.
    pub col: u32,
}

impl Span {
    /// `FILE:LINE`, the form warnings use.
    pub fn file_line(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A bare word: keyword, index, number, address, ...
    Word(String),
    /// The contents of a `"..."` string, without the quotes.
    Quoted(String),
    /// `{`
    Open,
    /// `}`
    Close,
    /// `;`
    Semi,
    /// `,` (algorithm key length / key separator)
    Comma,
    /// End of input; always the last token.
    Eof,
}

impl TokenKind {
    /// How an error message names this token.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Word(w) => format!("'{w}'"),
            Self::Quoted(q) => format!("\"{q}\""),
            Self::Open => "'{'".to_owned(),
            Self::Close => "'}'".to_owned(),
            Self::Semi => "';'".to_owned(),
            Self::Comma => "','".to_owned(),
            Self::Eof => "end of file".to_owned(),
        }
    }
}

/// One token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) span: Span,
}

/// Splits `text` into tokens; the last one is [`TokenKind::Eof`].
///
/// # Errors
///
/// An unterminated string or variable reference, or a character that cannot
/// start a token, with its position.
pub(crate) fn lex(text: &str, file: &Arc<str>) -> Result<Vec<Token>, ConfigError> {
    let mut lexer = Lexer {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
        col: 1,
        file: Arc::clone(file),
    };
    let mut tokens = Vec::new();
    while let Some(token) = lexer.next_token()? {
        tokens.push(token);
    }
    tokens.push(Token {
        kind: TokenKind::Eof,
        span: lexer.span(),
    });
    Ok(tokens)
}

/// Whether `c` may appear in a bare word (racoon2's `{string}` class).
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "%*-./:?@_".contains(c)
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: u32,
    col: u32,
    file: Arc<str>,
}

impl Lexer {
    fn next_token(&mut self) -> Result<Option<Token>, ConfigError> {
        self.skip_blanks();
        let span = self.span();
        let Some(c) = self.peek(0) else {
            return Ok(None);
        };
        let kind = match c {
            '{' => self.punct(TokenKind::Open),
            '}' => self.punct(TokenKind::Close),
            ';' => self.punct(TokenKind::Semi),
            ',' => self.punct(TokenKind::Comma),
            '"' => self.quoted(&span)?,
            c if is_word_char(c) || self.at_reference() => self.word()?,
            c => {
                return Err(ConfigError::at(
                    span,
                    ErrorKind::Lex(format!("unexpected character {c:?}")),
                ));
            }
        };
        Ok(Some(Token { kind, span }))
    }

    fn span(&self) -> Span {
        Span {
            file: Arc::clone(&self.file),
            line: self.line,
            col: self.col,
        }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.pos += 1;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    fn skip_blanks(&mut self) {
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    self.bump();
                }
                '#' => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                _ => break,
            }
        }
    }

    fn punct(&mut self, kind: TokenKind) -> TokenKind {
        self.bump();
        kind
    }

    fn quoted(&mut self, start: &Span) -> Result<TokenKind, ConfigError> {
        self.bump();
        let mut text = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(TokenKind::Quoted(text)),
                Some(c) => text.push(c),
                None => {
                    return Err(ConfigError::at(
                        start.clone(),
                        ErrorKind::Lex("unterminated quoted string".to_owned()),
                    ));
                }
            }
        }
    }

    /// `${` or `$[` starts a variable reference inside a bare word.
    fn at_reference(&self) -> bool {
        self.peek(0) == Some('$') && matches!(self.peek(1), Some('{' | '['))
    }

    fn word(&mut self) -> Result<TokenKind, ConfigError> {
        let mut text = String::new();
        loop {
            if self.at_reference() {
                self.reference(&mut text)?;
            } else if let Some(c) = self.peek(0).filter(|&c| is_word_char(c)) {
                self.bump();
                text.push(c);
            } else {
                return Ok(TokenKind::Word(text));
            }
        }
    }

    /// Copies `${NAME}` / `$[NAME]` verbatim; expansion happens later.
    fn reference(&mut self, text: &mut String) -> Result<(), ConfigError> {
        let start = self.span();
        let close = if self.peek(1) == Some('{') { '}' } else { ']' };
        for _ in 0..2 {
            text.extend(self.bump());
        }
        loop {
            match self.peek(0) {
                Some(c) if c == close => {
                    self.bump();
                    text.push(c);
                    return Ok(());
                }
                Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                    self.bump();
                    text.push(c);
                }
                _ => {
                    return Err(ConfigError::at(
                        start,
                        ErrorKind::Lex(format!(
                            "unterminated variable reference (missing '{close}')"
                        )),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        let file: Arc<str> = Arc::from("t.conf");
        lex(text, &file)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn word(w: &str) -> TokenKind {
        TokenKind::Word(w.to_owned())
    }

    #[test]
    fn words_punctuation_and_comments() {
        let got = kinds("remote r1 { # comment ; {\n  kmp_enc_alg aes,,0x12; };\n");
        assert_eq!(
            got,
            vec![
                word("remote"),
                word("r1"),
                TokenKind::Open,
                word("kmp_enc_alg"),
                word("aes"),
                TokenKind::Comma,
                TokenKind::Comma,
                word("0x12"),
                TokenKind::Semi,
                TokenKind::Close,
                TokenKind::Semi,
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn quoted_strings_keep_hash_and_spaces() {
        let got = kinds("x \"a # b ${V}\";");
        assert_eq!(got[1], TokenKind::Quoted("a # b ${V}".to_owned()));
    }

    #[test]
    fn addresses_and_dash_are_words() {
        let got = kinds("2001:db8::1%eth0/64 - 10.0.0.1 *");
        assert_eq!(
            &got[..4],
            &[
                word("2001:db8::1%eth0/64"),
                word("-"),
                word("10.0.0.1"),
                word("*")
            ]
        );
    }

    #[test]
    fn references_inside_bare_words() {
        let got = kinds("${PSKDIR}/x$[HOME];");
        assert_eq!(got[0], word("${PSKDIR}/x$[HOME]"));
    }

    #[test]
    fn spans_count_lines_and_columns() {
        let file: Arc<str> = Arc::from("t.conf");
        let toks = lex("a\r\n\t  bb \"q\nq\" c", &file).unwrap();
        let pos: Vec<(u32, u32)> = toks.iter().map(|t| (t.span.line, t.span.col)).collect();
        assert_eq!(pos, vec![(1, 1), (2, 4), (2, 7), (3, 4), (3, 5)]);
        assert_eq!(toks[1].span.to_string(), "t.conf:2:4");
    }

    #[test]
    fn unterminated_string_points_at_its_start() {
        let file: Arc<str> = Arc::from("t.conf");
        let err = lex("a;\n  \"abc", &file).unwrap_err();
        assert_eq!(err.to_string(), "t.conf:2:3: unterminated quoted string");
    }

    #[test]
    fn bad_character_is_an_error_with_position() {
        let file: Arc<str> = Arc::from("t.conf");
        let err = lex("ab\n x = 1;", &file).unwrap_err();
        assert_eq!(err.to_string(), "t.conf:2:4: unexpected character '='");
        let err = lex("${A", &file).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("t.conf:1:1: unterminated variable")
        );
        assert!(lex("$x", &file).is_err());
    }
}
