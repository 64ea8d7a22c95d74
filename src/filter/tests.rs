use super::*;

fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn check(filters: &[&str], name: &str, l: &BTreeMap<String, String>) -> bool {
    let f: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
    let rec = Record {
        fields: &[("name", name)],
        labels: l,
    };
    parse_all(&f).unwrap().matches(&rec)
}

#[test]
fn selectors_and_lists_combine_as_containerd() {
    let l = labels(&[("a", "1"), ("com.example/x", "y z")]);
    assert!(check(&[], "img", &l));
    assert!(check(&["name==img"], "img", &l));
    assert!(!check(&["name==other"], "img", &l));
    assert!(check(&["name!=other"], "img", &l));
    assert!(check(&["name==img,labels.a==1"], "img", &l));
    assert!(!check(&["name==img,labels.a==2"], "img", &l));
    assert!(check(&["name==x", "labels.a"], "img", &l));
    assert!(check(&[r#"labels."com.example/x"=="y z""#], "img", &l));
    assert!(!check(&["labels.b"], "img", &l));
    assert!(check(&["labels.b!=1"], "img", &l));
    assert!(check(&[" name == img "], "img", &l));
}

#[test]
fn regular_expressions_search_like_go() {
    let l = labels(&[]);
    let cases = [
        ("name~=bus", "docker.io/library/busybox:1", true),
        ("name~=^bus", "docker.io/library/busybox:1", false),
        ("name~=/^docker.io/", "docker.io/library/busybox:1", true),
        ("name~=|box:[0-9]+$|", "docker.io/library/busybox:12", true),
        (
            "name~=|box:[0-9]+$|",
            "docker.io/library/busybox:latest",
            false,
        ),
        (r#"name~="a(b|c)*d""#, "xabcbcdx", true),
        ("name~=colou?r", "color", true),
        ("name~=^[^.]+$", "a.b", false),
        (r"name~=/^\\w+\\d{2,3}$/", "abc123", true),
        (r"name~=/^\\w+\\d{2,3}$/", "abc1", false),
        ("name~=^(?:ab){2}$", "abab", true),
        ("name~=^[[:alpha:]]+$", "Abc", true),
        ("name~=/.*/", "", true),
        ("name~=(a", "(a", false),
        ("name~=a**", "aa", false),
        ("name~=^$", "", true),
        ("name~=x{", "x{", true),
    ];
    for (f, name, want) in cases {
        assert_eq!(check(&[f], name, &l), want, "{f} on {name}");
    }
    // A pathological pattern ends (no match) instead of hanging.
    let long = "a".repeat(40);
    assert!(!check(&["name~=^(a*)*b$"], &long, &l));
}

#[test]
fn errors_read_as_containerd() {
    let e = |f: &str| parse(f).unwrap_err().to_string();
    assert_eq!(
        e("name=="),
        "filters: parse error: [name==]: expected value or quoted"
    );
    assert_eq!(
        e("name==/x/"),
        "filters: parse error: [name== >|/|< x/]: invalid quote encountered"
    );
    assert_eq!(
        e("name=x"),
        "filters: parse error: [name >|=|< x]: unsupported operator \"=\""
    );
    assert_eq!(
        e("name~=.*"),
        "filters: parse error: [name~= >|.|< *]: expected value or quoted"
    );
    assert!(Regex::new("(a").unwrap_err().contains("missing closing )"));
    assert!(Regex::new("a**").unwrap_err().contains("nested repetition"));
    assert!(parse("").unwrap().is_none());
}

#[test]
fn deep_repetition_and_long_text_do_not_overflow_the_stack() {
    let deep = Regex::new("((?:){1000}Z){1000}Z").unwrap();
    assert!(!deep.is_match("a"));
    let long = "x".repeat(100_000);
    assert!(Regex::new(".*").unwrap().is_match(&long));
    assert!(Regex::new("^x*$").unwrap().is_match(&long));
    assert!(Regex::new("^(x|y)+$").unwrap().is_match(&long));
    assert!(!Regex::new("^x*y$").unwrap().is_match(&long));
}

#[test]
fn oversized_patterns_are_refused() {
    let e = Regex::new(&"a".repeat(5000)).unwrap_err();
    assert!(e.contains("too long"), "{e}");
    let e = Regex::new("((a{1000}){1000}){1000}").unwrap_err();
    assert!(e.contains("too large"), "{e}");
    // Nested empty repeats compile to nothing, quickly.
    let empty = Regex::new("((((?:){1000}){1000}){1000}){1000}").unwrap();
    assert!(empty.is_match(""));
}

#[test]
fn named_class_without_close_is_literal_as_in_go() {
    // Go reads `[[:]` as the class of `[` and `:`.
    let r = Regex::new("[[:]").unwrap();
    assert!(r.is_match(":") && r.is_match("[") && !r.is_match("a"));
    assert!(Regex::new("[[:foo:]]")
        .unwrap_err()
        .contains("invalid character class"));
}

#[test]
fn counted_repetition_consumes_exactly_its_braces() {
    let m = |re: &str, s: &str| Regex::new(re).unwrap().is_match(s);
    assert!(!m("a{2}b", "aa"));
    assert!(m("a{2}b", "aab"));
    assert!(!m("^(ab){2}$", "ababX"));
    assert!(m("^(ab){2}$", "abab"));
    assert!(m("(a{2})", "aa"));
    assert!(m("^a{2,3}?$", "aaa"));
    assert!(m("v[0-9]{1}$", "v1"));
    assert!(!m("v[0-9]{1}$", "v12x"));
}

#[test]
fn many_unclosed_braces_parse_fast() {
    let start = std::time::Instant::now();
    let pat = "a{".repeat(2000);
    let r = Regex::new(&pat).unwrap();
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
    assert!(!r.is_match("a{a{a{"));
    assert!(Regex::new("^(a{){3}$").unwrap().is_match("a{a{a{"));
}

/// Random and mutated patterns: the parser and matcher must return, never
/// panic (a panic aborts the daemon).
#[test]
fn parser_survives_random_patterns() {
    const ALPHABET: &[char] = &[
        'a', 'b', '0', '9', '.', '*', '+', '?', '{', '}', ',', '1', '2', '(', ')', '[', ']', '^',
        '$', '|', '\\', ':', '-', 'd', 'w', 'A', 'z', '=', 'é',
    ];
    let seeds = [
        "[[:alpha:]]",
        "(?:ab){2,3}?",
        "[^a-z\\d]",
        "a{2}|b+$",
        "^(a|b)*c$",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..20_000 {
        let mut pat: Vec<char> = if round % 2 == 0 {
            seeds[(next() % seeds.len() as u64) as usize]
                .chars()
                .collect()
        } else {
            Vec::new()
        };
        for _ in 0..(next() % 8) {
            let c = ALPHABET[(next() % ALPHABET.len() as u64) as usize];
            let at = (next() % (pat.len() as u64 + 1)) as usize;
            if next() % 3 == 0 && at < pat.len() {
                pat.remove(at);
            } else {
                pat.insert(at, c);
            }
        }
        let pat: String = pat.into_iter().collect();
        if let Ok(r) = Regex::new(&pat) {
            let _ = r.is_match("ab01:[a]{}é");
        }
    }
}

#[test]
fn a_bad_filter_fails_the_list_even_beside_an_empty_one() {
    // containerd's ParseAll parses every filter; an empty one matching
    // everything does not excuse a bad one after it.
    let all = |f: &[&str]| parse_all(&f.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let e = all(&["", "name=x"]).unwrap_err();
    assert_eq!(e.kind(), Kind::InvalidArgument);
    assert!(e.message().starts_with("filters: parse error: "), "{e}");
    let e = all(&["name=x", ""]).unwrap_err();
    assert_eq!(e.kind(), Kind::InvalidArgument);
    let l = labels(&[]);
    let rec = Record {
        fields: &[("name", "img")],
        labels: &l,
    };
    assert!(all(&["name==other", ""]).unwrap().matches(&rec));
}

#[test]
fn label_reads_a_dotted_key_from_a_map_or_pairs() {
    let key = |s: &str| -> Vec<String> { s.split('.').map(str::to_string).collect() };
    let l = labels(&[("io.example.a", "1"), ("b", "2")]);
    assert_eq!(label(&l, &key("io.example.a")).as_deref(), Some("1"));
    assert_eq!(label(&l, &key("io.example")), None);
    assert_eq!(label(&l, &[]), None);
    let pairs = [(
        "org.opencontainers.image.ref.name".to_string(),
        "v1".to_string(),
    )];
    let annotations = pairs.iter().map(|(k, v)| (k, v));
    assert_eq!(
        label(annotations, &key("org.opencontainers.image.ref.name")).as_deref(),
        Some("v1")
    );
    let empty_key = [(String::new(), "x".to_string())];
    assert_eq!(label(empty_key.iter().map(|(k, v)| (k, v)), &[]), None);
}
