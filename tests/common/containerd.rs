//! A private Debian containerd 1.6 for a test: its own root, state,
//! socket and config under the test dir, stopped again (by its pid) on
//! drop, together with every shim and container process it left.
//!
//! Declared by each test file that needs it, beside `mod common;`:
//! `#[path = "common/containerd.rs"] mod containerd;`.
//!
//! - The CRI plugin is off unless [`Options::cri`] gives its config.
//! - containerd's PATH starts with a dir holding `containerd-shim-skiff-v2
//!   -> skiff` (the binary under test, [`skiff_binary`]), so
//!   `--runtime io.containerd.skiff.v2` resolves to skiff's shim.
//! - [`Options::private_mounts`] runs containerd (and so its shims and
//!   containers) in a private mount namespace with the cgroup2 hierarchy
//!   at /sys/fs/cgroup/unified unmounted: crun 1.8 refuses the hybrid
//!   layout of this host otherwise.
//! - [`Containerd::import_busybox`] builds an OCI image from the fixture
//!   rootfs and imports it (containerd unpacks it into overlayfs).
//! - On drop it reports (by panicking, unless the test already panics)
//!   what the test left: tasks, containers, shim processes, container
//!   processes, shim sockets under /run/containerd/s, runtime state,
//!   mounts, cgroups; then it removes all of it by force.
#![allow(dead_code)]

use crate::common::*;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long one `ctr` call or one wait for a state may take.
pub const T: Duration = Duration::from_secs(30);
/// The busybox image [`Containerd::import_busybox`] imports.
pub const IMAGE: &str = "docker.io/library/bb:latest";
/// Where containerd 1.6 and its shims put shim sockets (a constant there).
pub const SHIM_SOCKET_DIR: &str = "/run/containerd/s";

pub fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether Debian's containerd and ctr are installed.
pub fn have_containerd() -> bool {
    Command::new("containerd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("ctr")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// A prerequisite is missing: print why and return true (the test then
/// returns early), or fail when CI=true (the one rule of tests/common).
#[track_caller]
pub fn skip(why: &str) -> bool {
    !crate::common::require(false, why)
}

fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn append_bytes(b: &mut tar::Builder<fs::File>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data)
        .expect("append to image tar");
}

/// An OCI image layout tar (oci-layout, index.json, blobs) of `rootfs` as
/// one gzip layer, tagged `latest`; `config` is the image config's
/// `config` object (Env, Cmd, Entrypoint...).
pub fn build_image(rootfs: &Path, config: &str, out: &Path) {
    let mut layer = Vec::new();
    {
        let mut b = tar::Builder::new(&mut layer);
        b.follow_symlinks(false);
        let mut top: Vec<_> = fs::read_dir(rootfs)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        top.sort();
        for p in top {
            let name = p.file_name().unwrap().to_owned();
            if p.symlink_metadata().unwrap().is_dir() {
                b.append_dir_all(&name, &p).expect("append dir to layer");
            } else {
                b.append_path_with_name(&p, &name)
                    .expect("append file to layer");
            }
        }
        b.finish().unwrap();
    }
    let diff_id = sha256_hex(&layer);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer).unwrap();
    let layer_gz = gz.finish().unwrap();
    let layer_digest = sha256_hex(&layer_gz);
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{config},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff_id}"]}}}}"#,
        arch = goarch()
    );
    let config_digest = sha256_hex(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer_gz.len()
    );
    let manifest_digest = sha256_hex(manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{manifest_digest}","size":{},"platform":{{"architecture":"{}","os":"linux"}},"annotations":{{"org.opencontainers.image.ref.name":"latest"}}}}]}}"#,
        manifest.len(),
        goarch()
    );
    let mut b = tar::Builder::new(fs::File::create(out).unwrap());
    append_bytes(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    append_bytes(&mut b, "index.json", index.as_bytes());
    for (digest, data) in [
        (&manifest_digest, manifest.as_bytes()),
        (&config_digest, config.as_bytes()),
        (&layer_digest, &layer_gz[..]),
    ] {
        append_bytes(&mut b, &format!("blobs/sha256/{digest}"), data);
    }
    b.finish().unwrap();
}

/// The image config of the busybox image: a shell.
pub const BUSYBOX_CONFIG: &str =
    r#"{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]}"#;

/// Quote `s` for /bin/sh.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

// ---------------------------------------------------------------------------
// ctr

/// The result of one `ctr` call.
pub struct CtrOut {
    pub cmd: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CtrOut {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn describe(&self) -> String {
        format!(
            "`{}` -> {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd, self.status, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.status.success(), "ctr failed: {}", self.describe());
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

/// A `ctr` (or other) process running in the background; killed (it is
/// our child) if still running when dropped.
pub struct CtrBg {
    pub child: Child,
    pub cmd: String,
    pub out: PathBuf,
    pub err: PathBuf,
}

impl CtrBg {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stdout_so_far(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr_so_far(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Whether the process has finished.
    pub fn done(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait for the process; kills it and panics after `timeout`.
    #[track_caller]
    pub fn wait(mut self, timeout: Duration) -> CtrOut {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait for ctr") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "`{}` did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.cmd,
                    self.stdout_so_far(),
                    self.stderr_so_far()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        CtrOut {
            cmd: self.cmd.clone(),
            status,
            stdout: self.stdout_so_far(),
            stderr: self.stderr_so_far(),
        }
    }

    /// Stop the process (SIGTERM, then SIGKILL) and return its output.
    pub fn stop(mut self) -> CtrOut {
        // SAFETY: kill(2) on our own child, not reaped yet (we hold it).
        unsafe {
            libc::kill(self.pid(), libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break self.child.wait().expect("reap");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        CtrOut {
            cmd: self.cmd.clone(),
            status,
            stdout: self.stdout_so_far(),
            stderr: self.stderr_so_far(),
        }
    }
}

impl Drop for CtrBg {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// The daemon

/// How to set up the instance.
#[derive(Default, Clone)]
pub struct Options {
    /// The CRI plugin's config (TOML lines under
    /// `[plugins."io.containerd.grpc.v1.cri"]`, headers included); None:
    /// the plugin is disabled.
    pub cri: Option<String>,
    /// Run containerd in a private mount namespace without the cgroup2
    /// mount at /sys/fs/cgroup/unified (for crun on this hybrid host).
    pub private_mounts: bool,
    /// The containerd namespace the test works in (default: a unique one).
    pub namespace: Option<String>,
    /// The cgroup (relative to each hierarchy) under which the test puts
    /// its containers (default: `/NS`, where ctr's containers go).
    pub cgroup_parent: Option<String>,
}

/// Whether crun can run containers here when containerd runs with
/// [`Options::private_mounts`]: crun 1.8 installed and `unshare -m` works.
pub fn crun_usable() -> Result<(), String> {
    if !Path::new("/usr/bin/crun").is_file() {
        return Err("/usr/bin/crun is not installed".into());
    }
    let st = Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .status();
    match st {
        Ok(s) if s.success() => Ok(()),
        other => Err(format!("`unshare -m` does not work here: {other:?}")),
    }
}

/// A containerd of our own.
pub struct Containerd<'a> {
    pub ctx: &'a Ctx,
    /// Everything of this instance lives under here.
    pub dir: PathBuf,
    /// containerd's gRPC socket (`ctr -a`), also the shims' `-address`.
    pub sock: String,
    pub ns: String,
    /// Where runtimes keep their state (`--runc-root`, skiff's `root`).
    pub runtime_root: PathBuf,
    /// Where ctr puts its stdio fifos (`--fifo-dir`).
    pub fifo_dir: PathBuf,
    /// A dir on containerd's PATH holding `containerd-shim-skiff-v2`.
    pub bin_dir: PathBuf,
    pub config: PathBuf,
    opts: Options,
    child: Option<Child>,
    n: Cell<u32>,
    /// Container ids the test used, for the shim socket checks.
    ids: RefCell<BTreeSet<String>>,
    /// Processes the instance started that must be gone at the end.
    pids: RefCell<Vec<(i32, u64)>>,
    starts: Cell<u32>,
}

impl<'a> Containerd<'a> {
    pub fn start(ctx: &'a Ctx) -> Containerd<'a> {
        Containerd::start_with(ctx, Options::default())
    }

    pub fn start_with(ctx: &'a Ctx, opts: Options) -> Containerd<'a> {
        let dir = ctx.path("ctd");
        let bin_dir = dir.join("bin");
        let runtime_root = dir.join("runtime-root");
        let fifo_dir = dir.join("fifo");
        for d in [&dir, &bin_dir, &runtime_root, &fifo_dir] {
            fs::create_dir_all(d).unwrap();
        }
        symlink(skiff_binary(), bin_dir.join("containerd-shim-skiff-v2"))
            .expect("symlink containerd-shim-skiff-v2 -> skiff");
        let sock = dir.join("c.sock").display().to_string();
        let disabled = if opts.cri.is_some() {
            String::new()
        } else {
            r#"disabled_plugins = ["io.containerd.grpc.v1.cri"]"#.to_string()
        };
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
{disabled}

[grpc]
  address = "{sock}"

[debug]
  level = "info"

{cri}
"#,
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            cri = opts.cri.as_deref().unwrap_or(""),
        );
        let config_path = dir.join("config.toml");
        fs::write(&config_path, config).unwrap();
        let ns = opts
            .namespace
            .clone()
            .unwrap_or_else(|| format!("skt-{}-{}", std::process::id(), ctx_seq(ctx)));
        let mut ctd = Containerd {
            ctx,
            dir,
            sock,
            ns,
            runtime_root,
            fifo_dir,
            bin_dir,
            config: config_path,
            opts,
            child: None,
            n: Cell::new(0),
            ids: RefCell::new(BTreeSet::new()),
            pids: RefCell::new(Vec::new()),
            starts: Cell::new(0),
        };
        ctd.launch();
        ctd
    }

    /// Start the daemon process and wait until it answers.
    fn launch(&mut self) {
        assert!(self.child.is_none(), "containerd is already running");
        let i = self.starts.get();
        self.starts.set(i + 1);
        let log = fs::File::create(self.dir.join(format!("containerd{i}.log"))).unwrap();
        let path = format!(
            "{}:{}",
            self.bin_dir.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        );
        let mut cmd = if self.opts.private_mounts {
            // unshare and sh exec containerd: the child's pid is containerd's.
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
                .arg(
                    "if grep -q ' /sys/fs/cgroup/unified ' /proc/self/mounts; then \
                       umount /sys/fs/cgroup/unified || exit 1; fi; exec containerd --config \"$0\"",
                )
                .arg(&self.config);
            c
        } else {
            let mut c = Command::new("containerd");
            c.arg("--config").arg(&self.config);
            c
        };
        let child = cmd
            .env("PATH", path)
            .env("SKIFF_TEST_MARK", &self.ctx.mark)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        self.child = Some(child);
        let deadline = Instant::now() + T;
        loop {
            if Path::new(&self.sock).exists() && self.try_ctr(&["version"]).status.success() {
                break;
            }
            let exited = self.child.as_mut().unwrap().try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "containerd did not come up ({exited:?}): {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// containerd's log (all of its runs).
    pub fn log(&self) -> String {
        (0..self.starts.get())
            .map(|i| {
                fs::read_to_string(self.dir.join(format!("containerd{i}.log"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("--- restarted ---\n")
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// `kill -9` the daemon (its shims and containers keep running).
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("containerd is running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Start the daemon again after [`Containerd::kill9`], same config.
    pub fn restart(&mut self) {
        // containerd refuses to start while the old socket file exists? It
        // removes it itself; nothing to do here.
        self.launch();
    }

    /// Remember a container id (for the leftover checks).
    pub fn track(&self, id: &str) {
        self.ids.borrow_mut().insert(id.to_string());
    }

    /// Remember a process that must be gone at the end (a task's pid).
    pub fn track_pid(&self, pid: i32) {
        if let Some(st) = proc_starttime(pid) {
            self.pids.borrow_mut().push((pid, st));
        }
        self.ctx.track_pid(pid);
    }

    fn ctr_command(&self, args: &[&str]) -> (Command, String, PathBuf, PathBuf) {
        let i = self.n.get();
        self.n.set(i + 1);
        let out = self.dir.join(format!("ctr{i}.out"));
        let err = self.dir.join(format!("ctr{i}.err"));
        let shown = format!("ctr -n {} {}", self.ns, args.join(" "));
        let mut cmd = Command::new("ctr");
        cmd.args(["-a", &self.sock, "-n", &self.ns])
            .args(args)
            .env("SKIFF_TEST_MARK", &self.ctx.mark)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap());
        (cmd, shown, out, err)
    }

    /// `ctr -a SOCK -n NS ARGS` in the background.
    pub fn ctr_bg(&self, args: &[&str]) -> CtrBg {
        let (mut cmd, shown, out, err) = self.ctr_command(args);
        let child = cmd.spawn().expect("run ctr");
        CtrBg {
            child,
            cmd: shown,
            out,
            err,
        }
    }

    /// `ctr -a SOCK -n NS ARGS`; fails the test after [`T`].
    #[track_caller]
    pub fn ctr(&self, args: &[&str]) -> CtrOut {
        self.ctr_bg(args).wait(T)
    }

    /// [`Containerd::ctr`] that never panics (for clean-up and polling).
    pub fn try_ctr(&self, args: &[&str]) -> CtrOut {
        let mut bg = self.ctr_bg(args);
        let deadline = Instant::now() + T;
        while !bg.done() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if !bg.done() {
            let _ = bg.child.kill();
        }
        let status = bg.child.wait().expect("reap ctr");
        CtrOut {
            cmd: bg.cmd.clone(),
            status,
            stdout: bg.stdout_so_far(),
            stderr: bg.stderr_so_far(),
        }
    }

    /// The ctr command line (for script(1)), with the global flags.
    pub fn ctr_shell(&self, args: &[&str]) -> String {
        let mut s = format!(
            "exec ctr -a {} -n {}",
            sh_quote(&self.sock),
            sh_quote(&self.ns)
        );
        for a in args {
            s.push(' ');
            s.push_str(&sh_quote(a));
        }
        s
    }

    /// Import an image tar built by [`build_image`] under `base/NAME:latest`.
    #[track_caller]
    pub fn import_image(&self, rootfs: &Path, config: &str, base: &str) -> String {
        let tar = self.dir.join(format!(
            "{}.tar",
            base.rsplit('/').next().unwrap_or("image")
        ));
        build_image(rootfs, config, &tar);
        self.ctr(&[
            "images",
            "import",
            "--base-name",
            base,
            tar.to_str().unwrap(),
        ])
        .ok();
        let reference = format!("{base}:latest");
        let images = self.ctr(&["images", "ls", "-q"]);
        assert!(
            images.stdout.lines().any(|l| l == reference),
            "{reference} not imported: {}",
            images.stdout
        );
        reference
    }

    /// Import the busybox image as [`IMAGE`].
    #[track_caller]
    pub fn import_busybox(&self) {
        self.import_image(busybox_rootfs(), BUSYBOX_CONFIG, "docker.io/library/bb");
    }

    /// (PID, STATUS) of `id` in `ctr task ls` (None: no task).
    pub fn task_status(&self, id: &str) -> Option<(i32, String)> {
        let out = self.try_ctr(&["task", "ls"]);
        out.stdout.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id) && f.len() >= 3)
                .then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
        })
    }

    #[track_caller]
    pub fn wait_task_status(&self, id: &str, want: &str) -> i32 {
        let mut last = None;
        let ok = wait_until(T, || {
            last = self.task_status(id);
            last.as_ref().is_some_and(|(_, s)| s == want)
        });
        assert!(ok, "task {id} is {last:?}, wanted {want}");
        last.unwrap().0
    }

    /// Ids listed by `ctr task ls -q` / `ctr container ls -q`.
    pub fn task_ids(&self) -> Vec<String> {
        words(&self.try_ctr(&["task", "ls", "-q"]).stdout)
    }

    pub fn container_ids(&self) -> Vec<String> {
        words(&self.try_ctr(&["container", "ls", "-q"]).stdout)
    }

    /// The shim bundle containerd makes for `id`.
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.dir
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.ns)
            .join(id)
    }

    /// The shim socket containerd's convention gives `id` (or its group):
    /// sha256 of `ADDRESS/NS/ID`.
    pub fn shim_socket(&self, id: &str) -> PathBuf {
        let key = format!("{}/{}/{}", self.sock, self.ns, id);
        Path::new(SHIM_SOCKET_DIR).join(sha256_hex(key.as_bytes()))
    }

    /// This instance's live shims: processes started with `-address
    /// SOCK`, those named by a bundle's `shim.pid` (and carrying our
    /// mark, which containerd passes on in the environment), and those
    /// holding the socket a bundle's `address` file names.
    pub fn shim_pids(&self) -> Vec<i32> {
        let mut pids: BTreeSet<i32> = processes_with_args(&["-address", &self.sock])
            .into_iter()
            .collect();
        let mark = format!("SKIFF_TEST_MARK={}\0", self.ctx.mark);
        if let Ok(rd) = fs::read_dir(self.bundles()) {
            for e in rd.flatten() {
                let b = e.path();
                if let Some(p) = fs::read_to_string(b.join("shim.pid"))
                    .ok()
                    .and_then(|t| t.trim().parse::<i32>().ok())
                {
                    let env = fs::read(format!("/proc/{p}/environ")).unwrap_or_default();
                    let alive = !matches!(proc_state_of(p), Some('Z') | Some('X') | None);
                    if alive && env.windows(mark.len()).any(|w| w == mark.as_bytes()) {
                        pids.insert(p);
                    }
                }
                if let Ok(addr) = fs::read_to_string(b.join("address")) {
                    let path = addr.trim().trim_start_matches("unix://").to_string();
                    pids.extend(socket_holders(Path::new(&path)));
                }
            }
        }
        pids.into_iter().collect()
    }

    /// The shim processes serving `id` (by their `-id` argument, or
    /// holding the socket containerd's convention gives `id`).
    pub fn shim_pids_for(&self, id: &str) -> Vec<i32> {
        let mut pids: BTreeSet<i32> = processes_with_args(&["-address", &self.sock])
            .into_iter()
            .filter(|&p| args_contain(&proc_args(p), &["-id", id]))
            .collect();
        pids.extend(socket_holders(&self.shim_socket(id)));
        pids.into_iter().collect()
    }

    /// For a failure message: each shim's threads (state, wait channel)
    /// and open files, and the processes of the task's cgroup.
    pub fn describe_shims(&self) -> String {
        let mut out = String::new();
        for p in self.shim_pids() {
            out.push_str(&format!("shim {p}: {}\n", proc_cmdline(p)));
            if let Ok(rd) = fs::read_dir(format!("/proc/{p}/task")) {
                for t in rd.flatten() {
                    let stat = fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                    let state = stat
                        .rsplit(") ")
                        .next()
                        .and_then(|r| r.split(' ').next())
                        .unwrap_or("?")
                        .to_string();
                    let wchan = fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
                    // The syscall it sits in (number and first arguments).
                    let syscall = fs::read_to_string(t.path().join("syscall")).unwrap_or_default();
                    let syscall: Vec<&str> = syscall.split_whitespace().take(4).collect();
                    let comm = fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                    out.push_str(&format!(
                        "  thread {} {} {state} wchan={wchan} syscall={}\n",
                        t.file_name().to_string_lossy(),
                        comm.trim(),
                        syscall.join(" ")
                    ));
                }
            }
            if let Ok(rd) = fs::read_dir(format!("/proc/{p}/fd")) {
                let mut fds: Vec<(u32, String)> = rd
                    .flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().parse().ok()?;
                        let l = fs::read_link(e.path()).ok()?;
                        Some((n, l.display().to_string()))
                    })
                    .collect();
                fds.sort();
                for (n, l) in fds {
                    out.push_str(&format!("  fd {n} -> {l}\n"));
                }
            }
        }
        for p in self.cgroup_pids() {
            let wchan = fs::read_to_string(format!("/proc/{p}/wchan")).unwrap_or_default();
            let fd0 = fs::read_link(format!("/proc/{p}/fd/0")).unwrap_or_default();
            out.push_str(&format!(
                "container process {p}: {} state {:?} wchan={wchan} fd0 -> {}\n",
                proc_cmdline(p),
                proc_state_of(p),
                fd0.display()
            ));
        }
        out
    }

    /// Where containerd keeps the shim bundles of our namespace.
    pub fn bundles(&self) -> PathBuf {
        self.dir
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.ns)
    }

    /// The cgroup parent of this instance's containers, relative.
    pub fn cgroup_parent(&self) -> String {
        let p = self.opts.cgroup_parent.as_deref().unwrap_or(&self.ns);
        p.trim_start_matches('/').to_string()
    }

    /// Cgroup dirs of this instance's namespace (`/NS/...`, containerd's
    /// default cgroup path for ctr's containers), deepest first.
    pub fn cgroups(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for h in cgroup_mounts() {
            collect_dirs(&h.join(self.cgroup_parent()), &mut found);
        }
        found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        found
    }

    /// Processes in this instance's cgroups (containers).
    pub fn cgroup_pids(&self) -> Vec<i32> {
        let mut pids = BTreeSet::new();
        for cg in self.cgroups() {
            let procs = fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
            pids.extend(
                procs
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
        pids.into_iter().collect()
    }

    /// Mounts of the daemon's mount namespace under our dir (its own
    /// namespace when it runs with private mounts).
    pub fn daemon_mounts(&self) -> Vec<String> {
        match (self.opts.private_mounts, self.pid()) {
            (true, Some(pid)) => mounts_in(pid, &self.dir),
            _ => mounts_under(&self.dir),
        }
    }

    /// What is left of container `id` after `ctr task rm` and `ctr
    /// container rm`: empty when nothing.
    pub fn leftovers_of(&self, id: &str) -> Vec<String> {
        let mut left = Vec::new();
        if self.task_ids().iter().any(|t| t == id) {
            left.push(format!("task {id}"));
        }
        if self.container_ids().iter().any(|c| c == id) {
            left.push(format!("container {id}"));
        }
        let bundle = self.bundle(id);
        if bundle.exists() {
            left.push(format!("bundle {}", bundle.display()));
        }
        let sock = self.shim_socket(id);
        if sock.exists() {
            left.push(format!("shim socket {}", sock.display()));
        }
        for p in self.shim_pids_for(id) {
            left.push(format!("shim process {p} ({})", proc_cmdline(p)));
        }
        let state = self.runtime_root.join(&self.ns).join(id);
        if state.exists() {
            left.push(format!("runtime state {}", state.display()));
        }
        for m in self.daemon_mounts() {
            if m.contains(&format!("/{id}/")) || m.ends_with(&format!("/{id}")) {
                left.push(format!("mount {m}"));
            }
        }
        for h in cgroup_mounts() {
            let cg = h.join(self.cgroup_parent()).join(id);
            if cg.exists() {
                left.push(format!("cgroup {}", cg.display()));
            }
        }
        left
    }

    /// Assert that nothing is left of `id` (polling a little: a shim may
    /// still be on its way out after answering Shutdown).
    #[track_caller]
    pub fn assert_gone(&self, id: &str) {
        let mut left = Vec::new();
        wait_until(Duration::from_secs(5), || {
            left = self.leftovers_of(id);
            left.is_empty()
        });
        assert!(
            left.is_empty(),
            "left after removing {id}:\n  {}",
            left.join("\n  ")
        );
    }

    /// Everything the instance holds now (tasks, containers, processes,
    /// sockets, state, mounts, cgroups); the /NS cgroup parents that
    /// containerd leaves behind empty do not count.
    fn leftovers_now(&self) -> Vec<String> {
        let mut left = Vec::new();
        let mut ids: BTreeSet<String> = self.ids.borrow().clone();
        if self.child.is_some() {
            for t in self.task_ids() {
                left.push(format!("task {t}"));
                ids.insert(t);
            }
            for c in self.container_ids() {
                left.push(format!("container {c}"));
                ids.insert(c);
            }
        }
        if let Ok(rd) = fs::read_dir(self.bundles()) {
            for e in rd.flatten() {
                left.push(format!("bundle {}", e.path().display()));
                ids.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
        for id in &ids {
            let sock = self.shim_socket(id);
            if sock.exists() {
                left.push(format!("shim socket {} ({id})", sock.display()));
            }
        }
        for p in self.shim_pids() {
            left.push(format!("shim process {p} ({})", proc_cmdline(p)));
        }
        for p in self.cgroup_pids() {
            left.push(format!("container process {p} ({})", proc_cmdline(p)));
        }
        for &(p, st) in self.pids.borrow().iter() {
            if process_alive(p, st) {
                left.push(format!("task process {p} ({})", proc_cmdline(p)));
            }
        }
        if let Ok(rd) = fs::read_dir(self.runtime_root.join(&self.ns)) {
            for e in rd.flatten() {
                left.push(format!("runtime state {}", e.path().display()));
            }
        }
        // containerd holds no mounts of its own at rest: rootfs, the CRI
        // sandboxes' /dev/shm... belong to containers.
        for m in self.daemon_mounts() {
            left.push(format!("mount {m}"));
        }
        let top: Vec<PathBuf> = cgroup_mounts()
            .iter()
            .map(|h| h.join(self.cgroup_parent()))
            .collect();
        for cg in self.cgroups() {
            if !top.contains(&cg) {
                left.push(format!("cgroup {}", cg.display()));
            }
        }
        left
    }

    /// Remove by force whatever is left, stop the daemon; returns what
    /// was left before.
    pub fn stop(&mut self) -> Vec<String> {
        let left = self.leftovers_now();
        if self.child.is_some() {
            for id in self.task_ids() {
                self.try_ctr(&["task", "kill", "-a", "-s", "KILL", &id]);
                wait_until(Duration::from_secs(5), || {
                    self.task_status(&id).is_none_or(|(_, s)| s == "STOPPED")
                });
                self.try_ctr(&["task", "delete", "-f", &id]);
            }
            for id in self.container_ids() {
                self.try_ctr(&["container", "delete", &id]);
            }
        }
        // The daemon lives in its own mount namespace: look at its mounts
        // before it goes.
        let ns_mounts = self.daemon_mounts();
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on containerd, our own unreaped child.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Shims outlive the daemon; then the containers they held.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut pids = self.shim_pids();
            pids.extend(self.cgroup_pids());
            pids.extend(
                self.pids
                    .borrow()
                    .iter()
                    .filter(|(p, st)| process_alive(*p, *st))
                    .map(|(p, _)| *p),
            );
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for p in pids {
                // SAFETY: kill(2) of a shim of this instance (its command
                // line names our socket) or a process in our cgroups.
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut ids: BTreeSet<String> = self.ids.borrow().clone();
        if let Ok(rd) = fs::read_dir(self.bundles()) {
            ids.extend(
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
        for id in &ids {
            let _ = fs::remove_file(self.shim_socket(id));
        }
        let _ = fs::remove_dir_all(&self.runtime_root);
        let mut mounts = mounts_under(&self.dir);
        if !self.opts.private_mounts {
            mounts.extend(ns_mounts);
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        mounts.dedup();
        for m in mounts {
            if let Ok(c) = std::ffi::CString::new(m) {
                // SAFETY: umount2 of a mount point under our test dir.
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
        for cg in self.cgroups() {
            for _ in 0..100 {
                if fs::remove_dir(&cg).is_ok() || !cg.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        left
    }
}

impl Drop for Containerd<'_> {
    fn drop(&mut self) {
        let left = self.stop();
        if !left.is_empty() && !std::thread::panicking() {
            panic!(
                "the containerd instance was left holding:\n  {}\n--- containerd log ---\n{}",
                left.join("\n  "),
                self.log()
            );
        }
    }
}

fn ctx_seq(ctx: &Ctx) -> String {
    // The mark is unique per test: its last part is a sequence number.
    ctx.mark.rsplit('-').next().unwrap_or("0").to_string()
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

/// The arguments of process `pid`.
pub fn proc_args(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn args_contain(args: &[String], seq: &[&str]) -> bool {
    args.windows(seq.len())
        .any(|w| w.iter().zip(seq).all(|(a, b)| a == b))
}

/// Live processes (not zombies) whose arguments hold `seq` in a row.
pub fn processes_with_args(seq: &[&str]) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if matches!(proc_state_of(pid), Some('Z') | Some('X') | None) {
            continue;
        }
        if args_contain(&proc_args(pid), seq) {
            out.push(pid);
        }
    }
    out
}

/// Live processes holding a unix socket bound at `path` (from
/// /proc/net/unix and the processes' fds).
pub fn socket_holders(path: &Path) -> Vec<i32> {
    let path = path.to_string_lossy();
    let table = fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let inodes: BTreeSet<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[7] == path).then(|| format!("socket:[{}]", f[6]))
        })
        .collect();
    let mut out = Vec::new();
    if inodes.is_empty() {
        return out;
    }
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if matches!(proc_state_of(pid), Some('Z') | Some('X') | None) {
            continue;
        }
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        if fds.flatten().any(|fd| {
            fs::read_link(fd.path()).is_ok_and(|l| inodes.contains(l.to_string_lossy().as_ref()))
        }) {
            out.push(pid);
        }
    }
    out
}

/// Mount points under `dir` in the mount namespace of `pid`.
pub fn mounts_in(pid: i32, dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    let info = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m == &dir || m.starts_with(&format!("{dir}/")))
        .collect()
}

/// Peak resident set size (VmHWM) of `pid` in KiB.
pub fn vm_hwm_kib(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
