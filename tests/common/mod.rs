//! Shared harness for the `runc` applet integration tests.
//!
//! The runtime under test is skiff (through a symlink named `runc`, since
//! skiff dispatches on `basename(argv[0])`) unless `SKIFF_TEST_RUNTIME`
//! names another binary, e.g. `SKIFF_TEST_RUNTIME=/usr/bin/runc`.
//!
//! Every test makes a [`Ctx`]: its own directory holding a bundle (with its
//! own copy of a cached busybox rootfs), a `--root` state dir and scratch
//! files. When the `Ctx` is dropped it checks that nothing was left behind
//! (state dirs, mounts under the test dir, container processes, cgroups named
//! after the container) and then cleans up by force, also after a panic.
//!
//! Environment: `SKIFF_TEST_RUNTIME=/path` picks the runtime;
//! `SKIFF_TEST_KEEP=1` keeps each test's dir under $TMPDIR/skiff-tests;
//! `SKIFF_TEST_DEBUG=1` traces the leftover checks.
//!
//! What Debian's runc 1.1.5 does (the behaviour these tests pin down):
//! - `state ID`: 2-space indented JSON, no trailing newline, keys in the
//!   order ociVersion, id, pid, status, bundle, rootfs, created
//!   (RFC 3339 with nanoseconds, UTC `Z`), annotations (omitted when the
//!   config has none), owner (`""`). A stopped container has `"pid": 0`.
//! - `list`: tab-aligned `ID PID STATUS BUNDLE CREATED OWNER` (owner `root`
//!   here); `list -f json`: one line, the same objects as `state` but owner
//!   `"root"`, and `null` when there are no containers; `list -q`: ids.
//! - `ps -f json ID`: `[pid,...]` and a newline; `ps ID` runs `ps -ef`.
//! - `--pid-file`: the pid without a newline.
//! - Errors: exit 1, `time="..." level=error msg="..."` on stderr (with
//!   `--log F --log-format json` the line goes to F as
//!   `{"level":"error","msg":"...","time":"..."}` and stderr gets only the
//!   message). Unknown id: `container does not exist`. Bad signal:
//!   `unknown signal "FOO"`. Running container without --force: `cannot
//!   delete container ID that is not stopped: running`. Kill of a stopped
//!   container: `container not running`. Missing arguments: exit 1, usage
//!   on stdout. Unknown command: exit 3. `delete --force` of an unknown id:
//!   exit 0, silent.
//! - `run` exits with the process's status, 128+n for signal n; a created
//!   container may be killed and deleted without --force.
#![allow(dead_code)]

mod require;
#[allow(unused_imports)]
pub use require::{applies, in_ci, require};

use miniserde::json::{self, Array, Number, Object, Value};
use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long any single runtime invocation may take before the test fails.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// The runtime under test

pub struct Runtime {
    /// The path to execute (for skiff: a symlink named `runc`).
    pub path: PathBuf,
    /// True when the runtime is skiff (skiff-specific assertions apply).
    pub skiff: bool,
}

/// The skiff binary under test: `SKIFF_TEST_BIN` (`make test` points it at
/// the static release build) or the one cargo built with the tests.
pub fn skiff_binary() -> PathBuf {
    match std::env::var_os("SKIFF_TEST_BIN") {
        Some(p) if !p.is_empty() => fs::canonicalize(&p)
            .unwrap_or_else(|e| panic!("SKIFF_TEST_BIN={}: {e}", Path::new(&p).display())),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_skiff")),
    }
}

pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| match std::env::var_os("SKIFF_TEST_RUNTIME") {
        Some(p) if !p.is_empty() => {
            let path = PathBuf::from(p);
            let real = fs::canonicalize(&path)
                .unwrap_or_else(|e| panic!("SKIFF_TEST_RUNTIME={}: {e}", path.display()));
            let skiff = real.file_name().is_some_and(|n| n == "skiff");
            Runtime { path, skiff }
        }
        _ => {
            let exe = skiff_binary();
            let dir = exe.parent().expect("exe dir").join("skiff-test-bin");
            fs::create_dir_all(&dir).expect("create skiff-test-bin");
            let link = dir.join("runc");
            if fs::read_link(&link).ok().as_deref() != Some(exe.as_path()) {
                let tmp = dir.join(format!(".runc.{}", std::process::id()));
                let _ = fs::remove_file(&tmp);
                symlink(&exe, &tmp).expect("symlink runc -> skiff");
                fs::rename(&tmp, &link).expect("rename runc symlink");
            }
            Runtime {
                path: link,
                skiff: true,
            }
        }
    })
}

pub fn is_skiff() -> bool {
    runtime().skiff
}

// ---------------------------------------------------------------------------
// The cached busybox rootfs

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
user:x:1000:1000:user:/home/user:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nwheel:x:10:\nusers:x:100:\nuser:x:1000:\nnogroup:x:65534:\n";

/// A busybox rootfs built once per machine from the host's busybox-static
/// (built in a scratch dir and renamed into place, so parallel test binaries
/// never see a half-built tree).
pub fn busybox_rootfs() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let base = std::env::temp_dir().join("skiff-test-fixtures");
        let done = base.join("busybox-rootfs-v1");
        if done.join("bin/busybox").is_file() {
            return done;
        }
        fs::create_dir_all(&base).expect("create fixture dir");
        let tmp = base.join(format!(".build-{}-{}", std::process::id(), nanos()));
        build_rootfs(&tmp).unwrap_or_else(|e| panic!("building busybox rootfs: {e}"));
        if fs::rename(&tmp, &done).is_err() {
            // Somebody else won the race; theirs is as good as ours.
            let _ = fs::remove_dir_all(&tmp);
            assert!(
                done.join("bin/busybox").is_file(),
                "fixture {} is broken",
                done.display()
            );
        }
        done
    })
}

fn build_rootfs(dir: &Path) -> io::Result<()> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        return Err(io::Error::other(
            "/bin/busybox missing: install busybox-static",
        ));
    }
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root",
    ] {
        fs::create_dir_all(dir.join(d))?;
    }
    fs::create_dir_all(dir.join("home/user"))?;
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::copy(busybox, dir.join("bin/busybox"))?;
    fs::set_permissions(dir.join("bin/busybox"), fs::Permissions::from_mode(0o755))?;
    let list = Command::new(busybox).arg("--list-full").output()?;
    if !list.status.success() {
        return Err(io::Error::other("busybox --list-full failed"));
    }
    for name in String::from_utf8_lossy(&list.stdout).lines() {
        let name = name.trim();
        if name.is_empty() || name == "bin/busybox" || name.contains("..") {
            continue;
        }
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        if p.symlink_metadata().is_err() {
            symlink("/bin/busybox", &p)?;
        }
    }
    fs::write(dir.join("etc/passwd"), PASSWD)?;
    fs::write(dir.join("etc/group"), GROUP)?;
    fs::write(dir.join("etc/hostname"), "busybox\n")?;
    Ok(())
}

/// Copy a tree: directories are made, symlinks recreated, regular files
/// hard-linked (copied when linking fails).
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    fs::set_permissions(to, fs::metadata(from)?.permissions())?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ft = entry.file_type()?;
        if ft.is_dir() {
            copy_tree(&src, &dst)?;
        } else if ft.is_symlink() {
            symlink(fs::read_link(&src)?, &dst)?;
        } else if fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// JSON helpers (miniserde::json::Value)

/// Parse a JSON literal (panics on bad JSON: for test-written constants).
pub fn js(s: &str) -> Value {
    json::from_str(s).unwrap_or_else(|e| panic!("bad JSON literal {s:?}: {e:?}"))
}

pub fn jstr(s: &str) -> Value {
    Value::String(s.to_string())
}

pub fn jnum(n: u64) -> Value {
    Value::Number(Number::U64(n))
}

pub fn jarr_str(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| jstr(s)).collect::<Array>())
}

/// Look up a dotted path (`process.user.uid`); numeric segments index arrays.
pub fn jget<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        cur = match cur {
            Value::Object(o) => o.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

pub fn as_str(v: Option<&Value>) -> Option<&str> {
    match v {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

pub fn as_u64(v: Option<&Value>) -> Option<u64> {
    match v {
        Some(Value::Number(Number::U64(n))) => Some(*n),
        Some(Value::Number(Number::I64(n))) if *n >= 0 => Some(*n as u64),
        _ => None,
    }
}

pub fn as_array(v: Option<&Value>) -> Option<&Array> {
    match v {
        Some(Value::Array(a)) => Some(a),
        _ => None,
    }
}

pub fn to_json(v: &Value) -> String {
    json::to_string(v)
}

// ---------------------------------------------------------------------------
// config.json

/// The base config: what `runc spec` writes, with `terminal: false`.
pub const BASE_CONFIG: &str = r#"{
  "ociVersion": "1.0.2-dev",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": ["sh"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    },
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": true
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "runc",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
  ],
  "linux": {
    "resources": {"devices": [{"allow": false, "access": "rwm"}]},
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
    "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
      "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}"#;

#[derive(Clone)]
pub struct Config(pub Value);

impl Config {
    pub fn base() -> Config {
        Config(js(BASE_CONFIG))
    }

    pub fn to_json(&self) -> String {
        json::to_string(&self.0)
    }

    pub fn get(&self, path: &str) -> Option<&Value> {
        jget(&self.0, path)
    }

    /// The value at a dotted path, creating objects on the way (and
    /// replacing non-objects in the way).
    pub fn get_mut(&mut self, path: &str) -> &mut Value {
        let mut cur = &mut self.0;
        for seg in path.split('.').filter(|s| !s.is_empty()) {
            if let Value::Array(a) = cur {
                let i: usize = seg.parse().expect("array index");
                cur = &mut a[i];
                continue;
            }
            if !matches!(cur, Value::Object(_)) {
                *cur = Value::Object(Object::new());
            }
            let Value::Object(o) = cur else {
                unreachable!()
            };
            cur = o.entry(seg.to_string()).or_insert(Value::Null);
        }
        cur
    }

    pub fn set(&mut self, path: &str, v: Value) -> &mut Self {
        *self.get_mut(path) = v;
        self
    }

    pub fn remove(&mut self, path: &str) -> &mut Self {
        let (parent, last) = match path.rsplit_once('.') {
            Some((p, l)) => (p, l),
            None => ("", path),
        };
        if let Value::Object(o) = self.get_mut(parent) {
            o.remove(last);
        }
        self
    }

    /// Append to the array at `path` (made if missing).
    pub fn push(&mut self, path: &str, v: Value) -> &mut Self {
        let slot = self.get_mut(path);
        if !matches!(slot, Value::Array(_)) {
            *slot = Value::Array(Array::new());
        }
        if let Value::Array(a) = slot {
            a.push(v);
        }
        self
    }

    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.set("process.args", jarr_str(args))
    }

    /// `sh -c SCRIPT`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    pub fn env(&mut self, kv: &str) -> &mut Self {
        self.push("process.env", jstr(kv))
    }

    pub fn writable_rootfs(&mut self) -> &mut Self {
        self.set("root.readonly", Value::Bool(false))
    }

    pub fn mount(&mut self, dest: &str, typ: &str, source: &str, options: &[&str]) -> &mut Self {
        let mut m = Object::new();
        m.insert("destination".into(), jstr(dest));
        m.insert("type".into(), jstr(typ));
        m.insert("source".into(), jstr(source));
        m.insert("options".into(), jarr_str(options));
        self.push("mounts", Value::Object(m))
    }

    /// Remove the mount whose destination is `dest`.
    pub fn remove_mount(&mut self, dest: &str) -> &mut Self {
        if let Value::Array(a) = self.get_mut("mounts") {
            a.retain(|m| as_str(jget(m, "destination")) != Some(dest));
        }
        self
    }

    pub fn remove_namespace(&mut self, typ: &str) -> &mut Self {
        if let Value::Array(a) = self.get_mut("linux.namespaces") {
            a.retain(|n| as_str(jget(n, "type")) != Some(typ));
        }
        self
    }

    pub fn add_namespace(&mut self, typ: &str) -> &mut Self {
        self.push("linux.namespaces", js(&format!(r#"{{"type":"{typ}"}}"#)))
    }

    /// Set all four capability sets to `caps`.
    pub fn caps(&mut self, caps: &[&str]) -> &mut Self {
        for set in ["bounding", "effective", "permitted", "ambient"] {
            self.set(&format!("process.capabilities.{set}"), jarr_str(caps));
        }
        self
    }
}

// ---------------------------------------------------------------------------
// Running the runtime

/// The result of one runtime invocation.
pub struct Out {
    pub cmd: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn describe(&self) -> String {
        format!(
            "`{}` -> {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd, self.status, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(
            self.status.success(),
            "expected success: {}",
            self.describe()
        );
        self
    }

    /// The runtime's error contract: exit status 1 and a message on stderr
    /// (for skiff: exactly one line).
    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert_eq!(self.code(), Some(1), "expected exit 1: {}", self.describe());
        assert!(
            !self.stderr.trim().is_empty(),
            "expected an error message: {}",
            self.describe()
        );
        if is_skiff() {
            assert_eq!(
                self.stderr.trim_end().lines().count(),
                1,
                "skiff errors are one line: {}",
                self.describe()
            );
        }
        self
    }

    #[track_caller]
    pub fn exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "unexpected exit status: {}",
            self.describe()
        );
        self
    }
}

/// A runtime process running in the background (e.g. a foreground `run`).
pub struct Bg {
    pub child: Child,
    cmd: String,
    out: PathBuf,
    err: PathBuf,
}

impl Bg {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Send a signal to the runtime process (which we started).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of our own child, which has not been
        // reaped yet (we hold the Child), so the pid cannot have been reused.
        let r = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(
            r,
            0,
            "kill({}, {sig}): {}",
            self.pid(),
            io::Error::last_os_error()
        );
    }

    #[track_caller]
    pub fn wait(mut self, timeout: Duration) -> Out {
        let status = wait_child(&mut self.child, timeout, &self.cmd);
        Out {
            cmd: self.cmd.clone(),
            status,
            stdout: fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: fs::read_to_string(&self.err).unwrap_or_default(),
        }
    }

    /// What the process has written to stdout so far.
    pub fn stdout_so_far(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[track_caller]
fn wait_child(child: &mut Child, timeout: Duration, cmd: &str) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return st,
            Ok(None) => {}
            Err(e) => panic!("waiting for `{cmd}`: {e}"),
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{cmd}` did not finish within {timeout:?}");
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// The per-test context

static SEQ: AtomicU32 = AtomicU32::new(0);

fn seq() -> u32 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

pub struct Ctx {
    pub name: String,
    /// Everything of this test lives under here.
    pub dir: PathBuf,
    pub bundle: PathBuf,
    pub root: PathBuf,
    /// A unique string put in the environment of the runtime and of the
    /// container process, to find leftover processes.
    pub mark: String,
    ids: Mutex<Vec<String>>,
    pids: Mutex<Vec<(i32, u64)>>,
    n: AtomicU32,
}

impl Ctx {
    pub fn new(name: &str) -> Ctx {
        let rt = runtime();
        assert!(
            rt.path.exists(),
            "runtime {} does not exist",
            rt.path.display()
        );
        let rootfs_src = busybox_rootfs();
        let mark = format!("skt-{}-{}-{}", name, std::process::id(), seq());
        let dir = std::env::temp_dir().join("skiff-tests").join(&mark);
        let _ = fs::remove_dir_all(&dir);
        let bundle = dir.join("bundle");
        let root = dir.join("root");
        fs::create_dir_all(&bundle).expect("create bundle dir");
        fs::create_dir_all(&root).expect("create root dir");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).expect("chmod root");
        copy_tree(rootfs_src, &bundle.join("rootfs")).expect("copy rootfs");
        let ctx = Ctx {
            name: name.to_string(),
            dir,
            bundle,
            root,
            mark,
            ids: Mutex::new(Vec::new()),
            pids: Mutex::new(Vec::new()),
            n: AtomicU32::new(0),
        };
        ctx.write_config(&ctx.config());
        ctx
    }

    /// The base config with the leftover marker in the environment.
    pub fn config(&self) -> Config {
        let mut c = Config::base();
        c.env(&format!("SKIFF_TEST_MARK={}", self.mark));
        c
    }

    pub fn write_config(&self, c: &Config) {
        fs::write(self.bundle.join("config.json"), c.to_json()).expect("write config.json");
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    /// A fresh container id, unique on this machine (cgroups are global),
    /// remembered for clean-up.
    pub fn id(&self) -> String {
        let id = format!("skt{}-{}", std::process::id(), seq());
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// A scratch path under the test dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn command(&self, args: &[&str], with_root: bool) -> (Command, String, PathBuf, PathBuf) {
        let rt = runtime();
        let n = self.n.fetch_add(1, Ordering::Relaxed);
        let out = self.dir.join(format!("cmd{n}.out"));
        let err = self.dir.join(format!("cmd{n}.err"));
        let mut cmd = Command::new(&rt.path);
        let mut shown = String::from("runc");
        if with_root {
            cmd.arg("--root").arg(&self.root);
            shown.push_str(&format!(" --root {}", self.root.display()));
        }
        for a in args {
            shown.push(' ');
            shown.push_str(a);
        }
        cmd.args(args)
            .env("SKIFF_TEST_MARK", &self.mark)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("stdout file"))
            .stderr(fs::File::create(&err).expect("stderr file"));
        (cmd, shown, out, err)
    }

    /// Run the runtime with `--root ROOT` prepended; stdout and stderr go to
    /// files (a detached container inherits them, so pipes could hang).
    #[track_caller]
    pub fn rt(&self, args: &[&str]) -> Out {
        self.spawn(args).wait(CMD_TIMEOUT)
    }

    /// Run the runtime without `--root` (the caller passes global flags).
    #[track_caller]
    pub fn rt_noroot(&self, args: &[&str]) -> Out {
        let (mut cmd, shown, out, err) = self.command(args, false);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn `{shown}`: {e}"));
        Bg {
            child,
            cmd: shown,
            out,
            err,
        }
        .wait(CMD_TIMEOUT)
    }

    /// Run the runtime (with `--root`) with `file` open for reading on fd 3
    /// (through the host's /bin/sh, so no pre_exec code is needed).
    #[track_caller]
    pub fn rt_with_fd3(&self, file: &Path, args: &[&str]) -> Out {
        let (inner, shown, out, err) = self.command(args, true);
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("exec 3<\"$1\"; shift; exec \"$@\"")
            .arg("sh")
            .arg(file)
            .arg(inner.get_program())
            .args(inner.get_args())
            .env("SKIFF_TEST_MARK", &self.mark)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("stdout file"))
            .stderr(fs::File::create(&err).expect("stderr file"));
        let shown = format!("{shown} 3<{}", file.display());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn `{shown}`: {e}"));
        Bg {
            child,
            cmd: shown,
            out,
            err,
        }
        .wait(CMD_TIMEOUT)
    }

    #[track_caller]
    pub fn spawn(&self, args: &[&str]) -> Bg {
        let (mut cmd, shown, out, err) = self.command(args, true);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn `{shown}`: {e}"));
        Bg {
            child,
            cmd: shown,
            out,
            err,
        }
    }

    pub fn bundle_str(&self) -> String {
        self.bundle.to_str().expect("utf-8 path").to_string()
    }

    /// `create --bundle B ID`; on success remembers the init pid.
    #[track_caller]
    pub fn create(&self, id: &str) -> Out {
        let b = self.bundle_str();
        let out = self.rt(&["create", "--bundle", &b, id]);
        if out.status.success() {
            self.track_pid(self.pid_of(id));
        }
        out
    }

    /// `run --bundle B ID` in the foreground: waits for the container.
    #[track_caller]
    pub fn run(&self, id: &str) -> Out {
        let b = self.bundle_str();
        self.rt(&["run", "--bundle", &b, id])
    }

    /// Write `c` as config.json and `run` it under a fresh id; asserts that
    /// `run` deleted the container again.
    #[track_caller]
    pub fn run_config(&self, c: &Config) -> Out {
        self.write_config(c);
        let id = self.id();
        let out = self.run(&id);
        self.assert_gone(&id);
        out
    }

    /// Run `sh -c SCRIPT` on the base config.
    #[track_caller]
    pub fn run_sh(&self, script: &str) -> Out {
        let mut c = self.config();
        c.sh(script);
        self.run_config(&c)
    }

    #[track_caller]
    pub fn start(&self, id: &str) -> Out {
        self.rt(&["start", id])
    }

    #[track_caller]
    pub fn kill(&self, id: &str, sig: &str) -> Out {
        self.rt(&["kill", id, sig])
    }

    #[track_caller]
    pub fn delete(&self, id: &str) -> Out {
        self.rt(&["delete", id])
    }

    /// `state ID` parsed; panics if the command fails.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let out = self.rt(&["state", id]);
        out.ok();
        json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state output is not JSON ({e:?}): {:?}", out.stdout))
    }

    #[track_caller]
    pub fn status(&self, id: &str) -> String {
        as_str(jget(&self.state(id), "status"))
            .expect("state.status")
            .to_string()
    }

    #[track_caller]
    pub fn pid_of(&self, id: &str) -> i32 {
        as_u64(jget(&self.state(id), "pid")).expect("state.pid") as i32
    }

    /// Poll `state` until the status is `want`.
    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status(id);
            if s == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} is {s:?}, wanted {want:?} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The container is unknown to the runtime and its state dir is gone.
    #[track_caller]
    pub fn assert_gone(&self, id: &str) {
        let out = self.rt(&["state", id]);
        assert_eq!(
            out.code(),
            Some(1),
            "state of deleted container {id} should fail: {}",
            out.describe()
        );
        assert!(
            !self.root.join(id).exists(),
            "state dir {} left behind",
            self.root.join(id).display()
        );
    }

    /// Remember a container process so the leftover check can make sure it
    /// is gone at the end.
    pub fn track_pid(&self, pid: i32) {
        if pid > 0 {
            if let Some(st) = proc_starttime(pid) {
                self.pids.lock().unwrap().push((pid, st));
            }
        }
    }

    /// Everything this test left behind, polling a little so that processes
    /// that are already dying are not reported.
    pub fn leftovers(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let found = self.leftovers_now();
            if std::env::var_os("SKIFF_TEST_DEBUG").is_some() {
                eprintln!("leftovers at {:?}: {found:?}", Instant::now());
            }
            if found.is_empty() || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// For a documented bug of the runtime under test (not skiff): report
    /// what is left behind right now and remove the leaked processes and
    /// cgroups, so that the rest of the test can go on.
    pub fn clear_known_leaks(&self) -> Vec<String> {
        let found = self.leftovers_now();
        self.kill_processes_and_cgroups();
        found
    }

    /// Kill this test's container processes (tracked or marked), wait for
    /// them to go, then remove cgroups named after its containers.
    fn kill_processes_and_cgroups(&self) {
        let tracked: Vec<(i32, u64)> = self.pids.lock().unwrap().clone();
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let mut alive = marked_processes(&self.mark, &self.dir);
            alive.extend(
                tracked
                    .iter()
                    .filter(|(p, st)| process_alive(*p, *st))
                    .map(|(p, _)| *p),
            );
            if alive.is_empty() || Instant::now() >= deadline {
                break;
            }
            for pid in alive {
                kill_pid(pid);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for id in self.ids.lock().unwrap().iter() {
            for cg in cgroups_named(id) {
                for _ in 0..50 {
                    if fs::remove_dir(&cg).is_ok() || !cg.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    fn leftovers_now(&self) -> Vec<String> {
        let mut found = Vec::new();
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                found.push(format!("state entry {}", e.path().display()));
            }
        }
        for m in mounts_under(&self.dir) {
            found.push(format!("mount {m}"));
        }
        for &(pid, st) in self.pids.lock().unwrap().iter() {
            if process_alive(pid, st) {
                found.push(format!("container process {pid} still alive"));
            }
        }
        for pid in marked_processes(&self.mark, &self.dir) {
            found.push(format!("process {pid} ({}) still alive", proc_cmdline(pid)));
        }
        for id in self.ids.lock().unwrap().iter() {
            for cg in cgroups_named(id) {
                found.push(format!("cgroup {}", cg.display()));
            }
        }
        found
    }

    fn cleanup(&self) {
        let ids: Vec<String> = self.ids.lock().unwrap().clone();
        if self.root.exists() {
            for id in &ids {
                if self.root.join(id).exists() {
                    let (mut cmd, ..) = self.command(&["delete", "--force", id], true);
                    if let Ok(mut child) = cmd.spawn() {
                        let _ = wait_child_quiet(&mut child, Duration::from_secs(10));
                    }
                }
            }
        }
        self.kill_processes_and_cgroups();
        let mut mounts = mounts_under(&self.dir);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        let mut stuck = false;
        for m in &mounts {
            if !umount_detach(Path::new(m)) {
                stuck = true;
            }
        }
        if !stuck && std::env::var_os("SKIFF_TEST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let check = !std::thread::panicking();
        let left = if check { self.leftovers() } else { Vec::new() };
        self.cleanup();
        if !left.is_empty() {
            panic!(
                "test {} left things behind:\n  {}",
                self.name,
                left.join("\n  ")
            );
        }
    }
}

fn wait_child_quiet(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------
// Processes, mounts, cgroups

/// Field 22 of /proc/PID/stat (start time), to tell a pid from its reuse.
pub fn proc_starttime(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    // rest starts at field 3 (state); starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// Alive, not a zombie, and the same process (start time) as recorded.
pub fn process_alive(pid: i32, starttime: u64) -> bool {
    proc_starttime(pid) == Some(starttime)
        && !matches!(proc_state(pid), Some('Z') | Some('X') | None)
}

/// Wait until the process (pid + start time) is gone; false on timeout.
pub fn wait_gone(pid: i32, starttime: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while process_alive(pid, starttime) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

pub fn proc_cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Live processes (not zombies, not us) whose environment holds `mark` or
/// whose environment or command line names a path under `dir`.
pub fn marked_processes(mark: &str, dir: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    // Exact matches only: "skt-x-1" must not match "skt-x-10".
    let dir = format!("{}/", dir.to_string_lossy());
    let mark = format!("SKIFF_TEST_MARK={mark}\0");
    let mut pids = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return pids;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me || matches!(proc_state(pid), Some('Z') | Some('X') | None) {
            continue;
        }
        let env = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if contains(&env, mark.as_bytes())
            || contains(&env, dir.as_bytes())
            || contains(&cmd, dir.as_bytes())
        {
            pids.push(pid);
        }
    }
    pids
}

fn kill_pid(pid: i32) {
    // SAFETY: kill(2) with a pid that we just found alive and that belongs
    // to a container or runtime process this test started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x");
            if let Ok(n) = u8::from_str_radix(digits, 8) {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points in our mount namespace at or under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape_mountinfo))
        .filter(|m| m == &dir || m.starts_with(&format!("{dir}/")))
        .collect()
}

fn umount_detach(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: umount2 with a valid NUL-terminated path; MNT_DETACH only
    // affects the mount at that path, which lies under this test's dir.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) == 0 }
}

/// Cgroup directories named `id` directly under a hierarchy root.
pub fn cgroups_named(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(rd) = fs::read_dir("/sys/fs/cgroup") else {
        return found;
    };
    for e in rd.flatten() {
        let p = e.path().join(id);
        if p.is_dir() {
            found.push(p);
        }
    }
    found
}

/// The set of distinct lines of a string.
pub fn line_set(s: &str) -> BTreeSet<String> {
    s.lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

// ---------------------------------------------------------------------------
// Console socket: receive the pty master over SCM_RIGHTS

pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn new(ctx: &Ctx) -> ConsoleSocket {
        let path = ctx.path("console.sock");
        let listener = UnixListener::bind(&path).expect("bind console socket");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        ConsoleSocket { path, listener }
    }

    pub fn path_str(&self) -> String {
        self.path.to_str().expect("utf-8").to_string()
    }

    /// Accept the runtime's connection and receive the pty master.
    #[track_caller]
    pub fn receive_master(&self, timeout: Duration) -> OwnedFd {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "nobody connected to the console socket"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept on console socket: {e}"),
            }
        };
        stream.set_nonblocking(false).expect("blocking stream");
        stream
            .set_read_timeout(Some(timeout))
            .expect("read timeout");
        recv_fd(&stream).expect("receive pty master over SCM_RIGHTS")
    }
}

/// Receive one message carrying a file descriptor (SCM_RIGHTS).
pub fn recv_fd(sock: &UnixStream) -> io::Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    // u64 array: suitably aligned room for a few cmsg headers and fds.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers (buf, control, iov) for the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR walk the control buffer the kernel
    // filled, bounded by msg_controllen; each SCM_RIGHTS payload holds
    // (cmsg_len - CMSG_LEN(0)) / sizeof(int) descriptors now owned by us.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const libc::c_int;
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<libc::c_int>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("control message truncated"));
    }
    fds.into_iter()
        .next()
        .ok_or_else(|| io::Error::other("message carried no file descriptor"))
}

/// Wait until `fd` is readable (true) or `timeout` passes (false).
pub fn poll_readable(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    r > 0
}

/// Read from a pty master until `done(text so far)` holds, the other side
/// is closed (EIO/EOF), or the timeout passes. Returns what was read.
pub fn read_pty(master: &OwnedFd, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    let mut f = fs::File::from(master.try_clone().expect("dup pty master"));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&String::from_utf8_lossy(&got)) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !poll_readable(master, left) {
            break;
        }
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break, // EIO: the slave side is closed
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

pub fn write_pty(master: &OwnedFd, data: &[u8]) {
    let mut f = fs::File::from(master.try_clone().expect("dup pty master"));
    f.write_all(data).expect("write to pty master");
}

pub fn exit_signal(st: &ExitStatus) -> Option<i32> {
    st.signal()
}

// ---------------------------------------------------------------------------
// Helpers for the cgroup, exec, hooks, hardening and containerd tests

impl Ctx {
    /// Spawn `runtime` (a binary other than the one under test: a per-test
    /// copy of skiff, or runc to compare with) with `args`; `root`, when
    /// given, is passed as `--root`.
    #[track_caller]
    pub fn spawn_at(&self, runtime: &Path, root: Option<&Path>, args: &[&str]) -> Bg {
        let n = self.n.fetch_add(1, Ordering::Relaxed);
        let out = self.dir.join(format!("cmd{n}.out"));
        let err = self.dir.join(format!("cmd{n}.err"));
        let mut cmd = Command::new(runtime);
        let mut shown = runtime.display().to_string();
        if let Some(r) = root {
            cmd.arg("--root").arg(r);
            shown.push_str(&format!(" --root {}", r.display()));
        }
        for a in args {
            shown.push(' ');
            shown.push_str(a);
        }
        cmd.args(args)
            .env("SKIFF_TEST_MARK", &self.mark)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("stdout file"))
            .stderr(fs::File::create(&err).expect("stderr file"));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn `{shown}`: {e}"));
        Bg {
            child,
            cmd: shown,
            out,
            err,
        }
    }

    /// [`Ctx::spawn_at`] and wait.
    #[track_caller]
    pub fn rt_at(&self, runtime: &Path, root: Option<&Path>, args: &[&str]) -> Out {
        self.spawn_at(runtime, root, args).wait(CMD_TIMEOUT)
    }

    /// Run the runtime under test (with `--root`) with stdin read from
    /// `input`.
    #[track_caller]
    pub fn rt_stdin(&self, input: &Path, args: &[&str]) -> Out {
        let (mut cmd, shown, out, err) = self.command(args, true);
        cmd.stdin(fs::File::open(input).expect("open stdin file"));
        let shown = format!("{shown} <{}", input.display());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn `{shown}`: {e}"));
        Bg {
            child,
            cmd: shown,
            out,
            err,
        }
        .wait(CMD_TIMEOUT)
    }

    /// A private copy of the runtime under test in the test dir (for tests
    /// that try to overwrite the runtime binary: a failure must not destroy
    /// the real build). For skiff: `DIR/bin/skiff` and a `runc` symlink to
    /// it, which is returned along with the copy itself.
    pub fn runtime_copy(&self) -> (PathBuf, PathBuf) {
        let real = fs::canonicalize(&runtime().path).expect("canonicalize runtime");
        let bin = self.dir.join("bin");
        fs::create_dir_all(&bin).expect("create bin dir");
        let name = real.file_name().expect("runtime file name");
        let copy = bin.join(name);
        fs::copy(&real, &copy).expect("copy the runtime binary");
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod copy");
        let link = bin.join("runc");
        if link != copy {
            symlink(&copy, &link).expect("symlink runc -> copy");
        }
        (link, copy)
    }
}

/// The cgroup of `pid` in the v1 hierarchy holding `controller` (or, for
/// `controller == ""`, the cgroup v2 line), from /proc/PID/cgroup.
pub fn proc_cgroup(pid: i32, controller: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let hit = if controller.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        hit.then(|| path.to_string())
    })
}

/// Where the hierarchy holding `controller` is mounted (v1), or the
/// cgroup2 mount for `controller == ""`.
pub fn cgroup_mount(controller: &str) -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mp = left.split(' ').nth(4)?;
        let mut r = right.split(' ');
        let fstype = r.next()?;
        let opts = r.nth(1)?;
        let hit = if controller.is_empty() {
            fstype == "cgroup2"
        } else {
            fstype == "cgroup" && opts.split(',').any(|o| o == controller)
        };
        hit.then(|| PathBuf::from(unescape_mountinfo(mp)))
    })
}

/// The host directory of `pid`'s cgroup for `controller` (see
/// [`proc_cgroup`], [`cgroup_mount`]).
pub fn cgroup_dir(pid: i32, controller: &str) -> Option<PathBuf> {
    let mount = cgroup_mount(controller)?;
    let path = proc_cgroup(pid, controller)?;
    Some(mount.join(path.trim_start_matches('/')))
}

/// Every cgroup hierarchy mount point (v1 and v2).
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            let mp = left.split(' ').nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| PathBuf::from(unescape_mountinfo(mp)))
        })
        .collect();
    out.dedup();
    out
}

/// Removes cgroup directories a test made (or made the runtime make) under
/// every hierarchy when dropped, deepest first: `rel` paths are relative to
/// each hierarchy's root.
pub struct CgroupDirs {
    pub rel: Vec<String>,
}

impl CgroupDirs {
    /// Where `rel` exists now, in any hierarchy.
    pub fn existing(rel: &str) -> Vec<PathBuf> {
        cgroup_mounts()
            .into_iter()
            .map(|m| m.join(rel.trim_start_matches('/')))
            .filter(|p| p.is_dir())
            .collect()
    }
}

impl Drop for CgroupDirs {
    fn drop(&mut self) {
        let mut rel = self.rel.clone();
        rel.sort_by_key(|r| std::cmp::Reverse(r.len()));
        for r in &rel {
            for p in CgroupDirs::existing(r) {
                for _ in 0..100 {
                    if fs::remove_dir(&p).is_ok() || !p.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}

/// Poll `f` until it is true; false on timeout.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The state letter of /proc/PID/stat (R, S, D, T, Z, ...).
pub fn proc_state_of(pid: i32) -> Option<char> {
    proc_state(pid)
}

/// The pids of the direct children of `pid` (from /proc/PID/task/*/children).
pub fn proc_children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            let s = fs::read_to_string(t.path().join("children")).unwrap_or_default();
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    out
}
