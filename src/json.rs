//! JSON in and out.
//!
//! In: miniserde parses text into a [`Value`]; [`Node`] then walks it with
//! the path kept, so a bad config says `process.user.uid: expected an
//! unsigned integer, found a string` instead of miniserde's bare "failed".
//! Out: [`Writer`] emits exactly the shapes runc and containerd print (field
//! order, omitted fields, indentation), which miniserde cannot.

use crate::error::{Error, Result};
use miniserde::json::{Number, Value};
use std::fmt::Write as _;

pub use miniserde::json::{Array, Object};

/// Parse JSON text; `what` names the source (a file path) for the error.
pub fn parse(text: &str, what: &str) -> Result<Value> {
    miniserde::json::from_str::<Value>(text)
        .map_err(|_| Error::new(format!("{what}: invalid JSON{}", locate_syntax_error(text))))
}

/// miniserde reports no position: find the first offending byte ourselves so
/// the user learns the line and column.
fn locate_syntax_error(text: &str) -> String {
    match syntax_error_offset(text.as_bytes()) {
        Some(off) => {
            let before = &text[..off.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" at line {line}, column {col}")
        }
        None => String::new(),
    }
}

/// A small recursive checker that mirrors the JSON grammar and returns the
/// offset where it stops being JSON (None if it is valid).
fn syntax_error_offset(b: &[u8]) -> Option<usize> {
    fn ws(b: &[u8], mut i: usize) -> usize {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    }
    fn value(b: &[u8], i: usize, depth: u32) -> Result<usize, usize> {
        let i = ws(b, i);
        if depth > 128 {
            return Err(i);
        }
        match b.get(i) {
            Some(b'{') => {
                let mut i = ws(b, i + 1);
                if b.get(i) == Some(&b'}') {
                    return Ok(i + 1);
                }
                loop {
                    i = ws(b, i);
                    if b.get(i) != Some(&b'"') {
                        return Err(i);
                    }
                    i = ws(b, string(b, i)?);
                    if b.get(i) != Some(&b':') {
                        return Err(i);
                    }
                    i = ws(b, value(b, i + 1, depth + 1)?);
                    match b.get(i) {
                        Some(b',') => i += 1,
                        Some(b'}') => return Ok(i + 1),
                        _ => return Err(i),
                    }
                }
            }
            Some(b'[') => {
                let mut i = ws(b, i + 1);
                if b.get(i) == Some(&b']') {
                    return Ok(i + 1);
                }
                loop {
                    i = ws(b, value(b, i, depth + 1)?);
                    match b.get(i) {
                        Some(b',') => i += 1,
                        Some(b']') => return Ok(i + 1),
                        _ => return Err(i),
                    }
                }
            }
            Some(b'"') => string(b, i),
            Some(b't') => literal(b, i, b"true"),
            Some(b'f') => literal(b, i, b"false"),
            Some(b'n') => literal(b, i, b"null"),
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let mut j = i + 1;
                while j < b.len() && matches!(b[j], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    j += 1;
                }
                Ok(j)
            }
            _ => Err(i),
        }
    }
    fn string(b: &[u8], i: usize) -> Result<usize, usize> {
        let mut j = i + 1;
        while j < b.len() {
            match b[j] {
                b'"' => return Ok(j + 1),
                b'\\' => j += 2,
                c if c < 0x20 => return Err(j),
                _ => j += 1,
            }
        }
        Err(b.len())
    }
    fn literal(b: &[u8], i: usize, lit: &[u8]) -> Result<usize, usize> {
        if b[i..].starts_with(lit) {
            Ok(i + lit.len())
        } else {
            Err(i)
        }
    }
    match value(b, 0, 0) {
        Ok(end) => {
            let end = ws(b, end);
            (end < b.len()).then_some(end)
        }
        Err(at) => Some(at),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(Number::F64(_)) => "a fractional number",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value together with its path from the document root, so every error
/// can name the field it is about.
pub struct Node<'a> {
    pub value: &'a Value,
    pub path: String,
}

impl<'a> Node<'a> {
    pub fn new(value: &'a Value, path: impl Into<String>) -> Self {
        Node {
            value,
            path: path.into(),
        }
    }

    fn wrong(&self, expected: &str) -> Error {
        self.invalid(format!("expected {expected}, found {}", kind(self.value)))
    }

    pub fn object(&self) -> Result<&'a Object> {
        match self.value {
            Value::Object(o) => Ok(o),
            _ => Err(self.wrong("an object")),
        }
    }

    pub fn array(&self) -> Result<&'a Array> {
        match self.value {
            Value::Array(a) => Ok(a),
            _ => Err(self.wrong("an array")),
        }
    }

    /// A member of this object; None when absent or null (OCI treats both as
    /// "not set").
    pub fn get(&self, key: &str) -> Result<Option<Node<'a>>> {
        let obj = self.object()?;
        Ok(match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(Node::new(v, join(&self.path, key))),
        })
    }

    /// A member that must be there.
    pub fn need(&self, key: &str) -> Result<Node<'a>> {
        self.get(key)?.ok_or_else(|| {
            Error::new(format!(
                "{}: required field is missing",
                display_path(&join(&self.path, key))
            ))
        })
    }

    /// The elements of this array, each with its index in the path.
    pub fn items(&self) -> Result<Vec<Node<'a>>> {
        let arr = self.array()?;
        Ok(arr
            .iter()
            .enumerate()
            .map(|(i, v)| Node::new(v, format!("{}[{i}]", self.path)))
            .collect())
    }

    /// The members of this object, each with its key in the path.
    pub fn entries(&self) -> Result<Vec<(&'a str, Node<'a>)>> {
        let obj = self.object()?;
        Ok(obj
            .iter()
            .map(|(k, v)| (k.as_str(), Node::new(v, join(&self.path, k))))
            .collect())
    }

    pub fn str(&self) -> Result<&'a str> {
        match self.value {
            Value::String(s) => Ok(s),
            _ => Err(self.wrong("a string")),
        }
    }

    pub fn string(&self) -> Result<String> {
        self.str().map(str::to_string)
    }

    pub fn bool(&self) -> Result<bool> {
        match self.value {
            Value::Bool(b) => Ok(*b),
            _ => Err(self.wrong("a boolean")),
        }
    }

    pub fn u64(&self) -> Result<u64> {
        match self.value {
            Value::Number(Number::U64(n)) => Ok(*n),
            Value::Number(Number::I64(n)) if *n >= 0 => Ok(*n as u64),
            _ => Err(self.wrong("an unsigned integer")),
        }
    }

    pub fn i64(&self) -> Result<i64> {
        match self.value {
            Value::Number(Number::U64(n)) if *n <= i64::MAX as u64 => Ok(*n as i64),
            Value::Number(Number::I64(n)) => Ok(*n),
            _ => Err(self.wrong("an integer")),
        }
    }

    pub fn u32(&self) -> Result<u32> {
        let n = self.u64()?;
        u32::try_from(n).map_err(|_| self.invalid(format!("{n} is out of range")))
    }

    pub fn i32(&self) -> Result<i32> {
        let n = self.i64()?;
        i32::try_from(n).map_err(|_| self.invalid(format!("{n} is out of range")))
    }

    /// An array of strings.
    pub fn strings(&self) -> Result<Vec<String>> {
        self.items()?.iter().map(Node::string).collect()
    }

    /// An object of string values, in document order.
    pub fn string_map(&self) -> Result<Vec<(String, String)>> {
        self.entries()?
            .into_iter()
            .map(|(k, v)| Ok((k.to_string(), v.string()?)))
            .collect()
    }

    /// An error about this node's value.
    pub fn invalid(&self, why: impl std::fmt::Display) -> Error {
        Error::new(format!("{}: {why}", display_path(&self.path)))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "(document)"
    } else {
        path
    }
}

/// Append `s` as a JSON string literal (quotes included), escaping as Go's
/// encoding/json does for the characters that matter.
pub fn quote_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    quote_into(&mut out, s);
    out
}

/// Writes a JSON object or array with optional indentation (Go's
/// `json.MarshalIndent(v, "", "  ")` when `indent` is true).
pub struct Writer {
    out: String,
    indent: Option<usize>,
    /// One entry per open container: true until its first member is written.
    first: Vec<bool>,
    /// A key was just written, so the next value needs no separator.
    after_key: bool,
    unit: &'static str,
}

impl Writer {
    pub fn compact() -> Self {
        Writer {
            out: String::new(),
            indent: None,
            first: Vec::new(),
            after_key: false,
            unit: "",
        }
    }

    /// Go's `MarshalIndent(v, "", "  ")`.
    pub fn pretty() -> Self {
        Self::indented("  ")
    }

    /// Indented by `unit` per level (runc's `spec` uses a tab).
    pub fn indented(unit: &'static str) -> Self {
        Writer {
            out: String::new(),
            indent: Some(0),
            first: Vec::new(),
            after_key: false,
            unit,
        }
    }

    fn newline(&mut self) {
        if let Some(depth) = self.indent {
            self.out.push('\n');
            for _ in 0..depth {
                self.out.push_str(self.unit);
            }
        }
    }

    fn separator(&mut self) {
        if let Some(first) = self.first.last_mut() {
            if !*first {
                self.out.push(',');
            }
            *first = false;
            self.newline();
        }
    }

    fn open(&mut self, c: char) -> &mut Self {
        self.out.push(c);
        self.first.push(true);
        if let Some(d) = self.indent.as_mut() {
            *d += 1;
        }
        self
    }

    fn close(&mut self, c: char) -> &mut Self {
        let empty = self.first.pop().unwrap_or(true);
        if let Some(d) = self.indent.as_mut() {
            *d -= 1;
        }
        if !empty {
            self.newline();
        }
        self.out.push(c);
        self
    }

    pub fn begin_object(&mut self) -> &mut Self {
        self.open('{')
    }
    pub fn end_object(&mut self) -> &mut Self {
        self.close('}')
    }
    pub fn begin_array(&mut self) -> &mut Self {
        self.open('[')
    }
    pub fn end_array(&mut self) -> &mut Self {
        self.close(']')
    }

    /// Start a member of the current object; follow with a value call.
    pub fn key(&mut self, k: &str) -> &mut Self {
        self.separator();
        quote_into(&mut self.out, k);
        self.out.push(':');
        if self.indent.is_some() {
            self.out.push(' ');
        }
        self.after_key = true;
        self
    }

    fn value_prefix(&mut self) {
        if self.after_key {
            self.after_key = false;
        } else {
            self.separator();
        }
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.value_prefix();
        quote_into(&mut self.out, s);
        self
    }
    pub fn raw(&mut self, text: &str) -> &mut Self {
        self.value_prefix();
        self.out.push_str(text);
        self
    }
    pub fn num(&mut self, n: impl std::fmt::Display) -> &mut Self {
        self.raw(&n.to_string())
    }
    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.raw(if b { "true" } else { "false" })
    }
    pub fn null(&mut self) -> &mut Self {
        self.raw("null")
    }
    pub fn object(&mut self) -> &mut Self {
        self.value_prefix();
        self.begin_object()
    }
    pub fn array(&mut self) -> &mut Self {
        self.value_prefix();
        self.begin_array()
    }

    /// An array of strings as one value.
    pub fn strings<S: AsRef<str>>(&mut self, items: &[S]) -> &mut Self {
        self.array();
        for s in items {
            self.str(s.as_ref());
        }
        self.end_array()
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_have_a_position() {
        let e = parse("{\n  \"a\": 1,\n  \"b\": ,\n}", "config.json").unwrap_err();
        assert_eq!(e.message(), "config.json: invalid JSON at line 3, column 8");
    }

    #[test]
    fn type_errors_name_the_field() {
        let v = parse(r#"{"process":{"user":{"uid":"root"}}}"#, "c").unwrap();
        let root = Node::new(&v, "");
        let uid = root
            .need("process")
            .unwrap()
            .need("user")
            .unwrap()
            .need("uid")
            .unwrap();
        assert_eq!(
            uid.u32().unwrap_err().message(),
            "process.user.uid: expected an unsigned integer, found a string"
        );
        let missing = root.need("process").unwrap().need("args").err().unwrap();
        assert_eq!(missing.message(), "process.args: required field is missing");
    }

    #[test]
    fn writer_matches_go_indent() {
        let mut w = Writer::pretty();
        w.begin_object();
        w.key("id").str("a<b");
        w.key("pid").num(7);
        w.key("list").array().num(1).num(2).end_array();
        w.key("empty").object().end_object();
        w.end_object();
        assert_eq!(
            w.finish(),
            "{\n  \"id\": \"a\\u003cb\",\n  \"pid\": 7,\n  \"list\": [\n    1,\n    2\n  ],\n  \"empty\": {}\n}"
        );
        let mut w = Writer::compact();
        w.begin_array();
        w.object().key("a").bool(true).end_object();
        w.object().end_object();
        w.end_array();
        assert_eq!(w.finish(), r#"[{"a":true},{}]"#);
    }
}
