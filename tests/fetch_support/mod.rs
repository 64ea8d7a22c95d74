//! Fixtures for the skiff-fetch integration tests: temp dirs, a local
//! docker-registry (plain, TLS, htpasswd, token) on 127.0.0.1, OCI layouts
//! built from busybox-static, and pushing them with skopeo. Every process
//! and directory made here is cleaned up by a Drop guard.
#![allow(dead_code)]

#[path = "../common/require.rs"]
mod require;
#[allow(unused_imports)]
pub use require::{applies, in_ci, require};

use skiff::image::digest::Digest;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The skiff binary under test: `SKIFF_TEST_BIN` (`make test` points it at
/// the static release build) or the one cargo built with the tests.
pub fn skiff_bin() -> PathBuf {
    match std::env::var_os("SKIFF_TEST_BIN") {
        Some(p) if !p.is_empty() => std::fs::canonicalize(&p).expect("SKIFF_TEST_BIN"),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_skiff")),
    }
}

/// A directory `<dir>/bin` with `ctr` and `containerd` links to the skiff
/// under test (it dispatches on its name).
pub fn applet_links(dir: &TempDir) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for name in ["ctr", "containerd"] {
        let _ = fs::remove_file(bin.join(name));
        std::os::unix::fs::symlink(skiff_bin(), bin.join(name)).unwrap();
    }
    bin
}

/// Run `skiff skiff-fetch ARGS…`.
pub fn fetch(args: &[&str]) -> Output {
    fetch_env(args, &[])
}

/// Run `skiff skiff-fetch ARGS…` with extra environment variables.
pub fn fetch_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(skiff_bin());
    cmd.arg("skiff-fetch").args(args);
    for v in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("HOME", "/nonexistent")
        .env("SKIFF_MIRRORS_FILE", "/nonexistent")
        .env_remove("DOCKER_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run skiff")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
pub fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "command failed: {}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    o
}

#[track_caller]
pub fn fails(o: Output, needle: &str) -> String {
    let e = stderr(&o);
    assert!(
        !o.status.success(),
        "command should have failed; stdout: {}",
        stdout(&o)
    );
    assert!(
        e.contains(needle),
        "stderr does not contain {needle:?}: {e}"
    );
    assert_eq!(
        e.trim_end().lines().count(),
        1,
        "error should be one line: {e}"
    );
    e
}

// ---- temp dirs ------------------------------------------------------------

pub struct TempDir(pub PathBuf);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p =
            std::env::temp_dir().join(format!("skiff-fetch-test-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        // Private, as skiff-fetch wants above a --rootfs.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
    pub fn s(&self, p: &str) -> String {
        self.0.join(p).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[track_caller]
pub fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

// ---- the registry -----------------------------------------------------------

#[derive(Default)]
pub struct RegistryConfig {
    pub tls: bool,
    /// With `tls`: clients must present a certificate signed by the CA
    /// (`client.pem`, `client.key` in the registry's dir).
    pub client_certs: bool,
    pub htpasswd: Option<(String, String)>,
    /// (realm URL, service, issuer, root cert bundle path)
    pub token: Option<(String, String, String, PathBuf)>,
}

pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: TempDir,
    /// With TLS: the CA certificate that signed the registry's certificate.
    pub ca: Option<PathBuf>,
}

impl Registry {
    /// None (the test returns) when the registry or skopeo is missing
    /// outside CI; see [`tool`].
    #[track_caller]
    pub fn start(cfg: RegistryConfig) -> Option<Registry> {
        if !(tool("/usr/bin/docker-registry", "docker-registry")
            && tool("/usr/bin/skopeo", "skopeo"))
        {
            return None;
        }
        let dir = TempDir::new("registry");
        let port = free_port();
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.s("data")
        );
        let mut ca = None;
        if cfg.tls {
            let (c, cert, key) = make_tls(&dir);
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            if cfg.client_certs {
                make_client_cert(&dir);
                yaml.push_str(&format!("    clientcas:\n      - {}\n", c.display()));
            }
            ca = Some(c);
        }
        if let Some((u, p)) = &cfg.htpasswd {
            let line = run(Command::new("htpasswd").args(["-Bbn", u, p]));
            fs::write(dir.join("htpasswd"), line).unwrap();
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
                dir.s("htpasswd")
            ));
        }
        if let Some((realm, service, issuer, bundle)) = &cfg.token {
            yaml.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                bundle.display()
            ));
        }
        fs::write(dir.join("config.yml"), yaml).unwrap();
        let log = fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let r = Registry {
            child,
            port,
            dir,
            ca,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                fs::read_to_string(r.dir.join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(r)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The file holding blob `d` in the registry's storage.
    pub fn blob_file(&self, d: &Digest) -> PathBuf {
        self.dir.join(&format!(
            "data/docker/registry/v2/blobs/sha256/{}/{}/data",
            &d.hex()[..2],
            d.hex()
        ))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client certificate signed by [`make_tls`]'s CA in `dir`: client.pem,
/// client.key.
pub fn make_client_cert(dir: &TempDir) {
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
}

/// A CA and a certificate for 127.0.0.1 signed by it: (ca.pem, cert, key).
pub fn make_tls(dir: &TempDir) -> (PathBuf, PathBuf, PathBuf) {
    let d = dir.path();
    let s = |n: &str| d.join(n).to_string_lossy().into_owned();
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=skiff test CA",
        ])
        .args(["-keyout", &s("ca.key"), "-out", &s("ca.pem")])
        .args([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-keyout", &s("server.key"), "-out", &s("server.csr")]));
    fs::write(d.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
    run(Command::new("openssl")
        .args([
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &s("server.csr"),
            "-CA",
            &s("ca.pem"),
            "-CAkey",
            &s("ca.key"),
        ])
        .args([
            "-CAcreateserial",
            "-out",
            &s("server.pem"),
            "-extfile",
            &s("ext.cnf"),
        ]));
    (d.join("ca.pem"), d.join("server.pem"), d.join("server.key"))
}

// ---- images -------------------------------------------------------------------

#[derive(Clone)]
pub enum Entry {
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
        uid: u64,
        gid: u64,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    Fifo {
        path: String,
    },
    Char {
        path: String,
        major: u32,
        minor: u32,
    },
    /// A file whose owner is given by PAX records only.
    PaxOwned {
        path: String,
        uid: u32,
        gid: u32,
    },
    /// A file carrying a security.capability PAX xattr.
    CapFile {
        path: String,
        data: Vec<u8>,
        cap: Vec<u8>,
    },
}

pub fn file(path: &str, data: &str) -> Entry {
    Entry::File {
        path: path.into(),
        data: data.as_bytes().to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
    }
}
pub fn dir(path: &str) -> Entry {
    Entry::Dir {
        path: path.into(),
        mode: 0o755,
    }
}
pub fn symlink(path: &str, target: &str) -> Entry {
    Entry::Symlink {
        path: path.into(),
        target: target.into(),
    }
}
pub fn hardlink(path: &str, target: &str) -> Entry {
    Entry::Hardlink {
        path: path.into(),
        target: target.into(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

/// Build a tar stream; names are written raw so hostile names survive.
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(0o644);
        h.set_size(0);
        let (path, data): (&str, &[u8]) = match e {
            Entry::File {
                path,
                data,
                mode,
                uid,
                gid,
            } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_uid(*uid);
                h.set_gid(*gid);
                h.set_size(data.len() as u64);
                (path, data)
            }
            Entry::Dir { path, mode } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                (path, &[])
            }
            Entry::Symlink { path, target } | Entry::Hardlink { path, target } => {
                h.set_entry_type(if matches!(e, Entry::Symlink { .. }) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_mode(0o777);
                let raw = &mut h.as_old_mut().linkname;
                raw.fill(0);
                raw[..target.len()].copy_from_slice(target.as_bytes());
                (path, &[])
            }
            Entry::Fifo { path } => {
                h.set_entry_type(tar::EntryType::Fifo);
                (path, &[])
            }
            Entry::Char { path, major, minor } => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
                h.set_mode(0o666);
                (path, &[])
            }
            Entry::PaxOwned { path, uid, gid } => {
                let (u, g) = (uid.to_string(), gid.to_string());
                b.append_pax_extensions([("uid", u.as_bytes()), ("gid", g.as_bytes())])
                    .unwrap();
                h.set_entry_type(tar::EntryType::Regular);
                (path, &[])
            }
            Entry::CapFile { path, data, cap } => {
                b.append_pax_extensions([("SCHILY.xattr.security.capability", cap.as_slice())])
                    .unwrap();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o755);
                h.set_size(data.len() as u64);
                (path, data)
            }
        };
        let raw = &mut h.as_old_mut().name;
        raw.fill(0);
        raw[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn compress(data: &[u8], c: Comp) -> Vec<u8> {
    match c {
        Comp::None => data.to_vec(),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Comp::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

pub struct Layer {
    pub entries: Vec<Entry>,
    pub comp: Comp,
}

pub struct ImageSpec {
    pub arch: String,
    pub variant: Option<String>,
    pub layers: Vec<Layer>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub user: String,
}

impl ImageSpec {
    pub fn new(layers: Vec<Layer>) -> ImageSpec {
        ImageSpec {
            arch: "amd64".into(),
            variant: None,
            layers,
            entrypoint: vec![],
            cmd: vec!["sh".into()],
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            workdir: String::new(),
            user: String::new(),
        }
    }
}

fn json_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|s| skiff::json::quote(s))
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// A blob written to a layout: (media type, digest, size).
pub struct Written {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

fn put_blob(layout: &Path, data: &[u8], media_type: &str) -> Written {
    let d = Digest::of(data);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(d.hex()), data).unwrap();
    Written {
        media_type: media_type.into(),
        digest: d,
        size: data.len() as u64,
    }
}

fn desc_json(w: &Written, platform: Option<(&str, Option<&str>)>) -> String {
    let plat = match platform {
        Some((arch, var)) => format!(
            r#","platform":{{"architecture":"{arch}","os":"linux"{}}}"#,
            var.map(|v| format!(r#","variant":"{v}""#))
                .unwrap_or_default()
        ),
        None => String::new(),
    };
    format!(
        r#"{{"mediaType":"{}","digest":"{}","size":{}{plat}}}"#,
        w.media_type, w.digest, w.size
    )
}

/// Write an image's blobs into `layout`; returns the manifest blob and the
/// layer digests.
pub fn write_image(layout: &Path, img: &ImageSpec) -> (Written, Vec<Digest>) {
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in &img.layers {
        let raw = tar(&l.entries);
        diff_ids.push(Digest::of(&raw).to_string());
        let mt = match l.comp {
            Comp::None => "application/vnd.oci.image.layer.v1.tar",
            Comp::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        };
        layer_descs.push(put_blob(layout, &compress(&raw, l.comp), mt));
    }
    let config = format!(
        r#"{{"architecture":"{}",{}"os":"linux","created":"2024-01-01T00:00:00Z","config":{{"Env":{},"Entrypoint":{},"Cmd":{},"WorkingDir":{},"User":{}}},"rootfs":{{"type":"layers","diff_ids":{}}}}}"#,
        img.arch,
        img.variant
            .as_ref()
            .map(|v| format!(r#""variant":"{v}","#))
            .unwrap_or_default(),
        json_list(&img.env),
        if img.entrypoint.is_empty() {
            "null".into()
        } else {
            json_list(&img.entrypoint)
        },
        json_list(&img.cmd),
        skiff::json::quote(&img.workdir),
        skiff::json::quote(&img.user),
        json_list(&diff_ids)
    );
    let cfg = put_blob(
        layout,
        config.as_bytes(),
        "application/vnd.oci.image.config.v1+json",
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{}]}}"#,
        desc_json(&cfg, None),
        layer_descs
            .iter()
            .map(|l| desc_json(l, None))
            .collect::<Vec<_>>()
            .join(",")
    );
    let m = put_blob(
        layout,
        manifest.as_bytes(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    (m, layer_descs.into_iter().map(|l| l.digest).collect())
}

/// Write an OCI layout holding `images` under `tag`: one image is named
/// directly; several become a multi-platform index.
pub fn write_layout(layout: &Path, tag: &str, images: &[ImageSpec]) -> Vec<Digest> {
    fs::create_dir_all(layout).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let mut layers = Vec::new();
    let top = if images.len() == 1 {
        let (m, l) = write_image(layout, &images[0]);
        layers.extend(l);
        m
    } else {
        let mut list = Vec::new();
        for img in images {
            let (m, l) = write_image(layout, img);
            layers.extend(l);
            list.push(desc_json(&m, Some((&img.arch, img.variant.as_deref()))));
        }
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
            list.join(",")
        );
        put_blob(
            layout,
            index.as_bytes(),
            "application/vnd.oci.image.index.v1+json",
        )
    };
    let d = desc_json(&top, None);
    let d = d.trim_end_matches('}').to_string()
        + &format!(r#","annotations":{{"org.opencontainers.image.ref.name":"{tag}"}}}}"#);
    fs::write(
        layout.join("index.json"),
        format!(r#"{{"schemaVersion":2,"manifests":[{d}]}}"#),
    )
    .unwrap();
    layers
}

/// A tool the fetch tests cannot do without (`make test` installs it):
/// the one skip rule, [`require`] (missing: fails under CI=true, skipped
/// otherwise, naming the package).
#[track_caller]
pub fn tool(path: &str, package: &str) -> bool {
    require(
        Path::new(path).exists(),
        &format!("{path} (package {package})"),
    )
}

/// Push an OCI layout's `tag` to `dest` (`host:port/repo:tag`).
pub fn push(layout: &Path, tag: &str, dest: &str, extra: &[&str]) {
    let mut cmd = Command::new("skopeo");
    cmd.args([
        "--insecure-policy",
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
    ]);
    cmd.args(extra);
    cmd.arg(format!("oci:{}:{tag}", layout.display()));
    cmd.arg(format!("docker://{dest}"));
    for v in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
        cmd.env_remove(v);
    }
    run(&mut cmd);
}

/// The busybox rootfs as layer entries: /bin/busybox and applet links.
pub fn busybox_entries() -> Vec<Entry> {
    let bb = fs::read("/bin/busybox").expect("busybox-static is installed");
    let mut e = vec![
        dir("bin/"),
        dir("etc/"),
        dir("tmp/"),
        Entry::File {
            path: "bin/busybox".into(),
            data: bb,
            mode: 0o755,
            uid: 0,
            gid: 0,
        },
        file(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/var/www:/bin/sh\n",
        ),
        file("etc/group", "root:x:0:\nwheel:x:10:root,www\nweb:x:34:\n"),
    ];
    for applet in [
        "sh", "echo", "cat", "ls", "id", "pwd", "env", "true", "stat",
    ] {
        e.push(hardlink(&format!("bin/{applet}"), "bin/busybox"));
    }
    e
}

/// Read a whole file, panicking with its name.
pub fn read(p: &Path) -> String {
    let mut s = String::new();
    fs::File::open(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .read_to_string(&mut s)
        .unwrap();
    s
}

// ---- a token server for the registry's token auth -----------------------------

pub struct TokenServer {
    pub port: u16,
    pub dir: TempDir,
    pub service: String,
    pub issuer: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// How many token requests carried the expected Basic credentials.
    pub authed: std::sync::Arc<AtomicUsize>,
}

fn b64url(data: &[u8]) -> String {
    skiff::registry::auth::base64_encode(data)
        .replace('+', "-")
        .replace('/', "_")
        .trim_end_matches('=')
        .to_string()
}

impl TokenServer {
    /// Issue tokens signed by a key made here; with `creds`, only to
    /// requests with those Basic credentials.
    pub fn start(creds: Option<(String, String)>) -> TokenServer {
        let dir = TempDir::new("token");
        let (key, cert) = (dir.join("token.key"), dir.join("token.pem"));
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=skiff token",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap()
            .stdout;
        let x5c = skiff::registry::auth::base64_encode(&der);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let authed = std::sync::Arc::new(AtomicUsize::new(0));
        let (service, issuer) = ("skiff-registry".to_string(), "skiff-issuer".to_string());
        let thread = {
            let (stop, authed, service, issuer, key) = (
                stop.clone(),
                authed.clone(),
                service.clone(),
                issuer.clone(),
                key.clone(),
            );
            let want = creds.map(|(u, p)| {
                format!(
                    "Basic {}",
                    skiff::registry::auth::base64_encode(format!("{u}:{p}").as_bytes())
                )
            });
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let (mut s, _) = match listener.accept() {
                        Ok(c) => c,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    };
                    s.set_nonblocking(false).unwrap();
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let req = String::from_utf8_lossy(&buf).into_owned();
                    let auth = req
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("Authorization: ")
                                .or_else(|| l.strip_prefix("authorization: "))
                        })
                        .map(str::trim);
                    if let Some(w) = &want {
                        if auth != Some(w.as_str()) {
                            let _ = s.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                            continue;
                        }
                        authed.fetch_add(1, Ordering::SeqCst);
                    }
                    let target = req.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut access = Vec::new();
                    for kv in target.split('?').nth(1).unwrap_or("").split('&') {
                        if let Some(v) = kv.strip_prefix("scope=") {
                            let v = v
                                .replace("%3A", ":")
                                .replace("%2F", "/")
                                .replace("%2C", ",");
                            let parts: Vec<&str> = v.split(':').collect();
                            if parts.len() == 3 {
                                let actions: Vec<String> =
                                    parts[2].split(',').map(|a| format!("\"{a}\"")).collect();
                                access.push(format!(
                                    r#"{{"type":"{}","name":"{}","actions":[{}]}}"#,
                                    parts[0],
                                    parts[1],
                                    actions.join(",")
                                ));
                            }
                        }
                    }
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    let header = format!(r#"{{"alg":"RS256","typ":"JWT","x5c":["{x5c}"]}}"#);
                    let claims = format!(
                        r#"{{"iss":"{issuer}","sub":"test","aud":"{service}","exp":{},"nbf":{},"iat":{now},"jti":"{now}-{}","access":[{}]}}"#,
                        now + 600,
                        now - 60,
                        access.len(),
                        access.join(",")
                    );
                    let signing = format!(
                        "{}.{}",
                        b64url(header.as_bytes()),
                        b64url(claims.as_bytes())
                    );
                    let mut child = Command::new("openssl")
                        .args(["dgst", "-sha256", "-sign"])
                        .arg(&key)
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .spawn()
                        .unwrap();
                    child
                        .stdin
                        .take()
                        .unwrap()
                        .write_all(signing.as_bytes())
                        .unwrap();
                    let sig = child.wait_with_output().unwrap().stdout;
                    let token = format!("{signing}.{}", b64url(&sig));
                    let body = format!(r#"{{"token":"{token}","expires_in":600}}"#);
                    let _ = s.write_all(
                        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes(),
                    );
                }
            })
        };
        TokenServer {
            port,
            dir,
            service,
            issuer,
            stop,
            thread: Some(thread),
            authed,
        }
    }

    pub fn registry_config(&self) -> RegistryConfig {
        RegistryConfig {
            token: Some((
                format!("http://127.0.0.1:{}/token", self.port),
                self.service.clone(),
                self.issuer.clone(),
                self.dir.join("token.pem"),
            )),
            ..Default::default()
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---- a proxy that breaks blob transfers ------------------------------------------

/// Forwards HTTP/1.1 requests to a registry; the first `cuts` blob responses
/// are cut after `keep` bytes. Records every Range header it sees.
pub struct CutProxy {
    pub port: u16,
    pub ranges: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub cuts: std::sync::Arc<AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CutProxy {
    pub fn start(upstream: u16, keep: usize, cuts: usize) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let ranges = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let cuts = std::sync::Arc::new(AtomicUsize::new(cuts));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (ranges, cuts, stop) = (ranges.clone(), cuts.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok((mut client, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    client.set_nonblocking(false).unwrap();
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match client.read(&mut b) {
                            Ok(1) => head.push(b[0]),
                            _ => break,
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let mut lines: Vec<&str> =
                        text.split("\r\n").filter(|l| !l.is_empty()).collect();
                    let is_blob = lines.first().is_some_and(|l| l.contains("/blobs/"));
                    if let Some(r) = lines
                        .iter()
                        .find(|l| l.to_ascii_lowercase().starts_with("range:"))
                    {
                        ranges.lock().unwrap().push(r.to_string());
                    }
                    lines.retain(|l| !l.to_ascii_lowercase().starts_with("connection:"));
                    let req = format!("{}\r\nConnection: close\r\n\r\n", lines.join("\r\n"));
                    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        continue;
                    };
                    up.write_all(req.as_bytes()).unwrap();
                    let cut = is_blob
                        && cuts
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
                            .is_ok();
                    let mut sent = 0usize;
                    let mut buf = [0u8; 16384];
                    loop {
                        let n = match up.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let n = if cut {
                            n.min(keep.saturating_sub(sent))
                        } else {
                            n
                        };
                        if n == 0 || client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n;
                    }
                    let _ = client.shutdown(std::net::Shutdown::Both);
                }
            })
        };
        CutProxy {
            port,
            ranges,
            cuts,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---- a scriptable HTTP front ------------------------------------------------------------

/// What a [`Front`] does with one request.
pub enum Action {
    /// Pass it to the registry on this port.
    Forward(u16),
    /// Answer with this raw HTTP response.
    Respond(String),
}

/// A request as the front saw it: the request line and the headers.
#[derive(Clone, Debug)]
pub struct Seen {
    pub line: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Front {
    pub port: u16,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Front {
    pub fn start(handler: impl Fn(&Seen) -> Action + Send + 'static) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok((mut client, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    client.set_nonblocking(false).unwrap();
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match client.read(&mut b) {
                            Ok(1) => head.push(b[0]),
                            _ => break,
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
                    let line = lines.next().unwrap_or("").to_string();
                    let headers: Vec<(String, String)> = lines
                        .filter_map(|l| {
                            l.split_once(':')
                                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        })
                        .collect();
                    let req = Seen { line, headers };
                    seen.lock().unwrap().push(req.clone());
                    match handler(&req) {
                        Action::Respond(r) => {
                            let _ = client.write_all(r.as_bytes());
                        }
                        Action::Forward(up) => {
                            let mut out = format!("{}\r\n", req.line);
                            for (k, v) in &req.headers {
                                if !k.eq_ignore_ascii_case("connection")
                                    && !k.eq_ignore_ascii_case("authorization")
                                {
                                    out.push_str(&format!("{k}: {v}\r\n"));
                                }
                            }
                            out.push_str("Connection: close\r\n\r\n");
                            let Ok(mut up) = TcpStream::connect(("127.0.0.1", up)) else {
                                continue;
                            };
                            up.write_all(out.as_bytes()).unwrap();
                            let _ = std::io::copy(&mut up, &mut client);
                        }
                    }
                    let _ = client.shutdown(std::net::Shutdown::Both);
                }
            })
        };
        Front {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
