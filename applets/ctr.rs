//! `ctr`: containerd's command line as a client of skiff's daemon.
//!
//! The command tree, its flags (Go habits: `-flag`, `--flag=value`) and
//! messages follow containerd 1.6's ctr; the shapes of tables and errors
//! were recorded from it. The work is in `skiff::ctr` (parser, client,
//! fifos, terminal, progress); this file decides what to call and prints.

use crate::output::print;
use skiff::ctr::client::Conn;
use skiff::ctr::flags::{self, Flag, Parsed};
use skiff::ctr::{cio, progress, tabwriter, term, units};
use skiff::proto::services::{
    containers, content, images, leases, namespaces, pull, snapshots, tasks, version,
};
use skiff::proto::types::{Any, Empty, Timestamp};
use skiff::ttrpc::{Code, Status};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

const DEFAULT_ADDRESS: &str = "/run/skiff/containerd.sock";
const DEFAULT_NAMESPACE: &str = "default";
const VERSION: &str = env!("CARGO_PKG_VERSION");
const DEFAULT_RUNTIME: &str = "io.containerd.skiff.v2";

/// Why a command failed: a message ctr prints as `ctr: MESSAGE` (exit 1),
/// a usage error (help, then the message), or an exit status to pass on.
enum Fail {
    Msg(String),
    Usage(String),
    Exit(u8),
}

impl From<Status> for Fail {
    fn from(s: Status) -> Fail {
        Fail::Msg(s.message)
    }
}

type Res = Result<(), Fail>;

fn msg(s: impl Into<String>) -> Fail {
    Fail::Msg(s.into())
}

/// The global options every command sees.
struct Globals {
    address: String,
    namespace: String,
    timeout: Duration,
}

impl Globals {
    fn connect(&self) -> Result<Conn, Fail> {
        Conn::connect(&self.address, &self.namespace, self.timeout).map_err(Fail::Msg)
    }
}

type Run = fn(&Globals, &Parsed) -> Res;

/// A command of the tree: a leaf runs, a group has subcommands.
struct Cmd {
    names: &'static [&'static str],
    usage: &'static str,
    args: &'static str,
    flags: &'static [Flag],
    run: Option<Run>,
    sub: &'static [Cmd],
}

const fn leaf(
    names: &'static [&'static str],
    usage: &'static str,
    args: &'static str,
    flags: &'static [Flag],
    run: Run,
) -> Cmd {
    Cmd {
        names,
        usage,
        args,
        flags,
        run: Some(run),
        sub: &[],
    }
}

const fn group(names: &'static [&'static str], usage: &'static str, sub: &'static [Cmd]) -> Cmd {
    Cmd {
        names,
        usage,
        args: "",
        flags: &[],
        run: None,
        sub,
    }
}

const GLOBAL_FLAGS: &[Flag] = &[
    Flag::bool(&["debug"], "enable debug output in logs"),
    Flag::value(
        &["address", "a"],
        "address for containerd's GRPC server (default: \"/run/skiff/containerd.sock\") [$CONTAINERD_ADDRESS]",
    ),
    Flag::value(&["timeout"], "total timeout for ctr commands (default: 0s)"),
    Flag::value(&["connect-timeout"], "timeout for connecting to containerd (default: 0s)"),
    Flag::value(
        &["namespace", "n"],
        "namespace to use with commands (default: \"default\") [$CONTAINERD_NAMESPACE]",
    ),
    Flag::bool(&["version", "v"], "print the version"),
];

const QUIET: Flag = Flag::bool(&["quiet", "q"], "print only the image refs");
const QUIET_IDS: Flag = Flag::bool(&["quiet", "q"], "print only the container id");
const SNAPSHOTTER: Flag = Flag::value(
    &["snapshotter"],
    "snapshotter name. Empty value stands for the default value. [$CONTAINERD_SNAPSHOTTER]",
);

const RUN_FLAGS: &[Flag] = &[
    Flag::bool(
        &["rm"],
        "remove the container after running, cannot be used with --detach",
    ),
    Flag::bool(
        &["detach", "d"],
        "detach from the task after it has started execution",
    ),
    Flag::bool(&["tty", "t"], "allocate a TTY for the container"),
    Flag::value(
        &["env"],
        "specify additional container environment variables (e.g. FOO=bar)",
    ),
    Flag::value(
        &["mount"],
        "specify additional container mount (e.g. type=bind,src=/tmp,dst=/host,options=rbind:ro)",
    ),
    Flag::bool(&["net-host"], "enable host networking for the container"),
    Flag::value(
        &["memory-limit"],
        "memory limit (in bytes) for the container",
    ),
    Flag::value(&["cpus"], "set the CFS cpu quota"),
    Flag::value(&["cwd"], "specify the working directory of the process"),
    Flag::value(
        &["user", "u"],
        "username or user id, group optional (format: <name|uid>[:<group|gid>])",
    ),
    Flag::bool(&["read-only"], "set the containers filesystem as readonly"),
    SNAPSHOTTER,
    Flag::value(
        &["runtime"],
        "runtime name (default: \"io.containerd.skiff.v2\")",
    ),
    Flag::bool(&["seccomp"], "enable the default seccomp profile"),
    Flag::value(&["label"], "specify additional labels (e.g. foo=bar)"),
    Flag::value(&["hostname"], "set the container's host name"),
    Flag::bool(&["null-io"], "send all IO to /dev/null"),
    Flag::value(&["fifo-dir"], "directory used for storing IO FIFOs"),
];

const EXEC_FLAGS: &[Flag] = &[
    Flag::value(&["cwd"], "working directory of the new process"),
    Flag::bool(&["tty", "t"], "allocate a TTY for the container"),
    Flag::bool(
        &["detach", "d"],
        "detach from the task after it has started execution",
    ),
    Flag::value(&["exec-id"], "exec specific id for the process"),
    Flag::value(&["fifo-dir"], "directory used for storing IO FIFOs"),
    Flag::value(&["user"], "user id or name"),
];

const PULL_FLAGS: &[Flag] = &[
    Flag::bool(&["plain-http"], "allow connections using plain HTTP"),
    Flag::value(&["platform"], "Pull content from a specific platform"),
    Flag::bool(
        &["all-platforms"],
        "pull content and metadata from all platforms",
    ),
    Flag::value(&["user", "u"], "user[:password] Registry user and password"),
    Flag::value(&["hosts-dir"], "Custom hosts configuration directory"),
    SNAPSHOTTER,
];

const COMMANDS: &[Cmd] = &[
    leaf(
        &["version"],
        "print the client and server versions",
        "",
        &[],
        cmd_version,
    ),
    group(
        &["containers", "c", "container"],
        "manage containers",
        &[
            leaf(
                &["create"],
                "create container",
                "[flags] Image|RootFS CONTAINER [COMMAND] [ARG...]",
                RUN_FLAGS,
                cmd_container_create,
            ),
            leaf(
                &["delete", "del", "remove", "rm"],
                "delete one or more existing containers",
                "[flags] CONTAINER [CONTAINER, ...]",
                &[Flag::bool(
                    &["keep-snapshot"],
                    "do not clean up snapshot with container",
                )],
                cmd_container_rm,
            ),
            leaf(
                &["info"],
                "get info about a container",
                "CONTAINER",
                &[Flag::bool(&["spec"], "only display the spec")],
                cmd_container_info,
            ),
            leaf(
                &["list", "ls"],
                "list containers",
                "[flags] [<filter>, ...]",
                &[QUIET_IDS],
                cmd_container_ls,
            ),
        ],
    ),
    group(
        &["content"],
        "manage content",
        &[leaf(
            &["list", "ls"],
            "list all blobs in the store",
            "[flags] [<filter>, ...]",
            &[Flag::bool(&["quiet", "q"], "print only the blob digest")],
            cmd_content_ls,
        )],
    ),
    leaf(
        &["events", "event"],
        "display containerd events",
        "[flags] [<filter>, ...]",
        &[],
        cmd_events,
    ),
    group(
        &["images", "image", "i"],
        "manage images",
        &[
            leaf(
                &["check"],
                "check existing images to ensure all content is available locally",
                "[flags] [<filter>, ...]",
                &[QUIET],
                cmd_image_check,
            ),
            leaf(
                &["import"],
                "import images",
                "[flags] <in>",
                &[
                    Flag::value(&["base-name"], "base image name for added images, when provided only images with this name prefix are imported"),
                    Flag::bool(&["digests"], "whether to create digest images (default: false)"),
                    SNAPSHOTTER,
                ],
                cmd_image_import,
            ),
            leaf(
                &["export"],
                "export images",
                "[flags] <out> <image> ...",
                &[
                    Flag::value(&["platform"], "Pull content from a specific platform"),
                    Flag::bool(&["all-platforms"], "exports content from all platforms"),
                    Flag::bool(
                        &["skip-manifest-json"],
                        "do not add Docker compatible manifest.json to archive",
                    ),
                ],
                cmd_image_export,
            ),
            leaf(
                &["list", "ls"],
                "list images known to containerd",
                "[flags] [<filter>, ...]",
                &[QUIET],
                cmd_image_ls,
            ),
            leaf(
                &["pull"],
                "pull an image from a remote",
                "[flags] <ref>",
                PULL_FLAGS,
                cmd_image_pull,
            ),
            leaf(
                &["delete", "del", "remove", "rm"],
                "remove one or more images by reference",
                "[flags] <ref> [<ref>, ...]",
                &[Flag::bool(
                    &["sync"],
                    "Synchronously remove image and all associated resources",
                )],
                cmd_image_rm,
            ),
            leaf(
                &["tag"],
                "tag an image",
                "[flags] <source_ref> <target_ref> [<target_ref>, ...]",
                &[Flag::bool(
                    &["force"],
                    "force target_ref to be created, regardless if it already exists",
                )],
                cmd_image_tag,
            ),
        ],
    ),
    group(
        &["leases"],
        "manage leases",
        &[leaf(
            &["list", "ls"],
            "list all active leases",
            "[flags] <filter>",
            &[Flag::bool(&["quiet", "q"], "print only the lease id")],
            cmd_lease_ls,
        )],
    ),
    group(
        &["namespaces", "namespace", "ns"],
        "manage namespaces",
        &[
            leaf(
                &["create", "c"],
                "create a new namespace",
                "<name> [<key>=<value>]",
                &[],
                cmd_ns_create,
            ),
            leaf(
                &["list", "ls"],
                "list namespaces",
                "[flags]",
                &[Flag::bool(&["quiet", "q"], "print only the namespace name")],
                cmd_ns_ls,
            ),
            leaf(
                &["remove", "rm"],
                "remove one or more namespaces",
                "<name> [<name>, ...]",
                &[Flag::bool(
                    &["cgroup", "c"],
                    "delete the namespace's cgroup",
                )],
                cmd_ns_rm,
            ),
        ],
    ),
    leaf(
        &["run"],
        "run a container",
        "[flags] Image|RootFS ID [COMMAND] [ARG...]",
        RUN_FLAGS,
        cmd_run,
    ),
    group(
        &["snapshots", "snapshot"],
        "manage snapshots",
        &[
            leaf(
                &["list", "ls"],
                "list snapshots",
                "[flags]",
                &[SNAPSHOTTER],
                cmd_snapshot_ls,
            ),
            leaf(
                &["delete", "del", "remove", "rm"],
                "remove snapshots",
                "<key> [<key>, ...]",
                &[SNAPSHOTTER],
                cmd_snapshot_rm,
            ),
        ],
    ),
    group(
        &["tasks", "t", "task"],
        "manage tasks",
        &[
            leaf(
                &["attach"],
                "attach to the IO of a running container",
                "CONTAINER",
                &[],
                cmd_task_attach,
            ),
            leaf(
                &["delete", "del", "remove", "rm"],
                "delete one or more tasks",
                "CONTAINER [CONTAINER, ...]",
                &[
                    Flag::bool(&["force", "f"], "force delete task process"),
                    Flag::value(&["exec-id"], "process ID to kill"),
                ],
                cmd_task_rm,
            ),
            leaf(
                &["exec"],
                "execute additional processes in an existing container",
                "[flags] CONTAINER CMD [ARG...]",
                EXEC_FLAGS,
                cmd_task_exec,
            ),
            leaf(
                &["list", "ls"],
                "list tasks",
                "[flags]",
                &[Flag::bool(&["quiet", "q"], "print only the task id")],
                cmd_task_ls,
            ),
            leaf(
                &["kill"],
                "signal a container (default: SIGTERM)",
                "[flags] CONTAINER",
                &[
                    Flag::value(&["signal", "s"], "signal to send to the container"),
                    Flag::value(&["exec-id"], "process ID to kill"),
                    Flag::bool(
                        &["all", "a"],
                        "send signal to all processes inside the container",
                    ),
                ],
                cmd_task_kill,
            ),
            leaf(
                &["pause"],
                "pause an existing container",
                "CONTAINER",
                &[],
                cmd_task_pause,
            ),
            leaf(
                &["ps"],
                "list processes for container",
                "CONTAINER",
                &[],
                cmd_task_ps,
            ),
            leaf(
                &["resume"],
                "resume a paused container",
                "CONTAINER",
                &[],
                cmd_task_resume,
            ),
            leaf(
                &["start"],
                "start a container that has been created",
                "CONTAINER",
                &[
                    Flag::bool(&["null-io"], "send all IO to /dev/null"),
                    Flag::bool(
                        &["detach", "d"],
                        "detach from the task after it has started execution",
                    ),
                ],
                cmd_task_start,
            ),
            leaf(
                &["metrics", "metric"],
                "get a single data point of metrics for a task with the built-in Linux runtime",
                "CONTAINER",
                &[Flag::value(&["format"], "\"table\" or \"json\"")],
                cmd_task_metrics,
            ),
        ],
    ),
];

pub fn main(_name: &str, args: Vec<String>) -> ExitCode {
    let code = match dispatch(args) {
        Ok(()) => 0,
        Err(Fail::Msg(m)) => {
            eprintln!("ctr: {m}");
            1
        }
        Err(Fail::Usage(m)) => {
            eprintln!("ctr: {m}");
            1
        }
        Err(Fail::Exit(n)) => n,
    };
    ExitCode::from(code)
}

fn dispatch(args: Vec<String>) -> Res {
    let mut g = flags::parse(GLOBAL_FLAGS, &args).map_err(|e| {
        print(&format!("Incorrect Usage. {e}\n\n{}", top_help()));
        Fail::Usage(e)
    })?;
    if g.bool("version") {
        print(&format!("ctr skiff {VERSION}\n"));
        return Ok(());
    }
    let Some(first) = g.args.first().cloned() else {
        print(&top_help());
        return Ok(());
    };
    if g.help || first == "help" || first == "h" {
        match g.args.get(1).and_then(|n| find(COMMANDS, n)) {
            Some(c) => print(&cmd_help(&[], c)),
            None => print(&top_help()),
        }
        return Ok(());
    }
    g.set_default("address", std::env::var("CONTAINERD_ADDRESS").ok());
    g.set_default("namespace", std::env::var("CONTAINERD_NAMESPACE").ok());
    let timeout = match g.get("timeout") {
        None => Duration::ZERO,
        Some(t) => units::parse_go_duration(t).ok_or_else(|| {
            Fail::Usage(format!(
                "invalid value {t:?} for flag -timeout: parse error"
            ))
        })?,
    };
    let globals = Globals {
        address: g.get("address").unwrap_or(DEFAULT_ADDRESS).to_string(),
        namespace: g
            .get("namespace")
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_string(),
        timeout,
    };
    run_in(&globals, &[], COMMANDS, &g.args)
}

fn find<'a>(cmds: &'a [Cmd], name: &str) -> Option<&'a Cmd> {
    cmds.iter().find(|c| c.names.contains(&name))
}

/// Find the command `args[0]` among `cmds` and run it (or descend).
fn run_in(g: &Globals, path: &[&'static str], cmds: &'static [Cmd], args: &[String]) -> Res {
    let name = &args[0];
    let Some(cmd) = find(cmds, name) else {
        print(&format!("No help topic for '{name}'\n"));
        return Err(Fail::Exit(3));
    };
    let mut path = path.to_vec();
    path.push(cmd.names[0]);
    let rest = &args[1..];
    let Some(run) = cmd.run else {
        match rest.first().map(String::as_str) {
            None | Some("-h" | "--help" | "help" | "h") => {
                print(&group_help(&path, cmd));
                return Ok(());
            }
            Some(_) => return run_in(g, &path, cmd.sub, rest),
        }
    };
    let p = flags::parse(cmd.flags, rest).map_err(|e| {
        print(&format!(
            "Incorrect Usage: {e}\n\n{}",
            cmd_help(&path[..path.len() - 1], cmd)
        ));
        Fail::Usage(e)
    })?;
    if p.help {
        print(&cmd_help(&path[..path.len() - 1], cmd));
        return Ok(());
    }
    run(g, &p)
}

fn top_help() -> String {
    let mut s = String::from(
        "NAME:\n   ctr - \n        __\n  _____/ /______\n / ___/ __/ ___/\n/ /__/ /_/ /\n\\___/\\__/_/\n\ncontainerd CLI (skiff)\n\n\nUSAGE:\n   ctr [global options] command [command options] [arguments...]\n\n",
    );
    s.push_str(&format!("VERSION:\n   {VERSION}\n\nCOMMANDS:\n"));
    s.push_str(&command_table(COMMANDS));
    s.push_str("\nGLOBAL OPTIONS:\n");
    s.push_str(&flag_table(GLOBAL_FLAGS, true));
    s
}

fn command_table(cmds: &[Cmd]) -> String {
    let mut t = String::new();
    for c in cmds {
        t.push_str(&format!("   {}\t{}\n", c.names.join(", "), c.usage));
    }
    t.push_str("   help, h\tShows a list of commands or help for one command\n");
    tabwriter::format(tabwriter::HELP, &t)
}

fn flag_table(fl: &[Flag], with_help: bool) -> String {
    let mut t = String::new();
    for f in fl {
        t.push_str(&format!("   {}\t{}\n", f.help_names(), f.usage));
    }
    if with_help {
        t.push_str("   --help, -h\tshow help\n");
    }
    tabwriter::format(tabwriter::HELP, &t)
}

fn group_help(path: &[&str], cmd: &Cmd) -> String {
    format!(
        "NAME:\n   ctr {} - {}\n\nUSAGE:\n   ctr {} command [command options] [arguments...]\n\nCOMMANDS:\n{}\nOPTIONS:\n   --help, -h  show help\n   \n",
        path.join(" "),
        cmd.usage,
        path.join(" "),
        command_table(cmd.sub)
    )
}

fn cmd_help(parent: &[&str], cmd: &Cmd) -> String {
    let mut name = parent.join(" ");
    if !name.is_empty() {
        name.push(' ');
    }
    name.push_str(cmd.names[0]);
    let mut s = format!(
        "NAME:\n   ctr {name} - {}\n\nUSAGE:\n   ctr {name} [command options] {}\n",
        cmd.usage, cmd.args
    );
    if !cmd.flags.is_empty() {
        s.push_str("\nOPTIONS:\n");
        s.push_str(&flag_table(cmd.flags, false));
        s.push_str("   \n");
    }
    s
}

// ---- small helpers -------------------------------------------------------

/// The positional argument `i`, or ctr's message for it missing.
fn arg<'a>(p: &'a Parsed, i: usize, what: &str) -> Result<&'a str, Fail> {
    p.args
        .get(i)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| msg(format!("{what} must be provided")))
}

fn go_time(t: Option<&Timestamp>) -> String {
    let t = t.cloned().unwrap_or_default();
    let rfc = skiff::time::rfc3339_nano(t.seconds, t.nanos.max(0) as u32);
    format!(
        "{} +0000 UTC",
        rfc.trim_end_matches('Z').replacen('T', " ", 1)
    )
}

fn rfc3339(t: Option<&Timestamp>) -> String {
    let t = t.cloned().unwrap_or_default();
    skiff::time::rfc3339_nano(t.seconds, 0)
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "-".into();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn key_values(items: &[&str]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect()
}

fn not_found(s: &Status) -> bool {
    s.code == Code::NotFound
}

// ---- version, namespaces -------------------------------------------------

fn cmd_version(g: &Globals, _: &Parsed) -> Res {
    print(&format!(
        "Client:\n  Version:  {VERSION}\n  Revision: skiff\n\n"
    ));
    let conn = g.connect()?;
    let v: version::VersionResponse = conn.call(version::SERVICE, "Version", &Empty {})?;
    print(&format!(
        "Server:\n  Version:  {}\n  Revision: {}\n",
        v.version, v.revision
    ));
    let server: Result<skiff::proto::services::introspection::ServerResponse, Status> = conn.call(
        skiff::proto::services::introspection::SERVICE,
        "Server",
        &Empty {},
    );
    if let Some(sr) = server.ok().filter(|sr| !sr.uuid.is_empty()) {
        print(&format!("  UUID: {}\n", sr.uuid));
    }
    Ok(())
}

fn cmd_ns_ls(g: &Globals, p: &Parsed) -> Res {
    let conn = g.connect()?;
    let r: namespaces::ListNamespacesResponse = conn.call(
        namespaces::SERVICE,
        "List",
        &namespaces::ListNamespacesRequest::default(),
    )?;
    if p.bool("quiet") {
        for n in &r.namespaces {
            print(&format!("{}\n", n.name));
        }
        return Ok(());
    }
    let mut t = String::from("NAME\tLABELS\t\n");
    for n in &r.namespaces {
        let labels = n
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        t.push_str(&format!("{}\t{}\t\n", n.name, labels));
    }
    print(&tabwriter::format(tabwriter::TIGHT, &t));
    Ok(())
}

fn cmd_ns_create(g: &Globals, p: &Parsed) -> Res {
    let name = arg(p, 0, "namespace name")?;
    let labels: Vec<&str> = p.args[1..].iter().map(String::as_str).collect();
    let conn = g.connect()?;
    let r: Result<namespaces::CreateNamespaceResponse, Status> = conn.call(
        namespaces::SERVICE,
        "Create",
        &namespaces::CreateNamespaceRequest {
            namespace: Some(namespaces::Namespace {
                name: name.to_string(),
                labels: key_values(&labels),
            }),
        },
    );
    match r {
        Ok(_) => Ok(()),
        Err(s) if s.code == Code::AlreadyExists => {
            Err(msg(format!("namespace \"{name}\": already exists")))
        }
        Err(s) => Err(s.into()),
    }
}

fn cmd_ns_rm(g: &Globals, p: &Parsed) -> Res {
    arg(p, 0, "namespace name")?;
    let conn = g.connect()?;
    let mut failed = None;
    for name in &p.args {
        let r: Result<Empty, Status> = conn.call(
            namespaces::SERVICE,
            "Delete",
            &namespaces::DeleteNamespaceRequest { name: name.clone() },
        );
        match r {
            Ok(_) => print(&format!("{name}\n")),
            Err(s) if not_found(&s) => print(&format!("{name}\n")),
            Err(s) => {
                eprintln!("ctr: unable to delete {name}: {}", s.message);
                failed = Some(s);
            }
        }
    }
    failed.map_or(Ok(()), |s| Err(s.into()))
}

// ---- images ---------------------------------------------------------------

fn get_image(conn: &Conn, name: &str) -> Result<images::Image, Fail> {
    let r: Result<images::GetImageResponse, Status> = conn.call(
        images::SERVICE,
        "Get",
        &images::GetImageRequest {
            name: name.to_string(),
        },
    );
    match r {
        Ok(r) => r
            .image
            .ok_or_else(|| msg(format!("image \"{name}\": not found"))),
        Err(s) if not_found(&s) => Err(msg(format!("image \"{name}\": not found"))),
        Err(s) => Err(s.into()),
    }
}

/// A blob of the content store, read whole through Content.Read.
fn read_blob(conn: &Conn, digest: &str) -> Result<Vec<u8>, Status> {
    let stream = conn.stream(
        content::SERVICE,
        "Read",
        &content::ReadContentRequest {
            digest: digest.to_string(),
            offset: 0,
            size: 0,
        },
    )?;
    let mut data = Vec::new();
    while let Some(msg) = stream.recv(conn.stream_timeout()?)? {
        let r = <content::ReadContentResponse as prost::Message>::decode(&msg[..])
            .map_err(|e| Status::new(Code::Internal, format!("decode ReadContentResponse: {e}")))?;
        data.extend_from_slice(&r.data);
    }
    Ok(data)
}

/// What `images ls` shows beyond the record: the size of what the host
/// platform needs and the platforms the image has; None when content is
/// missing (ctr prints `-`).
struct ImageFacts {
    size: i64,
    platforms: Vec<String>,
    config: Option<skiff::image::oci::ImageConfig>,
}

fn platform_text(p: &skiff::image::oci::Platform) -> String {
    if p.variant.is_empty() {
        format!("{}/{}", p.os, p.architecture)
    } else {
        format!("{}/{}/{}", p.os, p.architecture, p.variant)
    }
}

fn image_facts(conn: &Conn, target: &skiff::proto::types::Descriptor) -> Option<ImageFacts> {
    use skiff::image::oci::{parse_config, parse_document, select_platform, Document, Platform};
    let data = read_blob(conn, &target.digest).ok()?;
    let doc = parse_document(&data, &target.media_type, &target.digest).ok()?;
    let mut size = target.size;
    let (manifest, platforms) = match doc {
        Document::Index(list) => {
            let mut platforms: Vec<String> = list
                .iter()
                .filter_map(|d| d.platform.as_ref().map(platform_text))
                .collect();
            platforms.sort();
            platforms.dedup();
            let d = select_platform(&list, &Platform::host())?;
            size += d.size as i64;
            let data = read_blob(conn, &d.digest.to_string()).ok()?;
            match parse_document(&data, &d.media_type, "manifest").ok()? {
                Document::Manifest(m) => (m, platforms),
                Document::Index(_) => return None,
            }
        }
        Document::Manifest(m) => (m, Vec::new()),
    };
    size += manifest.config.size as i64;
    size += manifest.layers.iter().map(|l| l.size as i64).sum::<i64>();
    let config = read_blob(conn, &manifest.config.digest.to_string())
        .ok()
        .and_then(|d| parse_config(&d, "image config").ok());
    let platforms = if platforms.is_empty() {
        config
            .as_ref()
            .map(|c| vec![platform_text(&c.platform)])
            .unwrap_or_default()
    } else {
        platforms
    };
    Some(ImageFacts {
        size,
        platforms,
        config,
    })
}

fn filters(p: &Parsed) -> Vec<String> {
    p.args.clone()
}

fn list_images(conn: &Conn, p: &Parsed) -> Result<Vec<images::Image>, Fail> {
    let r: images::ListImagesResponse = conn.call(
        images::SERVICE,
        "List",
        &images::ListImagesRequest {
            filters: filters(p),
        },
    )?;
    Ok(r.images)
}

fn cmd_image_ls(g: &Globals, p: &Parsed) -> Res {
    let conn = g.connect()?;
    let list = list_images(&conn, p)?;
    if p.bool("quiet") {
        for i in &list {
            print(&format!("{}\n", i.name));
        }
        return Ok(());
    }
    let mut t = String::from("REF\tTYPE\tDIGEST\tSIZE\tPLATFORMS\tLABELS\t\n");
    for i in &list {
        let target = i.target.clone().unwrap_or_default();
        let (size, platforms) = match image_facts(&conn, &target) {
            Some(f) => (units::bytes(f.size), f.platforms.join(",")),
            None => ("-".to_string(), "-".to_string()),
        };
        t.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t\n",
            i.name,
            target.media_type,
            target.digest,
            size,
            platforms,
            labels_text(&i.labels)
        ));
    }
    print(&tabwriter::format(tabwriter::TIGHT, &t));
    Ok(())
}

fn cmd_image_check(g: &Globals, p: &Parsed) -> Res {
    let conn = g.connect()?;
    let list = list_images(&conn, p)?;
    if p.bool("quiet") {
        for i in &list {
            print(&format!("{}\n", i.name));
        }
        return Ok(());
    }
    let mut t = String::from("REF\tTYPE\tDIGEST\tSTATUS\tSIZE\tUNPACKED\t\n");
    for i in &list {
        let target = i.target.clone().unwrap_or_default();
        let (status, size) = match image_facts(&conn, &target) {
            Some(f) if f.config.is_some() => (
                "complete (1/1)".to_string(),
                format!("{}/{}", units::bytes(f.size), units::bytes(f.size)),
            ),
            _ => ("incomplete".to_string(), "-".to_string()),
        };
        t.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t\n",
            i.name, target.media_type, target.digest, status, size, "true"
        ));
    }
    print(&tabwriter::format(tabwriter::TIGHT, &t));
    Ok(())
}

/// `images export OUT REF…`: an OCI archive (oci-layout, index.json
/// naming each image, its blobs) plus Docker's manifest.json, so both
/// `ctr images import` and `docker load` read it. Only the blobs of the
/// chosen platform(s) go in, as ctr does.
fn cmd_image_export(g: &Globals, p: &Parsed) -> Res {
    use skiff::image::oci::{parse_document, select_platform, Document, Platform};
    let out = arg(
        p,
        0,
        "please provide both an output filename and an image reference to export",
    )
    .map_err(|_| msg("please provide both an output filename and an image reference to export"))?;
    if p.args.len() < 2 {
        return Err(msg(
            "please provide both an output filename and an image reference to export",
        ));
    }
    let want = match p.get("platform") {
        Some(s) => Platform::parse(s).map_err(|e| msg(e.to_string()))?,
        None => Platform::host(),
    };
    let all = p.bool("all-platforms");
    let conn = g.connect()?;
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut index_entries = Vec::new();
    let mut docker = Vec::new();
    let add = |blobs: &mut Vec<(String, Vec<u8>)>, digest: &str| -> Result<Vec<u8>, Fail> {
        if let Some((_, d)) = blobs.iter().find(|(k, _)| k == digest) {
            return Ok(d.clone());
        }
        let data = read_blob(&conn, digest)
            .map_err(|s| msg(format!("failed to get reader for {digest}: {}", s.message)))?;
        blobs.push((digest.to_string(), data.clone()));
        Ok(data)
    };
    for name in &p.args[1..] {
        let image = get_image(&conn, name)?;
        let target = image.target.clone().unwrap_or_default();
        let data = add(&mut blobs, &target.digest)?;
        let doc = parse_document(&data, &target.media_type, &target.digest)
            .map_err(|e| msg(e.to_string()))?;
        let manifests = match doc {
            Document::Manifest(m) => vec![m],
            Document::Index(list) => {
                let chosen: Vec<_> = if all {
                    list.iter().collect()
                } else {
                    select_platform(&list, &want).into_iter().collect()
                };
                let mut ms = Vec::new();
                for d in chosen {
                    let data = add(&mut blobs, &d.digest.to_string())?;
                    if let Ok(Document::Manifest(m)) =
                        parse_document(&data, &d.media_type, "manifest")
                    {
                        ms.push(m);
                    }
                }
                ms
            }
        };
        for m in &manifests {
            add(&mut blobs, &m.config.digest.to_string())?;
            for l in &m.layers {
                add(&mut blobs, &l.digest.to_string())?;
            }
        }
        if let Some(m) = manifests.first() {
            docker.push(format!(
                "{{\"Config\":\"blobs/sha256/{}\",\"RepoTags\":[{}],\"Layers\":[{}]}}",
                m.config.digest.hex(),
                skiff::json::quote(name),
                m.layers
                    .iter()
                    .map(|l| format!("\"blobs/sha256/{}\"", l.digest.hex()))
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        let tag = name
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map(|(_, t)| t);
        let mut ann = format!("\"io.containerd.image.name\":{}", skiff::json::quote(name));
        if let Some(t) = tag {
            ann.push_str(&format!(
                ",\"org.opencontainers.image.ref.name\":{}",
                skiff::json::quote(t)
            ));
        }
        index_entries.push(format!(
            "{{\"mediaType\":{},\"digest\":{},\"size\":{},\"annotations\":{{{ann}}}}}",
            skiff::json::quote(&target.media_type),
            skiff::json::quote(&target.digest),
            target.size
        ));
    }
    let index = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{}]}}",
        index_entries.join(",")
    );
    let write = || -> std::io::Result<()> {
        let file: Box<dyn std::io::Write> = if out == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(std::fs::File::create(out)?)
        };
        let mut tar = tar::Builder::new(file);
        let mut put = |path: &str, data: &[u8]| -> std::io::Result<()> {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o444);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, path, data)
        };
        put("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        for (digest, data) in &blobs {
            let hex = digest.split_once(':').map(|(_, h)| h).unwrap_or(digest);
            put(&format!("blobs/sha256/{hex}"), data)?;
        }
        put("index.json", index.as_bytes())?;
        if !p.bool("skip-manifest-json") {
            put(
                "manifest.json",
                format!("[{}]", docker.join(",")).as_bytes(),
            )?;
        }
        tar.into_inner()?.flush()
    };
    if let Err(e) = write() {
        if out != "-" {
            let _ = std::fs::remove_file(out);
        }
        return Err(msg(format!("{out}: {e}")));
    }
    Ok(())
}

/// `images import FILE`: an OCI archive (what `images export` and
/// `docker save` write: oci-layout, index.json, blobs). Every blob goes
/// into the store through Content.Write (verified there against its
/// name), then each image of index.json is recorded under its
/// `io.containerd.image.name`, or `--base-name:ref.name`.
fn cmd_image_import(g: &Globals, p: &Parsed) -> Res {
    use content::write_action as act;
    let file = arg(p, 0, "input file")?;
    let open = || std::fs::File::open(file).map_err(|e| msg(format!("open {file}: {e}")));
    let conn = g.connect()?;
    // First pass: the index; second: the blobs, streamed.
    let mut index = None;
    let mut ar = tar::Archive::new(open()?);
    for e in ar.entries().map_err(|e| msg(format!("{file}: {e}")))? {
        let mut e = e.map_err(|e| msg(format!("{file}: {e}")))?;
        let path = e
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if path.trim_start_matches("./") == "index.json" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut e, &mut text)
                .map_err(|e| msg(format!("{file}: index.json: {e}")))?;
            index = Some(text);
        }
    }
    let index = index.ok_or_else(|| msg(format!("{file}: no index.json (not an OCI archive)")))?;
    let mut ar = tar::Archive::new(open()?);
    for e in ar.entries().map_err(|e| msg(format!("{file}: {e}")))? {
        let mut e = e.map_err(|e| msg(format!("{file}: {e}")))?;
        let path = e
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let Some(hex) = path.trim_start_matches("./").strip_prefix("blobs/sha256/") else {
            continue;
        };
        if hex.is_empty() || e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let digest = format!("sha256:{hex}");
        let total = e.header().size().unwrap_or(0) as i64;
        let req = |action, offset: i64, data: Vec<u8>| content::WriteContentRequest {
            action,
            r#ref: format!("import-{digest}"),
            total,
            expected: digest.clone(),
            offset,
            data,
            labels: BTreeMap::new(),
        };
        let stream = conn.stream_both(content::SERVICE, "Write", &req(act::STAT, 0, Vec::new()))?;
        match stream.recv(None) {
            Err(s) if s.code == Code::AlreadyExists => continue,
            Err(s) => return Err(msg(format!("{digest}: {}", s.message))),
            Ok(_) => {}
        }
        let mut offset = 0i64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut e, &mut buf)
                .map_err(|err| msg(format!("{file}: {path}: {err}")))?;
            let last = offset + n as i64 >= total;
            let action = if last { act::COMMIT } else { act::WRITE };
            stream.send(&prost::Message::encode_to_vec(&req(
                action,
                offset,
                buf[..n].to_vec(),
            )))?;
            stream
                .recv(None)
                .map_err(|s| msg(format!("{digest}: {}", s.message)))?;
            offset += n as i64;
            if last {
                break;
            }
            if n == 0 {
                return Err(msg(format!("{file}: {path}: short blob")));
            }
        }
        let _ = stream.close_send();
    }
    // The images the index names.
    let v = skiff::json::parse(&index, "index.json").map_err(|e| msg(e.to_string()))?;
    let root = skiff::json::Node::new(&v, "index.json");
    let manifests = root
        .need("manifests")
        .and_then(|m| m.items())
        .map_err(|e| msg(e.to_string()))?;
    let base = p.get("base-name");
    for m in manifests {
        let d = skiff::image::oci::Descriptor::from_node(&m).map_err(|e| msg(e.to_string()))?;
        let name = match (
            d.annotation("io.containerd.image.name"),
            d.annotation("org.opencontainers.image.ref.name"),
            base,
        ) {
            (Some(n), _, None) => n.to_string(),
            (Some(n), _, Some(b)) if n.starts_with(b) => n.to_string(),
            (_, Some(r), Some(b)) => format!("{b}:{r}"),
            (None, Some(r), None) if r.contains(['/', ':']) => r.to_string(),
            _ if p.bool("digests") => format!("import-{}@{}", skiff::time::now().0, d.digest),
            _ => continue,
        };
        let image = images::Image {
            name: name.clone(),
            target: Some(skiff::proto::types::Descriptor {
                media_type: d.media_type.clone(),
                digest: d.digest.to_string(),
                size: d.size as i64,
                ..Default::default()
            }),
            ..Default::default()
        };
        let r: Result<images::CreateImageResponse, Status> = conn.call(
            images::SERVICE,
            "Create",
            &images::CreateImageRequest {
                image: Some(image.clone()),
                source_date_epoch: None,
            },
        );
        match r {
            Ok(_) => {}
            Err(s) if s.code == Code::AlreadyExists => {
                let _: images::UpdateImageResponse = conn.call(
                    images::SERVICE,
                    "Update",
                    &images::UpdateImageRequest {
                        image: Some(image),
                        update_mask: None,
                        source_date_epoch: None,
                    },
                )?;
            }
            Err(s) => return Err(s.into()),
        }
        print(&format!("unpacking {name} ({})...done\n", d.digest));
    }
    Ok(())
}

fn cmd_image_tag(g: &Globals, p: &Parsed) -> Res {
    let src = arg(p, 0, "source reference")?;
    if p.args.len() < 2 {
        return Err(msg("target reference must be provided"));
    }
    let conn = g.connect()?;
    let image = get_image(&conn, src)?;
    for dst in &p.args[1..] {
        let mut new = image.clone();
        new.name = dst.clone();
        let r: Result<images::CreateImageResponse, Status> = conn.call(
            images::SERVICE,
            "Create",
            &images::CreateImageRequest {
                image: Some(new.clone()),
                source_date_epoch: None,
            },
        );
        match r {
            Ok(_) => {}
            Err(s) if s.code == Code::AlreadyExists && p.bool("force") => {
                let _: Empty = conn.call(
                    images::SERVICE,
                    "Delete",
                    &images::DeleteImageRequest {
                        name: dst.clone(),
                        sync: false,
                    },
                )?;
                let _: images::CreateImageResponse = conn.call(
                    images::SERVICE,
                    "Create",
                    &images::CreateImageRequest {
                        image: Some(new),
                        source_date_epoch: None,
                    },
                )?;
            }
            Err(s) if s.code == Code::AlreadyExists => {
                return Err(msg(format!("image \"{dst}\": already exists")))
            }
            Err(s) => return Err(s.into()),
        }
        print(&format!("{dst}\n"));
    }
    Ok(())
}

fn cmd_image_rm(g: &Globals, p: &Parsed) -> Res {
    arg(p, 0, "reference")?;
    let conn = g.connect()?;
    let mut failed = None;
    for name in &p.args {
        let r: Result<Empty, Status> = conn.call(
            images::SERVICE,
            "Delete",
            &images::DeleteImageRequest {
                name: name.clone(),
                sync: p.bool("sync"),
            },
        );
        match r {
            Ok(_) => print(&format!("{name}\n")),
            Err(s) if not_found(&s) => warn(&format!("{name}: image not found")),
            Err(s) => {
                eprintln!("ctr: unable to delete {name}: {}", s.message);
                failed = Some(s);
            }
        }
    }
    failed.map_or(Ok(()), |s| Err(s.into()))
}

/// A warning line as ctr's logger writes it.
fn warn(text: &str) {
    eprintln!(
        "time=\"{}\" level=warning msg=\"{}\"",
        skiff::time::rfc3339_nano(skiff::time::now().0, 0),
        text.replace('"', "\\\"")
    );
}

fn cmd_image_pull(g: &Globals, p: &Parsed) -> Res {
    let reference = arg(p, 0, "please provide an image reference to pull")
        .map_err(|_| msg("please provide an image reference to pull"))?;
    let conn = g.connect()?;
    // The daemon's pull takes one platform; --all-platforms pulls the
    // host's until it takes more.
    let platform = if p.bool("all-platforms") {
        String::new()
    } else {
        p.get("platform").unwrap_or("").to_string()
    };
    let stream = conn.stream(
        pull::SERVICE,
        pull::METHOD,
        &pull::PullRequest {
            reference: reference.to_string(),
            platform,
            plain_http: p.bool("plain-http"),
            unpack: true,
            snapshotter: p.get("snapshotter").unwrap_or("").to_string(),
            user: p.get("user").unwrap_or("").to_string(),
            // The daemon reads it: relative to ctr's directory, not its.
            hosts_dir: p
                .get("hosts-dir")
                .map(|d| {
                    std::path::absolute(d)
                        .map_or_else(|_| d.to_string(), |a| a.display().to_string())
                })
                .unwrap_or_default(),
            labels: BTreeMap::new(),
        },
    )?;
    let tty = term::stdout_is_tty();
    let mut prog = progress::Progress::new(reference);
    let mut image = None;
    let mut last_draw = std::time::Instant::now();
    while let Some(m) = stream.recv(conn.stream_timeout()?)? {
        let r = <pull::PullProgress as prost::Message>::decode(&m[..])
            .map_err(|e| msg(format!("decode PullProgress: {e}")))?;
        if r.image.is_some() {
            image = r.image;
            continue;
        }
        let line = prog.update(&r.name, &r.media_type, r.state, r.offset, r.total);
        if tty {
            if last_draw.elapsed() > Duration::from_millis(100) || line.is_some() {
                print(&prog.redraw());
                last_draw = std::time::Instant::now();
            }
        } else if let Some(l) = line {
            print(&format!("{l}\n"));
        }
    }
    let image = image.ok_or_else(|| msg(format!("pull {reference}: the daemon sent no image")))?;
    if tty {
        print(&prog.redraw());
    } else {
        print(&prog.table());
    }
    let target = image.target.unwrap_or_default();
    print(&format!(
        "unpacking {} {}...\ndone: {:?}\t\n",
        platform_text(&skiff::image::oci::Platform::host()),
        target.digest,
        prog.elapsed()
    ));
    Ok(())
}

// ---- containers -------------------------------------------------------------

fn get_container(conn: &Conn, id: &str) -> Result<containers::Container, Fail> {
    let r: Result<containers::GetContainerResponse, Status> = conn.call(
        containers::SERVICE,
        "Get",
        &containers::GetContainerRequest { id: id.to_string() },
    );
    let missing = || {
        msg(format!(
            "container \"{id}\" in namespace \"{}\": not found",
            conn.namespace()
        ))
    };
    match r {
        Ok(r) => r.container.ok_or_else(missing),
        Err(s) if not_found(&s) => Err(missing()),
        Err(s) => Err(s.into()),
    }
}

fn cmd_container_ls(g: &Globals, p: &Parsed) -> Res {
    let conn = g.connect()?;
    let r: containers::ListContainersResponse = conn.call(
        containers::SERVICE,
        "List",
        &containers::ListContainersRequest {
            filters: filters(p),
        },
    )?;
    if p.bool("quiet") {
        for c in &r.containers {
            print(&format!("{}\n", c.id));
        }
        return Ok(());
    }
    let mut t = String::from("CONTAINER\tIMAGE\tRUNTIME\t\n");
    for c in &r.containers {
        let image = if c.image.is_empty() { "-" } else { &c.image };
        let runtime = c.runtime.as_ref().map(|r| r.name.as_str()).unwrap_or("");
        t.push_str(&format!("{}\t{}\t{}\t\n", c.id, image, runtime));
    }
    print(&tabwriter::format(tabwriter::WIDE, &t));
    Ok(())
}

fn cmd_container_info(g: &Globals, p: &Parsed) -> Res {
    let id = arg(p, 0, "container id")?;
    let conn = g.connect()?;
    let c = get_container(&conn, id)?;
    let spec = c
        .spec
        .as_ref()
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
        .unwrap_or_else(|| "null".into());
    let spec = reindent(&spec, "    ", 1);
    if p.bool("spec") {
        print(&format!("{}\n", reindent(&spec, "    ", 0)));
        return Ok(());
    }
    let mut w = String::from("{\n");
    let q = skiff::json::quote;
    w.push_str(&format!("    \"ID\": {},\n", q(&c.id)));
    w.push_str("    \"Labels\": ");
    w.push_str(&json_map(&c.labels, 1));
    w.push_str(",\n");
    w.push_str(&format!("    \"Image\": {},\n", q(&c.image)));
    let rt = c.runtime.clone().unwrap_or_default();
    w.push_str(&format!(
        "    \"Runtime\": {{\n        \"Name\": {}\n    }},\n",
        q(&rt.name)
    ));
    w.push_str(&format!("    \"SnapshotKey\": {},\n", q(&c.snapshot_key)));
    w.push_str(&format!("    \"Snapshotter\": {},\n", q(&c.snapshotter)));
    w.push_str(&format!(
        "    \"CreatedAt\": {},\n",
        q(&ts_rfc(c.created_at.as_ref()))
    ));
    w.push_str(&format!(
        "    \"UpdatedAt\": {},\n",
        q(&ts_rfc(c.updated_at.as_ref()))
    ));
    w.push_str("    \"Extensions\": null,\n");
    w.push_str(&format!("    \"Spec\": {spec}\n}}\n"));
    print(&w);
    Ok(())
}

fn ts_rfc(t: Option<&Timestamp>) -> String {
    let t = t.cloned().unwrap_or_default();
    skiff::time::rfc3339_nano(t.seconds, t.nanos.max(0) as u32)
}

fn json_map(m: &BTreeMap<String, String>, depth: usize) -> String {
    if m.is_empty() {
        return "null".into();
    }
    let pad = "    ".repeat(depth + 1);
    let items: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{pad}{}: {}", skiff::json::quote(k), skiff::json::quote(v)))
        .collect();
    format!("{{\n{}\n{}}}", items.join(",\n"), "    ".repeat(depth))
}

/// Re-indent JSON text with `unit`, nested `depth` deep, keeping its key
/// order (Go's json.MarshalIndent of the spec inside the info).
fn reindent(text: &str, unit: &str, depth: usize) -> String {
    let mut out = String::new();
    let mut level = depth;
    let mut in_str = false;
    let mut escaped = false;
    let mut chars = text.trim().chars().peekable();
    let newline = |out: &mut String, level: usize| {
        out.push('\n');
        out.push_str(&unit.repeat(level));
    };
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                let close = if c == '{' { '}' } else { ']' };
                if chars.peek() == Some(&close) {
                    chars.next();
                    out.push(c);
                    out.push(close);
                } else {
                    out.push(c);
                    level += 1;
                    newline(&mut out, level);
                }
            }
            '}' | ']' => {
                level = level.saturating_sub(1);
                newline(&mut out, level);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, level);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

fn cmd_container_create(g: &Globals, p: &Parsed) -> Res {
    let conn = g.connect()?;
    create_container(&conn, p)?;
    Ok(())
}

/// `run`/`c create`: the container record with its spec (the daemon
/// prepares the snapshot from the image, as ctr's Snapshots.Prepare would).
fn create_container(conn: &Conn, p: &Parsed) -> Result<containers::Container, Fail> {
    let reference = arg(p, 0, "image ref")?;
    let id = p
        .args
        .get(1)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| msg("container id must be provided"))?;
    let image = get_image(conn, reference)?;
    let target = image.target.clone().unwrap_or_default();
    let config = image_facts(conn, &target)
        .and_then(|f| f.config)
        .ok_or_else(|| {
            msg(format!(
                "image \"{reference}\": content is missing (pull it again)"
            ))
        })?;
    let spec = build_spec(conn, p, id, &config)?;
    let mut labels = key_values(&p.all("label"));
    labels
        .entry("io.containerd.image.config.stop-signal".into())
        .or_insert_with(|| "SIGTERM".into());
    let snapshotter = p.get("snapshotter").unwrap_or("");
    let container = containers::Container {
        id: id.clone(),
        labels,
        image: image.name.clone(),
        runtime: Some(containers::Runtime {
            name: p.get("runtime").unwrap_or(DEFAULT_RUNTIME).to_string(),
            options: None,
        }),
        spec: Some(Any {
            type_url: skiff::daemon::spec::SPEC_TYPE_URL.into(),
            value: spec,
        }),
        snapshotter: snapshotter.to_string(),
        snapshot_key: id.clone(),
        ..Default::default()
    };
    let r: Result<containers::CreateContainerResponse, Status> = conn.call(
        containers::SERVICE,
        "Create",
        &containers::CreateContainerRequest {
            container: Some(container.clone()),
        },
    );
    match r {
        Ok(r) => Ok(r.container.unwrap_or(container)),
        Err(s) if s.code == Code::AlreadyExists => {
            Err(msg(format!("container \"{id}\": already exists")))
        }
        Err(s) => Err(s.into()),
    }
}

fn build_spec(
    conn: &Conn,
    p: &Parsed,
    id: &str,
    config: &skiff::image::oci::ImageConfig,
) -> Result<Vec<u8>, Fail> {
    use skiff::daemon::spec::{build, MountSpec, SpecOptions};
    let mounts = p
        .all("mount")
        .iter()
        .map(|m| MountSpec::parse(m))
        .collect::<skiff::Result<Vec<_>>>()
        .map_err(|e| msg(e.to_string()))?;
    let number = |name: &str| -> Result<Option<f64>, Fail> {
        p.get(name)
            .map(|v| {
                v.parse::<f64>().map_err(|_| {
                    Fail::Usage(format!("invalid value {v:?} for flag -{name}: parse error"))
                })
            })
            .transpose()
    };
    let opts = SpecOptions {
        args: (p.args.len() > 2).then(|| p.args[2..].to_vec()),
        env: p.all("env").iter().map(|s| s.to_string()).collect(),
        cwd: p.get("cwd").map(str::to_string),
        user: p.get("user").map(str::to_string),
        terminal: p.bool("tty"),
        read_only: p.bool("read-only"),
        net_host: p.bool("net-host"),
        memory_limit: number("memory-limit")?.map(|n| n as u64),
        cpus: number("cpus")?,
        mounts,
        seccomp: p.bool("seccomp"),
        hostname: p.get("hostname").map(str::to_string),
        id: id.to_string(),
        namespace: conn.namespace().to_string(),
    };
    build(config, &opts).map_err(|e| msg(e.to_string()))
}

fn cmd_container_rm(g: &Globals, p: &Parsed) -> Res {
    arg(p, 0, "container id")?;
    let conn = g.connect()?;
    let mut failed = None;
    for id in &p.args {
        if let Err(e) = delete_container(&conn, id, !p.bool("keep-snapshot")) {
            let m = match &e {
                Fail::Msg(m) | Fail::Usage(m) => m.clone(),
                Fail::Exit(_) => String::new(),
            };
            eprintln!(
                "time=\"{}\" level=error msg=\"failed to delete container \\\"{id}\\\"\" error={}",
                skiff::time::rfc3339_nano(skiff::time::now().0, 0),
                skiff::json::quote(&m)
            );
            failed = Some(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Delete a container as ctr does: refused while its task is not stopped;
/// its snapshot goes with it unless kept.
fn delete_container(conn: &Conn, id: &str, with_snapshot: bool) -> Res {
    let c = get_container(conn, id)?;
    if let Some(task) = get_task(conn, id)? {
        if task.status != STATUS_STOPPED {
            return Err(msg(format!(
                "cannot delete a non stopped container: {{{} {} 0001-01-01 00:00:00 +0000 UTC}}",
                status_word(task.status).to_lowercase(),
                task.exit_status
            )));
        }
        delete_task(conn, id)?;
    }
    if with_snapshot && !c.snapshot_key.is_empty() {
        let r: Result<Empty, Status> = conn.call(
            snapshots::SERVICE,
            "Remove",
            &snapshots::RemoveSnapshotRequest {
                snapshotter: c.snapshotter.clone(),
                key: c.snapshot_key.clone(),
            },
        );
        match r {
            Ok(_) => {}
            Err(s) if not_found(&s) => {}
            Err(s) => return Err(s.into()),
        }
    }
    let _: Empty = conn.call(
        containers::SERVICE,
        "Delete",
        &containers::DeleteContainerRequest { id: id.to_string() },
    )?;
    Ok(())
}

// ---- tasks ------------------------------------------------------------------

const STATUS_STOPPED: i32 = 3;

fn status_word(s: i32) -> &'static str {
    match s {
        1 => "CREATED",
        2 => "RUNNING",
        3 => "STOPPED",
        4 => "PAUSED",
        5 => "PAUSING",
        _ => "UNKNOWN",
    }
}

/// The task of a container, None when it has none.
fn get_task(conn: &Conn, id: &str) -> Result<Option<tasks::Process>, Fail> {
    let r: Result<tasks::GetResponse, Status> = conn.call(
        tasks::SERVICE,
        "Get",
        &tasks::GetRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        },
    );
    match r {
        Ok(r) => Ok(r.process),
        Err(s) if not_found(&s) => Ok(None),
        Err(s) => Err(s.into()),
    }
}

/// The task of an existing container, or ctr's message for what is missing.
fn need_task(conn: &Conn, id: &str) -> Result<tasks::Process, Fail> {
    get_container(conn, id)?;
    get_task(conn, id)?.ok_or_else(|| msg(format!("no running task found: task {id} not found")))
}

fn delete_task(conn: &Conn, id: &str) -> Result<tasks::DeleteResponse, Fail> {
    Ok(conn.call(
        tasks::SERVICE,
        "Delete",
        &tasks::DeleteTaskRequest {
            container_id: id.to_string(),
        },
    )?)
}

fn cmd_task_ls(g: &Globals, p: &Parsed) -> Res {
    let conn = g.connect()?;
    let r: tasks::ListTasksResponse =
        conn.call(tasks::SERVICE, "List", &tasks::ListTasksRequest::default())?;
    if p.bool("quiet") {
        for t in &r.tasks {
            print(&format!("{}\n", t.id));
        }
        return Ok(());
    }
    let mut t = String::from("TASK\tPID\tSTATUS\t\n");
    for task in &r.tasks {
        t.push_str(&format!(
            "{}\t{}\t{}\n",
            task.id,
            task.pid,
            status_word(task.status)
        ));
    }
    print(&tabwriter::format(tabwriter::WIDE, &t));
    Ok(())
}

fn cmd_task_ps(g: &Globals, p: &Parsed) -> Res {
    let id = arg(p, 0, "container id")?;
    let conn = g.connect()?;
    need_task(&conn, id)?;
    let r: tasks::ListPidsResponse = conn.call(
        tasks::SERVICE,
        "ListPids",
        &tasks::ListPidsRequest {
            container_id: id.to_string(),
        },
    )?;
    let mut t = String::from("PID\tINFO\n");
    for proc in &r.processes {
        t.push_str(&format!("{}\t-\n", proc.pid));
    }
    print(&tabwriter::format(tabwriter::WIDE, &t));
    Ok(())
}

fn simple_task_call<Req: prost::Message>(
    g: &Globals,
    p: &Parsed,
    method: &str,
    req: impl Fn(&str) -> Req,
) -> Res {
    let id = arg(p, 0, "container id")?;
    let conn = g.connect()?;
    need_task(&conn, id)?;
    let _: Empty = conn.call(tasks::SERVICE, method, &req(id))?;
    Ok(())
}

fn cmd_task_pause(g: &Globals, p: &Parsed) -> Res {
    simple_task_call(g, p, "Pause", |id| tasks::PauseTaskRequest {
        container_id: id.to_string(),
    })
}

fn cmd_task_resume(g: &Globals, p: &Parsed) -> Res {
    simple_task_call(g, p, "Resume", |id| tasks::ResumeTaskRequest {
        container_id: id.to_string(),
    })
}

fn cmd_task_kill(g: &Globals, p: &Parsed) -> Res {
    let sig = match p.get("signal") {
        None => libc::SIGTERM,
        Some(s) => {
            skiff::sys::signal::parse(s).ok_or_else(|| msg(format!("unknown signal {s:?}")))?
        }
    };
    let exec_id = p.get("exec-id").unwrap_or("").to_string();
    if p.bool("all") && !exec_id.is_empty() {
        return Err(msg("specify an exec-id or all; not both"));
    }
    simple_task_call(g, p, "Kill", |id| tasks::KillRequest {
        container_id: id.to_string(),
        exec_id: exec_id.clone(),
        signal: sig as u32,
        all: p.bool("all"),
    })
}

fn cmd_task_rm(g: &Globals, p: &Parsed) -> Res {
    arg(p, 0, "container id")?;
    let conn = g.connect()?;
    let mut failed = None;
    for id in &p.args {
        let r = (|| -> Res {
            let task = need_task(&conn, id)?;
            if let Some(exec_id) = p.get("exec-id") {
                let _: tasks::DeleteResponse = conn.call(
                    tasks::SERVICE,
                    "DeleteProcess",
                    &tasks::DeleteProcessRequest {
                        container_id: id.clone(),
                        exec_id: exec_id.to_string(),
                    },
                )?;
                return Ok(());
            }
            if task.status != STATUS_STOPPED {
                if !p.bool("force") {
                    return Err(msg(format!(
                        "task must be stopped before deletion: {}: failed precondition",
                        status_word(task.status).to_lowercase()
                    )));
                }
                let _: Empty = conn.call(
                    tasks::SERVICE,
                    "Kill",
                    &tasks::KillRequest {
                        container_id: id.clone(),
                        exec_id: String::new(),
                        signal: libc::SIGKILL as u32,
                        all: true,
                    },
                )?;
                wait_task(&conn, id, "")?;
            }
            let d = delete_task(&conn, id)?;
            if d.exit_status != 0 {
                warn(&format!(
                    "task {id} exit with non-zero exit code {}",
                    d.exit_status
                ));
            }
            Ok(())
        })();
        if let Err(e) = r {
            if let Fail::Msg(m) = &e {
                eprintln!(
                    "time=\"{}\" level=error msg=\"unable to delete {id}\" error={}",
                    skiff::time::rfc3339_nano(skiff::time::now().0, 0),
                    skiff::json::quote(m)
                );
            }
            failed = Some(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

fn wait_task(conn: &Conn, id: &str, exec_id: &str) -> Result<u32, Fail> {
    let r: tasks::WaitResponse = conn.call_unbounded(
        tasks::SERVICE,
        "Wait",
        &tasks::WaitRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
        },
    )?;
    Ok(r.exit_status)
}

fn cmd_task_metrics(g: &Globals, p: &Parsed) -> Res {
    let id = arg(p, 0, "container id")?;
    let conn = g.connect()?;
    need_task(&conn, id)?;
    let r: tasks::MetricsResponse = conn.call(
        tasks::SERVICE,
        "Metrics",
        &tasks::MetricsRequest {
            filters: vec![format!("id=={id}")],
        },
    )?;
    let Some(m) = r.metrics.first() else {
        return Err(msg("cannot get metrics for task"));
    };
    let mut t = format!(
        "ID\tTIMESTAMP\t\n{}\t{}\t\n\nMETRIC\tVALUE\t\n",
        m.id,
        go_time(m.timestamp.as_ref())
    );
    let data = m.data.as_ref();
    match data.filter(|d| d.type_url.ends_with(skiff::shim::metrics::METRICS_V1)) {
        Some(d) => {
            let v = <skiff::shim::metrics::Metrics as prost::Message>::decode(&d.value[..])
                .map_err(|e| msg(format!("decode metrics: {e}")))?;
            // The rows ctr prints for cgroup v1.
            if let Some(mem) = &v.memory {
                let usage = mem.usage.clone().unwrap_or_default();
                t.push_str(&format!("memory.usage_in_bytes\t{}\t\n", usage.usage));
                t.push_str(&format!("memory.limit_in_bytes\t{}\t\n", usage.limit));
                t.push_str(&format!("memory.stat.cache\t{}\t\n", mem.cache));
            }
            if let Some(cpu) = &v.cpu {
                let usage = cpu.usage.clone().unwrap_or_default();
                let per: Vec<String> = usage.per_cpu.iter().map(u64::to_string).collect();
                t.push_str(&format!("cpuacct.usage\t{}\t\n", usage.total));
                t.push_str(&format!("cpuacct.usage_percpu\t[{}]\t\n", per.join(" ")));
            }
            if let Some(pids) = &v.pids {
                t.push_str(&format!("pids.current\t{}\t\n", pids.current));
                t.push_str(&format!("pids.limit\t{}\t\n", pids.limit));
            }
        }
        None => {
            let kind = data.map(|d| d.type_url.as_str()).unwrap_or("-");
            return Err(msg(format!("cannot convert metric data to {kind}")));
        }
    }
    print(&tabwriter::format(tabwriter::WIDE, &t));
    Ok(())
}

fn cmd_task_start(g: &Globals, p: &Parsed) -> Res {
    let id = arg(p, 0, "container id")?;
    let mask = take_signals(p.bool("detach"))?;
    let conn = g.connect()?;
    let c = get_container(&conn, id)?;
    let terminal = spec_terminal(&c);
    let detach = p.bool("detach");
    let null_io = p.bool("null-io") || detach;
    let io = Stdio::new(id, "", terminal, null_io, None)?;
    let r: Result<tasks::CreateTaskResponse, Status> = conn.call(
        tasks::SERVICE,
        "Create",
        &tasks::CreateTaskRequest {
            container_id: id.to_string(),
            stdin: io.paths.0.clone(),
            stdout: io.paths.1.clone(),
            stderr: io.paths.2.clone(),
            terminal,
            ..Default::default()
        },
    );
    let io = io.created(r.as_ref().err().cloned())?;
    r?;
    let result = run_process(&conn, id, "", io, detach, mask);
    if !detach {
        // As ctr: an attached start deletes the task once it exited.
        let _: Result<tasks::DeleteResponse, Status> = conn.call(
            tasks::SERVICE,
            "Delete",
            &tasks::DeleteTaskRequest {
                container_id: id.to_string(),
            },
        );
    }
    result
}

fn spec_terminal(c: &containers::Container) -> bool {
    c.spec
        .as_ref()
        .and_then(|s| std::str::from_utf8(&s.value).ok().map(str::to_string))
        .and_then(|t| skiff::oci::spec::parse(&t).ok())
        .and_then(|s| s.process.map(|p| p.terminal))
        .unwrap_or(false)
}

fn cmd_task_attach(g: &Globals, p: &Parsed) -> Res {
    let id = arg(p, 0, "container id")?;
    let conn = g.connect()?;
    let task = need_task(&conn, id)?;
    if task.stdout.is_empty() {
        return Err(msg(format!("task {id} has no io to attach to")));
    }
    // The fifos the creator made: open them again and copy, as ctr does.
    let out = cio::OutputFifo::open(&task.stdout).map_err(|e| msg(e.to_string()))?;
    let (h, attach) = out.copy_to(std::io::stdout());
    drop(attach);
    let status = wait_task(&conn, id, "")?;
    let _ = h.join();
    if status != 0 {
        return Err(Fail::Exit(status as u8));
    }
    Ok(())
}

fn cmd_task_exec(g: &Globals, p: &Parsed) -> Res {
    let Some(exec_id) = p.get("exec-id").filter(|s| !s.is_empty()) else {
        let c = find(COMMANDS, "tasks").and_then(|t| find(t.sub, "exec"));
        if let Some(c) = c {
            print(&cmd_help(&["tasks"], c));
        }
        return Err(msg("Required flag \"exec-id\" not set"));
    };
    let id = arg(p, 0, "container id")?;
    if p.args.len() < 2 {
        return Err(msg("command must be provided"));
    }
    let mask = take_signals(p.bool("detach"))?;
    let conn = g.connect()?;
    let c = get_container(&conn, id)?;
    need_task(&conn, id)?;
    let terminal = p.bool("tty");
    let process = exec_process_json(&c, &p.args[1..], terminal, p.get("cwd"), p.get("user"))?;
    let detach = p.bool("detach");
    let io = Stdio::new(id, exec_id, terminal, detach, p.get("fifo-dir"))?;
    let r: Result<Empty, Status> = conn.call(
        tasks::SERVICE,
        "Exec",
        &tasks::ExecProcessRequest {
            container_id: id.to_string(),
            stdin: io.paths.0.clone(),
            stdout: io.paths.1.clone(),
            stderr: io.paths.2.clone(),
            terminal,
            spec: Some(Any {
                type_url: skiff::daemon::spec::PROCESS_TYPE_URL.into(),
                value: process,
            }),
            exec_id: exec_id.to_string(),
        },
    );
    let io = io.created(r.as_ref().err().cloned())?;
    r?;
    let result = run_process(&conn, id, exec_id, io, detach, mask);
    if !detach {
        let _: Result<tasks::DeleteResponse, Status> = conn.call(
            tasks::SERVICE,
            "DeleteProcess",
            &tasks::DeleteProcessRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
            },
        );
    }
    result
}

/// The exec's process: the daemon's builder (the container's process
/// with the new args and terminal), then ctr's `--cwd` and `--user`.
fn exec_process_json(
    c: &containers::Container,
    args: &[String],
    terminal: bool,
    cwd: Option<&str>,
    user: Option<&str>,
) -> Result<Vec<u8>, Fail> {
    use miniserde::json::{Number, Object, Value};
    let spec = c
        .spec
        .as_ref()
        .ok_or_else(|| msg(format!("container \"{}\" has no spec", c.id)))?;
    let process = skiff::daemon::spec::exec_process(&spec.value, args, terminal)
        .map_err(|e| msg(e.to_string()))?;
    if cwd.is_none() && user.is_none() {
        return Ok(process);
    }
    let text = String::from_utf8_lossy(&process);
    let Ok(Value::Object(mut process)) = skiff::json::parse(&text, "process") else {
        return Err(msg("exec: the process is not a JSON object"));
    };
    if let Some(cwd) = cwd {
        process.insert("cwd".into(), Value::String(cwd.to_string()));
    }
    if let Some(user) = user {
        let (u, gr) = user.split_once(':').unwrap_or((user, "0"));
        let (Ok(uid), Ok(gid)) = (u.parse::<u64>(), gr.parse::<u64>()) else {
            return Err(msg(format!(
                "user {user:?}: give a numeric uid[:gid] for exec"
            )));
        };
        let mut o = Object::new();
        o.insert("uid".into(), Value::Number(Number::U64(uid)));
        o.insert("gid".into(), Value::Number(Number::U64(gid)));
        process.insert("user".into(), Value::Object(o));
    }
    Ok(miniserde::json::to_string(&Value::Object(process)).into_bytes())
}

/// The stdio of a process being created: fifos the client made (or none,
/// for detached/null io), opened for reading before the shim opens them.
struct Stdio {
    paths: (String, String, String),
    fifos: Option<cio::FifoSet>,
    out: Option<cio::OutputFifo>,
    err: Option<cio::OutputFifo>,
}

impl Stdio {
    fn new(
        id: &str,
        exec_id: &str,
        terminal: bool,
        null_io: bool,
        fifo_dir: Option<&str>,
    ) -> Result<Stdio, Fail> {
        if null_io {
            return Ok(Stdio {
                paths: Default::default(),
                fifos: None,
                out: None,
                err: None,
            });
        }
        let name = if exec_id.is_empty() { id } else { exec_id };
        let set = cio::FifoSet::create(fifo_dir.unwrap_or(cio::FIFO_ROOT), name, terminal)
            .map_err(|e| msg(e.to_string()))?;
        let opened = (|| -> skiff::Result<_> {
            let out = cio::OutputFifo::open(&set.stdout)?;
            let err = if set.stderr.is_empty() {
                None
            } else {
                Some(cio::OutputFifo::open(&set.stderr)?)
            };
            Ok((out, err))
        })();
        let (out, err) = match opened {
            Ok(x) => x,
            Err(e) => {
                set.remove();
                return Err(msg(e.to_string()));
            }
        };
        Ok(Stdio {
            paths: (set.stdin.clone(), set.stdout.clone(), set.stderr.clone()),
            fifos: Some(set),
            out: Some(out),
            err,
        })
    }

    /// After Create/Exec: on failure the fifos go; on success the io is
    /// ready to copy.
    fn created(self, failure: Option<Status>) -> Result<Stdio, Fail> {
        if failure.is_some() {
            if let Some(f) = &self.fifos {
                f.remove();
            }
        }
        Ok(self)
    }
}

/// For an attached process: block every signal before any thread exists
/// (the connection's reader included), so they all wait for the thread
/// that forwards them (SIGWINCH resizes) instead of killing ctr.
fn take_signals(detach: bool) -> Result<Option<skiff::sys::signal::Mask>, Fail> {
    if detach {
        return Ok(None);
    }
    skiff::sys::signal::block_all()
        .map(Some)
        .map_err(|e| msg(e.to_string()))
}

/// Start a created process (init when `exec_id` is empty), copy its io,
/// forward signals and window size, wait and pass its exit status on.
fn run_process(
    conn: &Conn,
    id: &str,
    exec_id: &str,
    mut io: Stdio,
    detach: bool,
    mask: Option<skiff::sys::signal::Mask>,
) -> Res {
    let terminal = io.paths.2.is_empty() && !io.paths.1.is_empty();
    let mut copiers = Vec::new();
    let mut attaches = Vec::new();
    if let Some(out) = io.out.take() {
        let (h, a) = out.copy_to(std::io::stdout());
        copiers.push(h);
        attaches.push(a);
    }
    if let Some(err) = io.err.take() {
        let (h, a) = err.copy_to(std::io::stderr());
        copiers.push(h);
        attaches.push(a);
    }
    let raw = if terminal && !detach {
        term::RawMode::stdin()
    } else {
        None
    };
    if !io.paths.0.is_empty() && !detach {
        let addr_conn = CloseIo {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
        };
        let closer = conn_closer(conn, addr_conn);
        cio::copy_stdin(io.paths.0.clone(), std::io::stdin(), closer);
    }
    // Wait before Start, so the exit cannot be missed.
    let (tx, rx) = std::sync::mpsc::channel();
    if !detach {
        let waiter = WaitCall {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
        };
        let conn = conn.clone();
        std::thread::spawn(move || {
            let r = wait_task(&conn, &waiter.id, &waiter.exec_id);
            let _ = tx.send(r);
            // Wake the signal loop.
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::CHILD,
            );
        });
    }
    // The pty exists once the process is created: size it before it
    // runs, so its first look at the window sees ours (ctr resizes after
    // Start, which leaves a moment of 0x0).
    if terminal {
        resize(conn, id, exec_id);
    }
    let started: Result<tasks::StartResponse, Status> = conn.call(
        tasks::SERVICE,
        "Start",
        &tasks::StartRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
        },
    );
    drop(attaches);
    if let Err(s) = started {
        drop(raw);
        if let Some(f) = &io.fifos {
            f.remove();
        }
        return Err(s.into());
    }
    if detach {
        return Ok(());
    }
    if terminal {
        resize(conn, id, exec_id);
    }
    let status = loop {
        if let Ok(r) = rx.try_recv() {
            break r;
        }
        match skiff::sys::signal::wait_any() {
            libc::SIGWINCH if terminal => resize(conn, id, exec_id),
            libc::SIGCHLD | libc::SIGWINCH | libc::SIGPIPE => {}
            sig => {
                let _: Result<Empty, Status> = conn.call(
                    tasks::SERVICE,
                    "Kill",
                    &tasks::KillRequest {
                        container_id: id.to_string(),
                        exec_id: exec_id.to_string(),
                        signal: sig as u32,
                        all: false,
                    },
                );
            }
        }
    };
    for h in copiers {
        let _ = h.join();
    }
    drop(raw);
    if let Some(m) = mask {
        let _ = skiff::sys::signal::restore(&m);
    }
    if let Some(f) = &io.fifos {
        f.remove();
    }
    let status = status?;
    if status != 0 {
        return Err(Fail::Exit(status as u8));
    }
    Ok(())
}

struct CloseIo {
    id: String,
    exec_id: String,
}

struct WaitCall {
    id: String,
    exec_id: String,
}

fn conn_closer(conn: &Conn, what: CloseIo) -> impl FnOnce() + Send + 'static {
    let conn = conn.clone();
    move || {
        let _: Result<Empty, Status> = conn.call(
            tasks::SERVICE,
            "CloseIO",
            &tasks::CloseIoRequest {
                container_id: what.id,
                exec_id: what.exec_id,
                stdin: true,
            },
        );
    }
}

fn resize(conn: &Conn, id: &str, exec_id: &str) {
    if let Some((width, height)) = term::window_size() {
        let _: Result<Empty, Status> = conn.call(
            tasks::SERVICE,
            "ResizePty",
            &tasks::ResizePtyRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                width,
                height,
            },
        );
    }
}

fn cmd_run(g: &Globals, p: &Parsed) -> Res {
    let detach = p.bool("detach");
    let rm = p.bool("rm");
    if detach && rm {
        return Err(msg("flags --detach and --rm cannot be specified together"));
    }
    let mask = take_signals(p.bool("detach"))?;
    let conn = g.connect()?;
    let c = create_container(&conn, p)?;
    let id = c.id.clone();
    let terminal = p.bool("tty");
    let null_io = p.bool("null-io") || detach;
    let cleanup = |conn: &Conn| {
        let _: Result<tasks::DeleteResponse, Status> = conn.call(
            tasks::SERVICE,
            "Delete",
            &tasks::DeleteTaskRequest {
                container_id: id.clone(),
            },
        );
        if rm {
            let _ = delete_container(conn, &id, true);
        }
    };
    let io = match Stdio::new(&id, "", terminal, null_io, p.get("fifo-dir")) {
        Ok(io) => io,
        Err(e) => {
            cleanup(&conn);
            return Err(e);
        }
    };
    let r: Result<tasks::CreateTaskResponse, Status> = conn.call(
        tasks::SERVICE,
        "Create",
        &tasks::CreateTaskRequest {
            container_id: id.clone(),
            stdin: io.paths.0.clone(),
            stdout: io.paths.1.clone(),
            stderr: io.paths.2.clone(),
            terminal,
            ..Default::default()
        },
    );
    let io = io.created(r.as_ref().err().cloned())?;
    if let Err(s) = r {
        cleanup(&conn);
        return Err(s.into());
    }
    let result = run_process(&conn, &id, "", io, detach, mask);
    if !detach {
        cleanup(&conn);
    }
    result
}

// ---- snapshots, content, leases, events -------------------------------------

fn cmd_snapshot_ls(g: &Globals, p: &Parsed) -> Res {
    let conn = g.connect()?;
    let stream = conn.stream(
        snapshots::SERVICE,
        "List",
        &snapshots::ListSnapshotsRequest {
            snapshotter: p.get("snapshotter").unwrap_or("").to_string(),
            filters: Vec::new(),
        },
    )?;
    let mut infos = Vec::new();
    while let Some(m) = stream.recv(conn.stream_timeout()?)? {
        let r = <snapshots::ListSnapshotsResponse as prost::Message>::decode(&m[..])
            .map_err(|e| msg(format!("decode ListSnapshotsResponse: {e}")))?;
        infos.extend(r.info);
    }
    let mut t = String::from("KEY\tPARENT\tKIND\t\n");
    for i in &infos {
        let kind = match i.kind {
            snapshots::kind::VIEW => "View",
            snapshots::kind::ACTIVE => "Active",
            snapshots::kind::COMMITTED => "Committed",
            _ => "Unknown",
        };
        t.push_str(&format!("{}\t{}\t{}\t\n", i.name, i.parent, kind));
    }
    print(&tabwriter::format(tabwriter::TIGHT, &t));
    Ok(())
}

fn cmd_snapshot_rm(g: &Globals, p: &Parsed) -> Res {
    arg(p, 0, "key")?;
    let conn = g.connect()?;
    for key in &p.args {
        let r: Result<Empty, Status> = conn.call(
            snapshots::SERVICE,
            "Remove",
            &snapshots::RemoveSnapshotRequest {
                snapshotter: p.get("snapshotter").unwrap_or("").to_string(),
                key: key.clone(),
            },
        );
        match r {
            Ok(_) => {}
            Err(s) if not_found(&s) => {
                return Err(msg(format!(
                    "failed to remove \"{key}\": snapshot {key}: not found"
                )))
            }
            Err(s) => return Err(msg(format!("failed to remove \"{key}\": {}", s.message))),
        }
    }
    Ok(())
}

fn cmd_content_ls(g: &Globals, p: &Parsed) -> Res {
    let conn = g.connect()?;
    let stream = conn.stream(
        content::SERVICE,
        "List",
        &content::ListContentRequest {
            filters: filters(p),
        },
    )?;
    let mut infos = Vec::new();
    while let Some(m) = stream.recv(conn.stream_timeout()?)? {
        let r = <content::ListContentResponse as prost::Message>::decode(&m[..])
            .map_err(|e| msg(format!("decode ListContentResponse: {e}")))?;
        infos.extend(r.info);
    }
    if p.bool("quiet") {
        for i in &infos {
            print(&format!("{}\n", i.digest));
        }
        return Ok(());
    }
    let now = std::time::SystemTime::now();
    let mut t = String::from("DIGEST\tSIZE\tAGE\tLABELS\n");
    for i in &infos {
        let created = i.created_at.unwrap_or_default().to_system_time();
        let age = now.duration_since(created).unwrap_or_default();
        let labels = if i.labels.is_empty() {
            "-".to_string()
        } else {
            labels_text(&i.labels)
        };
        t.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            i.digest,
            units::human_size(i.size as f64),
            units::human_duration(age),
            labels
        ));
    }
    print(&tabwriter::format(tabwriter::TABS, &t));
    Ok(())
}

fn cmd_lease_ls(g: &Globals, p: &Parsed) -> Res {
    let conn = g.connect()?;
    let r: leases::ListResponse = conn.call(
        leases::SERVICE,
        "List",
        &leases::ListRequest {
            filters: filters(p),
        },
    )?;
    if p.bool("quiet") {
        for l in &r.leases {
            print(&format!("{}\n", l.id));
        }
        return Ok(());
    }
    let mut t = String::from("ID\tCREATED AT\tLABELS\t\n");
    for l in &r.leases {
        t.push_str(&format!(
            "{}\t{}\t{}\t\n",
            l.id,
            rfc3339(l.created_at.as_ref()),
            labels_text(&l.labels)
        ));
    }
    print(&tabwriter::format(tabwriter::TIGHT, &t));
    Ok(())
}

fn cmd_events(g: &Globals, p: &Parsed) -> Res {
    let conn = g.connect()?;
    let stream = conn.stream(
        skiff::proto::services::events::SERVICE,
        "Subscribe",
        &skiff::proto::services::events::SubscribeRequest {
            filters: filters(p),
        },
    )?;
    while let Some(m) = stream.recv(None)? {
        let e = <skiff::proto::events::Envelope as prost::Message>::decode(&m[..])
            .map_err(|e| msg(format!("decode Envelope: {e}")))?;
        let kind = e
            .event
            .as_ref()
            .map(skiff::ctr::events::json)
            .unwrap_or_else(|| "{}".into());
        print(&format!(
            "{} {} {} {}\n",
            go_time(e.timestamp.as_ref()),
            e.namespace,
            e.topic,
            kind
        ));
    }
    Ok(())
}
