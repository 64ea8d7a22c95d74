//! Running OCI hooks: each gets the container's state JSON on stdin, its
//! own args and env, and is killed at its timeout.

use crate::error::{Context, Error, Result};
use crate::json::Writer;
use crate::oci::spec::Hook;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The state a hook reads on stdin (runtime-spec's state).
pub struct HookState<'a> {
    pub id: &'a str,
    pub status: &'a str,
    pub pid: i32,
    pub bundle: &'a str,
    pub annotations: &'a BTreeMap<String, String>,
}

impl HookState<'_> {
    fn json(&self) -> String {
        let mut w = Writer::compact();
        w.begin_object();
        w.key("ociVersion").str(super::OCI_VERSION);
        w.key("id").str(self.id);
        w.key("status").str(self.status);
        if self.pid > 0 {
            w.key("pid").num(self.pid);
        }
        w.key("bundle").str(self.bundle);
        if !self.annotations.is_empty() {
            w.key("annotations").object();
            for (k, v) in self.annotations {
                w.key(k).str(v);
            }
            w.end_object();
        }
        w.end_object();
        w.finish()
    }
}

/// What a failing hook means for the hooks after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// The first failure stops the rest and is the error (prestart up to
    /// startContainer: the lifecycle stops too).
    Stop,
    /// Every hook runs, and the failures come back as warnings for the
    /// caller to report (poststart and poststop: the spec makes a failure
    /// there a warning, and the lifecycle goes on).
    Warn,
}

/// Run hooks in order; `kind` names them in errors ("createRuntime").
/// Returns the warnings (none with [`OnFailure::Stop`]).
pub fn run(
    kind: &str,
    hooks: &[Hook],
    state: &HookState,
    on_failure: OnFailure,
) -> Result<Vec<Error>> {
    let mut warnings = Vec::new();
    if hooks.is_empty() {
        return Ok(warnings);
    }
    let input = state.json();
    for (i, hook) in hooks.iter().enumerate() {
        crate::log::debug!("hooks.{kind}[{i}]: run {}", hook.path);
        if let Err(e) = run_one(hook, &input) {
            let e = e.wrap(format!("hooks.{kind}[{i}] {}", hook.path));
            match on_failure {
                OnFailure::Stop => return Err(e),
                OnFailure::Warn => warnings.push(e),
            }
        }
    }
    Ok(warnings)
}

fn run_one(hook: &Hook, input: &str) -> Result<()> {
    // The clock starts before anything that could block.
    let deadline = hook
        .timeout
        .and_then(|t| Instant::now().checked_add(Duration::from_secs(t)));
    let mut cmd = Command::new(&hook.path);
    if let Some((first, rest)) = hook.args.split_first() {
        use std::os::unix::process::CommandExt;
        cmd.arg0(first);
        cmd.args(rest);
    }
    cmd.env_clear();
    for kv in &hook.env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("start")?;
    // Threads feed stdin and drain stderr, so a hook that reads nothing or
    // writes much can neither block us nor itself.
    let stdin = child.stdin.take();
    let input = input.to_string();
    let feeder = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            // A hook need not read its stdin; EPIPE is fine.
            let _ = stdin.write_all(input.as_bytes());
        }
    });
    let stderr = child.stderr.take();
    let drainer = std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut stderr) = stderr {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut stderr, &mut buf) {
                if n == 0 {
                    break;
                }
                // The start of it is what explains a failure.
                let room = 4096usize.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        kept
    });
    let status = loop {
        if let Some(status) = child.try_wait().context("wait")? {
            break status;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            crate::bail!("timed out after {}s", hook.timeout.unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let _ = feeder.join();
    // The rest of stderr arrives at once, unless the hook left a child
    // holding the pipe open: wait for it, but not forever.
    let until = Instant::now() + Duration::from_secs(2);
    while !drainer.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    let msg = if drainer.is_finished() {
        drainer.join().unwrap_or_default()
    } else {
        Vec::new()
    };
    if status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&msg);
    let msg = msg.trim();
    Err(Error::new(format!(
        "{status}{}{msg}",
        if msg.is_empty() { "" } else { ": " }
    )))
}
