//! containerd's filter syntax, one parser for every list the daemon
//! filters (images, containers, content, leases, events, task metrics)
//! and for ctr, which checks its arguments before sending them.
//!
//! A filter is selectors joined by `,` (all must match); a list of
//! filters matches when any does. A selector is `<fieldpath>[<op><value>]`:
//! the path is fields joined by `.`, a field being `[A-Za-z0-9_]+` or a
//! quoted string (`labels."com.example/x"`); `==` equal, `!=` not equal,
//! `~=` a regular expression (RE2 syntax, found anywhere in the value, as
//! Go's MatchString); no operator tests presence. Values are bare
//! (`[^\s,]+`) or quoted with `"`; a regular expression may also be quoted
//! with `/` or `|` (`name~=/^a|b$/`). Parse errors read as containerd's
//! (`filters: parse error: [before >|at|< after]: why`).

mod regex;

pub use regex::Regex;

use crate::error::{Error, Kind, Result};
use std::collections::BTreeMap;

/// What a filter looks at: the value at a field path, None when absent.
pub trait Fields {
    fn field(&self, path: &[String]) -> Option<String>;
}

/// The common shape: named top-level fields and a label map
/// (`labels.KEY`).
pub struct Record<'a> {
    pub fields: &'a [(&'a str, &'a str)],
    pub labels: &'a BTreeMap<String, String>,
}

impl Fields for Record<'_> {
    fn field(&self, path: &[String]) -> Option<String> {
        match path {
            [l, key @ ..] if l == "labels" => label(self.labels, key),
            [name] => self
                .fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.to_string()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Present,
    Equal(String),
    NotEqual(String),
    /// None: the expression does not compile; as containerd, the
    /// selector then matches nothing (no parse error).
    Matches(Option<Regex>),
}

#[derive(Debug, Clone, PartialEq)]
struct Selector {
    path: Vec<String>,
    op: Op,
}

/// One filter: selectors that must all match.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Vec<Selector>);

/// Filters of which any must match (none: everything matches).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnyOf(Vec<Filter>);

impl Filter {
    pub fn matches(&self, item: &dyn Fields) -> bool {
        self.0.iter().all(|s| {
            let value = item.field(&s.path);
            match &s.op {
                Op::Present => value.is_some(),
                Op::Equal(v) => value.as_deref() == Some(v.as_str()),
                Op::NotEqual(v) => value.as_deref().unwrap_or("") != v,
                Op::Matches(re) => re
                    .as_ref()
                    .is_some_and(|re| re.is_match(value.as_deref().unwrap_or(""))),
            }
        })
    }
}

impl AnyOf {
    pub fn matches(&self, item: &dyn Fields) -> bool {
        self.0.is_empty() || self.0.iter().any(|f| f.matches(item))
    }
}

/// Parse every filter of a request (containerd's ParseAll): once per
/// request, not per object; a bad filter fails the whole request, even
/// beside an empty one (which matches everything).
pub fn parse_all(filters: &[String]) -> Result<AnyOf> {
    let mut all = Vec::new();
    let mut everything = false;
    for f in filters {
        match parse(f)? {
            Some(f) => all.push(f),
            None => everything = true,
        }
    }
    if everything {
        all.clear();
    }
    Ok(AnyOf(all))
}

/// The value at the rest of a `labels.KEY` (or `annotations.KEY`) path
/// among (key, value) pairs: the key's parts joined by `.`, as
/// containerd's adaptors do; None for no key.
pub fn label<K, V>(pairs: impl IntoIterator<Item = (K, V)>, key: &[String]) -> Option<String>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    if key.is_empty() {
        return None;
    }
    let key = key.join(".");
    pairs
        .into_iter()
        .find(|(k, _)| k.as_ref() == key)
        .map(|(_, v)| v.as_ref().to_string())
}

/// Parse one filter; None for the empty one.
pub fn parse(input: &str) -> Result<Option<Filter>> {
    if input.is_empty() {
        return Ok(None);
    }
    let mut p = Parser {
        input,
        chars: input.char_indices().collect(),
        at: 0,
    };
    let mut selectors = vec![p.selector()?];
    loop {
        p.skip_space();
        match p.peek() {
            None => break,
            Some(',') => {
                p.at += 1;
                selectors.push(p.selector()?);
            }
            Some(c) => return Err(p.error(p.at, &format!("unexpected input: {c}"))),
        }
    }
    Ok(Some(Filter(selectors)))
}

struct Parser<'a> {
    input: &'a str,
    chars: Vec<(usize, char)>,
    at: usize,
}

fn is_field_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).map(|(_, c)| *c)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn offset(&self, at: usize) -> usize {
        self.chars.get(at).map_or(self.input.len(), |(o, _)| *o)
    }

    fn error(&self, at: usize, why: &str) -> Error {
        let pos = self.offset(at);
        let text = if pos < self.input.len() {
            let next = self.offset(at + 1);
            format!(
                "[{} >|{}|< {}]: {why}",
                &self.input[..pos],
                &self.input[pos..next],
                &self.input[next..]
            )
        } else {
            format!("[{}]: {why}", self.input)
        };
        Error::of(
            Kind::InvalidArgument,
            format!("filters: parse error: {text}"),
        )
    }

    fn selector(&mut self) -> Result<Selector> {
        let mut path = vec![self.field()?];
        loop {
            self.skip_space();
            if self.peek() != Some('.') {
                break;
            }
            self.at += 1;
            path.push(self.field()?);
        }
        self.skip_space();
        let op_at = self.at;
        let op: String = self
            .chars
            .iter()
            .skip(self.at)
            .map(|(_, c)| *c)
            .take_while(|c| matches!(c, '=' | '!' | '~'))
            .collect();
        if op.is_empty() {
            return match self.peek() {
                None | Some(',') => Ok(Selector {
                    path,
                    op: Op::Present,
                }),
                Some(_) => Err(self.error(self.at, "expected an operator (\"==\"|\"!=\"|\"~=\")")),
            };
        }
        self.at += op.chars().count();
        let regex = op == "~=";
        let value = self.value(regex)?;
        let op = match op.as_str() {
            "==" => Op::Equal(value),
            "!=" => Op::NotEqual(value),
            "~=" => Op::Matches(Regex::new(&value).ok()),
            other => return Err(self.error(op_at, &format!("unsupported operator {other:?}"))),
        };
        Ok(Selector { path, op })
    }

    fn field(&mut self) -> Result<String> {
        self.skip_space();
        match self.peek() {
            Some('"') => self.quoted('"'),
            Some(c) if is_field_char(c) => {
                let start = self.at;
                while self.peek().is_some_and(is_field_char) {
                    self.at += 1;
                }
                Ok(self.chars[start..self.at].iter().map(|(_, c)| c).collect())
            }
            _ => Err(self.error(self.at, "expected field or quoted")),
        }
    }

    fn value(&mut self, regex: bool) -> Result<String> {
        self.skip_space();
        match self.peek() {
            Some(q @ ('"' | '/' | '|')) => {
                if q != '"' && !regex {
                    return Err(self.error(self.at, "invalid quote encountered"));
                }
                self.quoted(q)
            }
            Some(c) if c != ',' && c != '.' && !c.is_whitespace() => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|c| c != ',' && !c.is_whitespace() && !c.is_control())
                {
                    self.at += 1;
                }
                Ok(self.chars[start..self.at].iter().map(|(_, c)| c).collect())
            }
            _ => Err(self.error(self.at, "expected value or quoted")),
        }
    }

    /// A quoted string with Go's escapes (the quote itself escapable).
    fn quoted(&mut self, quote: char) -> Result<String> {
        let start = self.at;
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error(start, "quoted literal not terminated"));
            };
            self.at += 1;
            match c {
                c if c == quote => return Ok(out),
                '\n' => return Err(self.error(start, "quoted literal not terminated")),
                '\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.error(start, "quoted literal not terminated"));
                    };
                    self.at += 1;
                    let simple = match e {
                        'a' => Some('\x07'),
                        'b' => Some('\x08'),
                        'f' => Some('\x0c'),
                        'n' => Some('\n'),
                        'r' => Some('\r'),
                        't' => Some('\t'),
                        'v' => Some('\x0b'),
                        '\\' => Some('\\'),
                        e if e == quote => Some(quote),
                        _ => None,
                    };
                    if let Some(s) = simple {
                        out.push(s);
                        continue;
                    }
                    let (radix, digits) = match e {
                        '0'..='7' => {
                            self.at -= 1;
                            (8, 3)
                        }
                        'x' => (16, 2),
                        'u' => (16, 4),
                        'U' => (16, 8),
                        _ => return Err(self.error(self.at - 1, "illegal escape sequence")),
                    };
                    let text: String = self
                        .chars
                        .iter()
                        .skip(self.at)
                        .take(digits)
                        .map(|(_, c)| *c)
                        .collect();
                    let ch = u32::from_str_radix(&text, radix)
                        .ok()
                        .filter(|_| text.chars().count() == digits)
                        .and_then(char::from_u32)
                        .ok_or_else(|| self.error(self.at, "illegal escape sequence"))?;
                    self.at += digits;
                    out.push(ch);
                }
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests;
