//! The regular expressions of `~=` filters: the part of Go's RE2 syntax
//! filters use — literals, `.`, classes (`[a-z]`, `[^...]`, `\d \w \s`
//! and their negations, `[[:alpha:]]`-style names), anchors `^ $ \A \z`,
//! groups `( )` `(?: )`, alternation `|`, repetition `* + ? {n} {n,}
//! {n,m}` (a trailing `?` makes it lazy; for a yes/no match it changes
//! nothing). The expression compiles to a small program run as a Pike
//! VM (a breadth-first NFA simulation without recursion): memory is
//! bounded by the program size, time by program × text and a step
//! budget, so a hostile pattern or text costs bounded time and stack (it
//! then does not match); written
//! instead of taking a regex crate, as filters are short and this is
//! a few hundred lines. Not supported (refused): backreferences, which
//! RE2 has not either, flags `(?i)` and Unicode classes `\p{..}`.

use std::fmt;

/// The most steps one match may take before it gives up (no match).
const STEP_BUDGET: usize = 20_000_000;
/// Longest pattern accepted, in bytes.
const MAX_PATTERN: usize = 4096;
/// Largest compiled program accepted, in instructions.
const MAX_PROGRAM: usize = 20_000;
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
    program: Vec<Inst>,
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
        if source.len() > MAX_PATTERN {
            return Err(format!(
                "expression too long: {} bytes (at most {MAX_PATTERN})",
                source.len()
            ));
        }
        let mut p = Parser {
            chars: source.chars().collect(),
            at: 0,
            depth: 0,
        };
        let root = p.alternation()?;
        if p.at < p.chars.len() {
            return Err(format!("unexpected ) at offset {}", p.at));
        }
        if cost(&root) > MAX_PROGRAM {
            return Err("expression too large".into());
        }
        let mut program = Vec::new();
        compile(&root, &mut program);
        program.push(Inst::Match);
        Ok(Regex {
            source: source.to_string(),
            program,
        })
    }

    /// Whether the expression matches anywhere in `text` (Go's MatchString).
    pub fn is_match(&self, text: &str) -> bool {
        pike_vm(&self.program, text)
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
            Some('*') => self.operator((0, None)),
            Some('+') => self.operator((1, None)),
            Some('?') => self.operator((0, Some(1))),
            Some('{') => match self.counts() {
                // `counts` consumed the braces.
                Some(c) => c,
                // Not a repetition: a literal brace, as in Go.
                None => return Ok(atom),
            },
            _ => return Ok(atom),
        };
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

    /// Consume a one-character repetition operator.
    fn operator(&mut self, counts: (usize, Option<usize>)) -> (usize, Option<usize>) {
        self.at += 1;
        counts
    }

    /// `{n}`, `{n,}`, `{n,m}`: consumed when well formed. Scans only the
    /// digits and comma after `{`, so a pattern of many `{` stays linear.
    fn counts(&mut self) -> Option<(usize, Option<usize>)> {
        let len = self.chars[self.at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || **c == ',')
            .count();
        if self.chars.get(self.at + 1 + len) != Some(&'}') {
            return None;
        }
        let inner: String = self.chars[self.at + 1..self.at + 1 + len].iter().collect();
        let inner = inner.as_str();
        let parse = |s: &str| s.parse::<usize>().ok().filter(|n| *n <= 1000);
        let counts = match inner.split_once(',') {
            None => {
                let n = parse(inner)?;
                (n, Some(n))
            }
            Some((a, "")) => (parse(a)?, None),
            Some((a, b)) => (parse(a)?, Some(parse(b)?)),
        };
        self.at += len + 2;
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
                // `[:name:]`; without a closing `:]` the `[` is a literal,
                // as in Go.
                let name_at = self.at + 1;
                let close = self.chars[name_at..]
                    .windows(2)
                    .position(|w| w == [':', ']']);
                if let Some(len) = close {
                    let name: String = self.chars[name_at..name_at + len].iter().collect();
                    let named = named_class(&name)
                        .ok_or_else(|| format!("invalid character class range: [:{name}:]"))?;
                    ranges.extend_from_slice(named);
                    self.at = name_at + len + 2;
                    continue;
                }
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

/// One instruction of the compiled program.
#[derive(Debug, Clone)]
enum Inst {
    Char(char),
    Any,
    Class(std::sync::Arc<[(char, char)]>, bool),
    Start,
    End,
    /// Continue at both targets.
    Split(usize, usize),
    Jump(usize),
    Match,
}

/// An upper bound of the instructions `node` compiles to; 0 exactly when
/// it compiles to nothing (then a repetition of it is skipped, so nested
/// empty repeats cost no compile time).
fn cost(node: &Node) -> usize {
    match node {
        Node::Seq(items) => items.iter().fold(0, |n, i| n.saturating_add(cost(i))),
        Node::Alt(alts) => alts
            .iter()
            .fold(0, |n, a| n.saturating_add(cost(a)).saturating_add(2)),
        Node::Repeat(inner, min, max) => match cost(inner) {
            0 => 0,
            n => n
                .saturating_add(2)
                .saturating_mul(max.unwrap_or(*min).max(*min).max(1)),
        },
        _ => 1,
    }
}

fn compile(node: &Node, prog: &mut Vec<Inst>) {
    match node {
        Node::Char(c) => prog.push(Inst::Char(*c)),
        Node::Any => prog.push(Inst::Any),
        Node::Class(ranges, negated) => prog.push(Inst::Class(ranges.as_slice().into(), *negated)),
        Node::Start => prog.push(Inst::Start),
        Node::End => prog.push(Inst::End),
        Node::Seq(items) => items.iter().for_each(|i| compile(i, prog)),
        Node::Alt(alts) => {
            let mut jumps = Vec::new();
            for (n, alt) in alts.iter().enumerate() {
                let split = (n + 1 < alts.len()).then(|| {
                    prog.push(Inst::Split(prog.len() + 1, 0));
                    prog.len() - 1
                });
                compile(alt, prog);
                if let Some(split) = split {
                    jumps.push(prog.len());
                    prog.push(Inst::Jump(0));
                    prog[split] = Inst::Split(split + 1, prog.len());
                }
            }
            let end = prog.len();
            for j in jumps {
                prog[j] = Inst::Jump(end);
            }
        }
        Node::Repeat(inner, _, _) if cost(inner) == 0 => {}
        Node::Repeat(inner, min, max) => {
            for _ in 0..*min {
                compile(inner, prog);
            }
            match max {
                None => {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    compile(inner, prog);
                    prog.push(Inst::Jump(split));
                    prog[split] = Inst::Split(split + 1, prog.len());
                }
                Some(max) => {
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(prog.len());
                        prog.push(Inst::Split(prog.len() + 1, 0));
                        compile(inner, prog);
                    }
                    let end = prog.len();
                    for s in splits {
                        prog[s] = Inst::Split(s + 1, end);
                    }
                }
            }
        }
    }
}

/// The threads alive at one text position: each program counter at most
/// once (a sparse set), so memory is bounded by the program size.
struct Threads {
    dense: Vec<usize>,
    /// Generation at which each pc was last added.
    seen: Vec<usize>,
}

impl Threads {
    fn new(len: usize) -> Threads {
        Threads {
            dense: Vec::with_capacity(len),
            seen: vec![usize::MAX; len],
        }
    }
}

/// Follow the empty moves from `pc` at text position `at` (with an explicit
/// stack, no recursion), adding the character-consuming and Match
/// instructions reached to `list`. Returns false when the budget ran out.
fn add_thread(
    prog: &[Inst],
    list: &mut Threads,
    pc: usize,
    at: usize,
    len: usize,
    stack: &mut Vec<usize>,
    steps: &mut usize,
) -> bool {
    stack.push(pc);
    while let Some(pc) = stack.pop() {
        // The position doubles as the generation of the seen marks.
        if list.seen[pc] == at {
            continue;
        }
        list.seen[pc] = at;
        *steps += 1;
        if *steps > STEP_BUDGET {
            return false;
        }
        match prog[pc] {
            Inst::Jump(to) => stack.push(to),
            Inst::Split(a, b) => {
                // Pushed in reverse so `a` is followed first.
                stack.push(b);
                stack.push(a);
            }
            Inst::Start => {
                if at == 0 {
                    stack.push(pc + 1);
                }
            }
            Inst::End => {
                if at == len {
                    stack.push(pc + 1);
                }
            }
            _ => list.dense.push(pc),
        }
    }
    true
}

fn pike_vm(prog: &[Inst], text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let len = chars.len();
    let mut current = Threads::new(prog.len());
    let mut next = Threads::new(prog.len());
    let mut stack = Vec::new();
    let mut steps = 0;
    for at in 0..=len {
        // Unanchored search: a new thread starts at every position.
        if !add_thread(prog, &mut current, 0, at, len, &mut stack, &mut steps) {
            return false;
        }
        next.dense.clear();
        for n in 0..current.dense.len() {
            let pc = current.dense[n];
            let step = match &prog[pc] {
                Inst::Match => return true,
                Inst::Char(c) => chars.get(at) == Some(c),
                Inst::Any => chars.get(at).is_some_and(|c| *c != '\n'),
                Inst::Class(ranges, negated) => chars
                    .get(at)
                    .is_some_and(|c| ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated),
                _ => false,
            };
            if step && !add_thread(prog, &mut next, pc + 1, at + 1, len, &mut stack, &mut steps) {
                return false;
            }
        }
        std::mem::swap(&mut current, &mut next);
    }
    current
        .dense
        .iter()
        .any(|pc| matches!(prog[*pc], Inst::Match))
}
