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
