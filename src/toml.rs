//! A small TOML reader for the configuration files skiff shares with
//! containerd: the daemon's config.toml, `certs.d/<host>/hosts.toml` and
//! the shim's runtime options. It reads TOML 1.0 except dates and times:
//! tables and arrays of tables, dotted and quoted keys, basic and literal
//! strings (single- and multi-line), integers, floats, booleans, arrays
//! and inline tables. Entries keep their file order and line, because
//! hosts.toml's mirrors are tried in the order written and errors name
//! the line.

use crate::error::{Error, Kind, Result};

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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub entries: Vec<Entry>,
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

    fn entry_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.key == key)
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
                table_at(&mut root, &path, line, true)?;
            }
            current = path;
        } else {
            let key = p.key()?;
            p.skip_ws();
            p.expect(b'=')?;
            p.skip_ws();
            let value = p.value()?;
            p.end_of_line()?;
            let (last, parents) = key.split_last().expect("a key has a part");
            let mut path = current.clone();
            path.extend(parents.iter().cloned());
            let t = table_at(&mut root, &path, line, false)?;
            if t.get(last).is_some() {
                return Err(Error::of(
                    Kind::InvalidArgument,
                    format!("line {line}: key {} defined twice", join_key("", last)),
                ));
            }
            t.entries.push(Entry {
                key: last.clone(),
                value,
                line,
            });
        }
    }
}

/// The table at `path`, made where missing; through an array of tables,
/// its last element.
fn table_at<'a>(
    root: &'a mut Table,
    path: &[String],
    line: usize,
    header: bool,
) -> Result<&'a mut Table> {
    let mut t = root;
    for (n, part) in path.iter().enumerate() {
        let idx = match t.entries.iter().position(|e| e.key == *part) {
            Some(i) => i,
            None => {
                t.entries.push(Entry {
                    key: part.clone(),
                    value: Value::Table(Table::default()),
                    line,
                });
                t.entries.len() - 1
            }
        };
        let clash = match &t.entries[idx].value {
            Value::Table(_) => None,
            Value::Array(items) if matches!(items.last(), Some(Value::Table(_))) => None,
            other => Some(other.type_name()),
        };
        if let Some(kind) = clash {
            let what = if header && n + 1 == path.len() {
                "table"
            } else {
                "key"
            };
            return Err(Error::of(
                Kind::InvalidArgument,
                format!(
                    "line {line}: {what} {}: {} is already a {kind}",
                    dotted(path),
                    dotted(&path[..=n]),
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

fn push_array_table(root: &mut Table, path: &[String], line: usize) -> Result<()> {
    let (last, parents) = path.split_last().expect("a key has a part");
    let t = table_at(root, parents, line, false)?;
    match t.entry_mut(last) {
        None => t.entries.push(Entry {
            key: last.clone(),
            value: Value::Array(vec![Value::Table(Table::default())]),
            line,
        }),
        Some(Entry {
            value: Value::Array(items),
            ..
        }) if items.iter().all(|v| matches!(v, Value::Table(_))) => {
            items.push(Value::Table(Table::default()))
        }
        Some(_) => {
            return Err(Error::of(
                Kind::InvalidArgument,
                format!(
                    "line {line}: [[{}]]: already defined as something else",
                    dotted(path)
                ),
            ))
        }
    }
    Ok(())
}

/// A key path as TOML writes it: `plugins."io.containerd.grpc.v1.cri".registry`.
pub fn dotted(path: &[String]) -> String {
    path.iter().fold(String::new(), |acc, k| join_key(&acc, k))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    line: usize,
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

    /// What is at the cursor, for an error message.
    fn shown(&self) -> String {
        match self.peek() {
            None => "the end of the file".into(),
            Some(b'\n') => "the end of the line".into(),
            Some(_) => {
                let rest = &self.s[self.i..];
                let end = rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(rest.len())
                    .min(20);
                format!("{:?}", String::from_utf8_lossy(&rest[..end]))
            }
        }
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
            Some(b'[') => self.array(),
            Some(b'{') => self.inline_table(),
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
        let start = self.i;
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
        {
            self.i += 1;
        }
        let raw = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        let bad = || self.err(format!("{raw:?} is not a number (dates are not supported)"));
        if raw.contains("__") || raw.starts_with('_') || raw.ends_with('_') {
            return Err(bad());
        }
        let t = raw.replace('_', "");
        let (sign, digits) = match t.as_bytes().first() {
            Some(b'-') => (-1i64, &t[1..]),
            Some(b'+') => (1, &t[1..]),
            _ => (1, &t[..]),
        };
        let radix = [("0x", 16), ("0o", 8), ("0b", 2)]
            .iter()
            .find(|(p, _)| digits.starts_with(p));
        if let Some((p, radix)) = radix {
            return i64::from_str_radix(&digits[p.len()..], *radix)
                .map(|n| Value::Int(sign * n))
                .map_err(|_| bad());
        }
        if let Ok(n) = t.parse::<i64>() {
            return Ok(Value::Int(n));
        }
        match digits {
            "inf" => return Ok(Value::Float(sign as f64 * f64::INFINITY)),
            "nan" => return Ok(Value::Float(f64::NAN)),
            _ => {}
        }
        if digits.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
            if let Ok(f) = t.parse::<f64>() {
                return Ok(Value::Float(f));
            }
        }
        Err(bad())
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
            return Ok(Value::Table(t));
        }
        loop {
            let line = self.line;
            let key = self.key()?;
            self.skip_ws();
            self.expect(b'=')?;
            self.skip_ws();
            let value = self.value()?;
            let (last, parents) = key.split_last().expect("a key has a part");
            let inner = table_at(&mut t, parents, line, false)?;
            if inner.get(last).is_some() {
                return Err(self.err(format!("key {} defined twice", join_key("", last))));
            }
            inner.entries.push(Entry {
                key: last.clone(),
                value,
                line,
            });
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.i += 1;
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
        while !matches!(self.peek(), None | Some(b'\'' | b'\n')) {
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
            if self.at_end() {
                return Err(self.err("unterminated ''' string"));
            }
            if !self.newline() {
                self.i += 1;
            }
        }
        let s = self.utf8(start, self.i)?;
        self.i += 3;
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
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }

    fn multiline_basic(&mut self) -> Result<String> {
        self.i += 3;
        self.newline();
        let mut out = Vec::new();
        loop {
            if self.starts_with(b"\"\"\"") {
                self.i += 3;
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
            "a = 1_000\nb = -0x10\nc = 1.5\nd = { x = 1, y.z = \"w\" }\ne = \"\\u00e9\\t\"\n\
             f = \"\"\"\nl1\\\n   l2\"\"\"\ng = '''C:\\x'''\n[[arr]]\nk = 1\n[[arr]]\nk = 2\n",
        )
        .unwrap();
        assert_eq!(t.get("a"), Some(&Value::Int(1000)));
        assert_eq!(t.get("b"), Some(&Value::Int(-16)));
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
            ("a = 1\n[a.b]\n", "line 2: key a.b: a is already a integer"),
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
}
