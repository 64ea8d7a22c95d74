//! skiff's runc applet as a drop-in runtime for Debian's containerd 1.6
//! (its runc v2 shim runs `--runc-binary`): run, exec, pause/resume, kill,
//! delete through `ctr`, and nothing left behind.
//!
//! The test starts its own containerd (root, state and socket in the test
//! dir, the CRI plugin off), imports a busybox OCI image that it builds
//! from the fixture rootfs, and stops containerd again (by its pid).
//!
//! Run against Debian's runc: `SKIFF_TEST_RUNTIME=/usr/bin/runc cargo test --test containerd_dropin`.

mod common;

use common::*;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);
const IMAGE: &str = "docker.io/library/bb:latest";

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
        let log = fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
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

#[test]
fn containerd_runs_skiff_as_its_runc() {
    let ctx = Ctx::new("dropin");
    let has_containerd = Command::new("containerd").arg("--version").output().is_ok();
    if !require(has_containerd, "containerd") {
        return;
    }
    let runc = fs::canonicalize(runtime().path.parent().unwrap())
        .unwrap()
        .join(runtime().path.file_name().unwrap());
    let runc = runc.to_str().unwrap().to_string();
    let mut ctd = Containerd::start(&ctx);
    let ns = ctd.ns.clone();
    // Cgroups: containerd's default spec puts a container at /NS/ID.
    let _cg = CgroupDirs {
        rel: vec![format!("/{ns}")],
    };
    let runc_root = ctd.runc_root();
    let runc_root_s = runc_root.display().to_string();

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
    let images = ctd.ctr(&["images", "ls", "-q"]);
    assert!(
        images.stdout.lines().any(|l| l == IMAGE),
        "{}",
        images.stdout
    );

    // run --rm: output and exit status.
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        &runc,
        "--runc-root",
        &runc_root_s,
        IMAGE,
        "c1",
        "sh",
        "-c",
        "echo hello from the container; echo on-stderr >&2; exit 3",
    ]);
    assert_eq!(
        out.code,
        Some(3),
        "exit status: {} {}",
        out.stdout,
        out.stderr
    );
    assert_eq!(out.stdout.replace('\r', ""), "hello from the container\n");
    assert!(out.stderr.contains("on-stderr"), "{}", out.stderr);
    assert!(ctd.ctr(&["container", "ls", "-q"]).stdout.trim().is_empty());

    // run -d, then exec, pause, resume, kill, delete.
    ctd.ctr(&[
        "run",
        "-d",
        "--runc-binary",
        &runc,
        "--runc-root",
        &runc_root_s,
        IMAGE,
        "c2",
        "sh",
        "-c",
        "exec sleep 1000",
    ])
    .ok();
    let pid = ctd.wait_task_status("c2", "RUNNING");
    assert!(pid > 0);
    let start = proc_starttime(pid).expect("task process");
    ctx.track_pid(pid);
    assert_eq!(proc_cmdline(pid), "sleep 1000");
    // The runtime's own state: it is the runtime under test that keeps it.
    let state = ctx.rt_noroot(&["--root", &format!("{runc_root_s}/{ns}"), "state", "c2"]);
    state.ok();
    assert!(state.stdout.contains("\"running\""), "{}", state.stdout);
    let cg = proc_cgroup(pid, "pids").expect("pids cgroup");
    assert_eq!(cg, format!("/{ns}/c2"));

    let out = ctd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "x1",
        "c2",
        "sh",
        "-c",
        "echo in-exec $(cat /proc/1/cmdline | tr '\\0' ' '); exit 5",
    ]);
    assert_eq!(out.code, Some(5), "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stdout.replace('\r', ""), "in-exec sleep 1000\n");

    ctd.ctr(&["task", "pause", "c2"]).ok();
    ctd.wait_task_status("c2", "PAUSED");
    let freezer = cgroup_dir(pid, "freezer").unwrap();
    assert_eq!(
        fs::read_to_string(freezer.join("freezer.state"))
            .unwrap()
            .trim(),
        "FROZEN"
    );
    ctd.ctr(&["task", "resume", "c2"]).ok();
    ctd.wait_task_status("c2", "RUNNING");

    ctd.ctr(&["task", "kill", "-s", "KILL", "c2"]).ok();
    ctd.wait_task_status("c2", "STOPPED");
    assert!(wait_gone(pid, start, T), "task process gone");
    ctd.ctr(&["task", "delete", "c2"]).ok();
    assert!(ctd.task_status("c2").is_none());
    ctd.ctr(&["container", "delete", "c2"]).ok();
    assert!(ctd.ctr(&["container", "ls", "-q"]).stdout.trim().is_empty());

    // Nothing left: runtime state, cgroups, mounts, bundles.
    let left: Vec<PathBuf> = fs::read_dir(runc_root.join(&ns))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "runtime state left: {left:?}");
    for id in ["c1", "c2"] {
        let dirs = CgroupDirs::existing(&format!("/{ns}/{id}"));
        assert!(dirs.is_empty(), "cgroups left: {dirs:?}");
    }
    // containerd's namespace parent (/NS) stays behind, as with runc:
    // remove it when empty (rmdir refuses otherwise).
    for hierarchy in cgroup_mounts() {
        let _ = fs::remove_dir(hierarchy.join(&ns));
    }
    let mounts: Vec<String> = mounts_under(&ctd.dir)
        .into_iter()
        .filter(|m| m.contains("/c1/") || m.contains("/c2/") || m.ends_with("/rootfs"))
        .collect();
    assert!(mounts.is_empty(), "rootfs mounts left: {mounts:?}");
    ctd.stop();
    assert!(
        mounts_under(&ctx.dir).is_empty(),
        "mounts under the test dir: {:?}",
        mounts_under(&ctx.dir)
    );
}
