// The daemon harness shared by the tests/daemon_*.rs files, included as
// text (`include!`) so that each test file keeps its own imports and
// nothing here needs to be public. Tests reach the daemon only through it:
// `client()` (the daemon's API for shims and this harness) and `ctr()`
// (skiff's ctr with `-a address() -n ns`), so a change of transport or
// socket layout is a change here.
const NS_KEY: &str = "containerd-namespace-ttrpc";

/// How a test's daemon is started.
#[derive(Default, Clone)]
struct DaemonOpts {
    /// Extra environment (PATH for another runtime's shim, a crash point).
    env: Vec<(String, String)>,
    /// Variables taken out of the daemon's environment (proxies).
    env_remove: Vec<String>,
    /// Written to `<dir>/config.toml` and passed as `--config`.
    config: Option<String>,
}

struct Daemon {
    dir: TempDir,
    /// This test's namespace: also the parent cgroup of its containers.
    ns: String,
    child: Option<Child>,
    /// Shim and container pids seen, killed in Drop if still there.
    pids: Vec<i32>,
    opts: DaemonOpts,
}

impl Daemon {
    #[allow(dead_code)] // tests/ctr_cli.rs names each daemon's directory
    fn new() -> Daemon {
        Daemon::with(DaemonOpts::default())
    }

    #[allow(dead_code)]
    fn with(opts: DaemonOpts) -> Daemon {
        Daemon::in_dir(TempDir::new("daemon"), opts)
    }

    /// A daemon in `dir` (named after the test, for a reader of its log).
    fn in_dir(dir: TempDir, opts: DaemonOpts) -> Daemon {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        applet_links(&dir);
        let mut d = Daemon {
            dir,
            ns: format!("skiff-test-{}-{n}", std::process::id()),
            child: None,
            pids: Vec::new(),
            opts,
        };
        d.start();
        d
    }

    /// The gRPC socket (`--address`).
    fn address(&self) -> String {
        self.dir.s("containerd.sock")
    }

    /// The ttrpc socket beside it (containerd's layout), where the
    /// harness's ttrpc client and the shims talk.
    fn ttrpc_address(&self) -> String {
        format!("{}.ttrpc", self.address())
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The content store, snapshotters and metadata.
    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn start(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .unwrap();
        let mut cmd = Command::new(skiff_bin());
        cmd.arg0_containerd();
        if let Some(config) = &self.opts.config {
            fs::write(self.dir.join("config.toml"), config).unwrap();
            cmd.arg("--config").arg(self.dir.join("config.toml"));
        }
        for k in &self.opts.env_remove {
            cmd.env_remove(k);
        }
        let child = cmd
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .args(["--root", &self.dir.s("root"), "--state"])
            .arg(self.state())
            .args(["--address", &self.address(), "--log-level", "debug"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the daemon");
        self.child = Some(child);
        // Both sockets: ttrpc for this harness and the shims, gRPC for ctr.
        let deadline = Instant::now() + Duration::from_secs(10);
        let listening = |a: String| std::os::unix::net::UnixStream::connect(a).is_ok();
        while !listening(self.ttrpc_address()) || !listening(self.address()) {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the daemon exited ({st}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    fn client(&self) -> Client {
        Client::connect(&self.ttrpc_address()).expect("connect to the daemon")
    }

    #[allow(dead_code)] // not every test file kills the daemon
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// The daemon's pid.
    #[allow(dead_code)]
    fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon runs").id()
    }

    /// Wait for the daemon to die by itself (at a crash point): true if
    /// it did within `limit`, by SIGKILL.
    #[allow(dead_code)]
    fn died(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let c = self.child.as_mut().expect("the daemon runs");
            if let Some(st) = c.try_wait().unwrap() {
                use std::os::unix::process::ExitStatusExt;
                self.child = None;
                return st.signal() == Some(libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// `ctr -a ADDRESS -n NS ARGS` (skiff's ctr), ready to spawn.
    #[allow(dead_code)]
    fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.dir.join("bin/ctr"));
        c.args(["-a", &self.address(), "-n", &self.ns])
            .args(args)
            .env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE");
        c
    }

    /// Run ctr to its end (at most 60 s).
    #[allow(dead_code)]
    fn ctr(&self, args: &[&str]) -> std::process::Output {
        let mut child = self
            .ctr_cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read both pipes while waiting (a full pipe would block ctr).
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let outs = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut out, &mut v);
            v
        });
        let errs = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut err, &mut v);
            v
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ctr {args:?} hung\ndaemon log: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        std::process::Output {
            status,
            stdout: outs.join().unwrap(),
            stderr: errs.join().unwrap(),
        }
    }

    /// ctr's stdout; the command must succeed.
    #[allow(dead_code)]
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let o = self.ctr(args);
        assert!(
            o.status.success(),
            "ctr {args:?}: {}\nstdout {}stderr {}\ndaemon log: {}",
            o.status,
            stdout(&o),
            stderr(&o),
            self.log()
        );
        stdout(&o)
    }

    /// ctr must fail with exit code `code` and exactly `err` on stderr.
    #[allow(dead_code)]
    #[track_caller]
    fn fails(&self, args: &[&str], code: i32, err: &str) {
        let o = self.ctr(args);
        assert_eq!(o.status.code(), Some(code), "ctr {args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), err, "ctr {args:?}");
    }

    /// `ctr c ls -q` / `ctr t ls -q` / `ctr i ls -q`...
    #[allow(dead_code)]
    fn ids(&self, what: &str) -> Vec<String> {
        self.ok(&[what, "ls", "-q"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A task's bundle directory (this namespace).
    #[allow(dead_code)]
    fn bundle(&self, id: &str) -> PathBuf {
        self.state().join("io.containerd.runtime.v2.task").join(&self.ns).join(id)
    }

    /// The task bundles left under the state directory (this namespace).
    #[allow(dead_code)]
    fn bundles(&self) -> Vec<String> {
        let dir = self.bundle("");
        let mut v: Vec<String> = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Processes other than the daemon whose command line names its
    /// address (its shims).
    #[allow(dead_code)]
    fn shims(&self) -> Vec<u32> {
        let me = self.child.as_ref().map(|c| c.id());
        processes_naming(&self.address())
            .into_iter()
            .filter(|p| Some(*p) != me)
            .collect()
    }

    /// Mount points under this daemon's directories.
    #[allow(dead_code)]
    fn mounts(&self) -> Vec<String> {
        let me = self.dir.path().to_string_lossy().into_owned();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&me))
            .collect()
    }

    /// Files under a directory of the root (blobs, ingests, snapshots).
    #[allow(dead_code)]
    fn files_under(&self, rel: &str) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            for e in fs::read_dir(p).into_iter().flatten().flatten() {
                let t = e.file_type().unwrap();
                if t.is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push(e.path());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root().join(rel), &mut out);
        out
    }

    /// The content store's blobs and partial downloads.
    #[allow(dead_code)]
    fn blobs(&self) -> Vec<PathBuf> {
        self.files_under("io.containerd.content.v1.content/blobs")
    }

    #[allow(dead_code)]
    fn ingests(&self) -> Vec<PathBuf> {
        self.files_under("io.containerd.content.v1.content/ingest")
    }

    /// The overlayfs snapshot directories.
    #[allow(dead_code)]
    fn snapshot_dirs(&self) -> Vec<String> {
        fs::read_dir(self.root().join("io.containerd.snapshotter.v1.overlayfs/snapshots"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// The references tagged in the content store's own index.json.
    #[allow(dead_code)]
    fn store_tags(&self) -> String {
        fs::read_to_string(self.root().join("io.containerd.content.v1.content/index.json"))
            .unwrap_or_default()
    }

    /// Wait until `cond` holds (at most `secs`), else fail with `what`.
    #[allow(dead_code)]
    #[track_caller]
    fn wait_for(&self, secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {secs}s\ndaemon log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Nothing of this test left: no containers, tasks, bundles, shims,
    /// mounts; with `store_empty`, no images, blobs, partial downloads or
    /// snapshots either (after the collection a delete schedules).
    #[allow(dead_code)]
    #[track_caller]
    fn assert_clean(&self, store_empty: bool) {
        assert_eq!(self.ids("c"), Vec::<String>::new(), "containers left");
        assert_eq!(self.ids("t"), Vec::<String>::new(), "tasks left");
        // A deleted task's bundle is renamed at once and removed on a
        // daemon thread: the live ones must be gone now, the retired soon.
        let live = |b: &Vec<String>| b.iter().filter(|n| !n.starts_with(".retired-")).count();
        assert_eq!(live(&self.bundles()), 0, "bundles left: {:?}", self.bundles());
        self.wait_for(10, "retired bundles to be removed", || self.bundles().is_empty());
        self.wait_for(10, "shims to exit", || self.shims().is_empty());
        assert_eq!(self.mounts(), Vec::<String>::new(), "mounts left");
        if store_empty {
            assert_eq!(self.ids("i"), Vec::<String>::new(), "images left");
            self.wait_for(10, "the store to be collected", || {
                self.blobs().is_empty() && self.snapshot_dirs().is_empty()
            });
            assert_eq!(self.ingests(), Vec::<PathBuf>::new(), "partial downloads left");
            assert_eq!(self.ok(&["snapshots", "ls"]).lines().count(), 1, "snapshots left");
            assert!(!self.store_tags().contains("org.opencontainers.image.ref.name"), "{}", self.store_tags());
        }
    }

    /// Subscribe to the daemon's events: the connection (the stream ends
    /// with it) and the stream of Envelopes.
    #[allow(dead_code)]
    fn subscribe(&self, filters: &[String]) -> (Client, skiff::ttrpc::ClientStream) {
        let c = self.client();
        let s = c
            .stream(
                "containerd.services.events.v1.Events",
                "Subscribe",
                skiff::proto::services::events::SubscribeRequest {
                    filters: filters.to_vec(),
                }
                .encode_to_vec(),
                false,
                &[],
            )
            .expect("subscribe");
        (c, s)
    }

    /// Create and start the task of container `id` (this namespace).
    #[allow(dead_code)]
    #[track_caller]
    fn start_task(&self, c: &Client, id: &str) -> pt::CreateTaskResponse {
        let ns = self.ns.as_str();
        let t: pt::CreateTaskResponse = call(
            c,
            ns,
            pt::SERVICE,
            "Create",
            &pt::CreateTaskRequest {
                container_id: id.into(),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("task create: {e}\n{}", self.log()));
        let _: pt::StartResponse = call(
            c,
            ns,
            pt::SERVICE,
            "Start",
            &pt::StartRequest {
                container_id: id.into(),
                ..Default::default()
            },
        )
        .unwrap();
        t
    }

    /// Kill the task of `id` with `signal`, wait for it and delete it:
    /// its exit status (as Wait reports it).
    #[allow(dead_code)]
    #[track_caller]
    fn end_task(&self, c: &Client, id: &str, signal: u32) -> u32 {
        let ns = self.ns.as_str();
        let _: Empty = call(
            c,
            ns,
            pt::SERVICE,
            "Kill",
            &pt::KillRequest {
                container_id: id.into(),
                signal,
                ..Default::default()
            },
        )
        .unwrap();
        let w: pt::WaitResponse = call(
            c,
            ns,
            pt::SERVICE,
            "Wait",
            &pt::WaitRequest {
                container_id: id.into(),
                ..Default::default()
            },
        )
        .unwrap();
        let _: pt::DeleteResponse = call(
            c,
            ns,
            pt::SERVICE,
            "Delete",
            &pt::DeleteTaskRequest {
                container_id: id.into(),
            },
        )
        .unwrap();
        w.exit_status
    }

    /// Every bundle's shim and task pids, for cleanup by pid.
    fn note_pids(&mut self) {
        let root = self.state().join("io.containerd.runtime.v2.task");
        for ns in fs::read_dir(&root).into_iter().flatten().flatten() {
            for b in fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                let id = b.file_name().to_string_lossy().into_owned();
                if let Ok(addr) = fs::read_to_string(b.path().join("address")) {
                    if let Ok(c) = Client::connect(addr.trim()) {
                        let r: Result<st::ConnectResponse, Status> = skiff::ttrpc::call(
                            &c,
                            st::SERVICE_V2,
                            "Connect",
                            &st::ConnectRequest { id },
                            Some(Duration::from_secs(5)),
                        );
                        if let Ok(r) = r {
                            self.pids.extend([r.shim_pid as i32, r.task_pid as i32]);
                        }
                    }
                }
            }
        }
        self.pids.retain(|p| *p > 0);
    }
}

trait Arg0 {
    fn arg0_containerd(&mut self) -> &mut Self;
}

impl Arg0 for Command {
    fn arg0_containerd(&mut self) -> &mut Self {
        std::os::unix::process::CommandExt::arg0(self, "containerd")
    }
}

/// Pids whose command line mentions `needle`.
fn processes_naming(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&pid| pid != me)
                .filter(|pid| {
                    fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).contains(needle))
                        .unwrap_or(false)
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.note_pids();
        let daemon = self
            .child
            .as_ref()
            .and_then(|_| Client::connect(&self.ttrpc_address()).ok());
        if let Some(c) = daemon {
            // Tasks left by a failed test: kill and delete them through the daemon.
            for ns in [self.ns.as_str()] {
                if let Ok(l) = call::<_, pt::ListTasksResponse>(
                    &c,
                    ns,
                    pt::SERVICE,
                    "List",
                    &pt::ListTasksRequest::default(),
                ) {
                    for t in l.tasks {
                        let _ = call::<_, Empty>(
                            &c,
                            ns,
                            pt::SERVICE,
                            "Kill",
                            &pt::KillRequest {
                                container_id: t.container_id.clone(),
                                signal: 9,
                                all: true,
                                ..Default::default()
                            },
                        );
                        let _ = call::<_, pt::WaitResponse>(
                            &c,
                            ns,
                            pt::SERVICE,
                            "Wait",
                            &pt::WaitRequest {
                                container_id: t.container_id.clone(),
                                ..Default::default()
                            },
                        );
                        let _ = call::<_, pt::DeleteResponse>(
                            &c,
                            ns,
                            pt::SERVICE,
                            "Delete",
                            &pt::DeleteTaskRequest {
                                container_id: t.container_id,
                            },
                        );
                    }
                }
            }
        }
        // The daemon goes even when it does not answer: SIGTERM, then
        // SIGKILL if it has not exited within 10 s; reaped either way.
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        for p in &self.pids {
            unsafe { libc::kill(*p, libc::SIGKILL) };
        }
        // Shims no daemon knew of any more (one that died at a crash point).
        for p in processes_naming(&self.address()) {
            unsafe { libc::kill(p as i32, libc::SIGKILL) };
        }
        // Anything still mounted under the test directory (rootfs, snapshots).
        let me = self.dir.path().to_string_lossy().into_owned();
        let mut mounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&me))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let c = std::ffi::CString::new(m).unwrap();
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        // The shims' runc root for the namespace (left empty, as containerd's shim does).
        let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(&self.ns));
        // The namespace's parent cgroups (cgroupsPath /NS/ID), with any
        // container cgroup a failed test left in them, in every hierarchy
        // (and at the top, for a host with cgroup2 alone).
        let hierarchies = fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten();
        let tops = hierarchies.map(|h| h.path()).chain([PathBuf::from("/sys/fs/cgroup")]);
        for ns in tops.map(|t| t.join(&self.ns)) {
            for e in fs::read_dir(&ns).into_iter().flatten().flatten() {
                let _ = fs::remove_dir(e.path());
            }
            let _ = fs::remove_dir(&ns);
        }
    }
}

fn call<Req: Message, Resp: Message + Default>(
    c: &Client,
    ns: &str,
    service: &str,
    method: &str,
    req: &Req,
) -> Result<Resp, Status> {
    let out = c.call(
        service,
        method,
        req.encode_to_vec(),
        Some(Duration::from_secs(60)),
        &[(NS_KEY.to_string(), ns.to_string())],
    )?;
    Resp::decode(out.as_slice()).map_err(|e| Status::new(Code::Internal, e.to_string()))
}

#[allow(dead_code)] // not every test file uses each helper
/// A server stream's messages.
fn stream<Req: Message, Resp: Message + Default>(
    c: &Client,
    ns: &str,
    service: &str,
    method: &str,
    req: &Req,
) -> Result<Vec<Resp>, Status> {
    let s = c.stream(
        service,
        method,
        req.encode_to_vec(),
        false,
        &[(NS_KEY.to_string(), ns.to_string())],
    )?;
    let mut out = Vec::new();
    while let Some(m) = s.recv(Some(Duration::from_secs(120)))? {
        out.push(Resp::decode(m.as_slice()).unwrap());
    }
    Ok(out)
}

#[allow(dead_code)] // not every test file uses each helper
fn busybox() -> ImageSpec {
    let mut entries = busybox_entries();
    entries.push(symlink("bin/sleep", "busybox"));
    ImageSpec::new(vec![Layer {
        entries,
        comp: Comp::Gzip,
    }])
}

/// (id, pid, status) of each task, sorted (a pid ctr shows as 0 or not at
/// all is 0).
#[allow(dead_code)]
fn tasks(d: &Daemon) -> Vec<(String, u32, String)> {
    let mut v: Vec<(String, u32, String)> = d
        .ok(&["t", "ls"])
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c[0].to_string(), c[1].parse().unwrap_or(0), c[2].to_string())
        })
        .collect();
    v.sort();
    v
}

#[allow(dead_code)] // not every test file uses each helper
/// Start a registry holding busybox as `bb:v1`; None to skip.
fn registry_with_busybox(work: &TempDir) -> Option<(Registry, String)> {
    registry_with_busybox_as(work, "bb", "v1")
}

#[allow(dead_code)] // not every test file uses each helper
/// Start a registry holding busybox as `REPO:TAG`; None to skip.
fn registry_with_busybox_as(work: &TempDir, repo: &str, tag: &str) -> Option<(Registry, String)> {
    let reg = Registry::start(RegistryConfig::default())?;
    let layout = work.join("layout");
    write_layout(&layout, tag, &[busybox()]);
    let reference = format!("{}/{repo}:{tag}", reg.host());
    push(&layout, tag, &reference, &[]);
    Some((reg, reference))
}

#[allow(dead_code)] // not every test file uses each helper
fn pull(c: &Client, ns: &str, reference: &str) -> pi::Image {
    let progress: Vec<pp::PullProgress> = stream(
        c,
        ns,
        pp::SERVICE,
        pp::METHOD,
        &pp::PullRequest {
            reference: reference.into(),
            plain_http: true,
            unpack: true,
            ..Default::default()
        },
    )
    .expect("pull");
    assert!(
        progress.iter().any(|p| p.state == pp::state::RESOLVING),
        "{progress:?}"
    );
    assert!(
        progress.iter().any(|p| p.state == pp::state::UNPACKED),
        "{progress:?}"
    );
    progress
        .last()
        .unwrap()
        .image
        .clone()
        .expect("the last message names the image")
}

#[allow(dead_code)] // not every test file uses each helper
fn read_blob(c: &Client, ns: &str, digest: &str) -> Vec<u8> {
    let parts: Vec<pct::ReadContentResponse> = stream(
        c,
        ns,
        pct::SERVICE,
        "Read",
        &pct::ReadContentRequest {
            digest: digest.into(),
            ..Default::default()
        },
    )
    .expect("read content");
    parts.into_iter().flat_map(|p| p.data).collect()
}

#[allow(dead_code)] // not every test file uses each helper
/// The OCI spec for `image` from its config, read back through Content.
fn spec_for(c: &Client, ns: &str, image: &pi::Image, id: &str, args: &[&str]) -> Any {
    let target = image.target.as_ref().unwrap();
    let manifest = read_blob(c, ns, &target.digest);
    let Document::Manifest(m) =
        oci::parse_document(&manifest, &target.media_type, "manifest").unwrap()
    else {
        panic!("single-platform image expected");
    };
    let config =
        oci::parse_config(&read_blob(c, ns, &m.config.digest.to_string()), "config").unwrap();
    let bytes = spec::build(
        &config,
        &SpecOptions {
            args: Some(args.iter().map(|s| s.to_string()).collect()),
            env: vec!["GREETING=hello".into()],
            id: id.into(),
            namespace: ns.into(),
            ..Default::default()
        },
    )
    .unwrap();
    Any {
        type_url: SPEC_TYPE_URL.into(),
        value: bytes,
    }
}

#[allow(dead_code)] // not every test file uses each helper
fn create_container(c: &Client, ns: &str, image: &pi::Image, id: &str, args: &[&str]) {
    create_container_with(c, ns, image, id, args, "io.containerd.skiff.v2");
}

#[allow(dead_code)] // not every test file uses each helper
fn create_container_with(
    c: &Client,
    ns: &str,
    image: &pi::Image,
    id: &str,
    args: &[&str],
    runtime: &str,
) {
    let spec = spec_for(c, ns, image, id, args);
    let _: pc::CreateContainerResponse = call(
        c,
        ns,
        pc::SERVICE,
        "Create",
        &pc::CreateContainerRequest {
            container: Some(pc::Container {
                id: id.into(),
                image: image.name.clone(),
                runtime: Some(pc::Runtime {
                    name: runtime.into(),
                    options: None,
                }),
                spec: Some(spec),
                snapshotter: "overlayfs".into(),
                snapshot_key: id.into(),
                ..Default::default()
            }),
        },
    )
    .expect("create container");
}

#[allow(dead_code)] // not every test file uses each helper
fn remove_container(c: &Client, ns: &str, id: &str) {
    // The snapshot first, as ctr does: the collection a container's delete
    // schedules would take it otherwise, racing this Remove.
    let _: Empty = call(
        c,
        ns,
        ps::SERVICE,
        "Remove",
        &ps::RemoveSnapshotRequest {
            snapshotter: "overlayfs".into(),
            key: id.into(),
        },
    )
    .expect("remove snapshot");
    let _: Empty = call(
        c,
        ns,
        pc::SERVICE,
        "Delete",
        &pc::DeleteContainerRequest { id: id.into() },
    )
    .expect("delete container");
}
