//! The daemon's configuration, end to end: registry hosts in containerd's
//! `certs.d` layout (a mirror tried first, then the server; plain HTTP by
//! an `http://` host; a CA named in hosts.toml), credentials from a docker
//! config.json (basic auth against an htpasswd registry; a credential
//! helper said to be unsupported), the socket's mode and group, the
//! default snapshotter, and bad configurations (each a clear error naming
//! the file and key, and no socket left).
//!
//! Every daemon here has its own root, state, socket, config and
//! DOCKER_CONFIG; registries run on 127.0.0.1; all are stopped by Drop.

#[path = "fetch_support/mod.rs"]
mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// A directory with `ctr` and `containerd` links to the skiff under test.
fn links(dir: &TempDir) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for name in ["ctr", "containerd"] {
        let _ = fs::remove_file(bin.join(name));
        std::os::unix::fs::symlink(skiff_bin(), bin.join(name)).unwrap();
    }
    bin
}

/// The daemon started with `config.toml` (written from `config`) and
/// `DOCKER_CONFIG` = `<dir>/docker`.
struct Daemon {
    child: Option<Child>,
    bin: PathBuf,
    sock: String,
    dir: TempDir,
}

impl Daemon {
    fn start(tag: &str, config: &str) -> Daemon {
        let dir = TempDir::new(tag);
        Self::start_in(dir, config)
    }

    fn start_in(dir: TempDir, config: &str) -> Daemon {
        let bin = links(&dir);
        let sock = dir.s("containerd.sock");
        fs::write(dir.join("config.toml"), config).unwrap();
        let child = daemon_command(&bin, &dir)
            .stdout(fs::File::create(dir.join("daemon.log")).unwrap())
            .stderr(fs::File::create(dir.join("daemon.err")).unwrap())
            .spawn()
            .expect("start the daemon");
        let mut d = Daemon {
            child: Some(child),
            bin,
            sock,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !Path::new(&d.sock).exists() {
            if let Some(st) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited ({st}): {}", d.log());
            }
            assert!(Instant::now() < deadline, "no socket: {}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("daemon.err")).unwrap_or_default()
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new(self.bin.join("ctr"))
            .args(["-a", &self.sock, "-n", "cfg-test"])
            .args(args)
            .env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE")
            .stdin(Stdio::null())
            .output()
            .expect("run ctr")
    }

    #[track_caller]
    fn pull(&self, args: &[&str]) -> String {
        let mut all = vec!["images", "pull"];
        all.extend_from_slice(args);
        let o = self.ctr(&all);
        assert!(
            o.status.success(),
            "ctr {all:?}: {}{}\ndaemon: {}",
            stdout(&o),
            stderr(&o),
            self.log()
        );
        stdout(&o)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `containerd --config <dir>/config.toml` with its own root, state and
/// socket, and DOCKER_CONFIG = `<dir>/docker`.
fn daemon_command(bin: &Path, dir: &TempDir) -> Command {
    let mut cmd = Command::new(bin.join("containerd"));
    cmd.args(["--config", &dir.s("config.toml")])
        .args(["--root", &dir.s("root"), "--state", &dir.s("state")])
        .args(["--address", &dir.s("containerd.sock")])
        .env("DOCKER_CONFIG", dir.join("docker"))
        .env("HOME", "/nonexistent")
        .stdin(Stdio::null());
    for v in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
        cmd.env_remove(v);
    }
    cmd
}

fn small_image(text: &str) -> ImageSpec {
    ImageSpec::new(vec![Layer {
        entries: vec![file("hello", text)],
        comp: Comp::Gzip,
    }])
}

/// Push a one-file image to `dest` (`host:port/repo:tag`).
fn push_image(work: &TempDir, text: &str, dest: &str, extra: &[&str]) {
    let layout = work.join(&format!("layout-{text}"));
    write_layout(&layout, "v1", &[small_image(text)]);
    push(&layout, "v1", dest, extra);
}

fn hosts_toml(dir: &Path, registry: &str, text: &str) -> PathBuf {
    let d = dir.join(registry);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("hosts.toml"), text).unwrap();
    d
}

/// Requests for `path` in a registry's access log.
fn requests(reg: &Registry, path: &str) -> usize {
    reg.log()
        .lines()
        .filter(|l| l.contains(&format!("GET {path} ")))
        .count()
}

#[test]
fn mirror_first_then_server_over_plain_http() {
    let (Some(origin), Some(mirror)) = (
        Registry::start(RegistryConfig::default()),
        Registry::start(RegistryConfig::default()),
    ) else {
        return;
    };
    let work = TempDir::new("cfg-mirror-work");
    // The mirror holds `m:v1` under the origin's name; `only:v1` is on the
    // origin alone.
    push_image(
        &work,
        "from-mirror",
        &format!("{}/m:v1", mirror.host()),
        &[],
    );
    push_image(
        &work,
        "from-origin",
        &format!("{}/m:v1", origin.host()),
        &[],
    );
    push_image(
        &work,
        "only-origin",
        &format!("{}/only:v1", origin.host()),
        &[],
    );

    let hosts = work.join("certs.d");
    hosts_toml(
        &hosts,
        &origin.host(),
        &format!(
            "server = \"http://{}\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  [host.\"http://{}\".header]\n    x-skiff-test = \"yes\"\n",
            origin.host(),
            mirror.host(),
            mirror.host()
        ),
    );
    let d = Daemon::start("cfg-mirror", "version = 2\n");
    // ctr's --hosts-dir; no --plain-http: the hosts say http.
    let hd = hosts.display().to_string();
    d.pull(&["--hosts-dir", &hd, &format!("{}/m:v1", origin.host())]);
    assert_eq!(
        requests(&mirror, "/v2/m/manifests/v1"),
        1,
        "the tag is resolved once, at the mirror:\n{}",
        mirror.log()
    );
    assert_eq!(
        requests(&origin, "/v2/m/manifests/v1"),
        0,
        "{}",
        origin.log()
    );
    let o = d.ctr(&["images", "ls", "-q"]);
    assert!(stdout(&o).contains("/m:v1"), "{}", stdout(&o));

    // Not on the mirror (404): the server after it. A relative --hosts-dir
    // is ctr's, not the daemon's.
    let o = Command::new(d.bin.join("ctr"))
        .args(["-a", &d.sock, "-n", "cfg-test", "images", "pull"])
        .args([
            "--hosts-dir",
            "certs.d",
            &format!("{}/only:v1", origin.host()),
        ])
        .current_dir(work.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(requests(&mirror, "/v2/only/manifests/v1"), 1);
    assert_eq!(requests(&origin, "/v2/only/manifests/v1"), 1);

    // A pull-only mirror is not trusted with tags: the tag resolves at the
    // server, the blobs come from the mirror.
    let hosts2 = work.join("certs2.d");
    hosts_toml(
        &hosts2,
        &origin.host(),
        &format!(
            "server = \"http://{}\"\n[host.\"http://{}\"]\n  capabilities = [\"pull\"]\n",
            origin.host(),
            mirror.host()
        ),
    );
    let before = requests(&origin, "/v2/m/manifests/v1");
    let o = d.ctr(&["images", "rm", &format!("{}/m:v1", origin.host())]);
    assert!(o.status.success(), "{}", stderr(&o));
    d.pull(&[
        "--hosts-dir",
        &hosts2.display().to_string(),
        &format!("{}/m:v1", origin.host()),
    ]);
    assert_eq!(requests(&origin, "/v2/m/manifests/v1"), before + 1);
    assert_eq!(
        requests(&mirror, "/v2/m/manifests/v1"),
        1,
        "not asked again"
    );
}

#[test]
fn daemon_config_names_the_hosts_dir() {
    let Some(origin) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("cfg-cri-work");
    push_image(&work, "x", &format!("{}/x:v1", origin.host()), &[]);
    let dir = TempDir::new("cfg-cri");
    let hosts = dir.join("certs.d");
    // containerd's spelling; `_default` applies to every registry.
    hosts_toml(&hosts, "_default", "");
    hosts_toml(
        &hosts,
        &origin.host(),
        &format!("server = \"http://{}\"\n", origin.host()),
    );
    let d = Daemon::start_in(
        dir,
        &format!(
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"{}\"\n[metrics]\n  address = \"\"\n",
            hosts.display()
        ),
    );
    d.pull(&[&format!("{}/x:v1", origin.host())]);
    assert!(
        d.log().contains("metrics.address: unknown key"),
        "unknown keys are warned about: {}",
        d.log()
    );
}

#[test]
fn basic_auth_from_docker_config_over_tls_with_hosts_ca() {
    let Some(reg) = Registry::start(RegistryConfig {
        tls: true,
        htpasswd: Some(("alice".into(), "s3cret".into())),
        ..Default::default()
    }) else {
        return;
    };
    let work = TempDir::new("cfg-auth-work");
    push_image(
        &work,
        "secret",
        &format!("{}/private:v1", reg.host()),
        &["--dest-creds", "alice:s3cret"],
    );
    let reference = format!("{}/private:v1", reg.host());
    let dir = TempDir::new("cfg-auth");
    let hosts = dir.join("certs.d");
    let host_dir = hosts_toml(
        &hosts,
        &reg.host(),
        &format!("server = \"https://{}\"\nca = \"ca.pem\"\n", reg.host()),
    );
    fs::copy(reg.ca.as_ref().unwrap(), host_dir.join("ca.pem")).unwrap();
    let config = format!("[skiff]\n  hosts_dir = \"{}\"\n", hosts.display());
    fs::create_dir_all(dir.join("docker")).unwrap();

    // No credentials: the registry's 401 is reported.
    let d = Daemon::start_in(dir, &config);
    let o = d.ctr(&["images", "pull", &reference]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("authentication required"),
        "{}",
        stderr(&o)
    );

    // A credential helper: said to be unsupported, by name.
    let docker = d.dir.join("docker/config.json");
    fs::write(
        &docker,
        format!("{{\"credHelpers\": {{\"{}\": \"pass\"}}}}", reg.host()),
    )
    .unwrap();
    let o = d.ctr(&["images", "pull", &reference]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("credential helper") && e.contains("\"pass\"") && e.contains("not support"),
        "{e}"
    );

    // auths: base64 of user:password. The daemon read the file's path at
    // start and the file at each pull.
    let auth = skiff::base64::encode(b"alice:s3cret");
    fs::write(
        &docker,
        format!(
            "{{\"auths\": {{\"{}\": {{\"auth\": \"{auth}\"}}}}}}",
            reg.host()
        ),
    )
    .unwrap();
    d.pull(&[&reference]);
    // username/password spelled out, into a fresh daemon; the server's
    // certificate not verified (skip_verify) this time.
    drop(d);
    let dir = TempDir::new("cfg-auth2");
    let hosts = dir.join("certs.d");
    hosts_toml(
        &hosts,
        &reg.host(),
        &format!("server = \"https://{}\"\nskip_verify = true\n", reg.host()),
    );
    fs::create_dir_all(dir.join("docker")).unwrap();
    fs::write(
        dir.join("docker/config.json"),
        format!(
            "{{\"auths\": {{\"https://{}\": {{\"username\": \"alice\", \"password\": \"s3cret\"}}}}}}",
            reg.host()
        ),
    )
    .unwrap();
    let d = Daemon::start_in(
        dir,
        &format!("[skiff]\n  hosts_dir = \"{}\"\n", hosts.display()),
    );
    d.pull(&[&reference]);
}

#[test]
fn socket_mode_and_group() {
    let d = Daemon::start("cfg-sock", "");
    let m = fs::metadata(&d.sock).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    assert_eq!((m.uid(), m.gid()), (0, 0));
    drop(d);
    let d = Daemon::start("cfg-sock-gid", "[grpc]\n  gid = 4242\n");
    let m = fs::metadata(&d.sock).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o660);
    assert_eq!(m.gid(), 4242);
    let o = d.ctr(&["version"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn default_snapshotter_from_config() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("cfg-sn-work");
    let reference = format!("{}/sn:v1", reg.host());
    push_image(&work, "sn", &reference, &[]);
    let d = Daemon::start("cfg-sn", "[skiff]\n  snapshotter = \"native\"\n");
    let o = Command::new(d.bin.join("containerd"))
        .args(["--config", &d.dir.s("config.toml"), "config", "default"])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("snapshotter = \"native\""),
        "{}",
        stdout(&o)
    );
    d.pull(&["--plain-http", &reference]);
    let root = d.dir.join("root");
    let native = root.join("io.containerd.snapshotter.v1.native");
    assert!(native.is_dir(), "unpacked into native");
    assert!(!root.join("io.containerd.snapshotter.v1.overlayfs").exists());
    let o = d.ctr(&["snapshots", "ls"]);
    assert!(
        stdout(&o).lines().count() > 1,
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
}

/// Each bad configuration stops the start with an error naming the file
/// and key, and leaves no socket.
#[test]
fn bad_configs_are_errors_naming_file_and_key() {
    let work = TempDir::new("cfg-bad");
    let hosts = work.join("certs.d");
    let reg_dir = hosts.join("127.0.0.1_5000_");
    let hosts_file = reg_dir.join("hosts.toml").display().to_string();
    let hosts_conf = format!("[skiff]\nhosts_dir = \"{}\"\n", hosts.display());
    let cases: Vec<(&str, Option<&str>, Vec<String>)> = vec![
        (
            "root = \"/x\"\n[grpc\n",
            None,
            vec!["config.toml".into(), "line 2".into()],
        ),
        (
            "[grpc]\ngid = \"staff\"\n",
            None,
            vec!["config.toml".into(), "grpc.gid".into()],
        ),
        (
            "[skiff]\nsnapshotter = \"zfs\"\n",
            None,
            vec!["skiff.snapshotter".into(), "\"zfs\"".into()],
        ),
        (
            &hosts_conf,
            Some("[host.\"http://m\"]\ncapabilities = [\"pull\", \"fetch\"]\n"),
            vec![
                hosts_file.clone(),
                "host.\"http://m\".capabilities".into(),
                "unknown capability \"fetch\"".into(),
            ],
        ),
        (
            &hosts_conf,
            Some("server = \"https://r\"\nca = \"missing-ca.pem\"\n"),
            vec![
                hosts_file.clone(),
                "line 2: ca".into(),
                "missing-ca.pem".into(),
            ],
        ),
        (
            &hosts_conf,
            Some("server = \"https://r\nca = 1\n"),
            vec![hosts_file.clone(), "line 1".into(), "unterminated".into()],
        ),
    ];
    let bin = links(&work);
    for (config, hosts_text, want) in cases {
        let _ = fs::remove_dir_all(&hosts);
        if let Some(t) = hosts_text {
            fs::create_dir_all(&reg_dir).unwrap();
            fs::write(reg_dir.join("hosts.toml"), t).unwrap();
        }
        fs::write(work.join("config.toml"), config).unwrap();
        let mut child = daemon_command(&bin, &work)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the daemon started with a bad config: {config:?} {hosts_text:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let o = child.wait_with_output().unwrap();
        assert!(!o.status.success());
        let e = stderr(&o);
        for w in &want {
            assert!(
                e.contains(w.as_str()),
                "{config:?} {hosts_text:?}: want {w:?} in: {e}"
            );
        }
        assert!(
            !work.join("containerd.sock").exists(),
            "a socket was left behind: {e}"
        );
    }
}

/// contrib/: the systemd unit passes `systemd-analyze verify` (with its
/// ExecStart pointed at the binary under test) and the OpenRC script
/// parses; both start the installed binary's containerd applet.
#[test]
fn contrib_service_files() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib");
    let unit = fs::read_to_string(src.join("systemd/skiff-containerd.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/skiff containerd\n"),
        "{unit}"
    );
    let rc = fs::read_to_string(src.join("openrc/skiff-containerd")).unwrap();
    assert!(
        rc.contains("command=\"/usr/local/bin/skiff\"")
            && rc.contains("command_args=\"containerd "),
        "{rc}"
    );
    let o = Command::new("sh")
        .arg("-n")
        .arg(src.join("openrc/skiff-containerd"))
        .output()
        .unwrap();
    assert!(o.status.success(), "sh -n: {}", stderr(&o));
    if !tool("/usr/bin/systemd-analyze", "systemd") {
        return;
    }
    let work = TempDir::new("cfg-contrib");
    let unit_file = work.join("skiff-containerd.service");
    fs::write(
        &unit_file,
        unit.replace("/usr/local/bin/skiff", &skiff_bin().display().to_string()),
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_file)
        .output()
        .unwrap();
    assert!(
        o.status.success() && stderr(&o).trim().is_empty(),
        "systemd-analyze verify: {}{}",
        stdout(&o),
        stderr(&o)
    );
}

/// A container created without a runtime gets the config's `runtime`
/// (`ctr` names one itself; containerd's other clients may not).
#[test]
fn default_runtime_from_config() {
    use prost::Message;
    use skiff::proto::services::containers as pc;
    let d = Daemon::start("cfg-rt", "[skiff]\n  runtime = \"io.containerd.runc.v2\"\n");
    let o = Command::new(d.bin.join("containerd"))
        .args(["--config", &d.dir.s("config.toml"), "config", "default"])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("runtime = \"io.containerd.runc.v2\""),
        "{}",
        stdout(&o)
    );
    let c = skiff::ttrpc::Client::connect(&format!("{}.ttrpc", d.sock)).unwrap();
    let req = pc::CreateContainerRequest {
        container: Some(pc::Container {
            id: "no-runtime".into(),
            image: "none".into(),
            spec: Some(skiff::proto::types::Any {
                type_url: skiff::daemon::spec::SPEC_TYPE_URL.into(),
                value: b"{}".to_vec(),
            }),
            ..Default::default()
        }),
    };
    let out = c
        .call(
            pc::SERVICE,
            "Create",
            req.encode_to_vec(),
            Some(Duration::from_secs(30)),
            &[("containerd-namespace-ttrpc".into(), "cfg-test".into())],
        )
        .expect("create a container");
    let created = pc::CreateContainerResponse::decode(out.as_slice()).unwrap();
    let runtime = created.container.unwrap().runtime.unwrap_or_default().name;
    assert_eq!(runtime, "io.containerd.runc.v2");
}

/// containerd's own `config default` loads: its keys skiff reads are
/// taken (root, state, address, the CRI snapshotter), the rest warned
/// about in a few lines.
#[test]
fn containerd_default_config_loads() {
    if !tool("/usr/bin/containerd", "containerd") {
        return;
    }
    let work = TempDir::new("cfg-ctd");
    let o = Command::new("/usr/bin/containerd")
        .args(["config", "default"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    fs::write(work.join("config.toml"), &o.stdout).unwrap();
    let o = Command::new(skiff_bin())
        .args([
            "containerd",
            "--config",
            &work.s("config.toml"),
            "config",
            "default",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("root = \"/var/lib/containerd\""), "{out}");
    assert!(
        out.contains("address = \"/run/containerd/containerd.sock\""),
        "{out}"
    );
    let warnings = stderr(&o);
    assert!(warnings.contains("unknown key"), "{warnings}");
    assert!(warnings.lines().count() <= 11, "{warnings}");
}

/// A docker-registry that requires a client certificate signed by its CA.
struct MtlsRegistry {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl MtlsRegistry {
    fn start() -> Option<MtlsRegistry> {
        if !(tool("/usr/bin/docker-registry", "docker-registry")
            && tool("/usr/bin/skopeo", "skopeo")
            && tool("/usr/bin/openssl", "openssl"))
        {
            return None;
        }
        let dir = TempDir::new("cfg-mtls-registry");
        let (ca, cert, key) = make_tls(&dir);
        // The client's certificate, signed by the same CA.
        let s = |n: &str| dir.s(n);
        run(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=skiff client",
            ])
            .args(["-keyout", &s("client.key"), "-out", &s("client.csr")]));
        fs::write(dir.join("client.cnf"), "extendedKeyUsage=clientAuth\n").unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in", &s("client.csr")])
            .args([
                "-CA",
                &s("ca.pem"),
                "-CAkey",
                &s("ca.key"),
                "-CAcreateserial",
            ])
            .args(["-out", &s("client.pem"), "-extfile", &s("client.cnf")]));
        let port = free_port();
        fs::write(
            dir.join("config.yml"),
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {}\n    key: {}\n    clientcas:\n      - {}\n",
                dir.s("data"),
                cert.display(),
                key.display(),
                ca.display()
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let r = MtlsRegistry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(r)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Docker's certificate layout for this registry: ca.crt, client.cert,
    /// client.key.
    fn docker_cert_dir(&self, at: &Path) {
        fs::create_dir_all(at).unwrap();
        fs::copy(self.dir.join("ca.pem"), at.join("ca.crt")).unwrap();
        fs::copy(self.dir.join("client.pem"), at.join("client.cert")).unwrap();
        fs::copy(self.dir.join("client.key"), at.join("client.key")).unwrap();
    }
}

impl Drop for MtlsRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Client certificates: from hosts.toml's `client` pair, and from a host
/// directory in Docker's layout (no hosts.toml: `*.crt`, `*.cert`/`*.key`);
/// without one the registry refuses the handshake.
#[test]
fn client_certificates() {
    let Some(reg) = MtlsRegistry::start() else {
        return;
    };
    let work = TempDir::new("cfg-mtls-work");
    let certs = work.join("push-certs");
    reg.docker_cert_dir(&certs);
    let reference = format!("{}/mtls:v1", reg.host());
    push_image(
        &work,
        "mtls",
        &reference,
        &["--dest-cert-dir", &certs.display().to_string()],
    );

    let dir = TempDir::new("cfg-mtls");
    let hosts = dir.join("certs.d");
    let hd = hosts.display().to_string();
    let d = Daemon::start_in(dir, "");
    // A CA but no client certificate: refused.
    let host_dir = hosts_toml(&hosts, &reg.host(), "ca = \"ca.pem\"\n");
    fs::copy(reg.dir.join("ca.pem"), host_dir.join("ca.pem")).unwrap();
    let o = d.ctr(&["images", "pull", "--hosts-dir", &hd, &reference]);
    assert!(!o.status.success(), "pulled without a client certificate");
    assert!(
        stderr(&o).to_lowercase().contains("certificate"),
        "the handshake fails: {}",
        stderr(&o)
    );
    // hosts.toml's client pair.
    fs::copy(reg.dir.join("client.pem"), host_dir.join("c.pem")).unwrap();
    fs::copy(reg.dir.join("client.key"), host_dir.join("c.key")).unwrap();
    fs::write(
        host_dir.join("hosts.toml"),
        "ca = \"ca.pem\"\nclient = [[\"c.pem\", \"c.key\"]]\n",
    )
    .unwrap();
    d.pull(&["--hosts-dir", &hd, &reference]);
    // Docker's layout, in the `host_port_` spelling containerd tries first.
    let o = d.ctr(&["images", "rm", &reference]);
    assert!(o.status.success(), "{}", stderr(&o));
    let docker_dir = work.join("docker-certs.d");
    reg.docker_cert_dir(&docker_dir.join(reg.host().replace(':', "_") + "_"));
    d.pull(&["--hosts-dir", &docker_dir.display().to_string(), &reference]);
}
