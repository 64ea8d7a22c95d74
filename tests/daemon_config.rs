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

use prost::Message;
use skiff::daemon::spec::{self, SpecOptions, SPEC_TYPE_URL};
use skiff::image::oci::{self, Document};
use skiff::proto::services::{
    containers as pc, content as pct, images as pi, pull as pp, snapshots as ps, tasks as pt,
};
use skiff::proto::task as st;
use skiff::proto::types::{Any, Empty};
use skiff::ttrpc::{Client, Code, Status};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

// The daemon harness (tests/common/daemon.rs): own root, state, socket
// and namespace; Drop stops it and removes what it left.
include!("common/daemon.rs");

/// Proxies the daemon must not see (registries are on 127.0.0.1).
const PROXY_VARS: [&str; 4] = ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"];

/// The daemon started with `config.toml` (written from `config`) and
/// `DOCKER_CONFIG` = `<dir>/docker`, in a directory named after `tag`.
fn start_daemon(tag: &str, config: &str) -> Daemon {
    start_daemon_in(TempDir::new(tag), config)
}

fn start_daemon_in(dir: TempDir, config: &str) -> Daemon {
    let env = vec![
        ("DOCKER_CONFIG".to_string(), dir.s("docker")),
        ("HOME".to_string(), "/nonexistent".to_string()),
    ];
    let opts = DaemonOpts {
        env,
        env_remove: PROXY_VARS.iter().map(|v| v.to_string()).collect(),
        config: Some(config.to_string()),
    };
    Daemon::in_dir(dir, opts)
}

/// `ctr images pull ARGS`, which must succeed: its stdout.
#[track_caller]
fn ctr_pull(d: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["images", "pull"];
    all.extend_from_slice(args);
    d.ok(&all)
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
    for v in PROXY_VARS {
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
    let d = start_daemon("cfg-mirror", "version = 2\n");
    // ctr's --hosts-dir; no --plain-http: the hosts say http.
    let hd = hosts.display().to_string();
    ctr_pull(
        &d,
        &["--hosts-dir", &hd, &format!("{}/m:v1", origin.host())],
    );
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
    let o = Command::new(d.dir.join("bin/ctr"))
        .args(["-a", &d.address(), "-n", &d.ns, "images", "pull"])
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
    ctr_pull(
        &d,
        &[
            "--hosts-dir",
            &hosts2.display().to_string(),
            &format!("{}/m:v1", origin.host()),
        ],
    );
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
    let d = start_daemon_in(
        dir,
        &format!(
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"{}\"\n[metrics]\n  address = \"\"\n",
            hosts.display()
        ),
    );
    ctr_pull(&d, &[&format!("{}/x:v1", origin.host())]);
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
    let d = start_daemon_in(dir, &config);
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
    ctr_pull(&d, &[&reference]);
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
    let d = start_daemon_in(
        dir,
        &format!("[skiff]\n  hosts_dir = \"{}\"\n", hosts.display()),
    );
    ctr_pull(&d, &[&reference]);
}

/// The socket has its final owner and mode from the moment it exists (the
/// harness looks as soon as the file appears); with a group, a non-root
/// member is served and a non-member is refused.
#[test]
fn socket_mode_and_group() {
    let d = start_daemon("cfg-sock", "");
    let m = fs::metadata(d.address()).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    assert_eq!((m.uid(), m.gid()), (0, 0));
    drop(d);
    const GROUP: &str = "4242";
    let d = start_daemon("cfg-sock-gid", "[grpc]\n  gid = 4242\n");
    let m = fs::metadata(d.address()).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o660);
    assert_eq!(m.gid(), 4242);
    let o = d.ctr(&["version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Others may reach the socket's directory; the socket itself decides.
    fs::set_permissions(d.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    let as_user = |ids: &[&str]| {
        Command::new("setpriv")
            .args(ids)
            .arg(d.dir.join("bin/ctr"))
            .args(["-a", &d.address(), "-n", &d.ns, "version"])
            .env_remove("CONTAINERD_ADDRESS")
            .stdin(Stdio::null())
            .output()
            .expect("run setpriv")
    };
    let member = as_user(&["--reuid=4243", "--regid", GROUP, "--clear-groups"]);
    assert!(member.status.success(), "member: {}", stderr(&member));
    assert!(stdout(&member).contains("Server:"), "{}", stdout(&member));
    let supplementary = as_user(&["--reuid=4243", "--regid=4243", "--groups", GROUP]);
    assert!(
        supplementary.status.success(),
        "supplementary member: {}",
        stderr(&supplementary)
    );
    let other = as_user(&["--reuid=4243", "--regid=4243", "--clear-groups"]);
    assert!(!other.status.success(), "a non-member was served");
    assert!(
        stderr(&other).contains("ermission denied"),
        "{}",
        stderr(&other)
    );
}

#[test]
fn default_snapshotter_from_config() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("cfg-sn-work");
    let reference = format!("{}/sn:v1", reg.host());
    push_image(&work, "sn", &reference, &[]);
    let d = start_daemon("cfg-sn", "[skiff]\n  snapshotter = \"native\"\n");
    let o = Command::new(d.dir.join("bin/containerd"))
        .args(["--config", &d.dir.s("config.toml"), "config", "default"])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("snapshotter = \"native\""),
        "{}",
        stdout(&o)
    );
    ctr_pull(&d, &["--plain-http", &reference]);
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
    let bin = applet_links(&work);
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
    let d = start_daemon("cfg-rt", "[skiff]\n  runtime = \"io.containerd.runc.v2\"\n");
    let o = Command::new(d.dir.join("bin/containerd"))
        .args(["--config", &d.dir.s("config.toml"), "config", "default"])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("runtime = \"io.containerd.runc.v2\""),
        "{}",
        stdout(&o)
    );
    let c = skiff::ttrpc::Client::connect(&d.ttrpc_address()).unwrap();
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
            &[("containerd-namespace-ttrpc".into(), d.ns.clone())],
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

/// A registry that wants client certificates.
fn mtls_registry() -> Option<Registry> {
    Registry::start(RegistryConfig {
        tls: true,
        client_certs: true,
        ..Default::default()
    })
}

/// Docker's certificate layout for `reg`: ca.crt, client.cert, client.key.
fn docker_cert_dir(reg: &Registry, at: &Path) {
    fs::create_dir_all(at).unwrap();
    fs::copy(reg.dir.join("ca.pem"), at.join("ca.crt")).unwrap();
    fs::copy(reg.dir.join("client.pem"), at.join("client.cert")).unwrap();
    fs::copy(reg.dir.join("client.key"), at.join("client.key")).unwrap();
}

/// Client certificates: from hosts.toml's `client` pair, and from a host
/// directory in Docker's layout (no hosts.toml: `*.crt`, `*.cert`/`*.key`);
/// without one the registry refuses the handshake.
#[test]
fn client_certificates() {
    let Some(reg) = mtls_registry() else {
        return;
    };
    let work = TempDir::new("cfg-mtls-work");
    let certs = work.join("push-certs");
    docker_cert_dir(&reg, &certs);
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
    let d = start_daemon_in(dir, "");
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
    ctr_pull(&d, &["--hosts-dir", &hd, &reference]);
    // Docker's layout, in the `host_port_` spelling containerd tries first.
    let o = d.ctr(&["images", "rm", &reference]);
    assert!(o.status.success(), "{}", stderr(&o));
    let docker_dir = work.join("docker-certs.d");
    docker_cert_dir(&reg, &docker_dir.join(reg.host().replace(':', "_") + "_"));
    ctr_pull(
        &d,
        &["--hosts-dir", &docker_dir.display().to_string(), &reference],
    );
}

/// The daemon reads a request's hosts dir as root: with a socket group
/// (non-root peers), only the configured hosts dir or one inside it is
/// accepted; and a file that is not TOML is never echoed in the error.
#[test]
fn request_hosts_dir_is_confined_and_never_echoed() {
    let work = TempDir::new("cfg-hd-work");
    let secret = work.join("secret");
    fs::write(&secret, "root:$6$SECRETHASH:19000:0:99999:7:::\n").unwrap();
    let evil = work.join("evil");
    fs::create_dir_all(evil.join("127.0.0.1:1")).unwrap();
    std::os::unix::fs::symlink(&secret, evil.join("127.0.0.1:1/hosts.toml")).unwrap();
    let configured = work.join("certs.d");
    hosts_toml(&configured.join("sub"), "127.0.0.1:1", "a = [1 2]\n");
    let reference = "127.0.0.1:1/x:v1";
    let pull = |d: &Daemon, dir: &str| {
        let o = d.ctr(&["images", "pull", "--hosts-dir", dir, reference]);
        assert!(!o.status.success(), "{dir}: pulled");
        assert!(!stderr(&o).contains("SECRET"), "echoed: {}", stderr(&o));
        stderr(&o)
    };

    let d = start_daemon(
        "cfg-hd-gid",
        &format!(
            "[grpc]\n  gid = 4242\n[skiff]\n  hosts_dir = \"{}\"\n",
            configured.display()
        ),
    );
    for dir in [
        evil.display().to_string(),
        format!("{}/../evil", configured.display()),
    ] {
        let e = pull(&d, &dir);
        assert!(
            e.contains("may only name the daemon's hosts dir"),
            "{dir}: {e}"
        );
    }
    let inside = pull(&d, &configured.join("sub").display().to_string());
    assert!(inside.contains("line 1: in an array"), "read: {inside}");
    drop(d);

    // Root's peers alone: any dir, but the error names place, not text.
    let d = start_daemon("cfg-hd-root", "");
    let e = pull(&d, &evil.display().to_string());
    assert!(
        e.contains("line 1: expected '=', found something else at column 5"),
        "{e}"
    );
}

/// The registry's credentials go to its own host only: a `server` that
/// hosts.toml puts on another host gets only the auth file's entry for
/// that host, never --user or the entry for the registry's name.
#[test]
fn registry_credentials_stay_with_the_registry_host() {
    let Some(reg) = Registry::start(RegistryConfig {
        tls: true,
        htpasswd: Some(("alice".into(), "s3cret".into())),
        ..Default::default()
    }) else {
        return;
    };
    let work = TempDir::new("cfg-cred-work");
    push_image(
        &work,
        "cred",
        &format!("{}/private:v1", reg.host()),
        &["--dest-creds", "alice:s3cret"],
    );
    // The image is named after another registry whose hosts.toml sends
    // everything to `reg`.
    let named = "other.example:5000";
    let reference = format!("{named}/private:v1");
    let dir = TempDir::new("cfg-cred");
    let hosts = dir.join("certs.d");
    let host_dir = hosts_toml(
        &hosts,
        named,
        &format!("server = \"https://{}\"\nca = \"ca.pem\"\n", reg.host()),
    );
    fs::copy(reg.ca.as_ref().unwrap(), host_dir.join("ca.pem")).unwrap();
    fs::create_dir_all(dir.join("docker")).unwrap();
    let auth = skiff::base64::encode(b"alice:s3cret");
    let docker = dir.join("docker/config.json");
    let auths_for = |host: &str| format!("{{\"auths\": {{\"{host}\": {{\"auth\": \"{auth}\"}}}}}}");
    fs::write(&docker, auths_for(named)).unwrap();
    let d = start_daemon_in(
        dir,
        &format!("[skiff]\n  hosts_dir = \"{}\"\n", hosts.display()),
    );
    for extra in [&[][..], &["--user", "alice:s3cret"][..]] {
        let mut args = vec!["images", "pull"];
        args.extend_from_slice(extra);
        args.push(&reference);
        let o = d.ctr(&args);
        assert!(
            !o.status.success(),
            "{extra:?}: the registry's credentials went to the server"
        );
        assert!(
            stderr(&o).contains("authentication required"),
            "{}",
            stderr(&o)
        );
    }
    fs::write(&docker, auths_for(&reg.host())).unwrap();
    ctr_pull(&d, &[&reference]);
}
