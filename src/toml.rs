//! A small TOML reader for the configuration files skiff shares with
//! containerd: the daemon's config.toml, `certs.d/<host>/hosts.toml` and
//! the shim's runtime options. It reads TOML 1.0 except dates and times:
//! tables and arrays of tables, dotted and quoted keys, basic and literal
//! strings (single- and multi-line), integers, floats, booleans, arrays
//! and inline tables. Entries keep their file order and line, because
//! hosts.toml's mirrors are tried in the order written and errors name
//! the line.
//!
//! Input may be hostile (a hosts.toml a client names): nesting is bounded
//! ([`MAX_DEPTH`]), lookups are indexed, and errors name line and column
//! and what was expected, never the text found.

use crate::error::{Error, Kind, Result};
use std::collections::HashMap;

/// How deep arrays and inline tables may nest: the parser recurses, and
/// the shim parses runtime options on 128 KiB handler stacks (a debug
/// build spends some 2-4 KiB a level). Real files nest 2 or 3 deep.
pub const MAX_DEPTH: usize = 16;

/// The largest configuration file read (containerd's full default
/// config.toml is about 10 KiB).
pub const MAX_FILE: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Value>),
    Table(Table),
}

impl Value {
    /// The TOML type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Bool(_) => "boolean",
            Value::Array(_) => "array",
            Value::Table(_) => "table",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_table(&self) -> Option<&Table> {
        match self {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// A table: its entries in file order.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub entries: Vec<Entry>,
    /// Key to position in `entries`, kept by the parser: its lookups stay
    /// constant-time however many keys a table has.
    index: HashMap<String, usize>,
    /// What made it, which decides what may still add to it.
    origin: Origin,
}

/// How the parser made a table. TOML defines each table once: by a
/// `[header]`, by dotted keys, or whole as an inline table.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
enum Origin {
    /// Only as the parent of another table: a `[header]` may still define it.
    #[default]
    Implicit,
    Header,
    Dotted,
    /// Inline tables (and those in static arrays) are closed.
    Inline,
}

impl PartialEq for Table {
    fn eq(&self, other: &Table) -> bool {
        self.entries == other.entries
    }
}

impl FromIterator<Entry> for Table {
    fn from_iter<I: IntoIterator<Item = Entry>>(iter: I) -> Table {
        let mut t = Table::default();
        for e in iter {
            t.push(e);
        }
        t
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub value: Value,
    /// The line (1-based) that defined it.
    pub line: usize,
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entry(key).map(|e| &e.value)
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }

    fn push(&mut self, e: Entry) -> usize {
        let n = self.entries.len();
        self.index.insert(e.key.clone(), n);
        self.entries.push(e);
        n
    }

    /// Every non-table value under this table, with its key path (through
    /// arrays of tables too) and line, in file order.
    pub fn leaves(&self) -> Vec<(Vec<String>, &Value, usize)> {
        let mut out = Vec::new();
        collect_leaves(self, &[], &mut out);
        out
    }
}

type Leaf<'a> = (Vec<String>, &'a Value, usize);

fn collect_leaves<'a>(t: &'a Table, prefix: &[String], out: &mut Vec<Leaf<'a>>) {
    for e in &t.entries {
        let mut path = prefix.to_vec();
        path.push(e.key.clone());
        match &e.value {
            Value::Table(sub) => collect_leaves(sub, &path, out),
            Value::Array(items) if items.iter().all(|v| matches!(v, Value::Table(_))) => {
                if items.is_empty() {
                    out.push((path.clone(), &e.value, e.line));
                }
                for v in items {
                    if let Value::Table(sub) = v {
                        collect_leaves(sub, &path, out);
                    }
                }
            }
            v => out.push((path, v, e.line)),
        }
    }
}

/// `a.b` with the part quoted when it is not a bare key, as TOML writes it.
pub fn join_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let part = if bare { key.to_string() } else { quote(key) };
    if prefix.is_empty() {
        part
    } else {
        format!("{prefix}.{part}")
    }
}

/// A TOML basic string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parse a document. Errors say `line N: what`.
pub fn parse(text: &str) -> Result<Table> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        line: 1,
        line_start: 0,
        depth: 0,
    };
    let mut root = Table::default();
    // The table the key/value lines go into, as a path from the root.
    let mut current: Vec<String> = Vec::new();
    loop {
        p.skip_space_comments_newlines();
        if p.at_end() {
            return Ok(root);
        }
        let line = p.line;
        if p.peek() == Some(b'[') {
            p.i += 1;
            let array = p.peek() == Some(b'[');
            if array {
                p.i += 1;
            }
            p.skip_ws();
            let path = p.key()?;
            p.skip_ws();
            p.expect(b']')?;
            if array {
                p.expect(b']')?;
            }
            p.end_of_line()?;
            if array {
                push_array_table(&mut root, &path, line)?;
            } else {
                define_table(&mut root, &path, line)?;
            }
            current = path;
        } else {
            let key = p.key()?;
            p.skip_ws();
            p.expect(b'=')?;
            p.skip_ws();
            let value = p.value()?;
            p.end_of_line()?;
            let t = walk(&mut root, &current, line, None)?;
            insert_dotted(t, &key, value, line)?;
        }
    }
}

fn invalid(line: usize, what: String) -> Error {
    Error::of(Kind::InvalidArgument, format!("line {line}: {what}"))
}

/// The table at `path` below `t` for a `[header]` (`header`) or for the
/// table a header opened (`header` is then the whole header, for
/// errors): missing ones are made (implicit); through an
/// array of tables, its last element. Inline tables and static arrays are
/// closed.
fn walk<'a>(
    mut t: &'a mut Table,
    path: &[String],
    line: usize,
    header: Option<&[String]>,
) -> Result<&'a mut Table> {
    for (n, part) in path.iter().enumerate() {
        let idx = match t.position(part) {
            Some(i) => i,
            None => t.push(Entry {
                key: part.clone(),
                value: Value::Table(Table::default()),
                line,
            }),
        };
        let clash = match &t.entries[idx].value {
            Value::Table(sub) if sub.origin != Origin::Inline => None,
            Value::Array(items) => match items.last() {
                Some(Value::Table(sub)) if sub.origin == Origin::Header => None,
                _ => Some("static array"),
            },
            Value::Table(_) => Some("inline table"),
            other => Some(other.type_name()),
        };
        if let Some(kind) = clash {
            let (what, whole) = match header {
                Some(whole) => ("table", whole),
                None => ("key", path),
            };
            return Err(invalid(
                line,
                format!(
                    "{what} {}: {} is already a{} {kind}",
                    dotted(whole),
                    dotted(&path[..=n]),
                    if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                        "n"
                    } else {
                        ""
                    },
                ),
            ));
        }
        t = match &mut t.entries[idx].value {
            Value::Table(sub) => sub,
            Value::Array(items) => match items.last_mut() {
                Some(Value::Table(sub)) => sub,
                _ => unreachable!("checked above"),
            },
            _ => unreachable!("checked above"),
        };
    }
    Ok(t)
}

/// `[path]`: defines the table, once.
fn define_table(root: &mut Table, path: &[String], line: usize) -> Result<()> {
    let (last, parents) = path.split_last().expect("a key has a part");
    let t = walk(root, parents, line, Some(path))?;
    let Some(idx) = t.position(last) else {
        t.push(Entry {
            key: last.clone(),
            value: Value::Table(Table {
                origin: Origin::Header,
                ..Table::default()
            }),
            line,
        });
        return Ok(());
    };
    let why = match &mut t.entries[idx].value {
        Value::Table(sub) => match sub.origin {
            Origin::Implicit => {
                sub.origin = Origin::Header;
                return Ok(());
            }
            Origin::Header => "is defined twice".to_string(),
            Origin::Dotted => "is already defined by dotted keys".to_string(),
            Origin::Inline => "is an inline table (which cannot be extended)".to_string(),
        },
        other => format!("is already a{} {}", article(other), other.type_name()),
    };
    Err(invalid(line, format!("table [{}] {why}", dotted(path))))
}

fn article(v: &Value) -> &'static str {
    match v {
        Value::Int(_) | Value::Array(_) => "n",
        _ => "",
    }
}

fn push_array_table(root: &mut Table, path: &[String], line: usize) -> Result<()> {
    let (last, parents) = path.split_last().expect("a key has a part");
    let t = walk(root, parents, line, Some(path))?;
    let element = Value::Table(Table {
        origin: Origin::Header,
        ..Table::default()
    });
    let Some(idx) = t.position(last) else {
        t.push(Entry {
            key: last.clone(),
            value: Value::Array(vec![element]),
            line,
        });
        return Ok(());
    };
    match &mut t.entries[idx].value {
        // Made by `[[path]]` before: never empty, its tables from headers.
        Value::Array(items)
            if !items.is_empty()
                && items
                    .iter()
                    .all(|v| matches!(v, Value::Table(t) if t.origin == Origin::Header)) =>
        {
            items.push(element);
            Ok(())
        }
        _ => Err(invalid(
            line,
            format!("[[{}]]: already defined as something else", dotted(path)),
        )),
    }
}

/// `a.b.c = value` into `t`: `a` and `a.b` are tables dotted keys made
/// (or make now); `c` is new.
fn insert_dotted(t: &mut Table, key: &[String], value: Value, line: usize) -> Result<()> {
    let (last, parents) = key.split_last().expect("a key has a part");
    let mut t = t;
    for (n, part) in parents.iter().enumerate() {
        let idx = match t.position(part) {
            Some(i) => i,
            None => t.push(Entry {
                key: part.clone(),
                value: Value::Table(Table {
                    origin: Origin::Dotted,
                    ..Table::default()
                }),
                line,
            }),
        };
        let what = match &t.entries[idx].value {
            Value::Table(sub) if sub.origin == Origin::Dotted => None,
            Value::Table(sub) if sub.origin == Origin::Inline => {
                Some("an inline table (which cannot be extended)".to_string())
            }
            Value::Table(_) => Some("a table defined by a [header]".to_string()),
            v => Some(format!("a{} {}", article(v), v.type_name())),
        };
        if let Some(what) = what {
            return Err(invalid(
                line,
                format!("key {}: {} is {what}", dotted(key), dotted(&key[..=n])),
            ));
        }
        let Value::Table(sub) = &mut t.entries[idx].value else {
            unreachable!("checked above")
        };
        t = sub;
    }
    if t.position(last).is_some() {
        return Err(invalid(
            line,
            format!("key {} defined twice", join_key("", last)),
        ));
    }
    t.push(Entry {
        key: last.clone(),
        value,
        line,
    });
    Ok(())
}

/// A key path as TOML writes it: `plugins."io.containerd.grpc.v1.cri".registry`.
pub fn dotted(path: &[String]) -> String {
    path.iter().fold(String::new(), |acc, k| join_key(&acc, k))
}

/// A TOML integer or float (the token as scanned), or why it is not one.
fn number(raw: &str) -> std::result::Result<Value, &'static str> {
    let (negative, body) = match raw.as_bytes().first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    let signed = body.len() != raw.len();
    match body {
        "inf" if negative => return Ok(Value::Float(f64::NEG_INFINITY)),
        "inf" => return Ok(Value::Float(f64::INFINITY)),
        "nan" => return Ok(Value::Float(f64::NAN)),
        _ => {}
    }
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(digits) = body.strip_prefix(prefix) {
            if signed {
                return Err("hexadecimal, octal and binary integers take no sign");
            }
            return i64::from_str_radix(&digits_of(digits, radix)?, radix)
                .map(Value::Int)
                .map_err(|_| "out of range for a 64-bit integer");
        }
    }
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(k) => (&body[..k], Some(&body[k + 1..])),
        None => (body, None),
    };
    let (int, fraction) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let int = digits_of(int, 10)?;
    if int.len() > 1 && int.starts_with('0') {
        return Err("leading zeros are not allowed");
    }
    let sign = if negative { "-" } else { "" };
    if fraction.is_none() && exponent.is_none() {
        return format!("{sign}{int}")
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| "out of range for a 64-bit integer");
    }
    let mut text = format!("{sign}{int}");
    if let Some(f) = fraction {
        text += ".";
        text += &digits_of(f, 10)?;
    }
    if let Some(e) = exponent {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        text += if e.starts_with('-') { "e-" } else { "e" };
        text += &digits_of(digits, 10)?;
    }
    text.parse::<f64>()
        .map(Value::Float)
        .map_err(|_| "not a float")
}

/// Digits of `radix`, an underscore only between two of them; without
/// the underscores.
fn digits_of(s: &str, radix: u32) -> std::result::Result<String, &'static str> {
    let digit = |b: u8| (b as char).is_digit(radix);
    let bytes = s.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.iter().enumerate().all(|(k, &b)| {
            digit(b)
                || (b == b'_'
                    && k > 0
                    && k + 1 < bytes.len()
                    && digit(bytes[k - 1])
                    && digit(bytes[k + 1]))
        });
    if ok {
        Ok(s.replace('_', ""))
    } else {
        Err("expected digits (an underscore only between two)")
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    line: usize,
    /// Where the current line starts, for columns.
    line_start: usize,
    /// How deep in arrays and inline tables the cursor is.
    depth: usize,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn starts_with(&self, pat: &[u8]) -> bool {
        self.s[self.i..].starts_with(pat)
    }

    fn err(&self, what: impl std::fmt::Display) -> Error {
        Error::of(Kind::InvalidArgument, format!("line {}: {what}", self.line))
    }

    fn expect(&mut self, b: u8) -> Result<()> {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(format!("expected {:?}, found {}", b as char, self.shown())))
        }
    }

    /// The cursor's column (1-based, in bytes).
    fn column(&self) -> usize {
        self.i - self.line_start + 1
    }

    /// What is at the cursor, for an error message: where, never the text
    /// itself (the file may be one the reader was not meant to show).
    fn shown(&self) -> String {
        match self.peek() {
            None => "the end of the file".into(),
            Some(b'\n') => "the end of the line".into(),
            Some(_) => format!("something else at column {}", self.column()),
        }
    }

    /// A raw control character where TOML wants it escaped.
    fn control(&self, b: u8) -> Option<Error> {
        ((b < 0x20 && b != b'\t') || b == 0x7f).then(|| {
            self.err(format!(
                "control character at column {} (write it as an escape)",
                self.column()
            ))
        })
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_comment(&mut self) {
        if self.peek() == Some(b'#') {
            while !matches!(self.peek(), None | Some(b'\n')) {
                self.i += 1;
            }
        }
    }

    fn newline(&mut self) -> bool {
        if self.starts_with(b"\r\n") {
            self.i += 2;
        } else if self.peek() == Some(b'\n') {
            self.i += 1;
        } else {
            return false;
        }
        self.line += 1;
        self.line_start = self.i;
        true
    }

    fn skip_space_comments_newlines(&mut self) {
        loop {
            self.skip_ws();
            self.skip_comment();
            if !self.newline() {
                return;
            }
        }
    }

    fn end_of_line(&mut self) -> Result<()> {
        self.skip_ws();
        self.skip_comment();
        if self.at_end() || self.newline() {
            Ok(())
        } else {
            Err(self.err(format!(
                "expected the end of the line, found {}",
                self.shown()
            )))
        }
    }

    /// A dotted key: bare or quoted parts.
    fn key(&mut self) -> Result<Vec<String>> {
        let mut parts = Vec::new();
        loop {
            self.skip_ws();
            let part = match self.peek() {
                Some(b'"') => self.basic_string()?,
                Some(b'\'') => self.literal_string()?,
                _ => {
                    let start = self.i;
                    while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                    {
                        self.i += 1;
                    }
                    if start == self.i {
                        return Err(self.err(format!("expected a key, found {}", self.shown())));
                    }
                    String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
                }
            };
            parts.push(part);
            self.skip_ws();
            if self.peek() != Some(b'.') {
                return Ok(parts);
            }
            self.i += 1;
        }
    }

    fn value(&mut self) -> Result<Value> {
        match self.peek() {
            Some(b'"') if self.starts_with(b"\"\"\"") => self.multiline_basic().map(Value::Str),
            Some(b'"') => self.basic_string().map(Value::Str),
            Some(b'\'') if self.starts_with(b"'''") => self.multiline_literal().map(Value::Str),
            Some(b'\'') => self.literal_string().map(Value::Str),
            Some(b'[' | b'{') => {
                if self.depth >= MAX_DEPTH {
                    return Err(self.err(format!(
                        "arrays and inline tables nested deeper than {MAX_DEPTH} (column {})",
                        self.column()
                    )));
                }
                self.depth += 1;
                let v = if self.peek() == Some(b'[') {
                    self.array()
                } else {
                    self.inline_table()
                };
                self.depth -= 1;
                v
            }
            Some(b't') if self.starts_with(b"true") => {
                self.i += 4;
                Ok(Value::Bool(true))
            }
            Some(b'f') if self.starts_with(b"false") => {
                self.i += 5;
                Ok(Value::Bool(false))
            }
            Some(b) if b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'i' | b'n') => {
                self.number()
            }
            _ => Err(self.err(format!("expected a value, found {}", self.shown()))),
        }
    }

    fn number(&mut self) -> Result<Value> {
        let column = self.column();
        let start = self.i;
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
        {
            self.i += 1;
        }
        let raw = std::str::from_utf8(&self.s[start..self.i]).expect("ASCII");
        number(raw).map_err(|why| {
            self.err(format!(
                "not a number at column {column}: {why} (dates and times are not supported)"
            ))
        })
    }

    fn array(&mut self) -> Result<Value> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        loop {
            self.skip_space_comments_newlines();
            if self.peek() == Some(b']') {
                self.i += 1;
                return Ok(Value::Array(items));
            }
            items.push(self.value()?);
            self.skip_space_comments_newlines();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {}
                _ => {
                    return Err(self.err(format!(
                        "in an array: expected ',' or ']', found {}",
                        self.shown()
                    )))
                }
            }
        }
    }

    fn inline_table(&mut self) -> Result<Value> {
        self.expect(b'{')?;
        let mut t = Table::default();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            t.origin = Origin::Inline;
            return Ok(Value::Table(t));
        }
        loop {
            let line = self.line;
            let key = self.key()?;
            self.skip_ws();
            self.expect(b'=')?;
            self.skip_ws();
            let value = self.value()?;
            insert_dotted(&mut t, &key, value, line)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    t.origin = Origin::Inline;
                    return Ok(Value::Table(t));
                }
                _ => {
                    return Err(self.err(format!(
                        "in an inline table: expected ',' or '}}', found {}",
                        self.shown()
                    )))
                }
            }
        }
    }

    fn literal_string(&mut self) -> Result<String> {
        self.expect(b'\'')?;
        let start = self.i;
        while let Some(b) = self.peek().filter(|b| !matches!(b, b'\'' | b'\n')) {
            if let Some(e) = self.control(b) {
                return Err(e);
            }
            self.i += 1;
        }
        let s = self.utf8(start, self.i)?;
        self.expect(b'\'')?;
        Ok(s)
    }

    fn multiline_literal(&mut self) -> Result<String> {
        self.i += 3;
        self.newline();
        let start = self.i;
        while !self.starts_with(b"'''") {
            let Some(b) = self.peek() else {
                return Err(self.err("unterminated ''' string"));
            };
            if !self.newline() {
                if let Some(e) = self.control(b) {
                    return Err(e);
                }
                self.i += 1;
            }
        }
        // Up to two quotes just before the closing ones are content.
        let extra = self.closing_extra(b'\'');
        let s = self.utf8(start, self.i + extra)?;
        self.i += 3 + extra;
        Ok(s)
    }

    fn basic_string(&mut self) -> Result<String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\n') => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return String::from_utf8(out).map_err(|_| self.err("string is not UTF-8"));
                }
                Some(b'\\') => self.escape(&mut out)?,
                Some(b) => {
                    if let Some(e) = self.control(b) {
                        return Err(e);
                    }
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }

    /// At a run of quotes closing a multi-line string: how many of them
    /// (at most two) are content before the closing three.
    fn closing_extra(&self, quote: u8) -> usize {
        let run = self.s[self.i..].iter().take_while(|&&b| b == quote).count();
        (run - 3).min(2)
    }

    fn multiline_basic(&mut self) -> Result<String> {
        self.i += 3;
        self.newline();
        let mut out = Vec::new();
        loop {
            if self.starts_with(b"\"\"\"") {
                let extra = self.closing_extra(b'"');
                out.extend(std::iter::repeat_n(b'"', extra));
                self.i += 3 + extra;
                return String::from_utf8(out).map_err(|_| self.err("string is not UTF-8"));
            }
            match self.peek() {
                None => return Err(self.err("unterminated \"\"\" string")),
                Some(b'\\') => {
                    // A backslash at the end of a line trims the line break
                    // and the whitespace after it.
                    let save = self.i;
                    self.i += 1;
                    self.skip_ws();
                    if self.newline() {
                        loop {
                            self.skip_ws();
                            if !self.newline() {
                                break;
                            }
                        }
                    } else {
                        self.i = save;
                        self.escape(&mut out)?;
                    }
                }
                Some(b'\n') | Some(b'\r') if self.newline() => out.push(b'\n'),
                Some(b) => {
                    if let Some(e) = self.control(b) {
                        return Err(e);
                    }
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<()> {
        self.i += 1;
        let c = self.peek().ok_or_else(|| self.err("unterminated string"))?;
        self.i += 1;
        let simple = match c {
            b'b' => Some(8),
            b't' => Some(b'\t'),
            b'n' => Some(b'\n'),
            b'f' => Some(12),
            b'r' => Some(b'\r'),
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            return Ok(());
        }
        let len = match c {
            b'u' => 4,
            b'U' => 8,
            _ => return Err(self.err(format!("unknown escape \\{}", c as char))),
        };
        let hex = self
            .s
            .get(self.i..self.i + len)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32)
            .ok_or_else(|| self.err("bad unicode escape"))?;
        self.i += len;
        let mut buf = [0u8; 4];
        out.extend_from_slice(hex.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }

    fn utf8(&self, start: usize, end: usize) -> Result<String> {
        std::str::from_utf8(&self.s[start..end])
            .map(str::to_string)
            .map_err(|_| self.err("string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_toml_in_file_order() {
        let t = parse(
            "server = \"https://registry-1.docker.io\"  # upstream\n\n\
             [host.\"https://b.example:5000\"]\n  capabilities = [\"pull\",\n   \"resolve\", # trailing\n]\n  ca = 'ca.pem'\n\
             [host.\"https://b.example:5000\".header]\n  x-a = [\"1\", \"2\"]\n\
             [host.\"http://a.example\"]\n  skip_verify = true\n  client = [[\"c.cert\", \"c.key\"]]\n",
        )
        .unwrap();
        assert_eq!(
            t.get("server").and_then(Value::as_str),
            Some("https://registry-1.docker.io")
        );
        let hosts = t.get("host").and_then(Value::as_table).unwrap();
        let names: Vec<&str> = hosts.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(names, ["https://b.example:5000", "http://a.example"]);
        let b = hosts.entries[0].value.as_table().unwrap();
        assert_eq!(b.get("capabilities").unwrap().as_array().unwrap().len(), 2);
        assert_eq!(b.entry("ca").unwrap().line, 7);
        let leaves: Vec<String> = t.leaves().into_iter().map(|l| dotted(&l.0)).collect();
        assert!(
            leaves.contains(&"host.\"https://b.example:5000\".header.x-a".to_string()),
            "{leaves:?}"
        );
    }

    #[test]
    fn values() {
        let t = parse(
            "a = 1_000\nb = 0x10\nc = 1.5\nd = { x = 1, y.z = \"w\" }\ne = \"\\u00e9\\t\"\n\
             f = \"\"\"\nl1\\\n   l2\"\"\"\ng = '''C:\\x'''\n[[arr]]\nk = 1\n[[arr]]\nk = 2\n",
        )
        .unwrap();
        assert_eq!(t.get("a"), Some(&Value::Int(1000)));
        assert_eq!(t.get("b"), Some(&Value::Int(16)));
        assert_eq!(t.get("c"), Some(&Value::Float(1.5)));
        let d = t.get("d").unwrap().as_table().unwrap();
        assert_eq!(
            d.get("y").unwrap().as_table().unwrap().get("z"),
            Some(&Value::Str("w".into()))
        );
        assert_eq!(t.get("e"), Some(&Value::Str("é\t".into())));
        assert_eq!(t.get("f"), Some(&Value::Str("l1l2".into())));
        assert_eq!(t.get("g"), Some(&Value::Str("C:\\x".into())));
        assert_eq!(t.get("arr").unwrap().as_array().unwrap().len(), 2);
    }

    #[test]
    fn errors_name_the_line() {
        for (text, want) in [
            ("a = 1\nb = \n", "line 2: expected a value"),
            ("a = 1\na = 2\n", "line 2: key a defined twice"),
            ("[x]\ny = \"open\n", "line 2: unterminated string"),
            ("a = [1 2]\n", "line 1: in an array"),
            ("a = 1 b = 2\n", "line 1: expected the end of the line"),
            (
                "a = 1\n[a.b]\n",
                "line 2: table a.b: a is already an integer",
            ),
            ("d = 1979-05-27\n", "not a number"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message().contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn quoting_round_trips() {
        let t = parse(&format!("k = {}\n", quote("a\"b\\c\n"))).unwrap();
        assert_eq!(t.get("k"), Some(&Value::Str("a\"b\\c\n".into())));
        assert_eq!(
            join_key("plugins", "io.containerd.grpc.v1.cri"),
            "plugins.\"io.containerd.grpc.v1.cri\""
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for open in ["[", "{a="] {
            let text = format!("a = {}", open.repeat(200_000));
            let e = parse(&text).unwrap_err();
            assert!(e.message().contains("nested deeper than"), "{e}");
        }
        let ok = format!("a = {}1{}\n", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        parse(&ok).unwrap();
        // The deepest document fits in half the shim's handler stack
        // (128 KiB), in a debug build too.
        let worst = format!("a = {}\n", "{a=".repeat(MAX_DEPTH + 1));
        std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                parse(&ok).unwrap();
                assert!(parse(&worst).is_err());
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn numbers_as_toml_defines_them() {
        for (text, want) in [
            ("0x10", Value::Int(16)),
            ("0o17", Value::Int(15)),
            ("0b1_01", Value::Int(5)),
            ("-0", Value::Int(0)),
            ("+7", Value::Int(7)),
            ("0", Value::Int(0)),
            ("9223372036854775807", Value::Int(i64::MAX)),
            ("-9223372036854775808", Value::Int(i64::MIN)),
            ("0x7fffffffffffffff", Value::Int(i64::MAX)),
            ("0.5", Value::Float(0.5)),
            ("1e3", Value::Float(1000.0)),
            ("1E-02", Value::Float(0.01)),
            ("-inf", Value::Float(f64::NEG_INFINITY)),
        ] {
            let t = parse(&format!("a = {text}\n")).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(t.get("a"), Some(&want), "{text}");
        }
        for text in [
            "-0x-8000000000000000",
            "-0x10",
            "0x+5",
            "0o-7",
            "+0b1",
            "0x_1",
            "0x8000000000000000",
            "9223372036854775808",
            "-9223372036854775809",
            "01",
            "-01",
            "00.5",
            "1.",
            ".5",
            "1._5",
            "1_.5",
            "1e",
            "1.e3",
            "0xg",
        ] {
            let e = parse(&format!("a = {text}\n")).unwrap_err();
            assert!(e.message().contains("line 1"), "{text}: {e}");
            assert!(!e.message().contains(text), "{text}: echoed: {e}");
        }
    }

    #[test]
    fn strings_as_toml_defines_them() {
        for bad in [
            "a = \"\\u+041\"\n",
            "a = \"\\U+0000041\"\n",
            "a = \"x\u{1}y\"\n",
            "a = \"\"\"x\u{7f}\"\"\"\n",
            "a = 'x\u{1}'\n",
            "a = \"\"\"x\ry\"\"\"\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let t =
            parse("a = \"\"\"a\"\"\"\"\nb = '''b''''' \nc = \"\\u0041\"\nd = \"\"\"x\ty\"\"\"\n")
                .unwrap();
        assert_eq!(t.get("a"), Some(&Value::Str("a\"".into())));
        assert_eq!(t.get("b"), Some(&Value::Str("b''".into())));
        assert_eq!(t.get("c"), Some(&Value::Str("A".into())));
        assert_eq!(t.get("d"), Some(&Value::Str("x\ty".into())));
    }

    #[test]
    fn tables_are_defined_once_and_inline_ones_are_closed() {
        for bad in [
            "[a]\n[a]\n",
            "[a]\nx = 1\n[b]\n[a]\n",
            "a = {x = 1}\n[a]\n",
            "a = {x = 1}\n[a.y]\n",
            "a = {x = 1}\na.y = 2\n",
            "a = [1]\n[[a]]\n",
            "a = [{x = 1}]\n[[a]]\n",
            "a = []\n[[a]]\n",
            "a = [{x = 1}]\n[a.y]\n",
            "a.b = 1\n[a]\n",
            "[a]\nb.c = 1\n[a.b]\n",
            "[a.b]\n[a]\nb.c = 1\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        for good in [
            "[a.b]\n[a]\nx = 1\n",
            "[[a]]\n[a.b]\n[[a]]\n[a.b]\n",
            "a.b = 1\na.c = 2\n",
            "[a]\nb.c = 1\nb.d = 2\n",
        ] {
            parse(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
    }

    #[test]
    fn errors_do_not_echo_the_text() {
        for text in [
            "root:$6$secretsecret:19000:0:99999:7:::\n",
            "password = hunter2hunter2\n",
            "a = 1 secretsecret\n",
            "a = [1 secretsecret]\n",
            "[a secretsecret]\n",
        ] {
            let e = parse(text).unwrap_err();
            let m = e.message();
            assert!(!m.contains("secret") && !m.contains("hunter"), "{e}");
            assert!(m.contains("column"), "{e}");
        }
    }

    #[test]
    fn many_keys_parse_in_linear_time() {
        let text: String = (0..20_000).map(|n| format!("k{n} = {n}\n")).collect();
        let start = std::time::Instant::now();
        let t = parse(&text).unwrap();
        assert_eq!(t.entries.len(), 20_000);
        let took = start.elapsed();
        assert!(took < std::time::Duration::from_secs(3), "{took:?}");
    }
}
