//! Finding where a value sits in the RON text, so that validation errors — found on the
//! typed config, after parsing — can still be reported as `FILE:LINE:COL`.
//!
//! A small tokenizer (comments, strings and raw strings understood; everything else is
//! brackets, `,`, `:` or atoms) gives each token its nesting depth, and [`locate`] walks
//! a path of keys and list indexes down from the top-level value. When part of the path
//! is absent from the text (an inherited or default value), the deepest part found is
//! returned instead; `None` when not even the first key is written.

use crate::Position;

/// One step of a path into the config: a struct field or map key, or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A field name or a map key (the string's content, unescaped text compared raw).
    Key(String),
    /// The n-th element of a list, from 0.
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Open,
    Close,
    Comma,
    Colon,
    Atom,
    Str,
}

#[derive(Debug)]
struct Token<'a> {
    kind: Kind,
    /// The atom, or a string's content without quotes.
    text: &'a str,
    /// Brackets enclosing the token (an `Open`/`Close` counts as outside its own pair).
    depth: usize,
    pos: Position,
}

struct Cursor<'a> {
    text: &'a str,
    i: usize,
    pos: Position,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.i..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.text[self.i..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        if c == '\n' {
            self.pos.line += 1;
            self.pos.col = 1;
        } else {
            self.pos.col += 1;
        }
        Some(c)
    }

    fn eat_while(&mut self, f: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&f) {
            self.bump();
        }
    }
}

fn is_atom_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '+' | '-')
}

fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut cur = Cursor {
        text,
        i: 0,
        pos: Position { line: 1, col: 1 },
    };
    let mut toks = Vec::new();
    let mut depth = 0usize;
    while let Some(c) = cur.peek() {
        let pos = cur.pos;
        let start = cur.i;
        let mut push = |kind, text, depth| {
            toks.push(Token {
                kind,
                text,
                depth,
                pos,
            })
        };
        match c {
            '/' if cur.peek2() == Some('/') => cur.eat_while(|c| c != '\n'),
            '/' if cur.peek2() == Some('*') => {
                cur.bump();
                cur.bump();
                let mut nest = 1;
                while nest > 0 {
                    match cur.bump() {
                        None => break,
                        Some('/') if cur.peek() == Some('*') => {
                            cur.bump();
                            nest += 1;
                        }
                        Some('*') if cur.peek() == Some('/') => {
                            cur.bump();
                            nest -= 1;
                        }
                        _ => {}
                    }
                }
            }
            '(' | '[' | '{' => {
                cur.bump();
                push(Kind::Open, "", depth);
                depth += 1;
            }
            ')' | ']' | '}' => {
                cur.bump();
                depth = depth.saturating_sub(1);
                push(Kind::Close, "", depth);
            }
            ',' | ':' => {
                cur.bump();
                let kind = if c == ',' { Kind::Comma } else { Kind::Colon };
                push(kind, "", depth);
            }
            '"' => {
                cur.bump();
                let body = cur.i;
                let mut end = text.len();
                while let Some(c) = cur.bump() {
                    match c {
                        '\\' => {
                            cur.bump();
                        }
                        '"' => {
                            end = cur.i - 1;
                            break;
                        }
                        _ => {}
                    }
                }
                push(Kind::Str, &text[body..end], depth);
            }
            'r' if matches!(cur.peek2(), Some('"' | '#')) => {
                cur.bump();
                let hashes = text[cur.i..].chars().take_while(|&c| c == '#').count();
                if text[cur.i + hashes..].starts_with('"') {
                    let close = format!("\"{}", "#".repeat(hashes));
                    let body = cur.i + hashes + 1;
                    let end = text[body..].find(&close).map_or(text.len(), |n| body + n);
                    while cur.i < (end + close.len()).min(text.len()) {
                        cur.bump();
                    }
                    push(Kind::Str, &text[body..end], depth);
                } else {
                    cur.eat_while(|c| c == '#' || is_atom_char(c));
                    push(Kind::Atom, &text[start..cur.i], depth);
                }
            }
            c if is_atom_char(c) => {
                cur.eat_while(is_atom_char);
                push(Kind::Atom, &text[start..cur.i], depth);
            }
            _ => {
                cur.bump();
            }
        }
    }
    toks
}

/// The position of `path` in `text` (or of the deepest part of it that is written).
pub(crate) fn locate(text: &str, path: &[Seg]) -> Option<Position> {
    let toks = tokenize(text);
    // The config is the last top-level bracket pair (after any `#![enable(..)]`).
    let mut open = toks
        .iter()
        .rposition(|t| t.kind == Kind::Open && t.depth == 0)?;
    let mut best = None;
    for (n, seg) in path.iter().enumerate() {
        // `Some((..))` and other wrappers: look inside a lone inner pair.
        while toks.get(open + 1).is_some_and(|t| t.kind == Kind::Open)
            && (open + 2..toks.len())
                .find(|&j| toks[j].depth <= toks[open + 1].depth)
                .and_then(|close| toks.get(close + 1))
                .is_some_and(|t| t.kind == Kind::Close && t.depth == toks[open].depth)
        {
            open += 1;
        }
        let inner = toks[open].depth + 1;
        let end = (open + 1..toks.len())
            .find(|&j| toks[j].depth < inner)
            .unwrap_or(toks.len());
        let here = |j: usize| toks[j].depth == inner;
        let value = match seg {
            Seg::Key(key) => {
                let found = (open + 1..end).find(|&j| {
                    here(j)
                        && matches!(toks[j].kind, Kind::Atom | Kind::Str)
                        && toks[j].text == key
                        && toks.get(j + 1).is_some_and(|t| t.kind == Kind::Colon)
                });
                let Some(j) = found else { return best };
                best = Some(toks[j].pos);
                j + 2
            }
            Seg::Index(i) => {
                // The first token after the i-th comma at this depth.
                let mut commas = 0;
                let start = (open + 1..end).find(|&j| {
                    let comma = here(j) && toks[j].kind == Kind::Comma;
                    if comma {
                        commas += 1;
                    }
                    !comma && commas == *i
                });
                let Some(j) = start else { return best };
                best = Some(toks[j].pos);
                j
            }
        };
        if n + 1 == path.len() {
            break;
        }
        // Descend into the value's brackets (skipping a `Some` or struct name before them).
        let inside = (value..end)
            .take_while(|&j| !(here(j) && toks[j].kind == Kind::Comma))
            .find(|&j| here(j) && toks[j].kind == Kind::Open);
        match inside {
            Some(j) => open = j,
            None => return best,
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Seg {
        Seg::Key(k.to_owned())
    }

    fn at(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
        locate(text, path).map(|p| (p.line, p.col))
    }

    const TEXT: &str = r#"#![enable(implicit_some)]
// listeners: [ (address: "commented out") ]
(
    listeners: [
        (address: "127.0.0.1:25"), /* a (nested /* comment */) */
        (address: "127.0.0.1:26", tls_cert: "c.pem"),
    ],
    domains: {
        "*": (max_connections: 3),
        "a.example": Some((tls: Required, retry_interval: "1h")),
    },
    routes: { r"raw": "x:1", "esc\"aped": "y:2" },
)
"#;

    #[test]
    fn finds_keys_and_indexes() {
        assert_eq!(at(TEXT, &[key("listeners")]), Some((4, 5)));
        assert_eq!(at(TEXT, &[key("listeners"), Seg::Index(0)]), Some((5, 9)));
        assert_eq!(
            at(TEXT, &[key("listeners"), Seg::Index(1), key("tls_cert")]),
            Some((6, 35))
        );
        assert_eq!(
            at(
                TEXT,
                &[key("domains"), key("a.example"), key("retry_interval")]
            ),
            Some((10, 43))
        );
        assert_eq!(at(TEXT, &[key("routes"), key("raw")]), Some((12, 15)));
    }

    #[test]
    fn falls_back_to_the_deepest_part_written() {
        // Inherited from "*": point at the domain's key.
        assert_eq!(
            at(
                TEXT,
                &[key("domains"), key("a.example"), key("max_connections")]
            ),
            Some((10, 9))
        );
        assert_eq!(at(TEXT, &[key("listeners"), Seg::Index(5)]), Some((4, 5)));
        assert_eq!(at(TEXT, &[key("smtp"), key("hostname")]), None);
        // A nested key of the same name does not match at the top level.
        assert_eq!(at(TEXT, &[key("tls")]), None);
        assert_eq!(at("", &[key("x")]), None);
    }
}
