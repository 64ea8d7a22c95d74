//! Driving the OCI runtime as a subprocess, the way containerd's runc shim
//! does: `BIN --root ROOT --log BUNDLE/log.json --log-format json
//! [--systemd-cgroup] VERB ...`, and on failure the runtime's last error
//! line from that log. Each call logs to a file of its own (then appended
//! to log.json): log.json keeps every earlier call's errors and concurrent
//! calls share it, so its last error may belong to another call.
//!
//! Why a subprocess even for skiff's own runtime (this same binary, run as
//! `runc`): the runtime's create and exec fork, change namespaces and may
//! re-exec; doing that inside a long-lived, multi-threaded shim would need
//! every path of the runtime library to be fork-safe and to leave no state
//! behind on errors. They run from a read-only view of the binary, so the
//! runtime need not re-exec itself for CVE-2019-5736 (one exec less).
//! The cheap verbs that fork nothing and change nothing process-wide are
//! called in-process for skiff's own runtime: `start` (no poststart hooks)
//! and `delete` of a container whose init the shim has reaped (no poststop
//! hooks); each subprocess is one fork+exec of this 4 MB binary, ~3 ms idle
//! and 10+ ms on a busy machine, on the path of every `ctr run`.

use super::reaper::{Reaper, Spawned};
use crate::error::{Context, Error, Kind, Result};
use crate::sys::process::{Exit, Pid};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// Which runtime binary to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binary {
    /// skiff's own runc applet: this very binary.
    Own,
    /// Another runtime (runc, crun), by name on PATH or by path.
    Named(String),
}

/// The runtime and its global flags.
#[derive(Clone)]
pub struct Runtime {
    pub binary: Binary,
    /// `--root`: the runtime's state directory.
    pub root: String,
    pub systemd_cgroup: bool,
    reaper: Reaper,
}

/// The container's stdio for `create` and `exec` (the runtime passes its
/// own stdio on to the process when there is no terminal).
pub struct ProcessStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl ProcessStdio {
    pub fn null() -> ProcessStdio {
        ProcessStdio {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    }
}

/// Options of `create`.
pub struct CreateArgs<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    pub pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
}

/// Options of `exec -d`.
pub struct ExecArgs<'a> {
    pub id: &'a str,
    /// The process.json to run.
    pub process: &'a Path,
    pub pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
}

impl Runtime {
    /// A named binary is looked up now (on PATH when it has no slash):
    /// a missing runtime is a clear NotFound here, never a failed exec in
    /// a child whose exit the reaper might take first.
    pub fn new(
        binary: Binary,
        root: String,
        systemd_cgroup: bool,
        reaper: Reaper,
    ) -> Result<Runtime> {
        let binary = match binary {
            Binary::Own => Binary::Own,
            Binary::Named(n) => Binary::Named(find_executable(&n)?),
        };
        Ok(Runtime {
            binary,
            root,
            systemd_cgroup,
            reaper,
        })
    }

    /// The name to show in messages.
    pub fn name(&self) -> &str {
        match &self.binary {
            Binary::Own => "skiff runc",
            Binary::Named(n) => n,
        }
    }

    fn command(&self, log: &CallLog, exe: Option<&OwnedFd>) -> Command {
        let mut cmd = match &self.binary {
            Binary::Own => {
                let mut c = match exe {
                    // Resolved by execve before close-on-exec closes the fd.
                    Some(fd) => Command::new(format!("/proc/self/fd/{}", fd.as_raw_fd())),
                    None => Command::new("/proc/self/exe"),
                };
                c.arg0("runc");
                c
            }
            Binary::Named(n) => Command::new(n),
        };
        cmd.arg("--root").arg(&self.root);
        cmd.arg("--log")
            .arg(&log.own)
            .args(["--log-format", "json"]);
        if self.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        cmd
    }

    /// The file to run skiff's runtime from for create and exec: a
    /// read-only view of this binary, so that the runtime need not re-exec
    /// itself to protect the binary from the container (CVE-2019-5736):
    /// one exec of the binary less per create. Made per call: the view
    /// lives on in the processes that run from it, not in the shim.
    fn protected_exe(&self) -> Option<OwnedFd> {
        match self.binary {
            Binary::Own => crate::sys::exe::readonly_self(),
            Binary::Named(_) => None,
        }
    }

    /// `create`; returns the init's pid (from the pid file).
    pub fn create(&self, a: &CreateArgs, stdio: ProcessStdio) -> Result<Pid> {
        let log = CallLog::new(&a.bundle.join("log.json"));
        let exe = self.protected_exe();
        let mut cmd = self.command(&log, exe.as_ref());
        cmd.arg("create").arg("--bundle").arg(a.bundle);
        cmd.arg("--pid-file").arg(a.pid_file);
        if let Some(s) = a.console_socket {
            cmd.arg("--console-socket").arg(s);
        }
        if a.no_pivot {
            cmd.arg("--no-pivot");
        }
        if a.no_new_keyring {
            cmd.arg("--no-new-keyring");
        }
        cmd.arg(a.id);
        self.run_detached(cmd, stdio, log, "create")?;
        read_pid_file(a.pid_file)
    }

    /// `exec -d --process P`; returns the new process's pid.
    pub fn exec(&self, a: &ExecArgs, log: &Path, stdio: ProcessStdio) -> Result<Pid> {
        let log = CallLog::new(log);
        let exe = self.protected_exe();
        let mut cmd = self.command(&log, exe.as_ref());
        cmd.arg("exec").arg("--process").arg(a.process);
        cmd.arg("--pid-file").arg(a.pid_file).arg("--detach");
        if let Some(s) = a.console_socket {
            cmd.arg("--console-socket").arg(s);
        }
        cmd.arg(a.id);
        self.run_detached(cmd, stdio, log, "exec")?;
        read_pid_file(a.pid_file)
    }

    /// `start`. skiff's own runtime is called in-process: `start` only
    /// reads the state, takes the state dir's lock and tells the init to
    /// exec through its socket, which changes nothing process-wide and
    /// forks nothing, so the shim's reaper loses no exit to it. Not so with
    /// poststart hooks (child processes the runtime waits for itself):
    /// those go through the subprocess.
    pub fn start(&self, id: &str, log: &Path) -> Result<()> {
        if self.binary == Binary::Own {
            let root = crate::runtime::StateRoot::new(&self.root);
            let c = root
                .load(id)
                .map_err(|e| self.in_process_failure("start", e))?;
            if c.state.poststart.is_empty() {
                return crate::runtime::create::start(&root, id)
                    .map(drop)
                    .map_err(|e| self.in_process_failure("start", e));
            }
        }
        self.simple(log, &["start", id]).map(drop)
    }

    /// An error of the runtime library, worded and classified as the same
    /// failure of the runtime subprocess would be.
    fn in_process_failure(&self, verb: &str, e: Error) -> Error {
        let kind = match e.kind() {
            Kind::Other => kind_of(e.message()),
            kind => kind,
        };
        Error::of(kind, format!("{} {verb}: {}", self.name(), e.message()))
    }

    pub fn kill(&self, id: &str, sig: i32, all: bool, log: &Path) -> Result<()> {
        let sig = sig.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, &sig]);
        self.simple(log, &args).map(drop)
    }

    /// `delete --force` of a container whose init the shim has reaped.
    /// skiff's own runtime is called in-process: with the init gone, delete
    /// only removes the cgroup and the state dir and signals what is left
    /// in the cgroup; it waits for no child of ours (it reaps the init only
    /// while that lives). Poststop hooks are child processes the runtime
    /// waits for itself, which the shim's reaper would take: those go
    /// through the subprocess, as does every other runtime.
    pub fn delete_reaped(&self, id: &str, log: &Path) -> Result<()> {
        if self.binary == Binary::Own {
            let root = crate::runtime::StateRoot::new(&self.root);
            let hooks = root.load(id).map(|c| !c.state.poststop.is_empty());
            if !matches!(hooks, Ok(true)) {
                return crate::runtime::ops::delete(&root, id, true)
                    .map(drop)
                    .map_err(|e| self.in_process_failure("delete", e));
            }
        }
        self.delete(id, true, log)
    }

    pub fn delete(&self, id: &str, force: bool, log: &Path) -> Result<()> {
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id);
        self.simple(log, &args).map(drop)
    }

    pub fn pause(&self, id: &str, log: &Path) -> Result<()> {
        self.simple(log, &["pause", id]).map(drop)
    }

    pub fn resume(&self, id: &str, log: &Path) -> Result<()> {
        self.simple(log, &["resume", id]).map(drop)
    }

    /// `update --resources -` with the linux.resources JSON on stdin.
    pub fn update(&self, id: &str, resources_json: &[u8], log: &Path) -> Result<()> {
        self.run_captured(
            log,
            &["update", "--resources", "-", id],
            Some(resources_json),
        )
        .map(drop)
    }

    /// `ps --format json`: the pids of the container's processes.
    pub fn pids(&self, id: &str, log: &Path) -> Result<Vec<Pid>> {
        let out = self.simple(log, &["ps", "--format", "json", id])?;
        let v = crate::json::parse(&out, "ps output")?;
        crate::json::Node::new(&v, "ps")
            .items()?
            .iter()
            .map(|n| n.i32())
            .collect()
    }

    fn simple(&self, log: &Path, args: &[&str]) -> Result<String> {
        self.run_captured(log, args, None)
    }

    /// Run a verb whose output we read; stdin gets `input` if any.
    fn run_captured(&self, log: &Path, args: &[&str], input: Option<&[u8]>) -> Result<String> {
        let log = CallLog::new(log);
        let mut cmd = self.command(&log, None);
        cmd.args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let verb = args[0];
        let mut child = self
            .spawn(&mut cmd, verb)
            .inspect_err(|_| drop(log.finish()))?;
        if let (Some(data), Some(mut stdin)) = (input, child.child.stdin.take()) {
            // Small (a resources document): it fits in the pipe.
            let _ = stdin.write_all(data);
        }
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut s) = child.child.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        if let Some(mut s) = child.child.stderr.take() {
            let _ = s.read_to_string(&mut err);
        }
        let exit = self.reaper.wait(&child).exit;
        let logged = log.finish();
        if exit == Exit::Code(0) {
            return Ok(out);
        }
        Err(self.failure(verb, exit, &logged, &err))
    }

    /// Run create/exec: the process inherits `stdio`, so we read nothing
    /// from it (a pipe would stay open as long as the container runs).
    fn run_detached(
        &self,
        mut cmd: Command,
        stdio: ProcessStdio,
        log: CallLog,
        verb: &str,
    ) -> Result<()> {
        cmd.stdin(stdio.stdin)
            .stdout(stdio.stdout)
            .stderr(stdio.stderr);
        let child = self
            .spawn(&mut cmd, verb)
            .inspect_err(|_| drop(log.finish()))?;
        // Our copies of the container's ends close with `cmd`.
        drop(cmd);
        let exit = self.reaper.wait(&child).exit;
        let logged = log.finish();
        if exit == Exit::Code(0) {
            return Ok(());
        }
        Err(self.failure(verb, exit, &logged, ""))
    }

    fn spawn(&self, cmd: &mut Command, verb: &str) -> Result<Spawned> {
        self.reaper
            .spawn(cmd)
            .with_context(|| format!("run {} {verb}", self.name()))
    }

    /// The runtime's own words for a failure: the last error this call
    /// logged, else its stderr, else the exit status. The kind follows the
    /// words (containerd branches on NotFound and the like).
    fn failure(&self, verb: &str, exit: Exit, logged: &str, stderr: &str) -> Error {
        let msg = last_error_in(logged)
            .or_else(|| {
                let s = stderr.trim();
                (!s.is_empty()).then(|| s.lines().last().unwrap_or(s).to_string())
            })
            .unwrap_or_else(|| format!("exit status {}", exit.status()));
        // A create or exec failing on "no such file" (a missing program in
        // the container) is no NotFound of the container to containerd.
        let kind = match (verb, kind_of(&msg)) {
            ("create" | "exec", Kind::AlreadyExists) => Kind::AlreadyExists,
            ("create" | "exec", _) => Kind::Other,
            (_, kind) => kind,
        };
        Error::of(kind, format!("{} {verb}: {msg}", self.name()))
    }
}

/// Classify a runtime's error text (runc, crun and skiff word these alike).
fn kind_of(msg: &str) -> Kind {
    let m = msg.to_ascii_lowercase();
    if m.contains("does not exist") || m.contains("not found") || m.contains("no such") {
        Kind::NotFound
    } else if m.contains("already exists") {
        Kind::AlreadyExists
    } else if m.contains("not running")
        || m.contains("not paused")
        || m.contains("is paused")
        || m.contains("is stopped")
    {
        Kind::FailedPrecondition
    } else {
        Kind::Other
    }
}

/// The log file of one runtime call, beside the shared log it is appended
/// to when the call is done.
struct CallLog {
    shared: PathBuf,
    own: PathBuf,
}

impl CallLog {
    fn new(shared: &Path) -> CallLog {
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let n = CALLS.fetch_add(1, Ordering::Relaxed);
        let name = shared.file_name().unwrap_or_default().to_string_lossy();
        let own = shared.with_file_name(format!(".{name}.{}.{n}", std::process::id()));
        // Left over by an earlier shim of the same pid: not this call's.
        let _ = std::fs::remove_file(&own);
        CallLog {
            shared: shared.to_path_buf(),
            own,
        }
    }

    /// What this call logged; appended to the shared log (one write, so
    /// concurrent calls' lines do not interleave), its own file removed.
    fn finish(&self) -> String {
        let text = std::fs::read_to_string(&self.own).unwrap_or_default();
        let _ = std::fs::remove_file(&self.own);
        if !text.is_empty() {
            let shared = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.shared);
            if let Ok(mut f) = shared {
                let _ = f.write_all(text.as_bytes());
            }
        }
        text
    }
}

/// The message of the last `"level":"error"` line of a runc-style JSON log.
pub fn last_error_in(text: &str) -> Option<String> {
    text.lines().rev().find_map(|line| {
        let v = crate::json::parse(line, "log line").ok()?;
        let n = crate::json::Node::new(&v, "");
        let level = n.get("level").ok()??.str().ok()?;
        if level != "error" && level != "fatal" {
            return None;
        }
        n.get("msg").ok()??.string().ok()
    })
}

/// `name` as a path if it has a slash, else the first executable of that
/// name on PATH.
pub fn find_executable(name: &str) -> Result<String> {
    let path = std::env::var("PATH").unwrap_or_else(|_| crate::fsutil::DEFAULT_PATH.into());
    crate::fsutil::find_executable(name, &path).ok_or_else(|| {
        if name.contains('/') {
            crate::err_kind!(NotFound, "runtime binary {name}: no such executable")
        } else {
            crate::err_kind!(
                NotFound,
                "runtime binary {name:?} not found on PATH ({path})"
            )
        }
    })
}

fn read_pid_file(path: &Path) -> Result<Pid> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    text.trim()
        .parse::<Pid>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::new(format!("{}: not a pid: {text:?}", path.display())))
}

/// The runtime's state directory for a namespace: ROOT/NS, as the runc
/// shim keeps one per namespace.
pub fn root_for(root: &str, namespace: &str) -> String {
    PathBuf::from(root).join(namespace).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_is_taken_from_the_json_log() {
        let dir = std::env::temp_dir().join(format!("skiff-shim-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log.json");
        std::fs::write(
            &log,
            "{\"level\":\"error\",\"msg\":\"first\",\"time\":\"x\"}\n\
             {\"level\":\"warning\",\"msg\":\"not this\",\"time\":\"x\"}\n\
             {\"level\":\"error\",\"msg\":\"container \\\"c1\\\" does not exist\",\"time\":\"x\"}\n\
             {\"level\":\"info\",\"msg\":\"later\",\"time\":\"x\"}\n",
        )
        .unwrap();
        let msg = last_error_in(&std::fs::read_to_string(&log).unwrap()).unwrap();
        assert_eq!(msg, "container \"c1\" does not exist");
        assert_eq!(kind_of(&msg), Kind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // The reaper steals every child of its process: these checks run in a
    // test process of their own (this test binary, re-run for one test).
    #[test]
    fn failures_in_their_own_process() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "shim::runtime::tests::failure_checks",
                "--nocapture",
            ])
            .env("SKIFF_RUNTIME_CHECKS", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("1 passed"), "{text}");
    }

    /// A failure is described by what that very call logged, never by an
    /// earlier call's error left in log.json.
    #[test]
    fn failure_checks() {
        use std::os::unix::fs::PermissionsExt;
        if std::env::var_os("SKIFF_RUNTIME_CHECKS").is_none() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("skiff-shim-calllog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log.json");
        let stale = "{\"level\":\"error\",\"msg\":\"container \\\"old\\\" does not exist\"}\n";
        std::fs::write(&log, stale).unwrap();
        // A fake runtime: logs an error when told to (the id "logs"),
        // else dies without a word.
        let bin = dir.join("fake-runtime");
        std::fs::write(
            &bin,
            "#!/bin/sh\nfor a; do case $a in logs) l=1;; esac; done\n\
             while [ \"$1\" != --log ]; do shift; done\n\
             [ -n \"$l\" ] && echo '{\"level\":\"error\",\"msg\":\"container is not running\"}' >>\"$2\"\n\
             exit 3\n",
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let reaper = Reaper::start().unwrap();
        let rt = Runtime::new(
            Binary::Named(bin.display().to_string()),
            dir.display().to_string(),
            false,
            reaper,
        )
        .unwrap();
        // Silent failure: the exit status, not the stale "does not exist".
        let e = rt.kill("silent", 9, false, &log).unwrap_err();
        assert_eq!(e.kind(), Kind::Other, "{e}");
        assert!(e.message().contains("exit status 3"), "{e}");
        // This call's own error, with its kind.
        let e = rt.kill("logs", 9, false, &log).unwrap_err();
        assert_eq!(e.kind(), Kind::FailedPrecondition, "{e}");
        assert!(e.message().contains("not running"), "{e}");
        // log.json still gets every call's lines, and no call file is left.
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.starts_with(stale) && text.contains("not running"),
            "{text}"
        );
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn error_words_map_to_kinds() {
        assert_eq!(
            kind_of("container with id exists: already exists"),
            Kind::AlreadyExists
        );
        assert_eq!(
            kind_of("container is not running"),
            Kind::FailedPrecondition
        );
        assert_eq!(kind_of("something else"), Kind::Other);
    }
}
