//! The regular expressions of `~=` filters: the part of Go's RE2 syntax
//! filters use — literals, `.`, classes (`[a-z]`, `[^...]`, `\d \w \s`
//! and their negations, `[[:alpha:]]`-style names), anchors `^ $ \A \z`,
//! groups `( )` `(?: )`, alternation `|`, repetition `* + ? {n} {n,}
//! {n,m}` (a trailing `?` makes it lazy; for a yes/no match it changes
//! nothing). A small backtracking matcher with a step budget, so a
//! hostile pattern costs bounded time (it then does not match); written
//! instead of taking a regex crate, as filters are short and this is
//! a few hundred lines. Not supported (refused): backreferences, which
//! RE2 has not either, flags `(?i)` and Unicode classes `\p{..}`.

use std::fmt;

/// The most steps one match may take before it gives up (no match).
const STEP_BUDGET: usize = 1_000_000;
/// Deepest nesting of groups accepted.
const MAX_DEPTH: usize = 100;

#[derive(Debug, Clone)]
enum Node {
    Char(char),
    Any,
    /// Ranges, negated.
    Class(Vec<(char, char)>, bool),
    Start,
    End,
    Seq(Vec<Node>),
    Alt(Vec<Node>),
    Repeat(Box<Node>, usize, Option<usize>),
}

/// A compiled expression.
#[derive(Clone)]
pub struct Regex {
    source: String,
    root: Node,
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Regex({:?})", self.source)
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Regex) -> bool {
        self.source == other.source
    }
}

impl Regex {
    pub fn new(source: &str) -> Result<Regex, String> {
        let mut p = Parser {
            chars: source.chars().collect(),
            at: 0,
            depth: 0,
        };
        let root = p.alternation()?;
        if p.at < p.chars.len() {
            return Err(format!("unexpected ) at offset {}", p.at));
        }
        Ok(Regex {
            source: source.to_string(),
            root,
        })
    }

    /// Whether the expression matches anywhere in `text` (Go's MatchString).
    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let mut m = Matcher {
            text: &chars,
            steps: 0,
        };
        (0..=chars.len()).any(|start| m.run(&self.root, start, &mut |_: &mut Matcher, _| true))
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    depth: usize,
}

const DIGIT: &[(char, char)] = &[('0', '9')];
const WORD: &[(char, char)] = &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
const SPACE: &[(char, char)] = &[('\t', '\n'), ('\x0c', '\r'), (' ', ' ')];

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.at += 1;
        c
    }

    fn alternation(&mut self) -> Result<Node, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("expression nests too deep".into());
        }
        let mut alts = vec![self.sequence()?];
        while self.peek() == Some('|') {
            self.at += 1;
            alts.push(self.sequence()?);
        }
        self.depth -= 1;
        Ok(if alts.len() == 1 {
            alts.pop().unwrap_or(Node::Seq(Vec::new()))
        } else {
            Node::Alt(alts)
        })
    }

    fn sequence(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.repetition(atom)?);
        }
        Ok(Node::Seq(items))
    }

    fn repetition(&mut self, atom: Node) -> Result<Node, String> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => match self.counts() {
                Some(c) => c,
                // Not a repetition: a literal brace, as in Go.
                None => return Ok(atom),
            },
            _ => return Ok(atom),
        };
        if !matches!(self.peek(), Some('{')) {
            self.at += 1;
        }
        if matches!(atom, Node::Start | Node::End) && min > 1 {
            return Err("repetition of an anchor".into());
        }
        if let Some(m) = max {
            if m < min || m > 1000 {
                return Err(format!("invalid repeat count {{{min},{m}}}"));
            }
        }
        if self.peek() == Some('?') {
            self.at += 1;
        }
        if matches!(self.peek(), Some('*' | '+' | '?')) {
            return Err("invalid nested repetition operator".into());
        }
        Ok(Node::Repeat(Box::new(atom), min, max))
    }

    /// `{n}`, `{n,}`, `{n,m}`: consumed when well formed.
    fn counts(&mut self) -> Option<(usize, Option<usize>)> {
        let rest: String = self.chars[self.at..].iter().collect();
        let end = rest.find('}')?;
        let inner = &rest[1..end];
        let parse = |s: &str| s.parse::<usize>().ok().filter(|n| *n <= 1000);
        let counts = match inner.split_once(',') {
            None => {
                let n = parse(inner)?;
                (n, Some(n))
            }
            Some((a, "")) => (parse(a)?, None),
            Some((a, b)) => (parse(a)?, Some(parse(b)?)),
        };
        self.at += rest[..=end].chars().count();
        Some(counts)
    }

    fn atom(&mut self) -> Result<Node, String> {
        let c = self
            .next()
            .ok_or("missing argument to repetition operator")?;
        Ok(match c {
            '.' => Node::Any,
            '^' => Node::Start,
            '$' => Node::End,
            '*' | '+' | '?' => return Err(format!("missing argument to repetition operator: {c}")),
            '(' => {
                if self.chars[self.at..].starts_with(&['?', ':']) {
                    self.at += 2;
                } else if self.peek() == Some('?') {
                    return Err("unsupported group flags".into());
                }
                let inner = self.alternation()?;
                if self.next() != Some(')') {
                    return Err("missing closing )".into());
                }
                inner
            }
            '[' => self.class()?,
            '\\' => self.escape(false)?,
            c => Node::Char(c),
        })
    }

    fn escape(&mut self, in_class: bool) -> Result<Node, String> {
        let c = self
            .next()
            .ok_or("trailing backslash at end of expression")?;
        let class = |r: &[(char, char)], neg: bool| Node::Class(r.to_vec(), neg);
        Ok(match c {
            'd' => class(DIGIT, false),
            'D' => class(DIGIT, true),
            'w' => class(WORD, false),
            'W' => class(WORD, true),
            's' => class(SPACE, false),
            'S' => class(SPACE, true),
            'A' if !in_class => Node::Start,
            'z' if !in_class => Node::End,
            'n' => Node::Char('\n'),
            't' => Node::Char('\t'),
            'r' => Node::Char('\r'),
            'f' => Node::Char('\x0c'),
            'v' => Node::Char('\x0b'),
            c if c.is_ascii_punctuation() => Node::Char(c),
            c => return Err(format!("invalid escape sequence: \\{c}")),
        })
    }

    fn class(&mut self) -> Result<Node, String> {
        let negated = self.peek() == Some('^');
        if negated {
            self.at += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let c = self.next().ok_or("missing closing ]")?;
            if c == ']' && !first {
                break;
            }
            first = false;
            if c == '[' && self.peek() == Some(':') {
                let rest: String = self.chars[self.at..].iter().collect();
                let end = rest.find(":]").ok_or("invalid character class range")?;
                let name = &rest[1..end];
                ranges.extend_from_slice(named_class(name).ok_or("invalid character class")?);
                self.at += rest[..end + 2].chars().count();
                continue;
            }
            let lo = if c == '\\' {
                match self.escape(true)? {
                    Node::Char(ch) => ch,
                    Node::Class(r, false) => {
                        ranges.extend(r);
                        continue;
                    }
                    _ => return Err("negated class escape inside a class".into()),
                }
            } else {
                c
            };
            if self.peek() == Some('-') && self.chars.get(self.at + 1).is_some_and(|c| *c != ']') {
                self.at += 1;
                let mut hi = self.next().ok_or("missing closing ]")?;
                if hi == '\\' {
                    match self.escape(true)? {
                        Node::Char(ch) => hi = ch,
                        _ => return Err("invalid character class range".into()),
                    }
                }
                if hi < lo {
                    return Err(format!("invalid character class range: {lo}-{hi}"));
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        Ok(Node::Class(ranges, negated))
    }
}

fn named_class(name: &str) -> Option<&'static [(char, char)]> {
    Some(match name {
        "alpha" => &[('A', 'Z'), ('a', 'z')],
        "digit" => DIGIT,
        "alnum" => &[('0', '9'), ('A', 'Z'), ('a', 'z')],
        "upper" => &[('A', 'Z')],
        "lower" => &[('a', 'z')],
        "space" => &[('\t', '\r'), (' ', ' ')],
        "xdigit" => &[('0', '9'), ('A', 'F'), ('a', 'f')],
        "word" => WORD,
        "punct" => &[('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
        _ => return None,
    })
}

struct Matcher<'a> {
    text: &'a [char],
    steps: usize,
}

impl Matcher<'_> {
    /// Match `node` at `i`, then the continuation `k` from where it ended.
    fn run(&mut self, node: &Node, i: usize, k: &mut dyn FnMut(&mut Self, usize) -> bool) -> bool {
        self.steps += 1;
        if self.steps > STEP_BUDGET {
            return false;
        }
        match node {
            Node::Char(c) => self.text.get(i) == Some(c) && k(self, i + 1),
            Node::Any => self.text.get(i).is_some_and(|c| *c != '\n') && k(self, i + 1),
            Node::Class(ranges, negated) => match self.text.get(i) {
                Some(c) => {
                    let inside = ranges.iter().any(|(lo, hi)| lo <= c && c <= hi);
                    inside != *negated && k(self, i + 1)
                }
                None => false,
            },
            Node::Start => i == 0 && k(self, i),
            Node::End => i == self.text.len() && k(self, i),
            Node::Seq(items) => self.seq(items, i, k),
            Node::Alt(alts) => alts.iter().any(|a| self.run(a, i, k)),
            Node::Repeat(inner, min, max) => self.repeat(inner, *min, *max, 0, i, k),
        }
    }

    fn seq(
        &mut self,
        items: &[Node],
        i: usize,
        k: &mut dyn FnMut(&mut Self, usize) -> bool,
    ) -> bool {
        match items.split_first() {
            None => k(self, i),
            Some((first, rest)) => self.run(first, i, &mut |m: &mut Self, j| m.seq(rest, j, k)),
        }
    }

    /// Greedy: one more of `inner` first (never an empty one, so `()*`
    /// ends), then the continuation once `min` are there.
    fn repeat(
        &mut self,
        inner: &Node,
        min: usize,
        max: Option<usize>,
        count: usize,
        i: usize,
        k: &mut dyn FnMut(&mut Self, usize) -> bool,
    ) -> bool {
        if max.is_none_or(|m| count < m) {
            let more = self.run(inner, i, &mut |m: &mut Self, j| {
                (j != i || count < min) && m.repeat(inner, min, max, count + 1, j, k)
            });
            if more {
                return true;
            }
        }
        count >= min && k(self, i)
    }
}
