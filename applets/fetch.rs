//! skiff-fetch: pull images from registries into the local store, unpack
//! them, write OCI layouts and runtime bundles; inspect, ls, rm.

use crate::args::{normalize, Flags};
use argh::FromArgs;
use skiff::image::digest::Digest;
use skiff::image::oci::{self, Descriptor, Platform, REF_NAME};
use skiff::image::pull::{self, Observer, PullOptions};
use skiff::image::store::Store;
use skiff::image::unpack::{self, Rootfs};
use skiff::image::{bundle, layout};
use skiff::registry::auth::{self, Credentials};
use skiff::registry::{Client, Mirror, Options, Reference};
use skiff::{Context, Error, Result};
use std::io::{IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const DEFAULT_STORE: &str = "/var/lib/skiff";
const MIRRORS_FILE: &str = "/etc/skiff/mirrors";

#[derive(FromArgs)]
/// pull images from OCI registries, unpack them and write runtime bundles
struct Top {
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Pull(PullCmd),
    Inspect(InspectCmd),
    Ls(LsCmd),
    Rm(RmCmd),
}

#[derive(FromArgs)]
/// pull an image into the store; optionally write a layout, rootfs or bundle
#[argh(subcommand, name = "pull")]
struct PullCmd {
    /// the content store (default /var/lib/skiff)
    #[argh(option)]
    store: Option<PathBuf>,
    /// also write an OCI image layout into DIR
    #[argh(option)]
    layout: Option<PathBuf>,
    /// unpack the image into DIR (absent or empty; a directory above it
    /// must be closed to other users, e.g. 0700: see --allow-shared-parent)
    #[argh(option)]
    rootfs: Option<PathBuf>,
    /// let --rootfs DIR be reachable by other users (its setuid files and
    /// device nodes too)
    #[argh(switch)]
    allow_shared_parent: bool,
    /// write a runtime bundle: DIR/rootfs and DIR/config.json
    #[argh(option)]
    bundle: Option<PathBuf>,
    /// layer downloads at once (default 3)
    #[argh(option, default = "3")]
    parallel: usize,
    #[argh(positional)]
    reference: String,
    #[argh(option)]
    /// os/arch[/variant] to pull (default: this host)
    platform: Option<String>,
    #[argh(switch)]
    /// talk HTTP, not HTTPS, to the registry
    plain_http: bool,
    #[argh(option)]
    /// false: do not verify the registry's TLS certificate
    tls_verify: Option<String>,
    #[argh(option)]
    /// trust this CA certificate (PEM) too; repeatable
    ca: Vec<PathBuf>,
    #[argh(option)]
    /// credentials USER[:PASS]
    user: Option<String>,
    #[argh(option)]
    /// docker config.json with "auths" (default ~/.docker/config.json)
    auth_file: Option<PathBuf>,
    #[argh(option)]
    /// HOST=URL: try this mirror of HOST first; repeatable
    mirror: Vec<String>,
    #[argh(switch, short = 'q')]
    /// print nothing but errors
    quiet: bool,
    #[argh(option)]
    /// unpack at most N uncompressed bytes, all layers together
    max_bytes: Option<u64>,
    #[argh(option)]
    /// unpack at most N tar entries, all layers together
    max_entries: Option<u64>,
    #[argh(option)]
    /// refuse entry names (and link targets) longer than N bytes
    max_path: Option<usize>,
    #[argh(option)]
    /// refuse entry names of more than N components
    max_depth: Option<usize>,
}

impl PullCmd {
    /// The unpack limits: the defaults, with what the flags change.
    fn limits(&self) -> unpack::Limits {
        let d = unpack::Limits::default();
        unpack::Limits {
            max_bytes: self.max_bytes.unwrap_or(d.max_bytes),
            max_entries: self.max_entries.unwrap_or(d.max_entries),
            max_path: self.max_path.unwrap_or(d.max_path),
            max_link: self.max_path.unwrap_or(d.max_link),
            max_depth: self.max_depth.unwrap_or(d.max_depth),
            ..d
        }
    }
}

#[derive(FromArgs)]
/// show an image's manifest and config without pulling its layers
#[argh(subcommand, name = "inspect")]
struct InspectCmd {
    #[argh(positional)]
    reference: String,
    #[argh(option)]
    /// os/arch[/variant] (default: this host)
    platform: Option<String>,
    #[argh(switch)]
    /// talk HTTP, not HTTPS, to the registry
    plain_http: bool,
    #[argh(option)]
    /// false: do not verify the registry's TLS certificate
    tls_verify: Option<String>,
    #[argh(option)]
    /// trust this CA certificate (PEM) too; repeatable
    ca: Vec<PathBuf>,
    #[argh(option)]
    /// credentials USER[:PASS]
    user: Option<String>,
    #[argh(option)]
    /// docker config.json with "auths" (default ~/.docker/config.json)
    auth_file: Option<PathBuf>,
    #[argh(option)]
    /// HOST=URL: try this mirror of HOST first; repeatable
    mirror: Vec<String>,
}

#[derive(FromArgs)]
/// list the images in the store
#[argh(subcommand, name = "ls")]
struct LsCmd {
    /// the content store (default /var/lib/skiff)
    #[argh(option)]
    store: Option<PathBuf>,
    #[argh(switch, short = 'q')]
    /// print references only
    quiet: bool,
}

#[derive(FromArgs)]
/// remove an image from the store and the blobs only it used
#[argh(subcommand, name = "rm")]
struct RmCmd {
    /// the content store (default /var/lib/skiff)
    #[argh(option)]
    store: Option<PathBuf>,
    #[argh(positional)]
    references: Vec<String>,
}

const FLAGS: Flags = Flags {
    options: &[
        "store",
        "layout",
        "rootfs",
        "bundle",
        "parallel",
        "platform",
        "tls-verify",
        "ca",
        "user",
        "auth-file",
        "mirror",
        "max-bytes",
        "max-entries",
        "max-path",
        "max-depth",
    ],
    switches: &["plain-http", "quiet"],
};

pub fn main(name: &str, args: Vec<String>) -> ExitCode {
    // `-- ARGS…` after the reference is the container's command.
    let (args, command) = match args.iter().position(|a| a == "--") {
        Some(i) => (args[..i].to_vec(), Some(args[i + 1..].to_vec())),
        None => (args, None),
    };
    let args = normalize(args, &FLAGS, None);
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let top = match Top::from_args(&[name], &strs) {
        Ok(t) => t,
        Err(e) => {
            if e.status.is_ok() {
                say(&e.output);
                return ExitCode::SUCCESS;
            }
            eprintln!("{name}: {}", e.output.trim_end());
            return ExitCode::from(2);
        }
    };
    let r = match top.cmd {
        Cmd::Pull(p) => cmd_pull(p, command),
        Cmd::Inspect(i) if command.is_none() => cmd_inspect(i),
        Cmd::Ls(l) if command.is_none() => cmd_ls(l),
        Cmd::Rm(r) if command.is_none() => cmd_rm(r),
        _ => Err(Error::new("a command after -- is only for pull")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Write to stdout; a closed pipe ends the program quietly.
/// A line on stdout (a newline added when missing).
fn say(s: &str) {
    if s.ends_with('\n') {
        crate::output::print(s);
    } else {
        crate::output::print(&format!("{s}\n"));
    }
}

struct RegistryFlags<'a> {
    plain_http: bool,
    tls_verify: &'a Option<String>,
    ca: &'a [PathBuf],
    user: &'a Option<String>,
    auth_file: &'a Option<PathBuf>,
    mirror: &'a [String],
}

fn client_options(f: RegistryFlags) -> Result<Options> {
    let tls_verify = match f
        .tls_verify
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("true" | "1" | "t") => true,
        Some("false" | "0" | "f") => false,
        Some(other) => {
            return Err(Error::new(format!(
                "--tls-verify: expected true or false, got {other:?}"
            )))
        }
    };
    let mut mirrors = f
        .mirror
        .iter()
        .map(|m| Mirror::parse(m))
        .collect::<Result<Vec<_>>>()?;
    let mirrors_file = std::env::var_os("SKIFF_MIRRORS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(MIRRORS_FILE));
    if mirrors_file.exists() {
        mirrors.extend(Mirror::read_file(&mirrors_file)?);
    }
    let auth_file = match f.auth_file {
        Some(p) => {
            if !p.exists() {
                return Err(Error::new(format!(
                    "auth file {}: does not exist",
                    p.display()
                )));
            }
            Some(p.clone())
        }
        None => auth::default_auth_file(),
    };
    Ok(Options {
        plain_http: f.plain_http,
        tls_verify,
        ca_files: f.ca.to_vec(),
        credentials: f.user.as_deref().map(Credentials::parse),
        auth_file,
        mirrors,
        hosts_dir: None,
    })
}

fn platform(p: &Option<String>) -> Result<Platform> {
    match p {
        Some(s) => Platform::parse(s),
        None => Ok(Platform::host()),
    }
}

fn cmd_pull(p: PullCmd, command: Option<Vec<String>>) -> Result<()> {
    // A bundle directory, or a store, that this pull creates goes again if
    // the pull fails (a store only while it holds nothing).
    let made_bundle = p.bundle.as_ref().filter(|b| !b.exists()).cloned();
    let store_dir = p
        .store
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE));
    let made_store = !store_dir.exists();
    let r = pull_inner(p, command);
    if r.is_err() {
        if let Some(b) = made_bundle {
            let _ = std::fs::remove_dir(b);
        }
        if made_store && store_holds_nothing(&store_dir) {
            let _ = std::fs::remove_dir_all(&store_dir);
        }
    }
    r
}

/// No blob and no partial download in a store dir.
fn store_holds_nothing(dir: &Path) -> bool {
    ["blobs/sha256", "blobs/sha512", "ingest"]
        .iter()
        .all(|sub| {
            std::fs::read_dir(dir.join(sub)).map_or(true, |mut entries| entries.next().is_none())
        })
}

fn pull_inner(p: PullCmd, command: Option<Vec<String>>) -> Result<()> {
    let reference = Reference::parse(&p.reference)?;
    let opts = client_options(RegistryFlags {
        plain_http: p.plain_http,
        tls_verify: &p.tls_verify,
        ca: &p.ca,
        user: &p.user,
        auth_file: &p.auth_file,
        mirror: &p.mirror,
    })?;
    let platform = platform(&p.platform)?;
    if command.is_some() && p.bundle.is_none() {
        return Err(Error::new("a command after -- needs --bundle"));
    }
    if p.rootfs.is_some() && p.bundle.is_some() {
        return Err(Error::new(
            "--rootfs and --bundle exclude each other (the bundle has its own rootfs)",
        ));
    }
    let rootfs_dir = match (&p.rootfs, &p.bundle) {
        (Some(r), _) => Some(r.clone()),
        (None, Some(b)) => Some(b.join("rootfs")),
        _ => None,
    };
    if let Some(dir) = &rootfs_dir {
        unpack::check_empty_target(dir)?;
    }
    // An image's setuid files, file capabilities and device nodes must
    // not be reachable by other host users (containerd keeps rootfs in
    // 0700 directories; a bundle is made 0700 below).
    if let Some(dir) = &p.rootfs {
        if !p.allow_shared_parent && unpack::reachable_by_others(dir)? {
            return Err(Error::new(format!(
                "--rootfs {}: other users can reach it (no directory above it is closed \
                 to them), and with it the image's setuid files and device nodes: unpack \
                 below a directory only its owner can enter (0700), or pass \
                 --allow-shared-parent",
                dir.display()
            )));
        }
    }
    // The bundle holds the rootfs: private (0700), so the image's setuid
    // files, file capabilities and device nodes are out of other users'
    // reach (as containerd keeps its bundles).
    if let Some(b) = &p.bundle {
        unpack::create_private_dirs(b)?;
    }
    let store = Store::open(p.store.as_deref().unwrap_or(Path::new(DEFAULT_STORE)))?;
    let client = Client::new(&opts, &reference)?;
    let limits = p.limits();
    let rootfs = rootfs_dir
        .as_deref()
        .map(|d| Rootfs::with_limits(d, limits))
        .transpose()?;
    let progress = Progress::new(p.quiet);
    let pulled = std::thread::scope(|s| {
        let painter = progress.tty.then(|| s.spawn(|| progress.paint_loop()));
        let r = pull::pull(
            &store,
            &client,
            &reference,
            &PullOptions {
                platform: platform.clone(),
                parallel: p.parallel,
                observer: &progress,
                rootfs: rootfs.as_ref(),
                tag: true,
            },
        );
        progress.stop.store(true, Ordering::SeqCst);
        if let Some(h) = painter {
            let _ = h.join();
        }
        r
    })
    .map_err(|e| e.wrap(format!("pull {reference}")))?;

    // Everything that can still fail comes before the rootfs moves into
    // place: a failed pull leaves no finished rootfs, no bundle without
    // its config.
    let m = &pulled.resolved.manifest;
    if let Some(dir) = &p.layout {
        let name = reference
            .tag
            .clone()
            .unwrap_or_else(|| reference.to_string());
        let blobs: Vec<&Descriptor> = std::iter::once(&m.config).chain(m.layers.iter()).collect();
        layout::write(dir, &store, &pulled.resolved.descriptor, &blobs, &name)
            .map_err(|e| e.wrap(format!("layout {}", dir.display())))?;
    }
    if let Some(bundle_dir) = &p.bundle {
        let rootfs = rootfs.expect("rootfs for a bundle");
        let cfg = &pulled.config;
        let args = bundle::command(cfg, command.as_deref())
            .map_err(|e| e.wrap(format!("bundle {}", bundle_dir.display())))?;
        let user = bundle::resolve_user(rootfs.path(), &cfg.user)
            .map_err(|e| e.wrap(format!("bundle {}", bundle_dir.display())))?;
        let text = bundle::config_json(&args, &bundle::environment(cfg), &cfg.working_dir, &user);
        std::fs::set_permissions(bundle_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("bundle {}", bundle_dir.display()))?;
        let config = bundle_dir.join("config.json");
        skiff::image::store::write_atomic(&config, text.as_bytes())?;
        if let Err(e) = rootfs.finish() {
            let _ = std::fs::remove_file(&config);
            return Err(e);
        }
    } else if let Some(rootfs) = rootfs {
        rootfs.finish()?;
    }
    if !p.quiet {
        let total: u64 = m.layers.iter().map(|l| l.size).sum();
        say(&format!(
            "{reference}: {} ({}, {} layers, {})",
            pulled.resolved.descriptor.digest,
            pulled
                .resolved
                .descriptor
                .platform
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "unknown platform".into()),
            m.layers.len(),
            human(total)
        ));
    }
    Ok(())
}

fn cmd_inspect(i: InspectCmd) -> Result<()> {
    let reference = Reference::parse(&i.reference)?;
    let opts = client_options(RegistryFlags {
        plain_http: i.plain_http,
        tls_verify: &i.tls_verify,
        ca: &i.ca,
        user: &i.user,
        auth_file: &i.auth_file,
        mirror: &i.mirror,
    })?;
    let platform = platform(&i.platform)?;
    let client = Client::new(&opts, &reference)?;
    let inner = || -> Result<String> {
        let r = pull::resolve(&client, &reference, &platform)?;
        let m = &r.manifest;
        let cfg_bytes = client
            .blob_bytes(&m.config)
            .with_context(|| format!("fetch config {}", m.config.digest))?;
        let cfg = oci::parse_config(&cfg_bytes, &format!("config {}", m.config.digest))?;
        let mut s = String::new();
        let mut line = |k: &str, v: &str| s.push_str(&format!("{k:<12}{v}\n"));
        line("Reference:", &reference.to_string());
        if let Some(list) = &r.index {
            let plats: Vec<String> = list
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect();
            line("Platforms:", &plats.join(", "));
        }
        line(
            "Manifest:",
            &format!(
                "{} ({}, {} bytes)",
                r.descriptor.digest, m.media_type, r.descriptor.size
            ),
        );
        line("Platform:", &cfg.platform.to_string());
        if let Some(c) = &cfg.created {
            line("Created:", c);
        }
        line(
            "Config:",
            &format!("{} ({} bytes)", m.config.digest, m.config.size),
        );
        line("Entrypoint:", &json_list(&cfg.entrypoint));
        line("Cmd:", &json_list(&cfg.cmd));
        line("WorkingDir:", &cfg.working_dir);
        line("User:", &cfg.user);
        for (n, e) in cfg.env.iter().enumerate() {
            line(if n == 0 { "Env:" } else { "" }, e);
        }
        let total: u64 = m.layers.iter().map(|l| l.size).sum();
        line("Layers:", &format!("{} ({})", m.layers.len(), human(total)));
        for l in &m.layers {
            s.push_str(&format!(
                "  {}  {:>10}  {}\n",
                l.digest, l.size, l.media_type
            ));
        }
        Ok(s)
    };
    let s = inner().map_err(|e| e.wrap(format!("inspect {reference}")))?;
    say(&s);
    Ok(())
}

fn json_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|s| skiff::json::quote(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn cmd_ls(l: LsCmd) -> Result<()> {
    let root = l.store.unwrap_or_else(|| PathBuf::from(DEFAULT_STORE));
    let store = match Store::open_existing(&root) {
        Ok(s) => s,
        Err(_) if !root.exists() => return Ok(()),
        Err(e) => return Err(e),
    };
    let images = store.images()?;
    let mut rows = vec![[
        "REFERENCE".to_string(),
        "PLATFORM".into(),
        "DIGEST".into(),
        "SIZE".into(),
    ]];
    for d in &images {
        let name = d.annotation(REF_NAME).unwrap_or("").to_string();
        if l.quiet {
            say(&name);
            continue;
        }
        let size = image_size(&store, d)
            .map(human)
            .unwrap_or_else(|| "-".into());
        let plat = d
            .platform
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        rows.push([name, plat, d.digest.to_string(), size]);
    }
    if l.quiet {
        return Ok(());
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for r in &rows {
        s.push_str(&format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}\n",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        ));
    }
    say(&s);
    Ok(())
}

fn image_size(store: &Store, d: &Descriptor) -> Option<u64> {
    let data = store.read(d).ok()?;
    match oci::parse_document(&data, &d.media_type, "").ok()? {
        oci::Document::Manifest(m) => {
            Some(m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>())
        }
        _ => None,
    }
}

fn cmd_rm(r: RmCmd) -> Result<()> {
    if r.references.is_empty() {
        return Err(Error::new("rm: name at least one image"));
    }
    let root = r.store.unwrap_or_else(|| PathBuf::from(DEFAULT_STORE));
    let store = Store::open_existing(&root)?;
    for name in &r.references {
        let reference = Reference::parse(name)?;
        if !store.remove(&reference.to_string())? {
            return Err(Error::new(format!(
                "rm {reference}: no such image in {}",
                root.display()
            )));
        }
        say(&reference.to_string());
    }
    Ok(())
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Per-layer progress: redrawn in place on a terminal (stderr), one line per
/// finished layer otherwise.
struct Progress {
    tty: bool,
    quiet: bool,
    stop: AtomicBool,
    layers: Mutex<Vec<LayerState>>,
}

#[derive(Clone)]
struct LayerState {
    digest: Option<Digest>,
    total: u64,
    done: u64,
    started: Option<Instant>,
    /// Bytes already there when the transfer started (resume).
    resumed: u64,
    status: &'static str,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        Progress {
            tty: !quiet && std::io::stderr().is_terminal(),
            quiet,
            stop: AtomicBool::new(false),
            layers: Mutex::new(Vec::new()),
        }
    }

    fn with<T>(&self, i: usize, f: impl FnOnce(&mut LayerState) -> T) -> T {
        let mut l = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        while l.len() <= i {
            l.push(LayerState {
                digest: None,
                total: 0,
                done: 0,
                started: None,
                resumed: 0,
                status: "waiting",
            });
        }
        f(&mut l[i])
    }

    fn paint_loop(&self) {
        let mut lines = 0;
        let begun = Instant::now();
        loop {
            let stopping = self.stop.load(Ordering::SeqCst);
            let snapshot = self
                .layers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let mut s = String::new();
            if lines > 0 {
                s.push_str(&format!("\x1b[{lines}A"));
            }
            let (mut done, mut total) = (0, 0);
            for l in &snapshot {
                done += l.done;
                total += l.total;
                let name = l
                    .digest
                    .as_ref()
                    .map(|d| format!("{}:{}", d.algorithm().name(), d.short()))
                    .unwrap_or_default();
                let speed = match l.started {
                    Some(t) if t.elapsed().as_secs_f64() > 0.05 && l.status == "downloading" => {
                        let rate =
                            l.done.saturating_sub(l.resumed) as f64 / t.elapsed().as_secs_f64();
                        format!(" {}/s", human(rate as u64))
                    }
                    _ => String::new(),
                };
                let width = 20;
                let filled = (l.done * width)
                    .checked_div(l.total)
                    .unwrap_or(0)
                    .min(width) as usize;
                s.push_str(&format!(
                    "\r\x1b[K{name}  {:<11} |{}{}| {:>10} / {:<10}{speed}\n",
                    l.status,
                    "+".repeat(filled),
                    " ".repeat(width as usize - filled),
                    human(l.done),
                    human(l.total)
                ));
            }
            s.push_str(&format!(
                "\r\x1b[Kelapsed: {:.1} s  total: {} / {}\n",
                begun.elapsed().as_secs_f64(),
                human(done),
                human(total)
            ));
            lines = snapshot.len() + 1;
            let _ = std::io::stderr().write_all(s.as_bytes());
            if stopping {
                break;
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn line(&self, s: String) {
        if !self.quiet && !self.tty {
            eprintln!("{s}");
        }
    }
}

impl Observer for Progress {
    fn start(&self, i: usize, desc: &Descriptor, offset: u64) {
        self.with(i, |l| {
            l.digest = Some(desc.digest.clone());
            l.total = desc.size;
            l.done = offset;
            l.resumed = offset;
            l.started = Some(Instant::now());
            l.status = "downloading";
        });
        if offset > 0 {
            self.line(format!(
                "{}: resuming at {} of {}",
                desc.digest,
                human(offset),
                human(desc.size)
            ));
        }
    }
    fn bytes(&self, i: usize, n: u64) {
        self.with(i, |l| l.done += n);
    }
    fn done(&self, i: usize, desc: &Descriptor, present: bool) {
        self.with(i, |l| {
            l.digest = Some(desc.digest.clone());
            l.total = desc.size;
            l.done = desc.size;
            l.status = if present { "present" } else { "done" };
        });
        self.line(format!(
            "{}: {} ({})",
            desc.digest,
            if present {
                "already present"
            } else {
                "downloaded"
            },
            human(desc.size)
        ));
    }
    fn unpacked(&self, i: usize, desc: &Descriptor) {
        self.with(i, |l| l.status = "unpacked");
        self.line(format!("{}: unpacked", desc.digest));
    }
}
