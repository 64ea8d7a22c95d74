//! The skiff shim under Debian's containerd 1.6: a quick `ctr run --rm`
//! through a private containerd with `--runtime io.containerd.skiff.v2`,
//! the shim's command line on its own (-v, -info, start/delete errors),
//! and the shim's memory. The thorough suite is tests/shim_containerd.rs.

mod common;

use common::*;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);
const IMAGE: &str = "docker.io/library/bb:latest";
const RUNTIME: &str = "io.containerd.skiff.v2";

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
/// one gzip layer, tagged `latest`.
fn build_image(rootfs: &Path, out: &Path) {
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
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff_id}"]}}}}"#,
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

struct CtrOut {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    cmd: String,
}

impl CtrOut {
    #[track_caller]
    fn ok(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "`{}` failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A containerd of our own, stopped (by its pid) on drop.
struct Containerd<'a> {
    ctx: &'a Ctx,
    dir: PathBuf,
    sock: String,
    ns: String,
    child: Option<Child>,
    n: std::cell::Cell<u32>,
}

impl<'a> Containerd<'a> {
    fn start(ctx: &'a Ctx) -> Containerd<'a> {
        let dir = ctx.path("ctd");
        fs::create_dir_all(&dir).unwrap();
        let sock = ctx.path("c.sock").display().to_string();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{sock}"

[debug]
  level = "info"
"#,
            root = dir.join("root").display(),
            state = dir.join("state").display(),
        );
        fs::write(dir.join("config.toml"), config).unwrap();
        // containerd finds `containerd-shim-skiff-v2` on its PATH.
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(skiff_binary(), bin.join("containerd-shim-skiff-v2")).unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("PATH", path)
            .env("SKIFF_TEST_MARK", &ctx.mark)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let ctd = Containerd {
            ctx,
            dir,
            sock,
            ns: format!("skiff-test-{}", std::process::id()),
            child: Some(child),
            n: std::cell::Cell::new(0),
        };
        let deadline = Instant::now() + T;
        loop {
            if Path::new(&ctd.sock).exists() && ctd.ctr(&["version"]).code == Some(0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                fs::read_to_string(ctd.dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ctd
    }

    #[allow(dead_code)]
    fn runc_root(&self) -> PathBuf {
        self.dir.join("runc-root")
    }

    /// `ctr -a SOCK -n NS ARGS`, with a timeout.
    fn ctr(&self, args: &[&str]) -> CtrOut {
        let i = self.n.get();
        self.n.set(i + 1);
        let out = self.dir.join(format!("ctr{i}.out"));
        let err = self.dir.join(format!("ctr{i}.err"));
        let cmd = format!("ctr -n {} {}", self.ns, args.join(" "));
        let mut child = Command::new("ctr")
            .args(["-a", &self.sock, "-n", &self.ns])
            .args(args)
            .env("SKIFF_TEST_MARK", &self.ctx.mark)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .expect("run ctr");
        let deadline = Instant::now() + T;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{cmd}` did not finish within {T:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        CtrOut {
            code: status.code(),
            stdout: fs::read_to_string(&out).unwrap_or_default(),
            stderr: fs::read_to_string(&err).unwrap_or_default(),
            cmd,
        }
    }

    /// The STATUS column of `ctr task ls` for `id` (None: no task).
    fn task_status(&self, id: &str) -> Option<(i32, String)> {
        let out = self.ctr(&["task", "ls"]);
        out.stdout.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
        })
    }

    #[track_caller]
    fn wait_task_status(&self, id: &str, want: &str) -> i32 {
        let mut last = None;
        let ok = wait_until(T, || {
            last = self.task_status(id);
            last.as_ref().is_some_and(|(_, s)| s == want)
        });
        assert!(ok, "task {id} is {last:?}, wanted {want}");
        last.unwrap().0
    }

    /// Remove whatever a failed test left in our namespace, then stop
    /// containerd and unmount what it mounted under the test dir.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_none() {
            for id in self.ctr(&["task", "ls", "-q"]).stdout.split_whitespace() {
                self.ctr(&["task", "kill", "-s", "KILL", id]);
                wait_until(Duration::from_secs(5), || {
                    self.task_status(id).is_none_or(|(_, s)| s == "STOPPED")
                });
                self.ctr(&["task", "delete", "-f", id]);
            }
            for id in self
                .ctr(&["container", "ls", "-q"])
                .stdout
                .split_whitespace()
            {
                self.ctr(&["container", "delete", id]);
            }
            // SAFETY: kill(2) on containerd, our own unreaped child.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let mut mounts = mounts_under(&self.dir);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            if let Ok(c) = std::ffi::CString::new(m) {
                // SAFETY: umount2 of a mount point under our test dir.
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
    }
}

impl Drop for Containerd<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}

fn have_containerd() -> bool {
    if Command::new("containerd").arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "containerd is missing (scripts/ensure-deps test installs it)"
    );
    eprintln!("skipped: no containerd here (scripts/ensure-deps test installs it)");
    false
}

fn import_image(ctx: &Ctx, ctd: &Containerd) {
    let tar = ctx.path("bb.tar");
    build_image(busybox_rootfs(), &tar);
    ctd.ctr(&[
        "images",
        "import",
        "--base-name",
        "docker.io/library/bb",
        tar.to_str().unwrap(),
    ])
    .ok();
}

/// The pids of running shims whose command line names our namespace.
fn shims_of(ns: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = proc_cmdline(pid);
        if cmd.contains("containerd-shim-skiff-v2") && cmd.contains(ns) {
            found.push(pid);
        }
    }
    found
}

fn status_kb(pid: i32, key: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
fn ctr_run_rm_through_the_skiff_shim() {
    let ctx = Ctx::new("shim-run");
    if !have_containerd() {
        return;
    }
    let mut ctd = Containerd::start(&ctx);
    let ns = ctd.ns.clone();
    let _cg = CgroupDirs {
        rel: vec![format!("/{ns}")],
    };
    import_image(&ctx, &ctd);

    // Output on both streams, the exit status, nothing left.
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        IMAGE,
        "r1",
        "sh",
        "-c",
        "echo hello from the shim; echo on-stderr >&2; exit 3",
    ]);
    let log = || fs::read_to_string(ctd.dir.join("containerd.log")).unwrap_or_default();
    assert_eq!(
        out.code,
        Some(3),
        "{} {}\n{}",
        out.stdout,
        out.stderr,
        log()
    );
    assert_eq!(out.stdout, "hello from the shim\n");
    assert!(out.stderr.contains("on-stderr"), "{}", out.stderr);
    assert!(ctd.ctr(&["container", "ls", "-q"]).stdout.trim().is_empty());
    assert!(
        wait_until(Duration::from_secs(5), || shims_of(&ns).is_empty()),
        "shim still running: {:?}",
        shims_of(&ns)
    );

    // A long-running task: State, Pids, Exec, Kill, Wait, Delete.
    ctd.ctr(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        "r2",
        "sleep",
        "1000",
    ])
    .ok();
    let pid = ctd.wait_task_status("r2", "RUNNING");
    ctx.track_pid(pid);
    let shims = shims_of(&ns);
    assert_eq!(shims.len(), 1, "{shims:?}");
    let shim = shims[0];
    ctx.track_pid(shim);
    let out = ctd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "r2",
        "sh",
        "-c",
        "echo in-exec; exit 5",
    ]);
    assert_eq!(out.code, Some(5), "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "in-exec\n");
    let ps = ctd.ctr(&["task", "ps", "r2"]);
    ps.ok();
    assert!(ps.stdout.contains(&pid.to_string()), "{}", ps.stdout);
    let hwm = status_kb(shim, "VmHWM:").unwrap_or(0);
    let rss = status_kb(shim, "VmRSS:").unwrap_or(0);
    let anon = status_kb(shim, "RssAnon:").unwrap_or(0);
    let threads = status_kb(shim, "Threads:").unwrap_or(0);
    eprintln!(
        "shim {shim}: VmHWM {hwm} kB, VmRSS {rss} kB (anon {anon} kB), {threads} threads, one running container"
    );
    if std::env::var_os("SKIFF_SHIM_SMAPS").is_some() {
        eprintln!(
            "{}",
            fs::read_to_string(format!("/proc/{shim}/smaps")).unwrap_or_default()
        );
    }
    ctd.ctr(&["task", "kill", "-s", "KILL", "r2"]).ok();
    ctd.wait_task_status("r2", "STOPPED");
    ctd.ctr(&["task", "delete", "r2"]).ok();
    ctd.ctr(&["container", "delete", "r2"]).ok();
    assert!(
        wait_until(Duration::from_secs(5), || shims_of(&ns).is_empty()),
        "shim still running after the last task: {:?}",
        shims_of(&ns)
    );
    let state: Vec<PathBuf> = fs::read_dir(Path::new("/run/containerd/runc").join(&ns))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(state.is_empty(), "runtime state left: {state:?}");
    let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(&ns));
    for id in ["r1", "r2"] {
        let dirs = CgroupDirs::existing(&format!("/{ns}/{id}"));
        assert!(dirs.is_empty(), "cgroups left: {dirs:?}");
    }
    for hierarchy in cgroup_mounts() {
        let _ = fs::remove_dir(hierarchy.join(&ns));
    }
    ctd.stop();
    assert!(
        mounts_under(&ctx.dir).is_empty(),
        "{:?}",
        mounts_under(&ctx.dir)
    );
}

fn shim(args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(skiff_binary())
        .arg("containerd-shim-skiff-v2")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn shim_command_line() {
    let out = shim(&["-v"], b"");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Version"));
    // -info: a protobuf RuntimeInfo; field 1 (name) first.
    let out = shim(&["-info"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = b"io.containerd.skiff.v2";
    assert_eq!(out.stdout[0], 0x0a);
    assert_eq!(&out.stdout[2..2 + name.len()], name);
    // A bad flag or action is an error naming it.
    let out = shim(&["-namespace", "n", "-id", "x", "frobnicate"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
    // delete of a container nobody knows: a DeleteResponse with 137.
    let dir = std::env::temp_dir().join(format!("skiff-shim-del-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let out = shim(
        &[
            "-namespace",
            "skiff-none",
            "-address",
            "/nonexistent.sock",
            "-publish-binary",
            "/bin/false",
            "-id",
            "nobody",
            "-bundle",
            dir.to_str().unwrap(),
            "delete",
        ],
        b"",
    );
    let _ = fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // field 2 (exit_status) = 137 as a varint: 0x10 0x89 0x01
    assert!(
        out.stdout.windows(3).any(|w| w == [0x10, 0x89, 0x01]),
        "{:?}",
        out.stdout
    );
}

#[test]
fn events_in_order_and_oom() {
    let ctx = Ctx::new("shim-events");
    if !have_containerd() {
        return;
    }
    let mut ctd = Containerd::start(&ctx);
    let ns = ctd.ns.clone();
    let _cg = CgroupDirs {
        rel: vec![format!("/{ns}")],
    };
    import_image(&ctx, &ctd);
    let events_out = ctx.path("events.out");
    let mut events = Command::new("ctr")
        .args(["-a", &ctd.sock, "events"])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&events_out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // A shell that doubles a string until the OOM killer ends it.
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--memory-limit",
        "16777216",
        IMAGE,
        "oom1",
        "sh",
        "-c",
        "x=0123456789; while :; do x=$x$x; done",
    ]);
    assert_eq!(out.code, Some(137), "{} {}", out.stdout, out.stderr);
    let ok = wait_until(Duration::from_secs(5), || {
        fs::read_to_string(&events_out)
            .unwrap_or_default()
            .contains("/tasks/delete")
    });
    let _ = events.kill();
    let _ = events.wait();
    let text = fs::read_to_string(&events_out).unwrap_or_default();
    assert!(ok, "no /tasks/delete event:\n{text}");
    let topics: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&ns))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("/tasks/")))
        .collect();
    let pos = |t: &str| topics.iter().position(|x| *x == t);
    let (c, s, e, d) = (
        pos("/tasks/create"),
        pos("/tasks/start"),
        pos("/tasks/exit"),
        pos("/tasks/delete"),
    );
    assert!(c < s && s < e && e < d && c.is_some(), "order: {topics:?}");
    assert!(pos("/tasks/oom").is_some(), "no oom event: {topics:?}");
    ctd.stop();
}
