//! How ctr words values in its tables and JSON: Go's time layouts,
//! labels as `k=v,...`, task states, platforms, and Go's indented JSON.

use crate::proto::types::Timestamp;
use std::collections::BTreeMap;

/// Go's `time.Time.String()` in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub fn go_time(t: Option<&Timestamp>) -> String {
    let t = t.cloned().unwrap_or_default();
    let rfc = crate::time::rfc3339_nano(t.seconds, t.nanos.max(0) as u32);
    format!(
        "{} +0000 UTC",
        rfc.trim_end_matches('Z').replacen('T', " ", 1)
    )
}

/// RFC 3339 to the second (`leases ls`).
pub fn rfc3339(t: Option<&Timestamp>) -> String {
    let t = t.cloned().unwrap_or_default();
    crate::time::rfc3339_nano(t.seconds, 0)
}

/// RFC 3339 with nanoseconds (`containers info`).
pub fn rfc3339_nano(t: Option<&Timestamp>) -> String {
    let t = t.cloned().unwrap_or_default();
    crate::time::rfc3339_nano(t.seconds, t.nanos.max(0) as u32)
}

/// `k=v,k2=v2`, or `-` for none.
pub fn labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "-".into();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `K=V` arguments as a map (a bare `K` maps to the empty string).
pub fn key_values(items: &[&str]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect()
}

/// The task status enum of containerd's task API, as `tasks ls` prints it.
pub fn status_word(s: i32) -> &'static str {
    match s {
        1 => "CREATED",
        2 => "RUNNING",
        3 => "STOPPED",
        4 => "PAUSED",
        5 => "PAUSING",
        _ => "UNKNOWN",
    }
}

/// `os/arch[/variant]`.
pub fn platform(p: &crate::image::oci::Platform) -> String {
    if p.variant.is_empty() {
        format!("{}/{}", p.os, p.architecture)
    } else {
        format!("{}/{}/{}", p.os, p.architecture, p.variant)
    }
}

/// A string map as Go's MarshalIndent writes it `depth` levels deep
/// (`null` when empty).
pub fn json_map(m: &BTreeMap<String, String>, depth: usize) -> String {
    if m.is_empty() {
        return "null".into();
    }
    let pad = "    ".repeat(depth + 1);
    let items: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{pad}{}: {}", crate::json::quote(k), crate::json::quote(v)))
        .collect();
    format!("{{\n{}\n{}}}", items.join(",\n"), "    ".repeat(depth))
}

/// Re-indent JSON text with `unit`, nested `depth` deep, keeping its key
/// order (Go's json.MarshalIndent of the spec inside the info).
pub fn reindent(text: &str, unit: &str, depth: usize) -> String {
    let mut out = String::new();
    let mut level = depth;
    let mut in_str = false;
    let mut escaped = false;
    let mut chars = text.trim().chars().peekable();
    let newline = |out: &mut String, level: usize| {
        out.push('\n');
        out.push_str(&unit.repeat(level));
    };
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                let close = if c == '{' { '}' } else { ']' };
                if chars.peek() == Some(&close) {
                    chars.next();
                    out.push(c);
                    out.push(close);
                } else {
                    out.push(c);
                    level += 1;
                    newline(&mut out, level);
                }
            }
            '}' | ']' => {
                level = level.saturating_sub(1);
                newline(&mut out, level);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, level);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reindent_keeps_order_and_empty_collections() {
        let got = reindent(r#"{"b":[1,2],"a":{},"c":"x,y"}"#, "  ", 0);
        assert_eq!(
            got,
            "{\n  \"b\": [\n    1,\n    2\n  ],\n  \"a\": {},\n  \"c\": \"x,y\"\n}"
        );
    }

    #[test]
    fn labels_are_dash_when_none() {
        assert_eq!(labels(&BTreeMap::new()), "-");
        assert_eq!(labels(&key_values(&["a=1", "b"])), "a=1,b=");
    }
}
