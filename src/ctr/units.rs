//! The human units ctr prints: go-units' `HumanSize` and `HumanDuration`
//! (content ls), containerd's progress `Bytes` (images ls, pull).

use std::time::Duration;

/// go-units `HumanSize`: decimal units, four significant digits (`349B`,
/// `1.084MB`).
pub fn human_size(size: f64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut f = size;
    let mut i = 0;
    while f >= 1000.0 && i < UNITS.len() - 1 {
        f /= 1000.0;
        i += 1;
    }
    format!("{}{}", g4(f), UNITS[i])
}

/// Go's `%.4g` for 0 <= f < 1000 (what HumanSize feeds it): four
/// significant digits, trailing zeros dropped.
fn g4(f: f64) -> String {
    let int_digits = if f < 1.0 {
        1
    } else {
        (f.log10().floor() as usize) + 1
    };
    let decimals = 4usize.saturating_sub(int_digits);
    let mut s = format!("{f:.decimals$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    s
}

/// containerd's `progress.Bytes`: binary units, one decimal (`1.0 MiB`).
pub fn bytes(size: i64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut f = size as f64;
    let mut i = 0;
    while f >= 1024.0 && i < UNITS.len() - 1 {
        f /= 1024.0;
        i += 1;
    }
    format!("{f:.1} {}", UNITS[i])
}

/// go-units `HumanDuration` (`4 seconds`, `About a minute`, `3 days`).
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let hours_f = d.as_secs_f64() / 3600.0;
    if secs < 1 {
        return "Less than a second".into();
    }
    if secs == 1 {
        return "1 second".into();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let minutes = secs / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (hours_f + 0.5) as u64;
    if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours_f as u64 / 24 / 365)
    }
}

/// Go's `time.ParseDuration` for the forms ctr's `--timeout` gets
/// (`10s`, `1m30s`, `500ms`, `0`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[u..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_containerd() {
        assert_eq!(human_size(349.0), "349B");
        assert_eq!(human_size(1_083_904.0), "1.084MB");
        assert_eq!(human_size(1_100_000.0), "1.1MB");
        assert_eq!(bytes(1_083_904 + 349 + 416), "1.0 MiB");
        assert_eq!(bytes(416), "416.0 B");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_secs(4)), "4 seconds");
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::from_secs(90)), "About a minute");
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("x"), None);
    }
}
