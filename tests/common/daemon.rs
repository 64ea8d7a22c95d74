// The daemon harness shared by tests/daemon_basic.rs and tests/daemon_gc.rs,
// included as text (`include!`) so that each test file keeps its own imports
// and nothing here needs to be public.
const NS_KEY: &str = "containerd-namespace-ttrpc";

struct Daemon {
    dir: TempDir,
    /// This test's namespace: also the parent cgroup of its containers.
    ns: String,
    child: Option<Child>,
    /// Shim and container pids seen, killed in Drop if still there.
    pids: Vec<i32>,
}

impl Daemon {
    fn new() -> Daemon {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut d = Daemon {
            dir: TempDir::new("daemon"),
            ns: format!("skiff-test-{}-{n}", std::process::id()),
            child: None,
            pids: Vec::new(),
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

    fn start(&mut self) {
        let log = fs::File::create(self.dir.join("daemon.log")).unwrap();
        let child = Command::new(skiff_bin())
            .arg0_containerd()
            .args(["--root", &self.dir.s("root"), "--state"])
            .arg(self.state())
            .args(["--address", &self.address(), "--log-level", "debug"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the daemon");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(self.ttrpc_address()).is_err() {
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

impl Drop for Daemon {
    fn drop(&mut self) {
        self.note_pids();
        if self.child.is_some() {
            // Tasks left by a failed test: kill and delete them through the daemon.
            let c = self.client();
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
            if let Some(mut child) = self.child.take() {
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                let _ = child.wait();
            }
        }
        for p in &self.pids {
            unsafe { libc::kill(*p, libc::SIGKILL) };
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
        // The namespace's parent cgroups (the containers' own are gone with them).
        for hier in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = fs::remove_dir(hier.path().join(&self.ns));
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

fn busybox() -> ImageSpec {
    let mut entries = busybox_entries();
    entries.push(symlink("bin/sleep", "busybox"));
    ImageSpec::new(vec![Layer {
        entries,
        comp: Comp::Gzip,
    }])
}

/// Start a registry holding busybox as `bb:v1`; None to skip.
fn registry_with_busybox(work: &TempDir) -> Option<(Registry, String)> {
    let reg = Registry::start(RegistryConfig::default())?;
    let layout = work.join("layout");
    write_layout(&layout, "v1", &[busybox()]);
    let reference = format!("{}/bb:v1", reg.host());
    push(&layout, "v1", &reference, &[]);
    Some((reg, reference))
}

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

fn create_container(c: &Client, ns: &str, image: &pi::Image, id: &str, args: &[&str]) {
    create_container_with(c, ns, image, id, args, "io.containerd.skiff.v2");
}

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

fn remove_container(c: &Client, ns: &str, id: &str) {
    let _: Empty = call(
        c,
        ns,
        pc::SERVICE,
        "Delete",
        &pc::DeleteContainerRequest { id: id.into() },
    )
    .expect("delete container");
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
}
