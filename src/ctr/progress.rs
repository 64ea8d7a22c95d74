//! Pull progress as ctr shows it: one line per blob (`layer-sha256:…:`,
//! its state, a bar, bytes so far/total) redrawn in place on a terminal,
//! and an `elapsed … total …` line; plain one-line changes otherwise.

use super::tabwriter;
use super::units;
use std::time::{Duration, Instant};

/// A blob's state as the daemon's pull reports it (skiff.services.pull.v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Resolving,
    Resolved,
    Waiting,
    Downloading,
    Done,
    Exists,
    Unpacking,
    Unpacked,
}

impl State {
    /// The daemon's number for a state (see the pull service's `state` consts).
    pub fn from_wire(n: i32, is_reference: bool) -> State {
        match n {
            0 if is_reference => State::Resolving,
            0 => State::Resolving,
            1 => State::Waiting,
            2 => State::Downloading,
            3 => State::Done,
            4 => State::Exists,
            5 => State::Unpacking,
            _ => State::Unpacked,
        }
    }

    fn word(self) -> &'static str {
        match self {
            State::Resolving => "resolving",
            State::Resolved => "resolved",
            State::Waiting => "waiting",
            State::Downloading => "downloading",
            State::Done => "done",
            State::Exists => "exists",
            State::Unpacking => "unpacking",
            State::Unpacked => "done",
        }
    }

    fn complete(self) -> bool {
        matches!(
            self,
            State::Resolved | State::Done | State::Exists | State::Unpacking | State::Unpacked
        )
    }
}

struct Entry {
    key: String,
    state: State,
    offset: i64,
    total: i64,
}

/// The progress of one pull.
pub struct Progress {
    reference: String,
    entries: Vec<Entry>,
    start: Instant,
    /// Lines drawn last time (to move back over them on a terminal).
    drawn: usize,
}

/// ctr's key for a blob: its kind from the media type, then the digest.
pub fn key(media_type: &str, digest: &str) -> String {
    let kind = if media_type.contains("index") || media_type.contains("manifest.list") {
        "index"
    } else if media_type.contains("manifest") {
        "manifest"
    } else if media_type.contains("config") || media_type.contains("container.image") {
        "config"
    } else if media_type.contains("layer") {
        "layer"
    } else {
        "unknown"
    };
    format!("{kind}-{digest}")
}

impl Progress {
    pub fn new(reference: &str) -> Progress {
        Progress {
            reference: reference.to_string(),
            entries: vec![Entry {
                key: reference.to_string(),
                state: State::Resolving,
                offset: 0,
                total: 0,
            }],
            start: Instant::now(),
            drawn: 0,
        }
    }

    /// Record one report; the plain line to print when its state changed
    /// (for output that is not a terminal).
    pub fn update(
        &mut self,
        name: &str,
        media_type: &str,
        state: i32,
        offset: i64,
        total: i64,
    ) -> Option<String> {
        let is_ref = name == self.reference || media_type.is_empty();
        let k = if is_ref {
            self.reference.clone()
        } else {
            key(media_type, name)
        };
        let mut st = State::from_wire(state, is_ref);
        if is_ref && st != State::Resolving {
            st = State::Resolved;
        }
        // Any blob reported means the reference resolved.
        if !is_ref {
            if let Some(r) = self.entries.first_mut() {
                r.state = State::Resolved;
            }
        }
        let (idx, new) = match self.entries.iter().position(|e| e.key == k) {
            Some(i) => (i, false),
            None => {
                self.entries.push(Entry {
                    key: k.clone(),
                    state: st,
                    offset: 0,
                    total: 0,
                });
                (self.entries.len() - 1, true)
            }
        };
        let e = &mut self.entries[idx];
        let changed = new || e.state != st;
        e.state = st;
        e.offset = offset;
        e.total = total;
        changed.then(|| format!("{k}: {}", st.word()))
    }

    /// The table as ctr draws it (already laid out): `key:`, state,
    /// bar, and bytes while downloading; then `elapsed` and `total`
    /// sharing the first two columns, as ctr's tabwriter has them.
    pub fn table(&self) -> String {
        let mut t = String::new();
        for e in &self.entries {
            match e.state {
                State::Downloading if e.total > 0 => t.push_str(&format!(
                    "{}:\t{}\t{}\t{:>8}/{}\t\n",
                    e.key,
                    e.state.word(),
                    bar(e.offset as f64 / e.total as f64),
                    units::bytes(e.offset),
                    units::bytes(e.total)
                )),
                s => t.push_str(&format!(
                    "{}:\t{}\t{}\t\n",
                    e.key,
                    s.word(),
                    bar(if s.complete() { 1.0 } else { 0.0 })
                )),
            }
        }
        let total: i64 = self.entries.iter().map(|e| e.offset).sum();
        let secs = self.start.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { total as f64 / secs } else { 0.0 };
        // Go's "%-4.1fs" and "%7.6v" (Bytes cut to six characters).
        let mut total_text: String = units::bytes(total).chars().take(6).collect();
        total_text = format!("{total_text:>7}");
        t.push_str(&format!(
            "elapsed: {:<4}s\ttotal: {total_text}\t({}/s)\t\n",
            format!("{secs:.1}"),
            units::bytes(rate as i64)
        ));
        tabwriter::format(tabwriter::TIGHT, &t)
    }

    /// The table for a terminal: first moves back over what was drawn.
    pub fn redraw(&mut self) -> String {
        let table = self.table();
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A\r", self.drawn));
        }
        for line in table.lines() {
            out.push_str("\x1b[2K");
            out.push_str(line);
            out.push('\n');
        }
        self.drawn = table.lines().count();
        out
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// A 40-column bar, filled with green `+`, the rest `-`.
fn bar(done: f64) -> String {
    const WIDTH: usize = 38;
    let filled = ((done.clamp(0.0, 1.0)) * WIDTH as f64) as usize;
    format!(
        "|\x1b[32m{}\x1b[0m{}|",
        "+".repeat(filled),
        "-".repeat(WIDTH - filled)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_ctr() {
        assert_eq!(
            key("application/vnd.oci.image.layer.v1.tar+gzip", "sha256:ab"),
            "layer-sha256:ab"
        );
        assert_eq!(
            key("application/vnd.oci.image.manifest.v1+json", "sha256:ab"),
            "manifest-sha256:ab"
        );
        assert_eq!(
            key(
                "application/vnd.docker.container.image.v1+json",
                "sha256:ab"
            ),
            "config-sha256:ab"
        );
    }

    #[test]
    fn states_and_table() {
        let mut p = Progress::new("r:latest");
        let l = "application/vnd.oci.image.layer.v1.tar+gzip";
        assert_eq!(
            p.update("sha256:ab", l, 2, 10, 100).as_deref(),
            Some("layer-sha256:ab: downloading")
        );
        assert_eq!(p.update("sha256:ab", l, 2, 50, 100), None);
        assert_eq!(
            p.update("sha256:ab", l, 3, 100, 100).as_deref(),
            Some("layer-sha256:ab: done")
        );
        let t = p.table();
        assert!(t.starts_with("r:latest:        resolved"), "{t}");
        assert!(t.contains("elapsed: "), "{t}");
    }
}
