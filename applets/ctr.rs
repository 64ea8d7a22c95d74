//! `ctr`: containerd's command line as a client of skiff's daemon.
//!
//! The command tree, its flags (Go habits: `-flag`, `--flag=value`) and
//! messages follow containerd 1.6's ctr; the shapes of tables and errors
//! were recorded from it. The work is in `skiff::ctr` (parser, client,
//! fifos, terminal, progress); this file decides what to call and prints.

use crate::output::print;
use skiff::ctr::client::Conn;
use skiff::ctr::flags::{self, Flag, Parsed};
use skiff::ctr::format::{self as fmt, go_time};
use skiff::ctr::objects::{self, delete_task, get_container, get_image, need_task, wait_task};
use skiff::ctr::process::{self, Outcome, Stdio};
use skiff::ctr::signals::Signals;
use skiff::ctr::{archive, container, progress, tabwriter, term, units};
use skiff::proto::services::{
    containers, content, images, leases, namespaces, pull, snapshots, tasks, version,
};
use skiff::proto::types::{Any, Empty};
use skiff::ttrpc::{Code, Status};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

const DEFAULT_ADDRESS: &str = "/run/skiff/containerd.sock";
const DEFAULT_NAMESPACE: &str = "default";
const VERSION: &str = env!("CARGO_PKG_VERSION");

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

impl From<skiff::Error> for Fail {
    fn from(e: skiff::Error) -> Fail {
        Fail::Msg(e.to_string())
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
                    Flag::bool(&["skip-digest-for-named"], "skip applying --digests option to images named in the importing tar (use it in conjunction with --digests)"),
                    Flag::bool(&["all-platforms"], "imports content for all platforms, false by default"),
                    Flag::value(&["platform"], "imports content for specific platform"),
                    Flag::bool(&["no-unpack"], "skip unpacking the images, false by default"),
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
    let mut p = flags::parse(cmd.flags, rest).map_err(|e| {
        print(&format!(
            "Incorrect Usage: {e}\n\n{}",
            cmd_help(&path[..path.len() - 1], cmd)
        ));
        Fail::Usage(e)
    })?;
    if cmd.flags.iter().any(|f| f.names.contains(&"snapshotter")) {
        // urfave's EnvVar: the flag's value when the command line gives none.
        p.set_default(
            "snapshotter",
            std::env::var("CONTAINERD_SNAPSHOTTER")
                .ok()
                .filter(|s| !s.is_empty()),
        );
    }
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
    // As ctr: the server's uuid (containerd's introspection Server).
    if let Ok(sr) = server {
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
                labels: fmt::key_values(&labels),
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

/// The filter arguments, checked here as the daemon would check them so
/// a bad one gets ctr's message (`wrap` is what ctr says around it).
fn filters(p: &Parsed, wrap: (&str, &str)) -> Result<Vec<String>, Fail> {
    match skiff::filter::parse_all(&p.args) {
        Ok(_) => Ok(p.args.clone()),
        Err(e) => Err(msg(format!("{}{e}{}", wrap.0, wrap.1))),
    }
}

const TWICE_INVALID: &str = ": invalid argument: invalid argument";

fn cmd_image_ls(g: &Globals, p: &Parsed) -> Res {
    let conn = g.connect()?;
    let list = objects::list_images(
        &conn,
        &filters(p, ("failed to list images: ", TWICE_INVALID))?,
    )?;
    if p.bool("quiet") {
        for i in &list {
            print(&format!("{}\n", i.name));
        }
        return Ok(());
    }
    let mut t = String::from("REF\tTYPE\tDIGEST\tSIZE\tPLATFORMS\tLABELS\t\n");
    for i in &list {
        let target = i.target.clone().unwrap_or_default();
        let (size, platforms) = match objects::image_facts(&conn, &target) {
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
            fmt::labels(&i.labels)
        ));
    }
    print(&tabwriter::format(tabwriter::TIGHT, &t));
    Ok(())
}

fn cmd_image_check(g: &Globals, p: &Parsed) -> Res {
    let conn = g.connect()?;
    let list = objects::list_images(
        &conn,
        &filters(p, ("failed to list images: ", TWICE_INVALID))?,
    )?;
    if p.bool("quiet") {
        for i in &list {
            print(&format!("{}\n", i.name));
        }
        return Ok(());
    }
    let mut t = String::from("REF\tTYPE\tDIGEST\tSTATUS\tSIZE\tUNPACKED\t\n");
    for i in &list {
        let target = i.target.clone().unwrap_or_default();
        let (status, size) = match objects::image_facts(&conn, &target) {
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

/// `images export OUT REF…`: an OCI archive plus Docker's manifest.json.
fn cmd_image_export(g: &Globals, p: &Parsed) -> Res {
    use skiff::image::oci::Platform;
    const BOTH: &str = "please provide both an output filename and an image reference to export";
    if p.args.len() < 2 || p.args[0].is_empty() {
        return Err(msg(BOTH));
    }
    let out = p.args[0].as_str();
    let platform = match p.get("platform") {
        Some(s) => Platform::parse(s)?,
        None => Platform::host(),
    };
    let opts = archive::ExportOptions {
        images: &p.args[1..],
        platform,
        all_platforms: p.bool("all-platforms"),
        skip_manifest_json: p.bool("skip-manifest-json"),
    };
    let conn = g.connect()?;
    let written = if out == "-" {
        archive::export(&conn, &opts, std::io::stdout().lock())
    } else {
        let file = std::fs::File::create(out).map_err(|e| msg(format!("{out}: {e}")))?;
        let r = archive::export(&conn, &opts, std::io::BufWriter::new(file));
        if r.is_err() {
            let _ = std::fs::remove_file(out);
        }
        r
    };
    Ok(written?)
}

/// `images import FILE`: an OCI or `docker save` archive.
fn cmd_image_import(g: &Globals, p: &Parsed) -> Res {
    let file = arg(p, 0, "input file")?;
    let conn = g.connect()?;
    let opts = archive::ImportOptions {
        base_name: p.get("base-name"),
        digests: p.bool("digests"),
        skip_digest_for_named: p.bool("skip-digest-for-named"),
    };
    if opts.skip_digest_for_named && !opts.digests {
        return Err(msg(
            "--skip-digest-for-named must be specified with --digests option",
        ));
    }
    for i in archive::import(&conn, file, &opts)? {
        print(&format!("unpacking {} ({})...done\n", i.name, i.digest));
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
    // With --all-platforms the daemon fetches every platform and records
    // the index; the host's is unpacked, as ctr does.
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
            all_platforms: p.bool("all-platforms"),
        },
    )?;
    let display = PullDisplay::new(reference);
    let mut image = None;
    loop {
        let m = match stream.recv(conn.stream_timeout()?) {
            Ok(Some(m)) => m,
            Ok(None) => break,
            // containerd has no pull service: its clients fetch and
            // unpack themselves, and so does this one then.
            Err(s) if s.code == Code::Unimplemented && image.is_none() => {
                drop(stream);
                return client_side_pull(&conn, p, reference, display);
            }
            Err(s) => return Err(s.into()),
        };
        let r = <pull::PullProgress as prost::Message>::decode(&m[..])
            .map_err(|e| msg(format!("decode PullProgress: {e}")))?;
        if r.image.is_some() {
            image = r.image;
            continue;
        }
        display.update(&r);
    }
    let image = image.ok_or_else(|| msg(format!("pull {reference}: the daemon sent no image")))?;
    display.finish(&image.target.unwrap_or_default().digest);
    Ok(())
}

/// The pull's progress on stdout: redrawn in place on a terminal (at most
/// every 100 ms), one line per change otherwise. Updates may come from
/// several threads (the client-side pull's downloads).
struct PullDisplay {
    tty: bool,
    state: std::sync::Mutex<(progress::Progress, std::time::Instant)>,
}

impl PullDisplay {
    fn new(reference: &str) -> PullDisplay {
        PullDisplay {
            tty: term::stdout_is_tty(),
            state: std::sync::Mutex::new((
                progress::Progress::new(reference),
                std::time::Instant::now(),
            )),
        }
    }

    fn update(&self, r: &pull::PullProgress) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (prog, last_draw) = &mut *st;
        let line = prog.update(&r.name, &r.media_type, r.state, r.offset, r.total);
        if self.tty {
            if last_draw.elapsed() > Duration::from_millis(100) || line.is_some() {
                print(&prog.redraw());
                *last_draw = std::time::Instant::now();
            }
        } else if let Some(l) = line {
            print(&format!("{l}\n"));
        }
    }

    fn finish(&self, digest: &str) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let prog = &mut st.0;
        if self.tty {
            print(&prog.redraw());
        } else {
            print(&prog.table());
        }
        print(&format!(
            "unpacking {} {digest}...\ndone: {:?}\t\n",
            fmt::platform(&skiff::image::oci::Platform::host()),
            prog.elapsed()
        ));
    }
}

/// `images pull` against a server without skiff's Pull service
/// (containerd): the fetch and the unpack are done here, through the
/// content, snapshots, diff and images services (see skiff::ctr::pull).
fn client_side_pull(g_conn: &Conn, p: &Parsed, reference: &str, display: PullDisplay) -> Res {
    use skiff::registry::{auth, client::Options as RegistryOptions};
    if p.bool("all-platforms") {
        return Err(msg(format!(
            "pull {reference}: --all-platforms is not supported against a server without \
             skiff's pull service ({})",
            pull::SERVICE
        )));
    }
    let platform = match p.get("platform").filter(|s| !s.is_empty()) {
        Some(s) => skiff::image::oci::Platform::parse(s)
            .map_err(|e| msg(format!("unable to parse platform {s}: {e}")))?,
        None => skiff::image::oci::Platform::host(),
    };
    // containerd's server has no default snapshotter: its client names one.
    let snapshotter = objects::named_snapshotter(g_conn, p.get("snapshotter"))?
        .unwrap_or_else(|| objects::CTR_DEFAULT_SNAPSHOTTER.to_string());
    let registry = RegistryOptions {
        plain_http: p.bool("plain-http"),
        tls_verify: true,
        credentials: p.get("user").map(auth::Credentials::parse),
        auth_file: auth::default_auth_file(),
        hosts_dir: p.get("hosts-dir").map(std::path::PathBuf::from),
        ..Default::default()
    };
    let report = |r: &pull::PullProgress| display.update(r);
    let pulled = skiff::ctr::pull::pull(
        g_conn,
        &skiff::ctr::pull::Options {
            reference,
            registry,
            platform,
            snapshotter: &snapshotter,
            parallel: 3,
            report: &report,
        },
    )?;
    display.finish(&pulled.image.target.unwrap_or_default().digest);
    Ok(())
}

// ---- containers -------------------------------------------------------------

fn cmd_container_ls(g: &Globals, p: &Parsed) -> Res {
    let conn = g.connect()?;
    let r: containers::ListContainersResponse = conn.call(
        containers::SERVICE,
        "List",
        &containers::ListContainersRequest {
            filters: filters(p, ("", TWICE_INVALID))?,
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
    let spec = fmt::reindent(&spec, "    ", 1);
    if p.bool("spec") {
        print(&format!("{}\n", fmt::reindent(&spec, "    ", 0)));
        return Ok(());
    }
    let mut w = String::from("{\n");
    let q = skiff::json::quote;
    w.push_str(&format!("    \"ID\": {},\n", q(&c.id)));
    w.push_str("    \"Labels\": ");
    w.push_str(&fmt::json_map(&c.labels, 1));
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
        q(&fmt::rfc3339_nano(c.created_at.as_ref()))
    ));
    w.push_str(&format!(
        "    \"UpdatedAt\": {},\n",
        q(&fmt::rfc3339_nano(c.updated_at.as_ref()))
    ));
    w.push_str("    \"Extensions\": null,\n");
    w.push_str(&format!("    \"Spec\": {spec}\n}}\n"));
    print(&w);
    Ok(())
}

fn cmd_container_create(g: &Globals, p: &Parsed) -> Res {
    let conn = g.connect()?;
    container::create(&conn, p)?;
    Ok(())
}

fn cmd_container_rm(g: &Globals, p: &Parsed) -> Res {
    arg(p, 0, "container id")?;
    let conn = g.connect()?;
    let mut failed = None;
    for id in &p.args {
        if let Err(e) = objects::delete_container(&conn, id, !p.bool("keep-snapshot")) {
            eprintln!(
                "time=\"{}\" level=error msg=\"failed to delete container \\\"{id}\\\"\" error={}",
                skiff::time::rfc3339_nano(skiff::time::now().0, 0),
                skiff::json::quote(e.message())
            );
            failed = Some(Fail::from(e));
        }
    }
    failed.map_or(Ok(()), Err)
}

// ---- tasks ------------------------------------------------------------------

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
            fmt::status_word(task.status)
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
            if task.status != objects::STATUS_STOPPED {
                if !p.bool("force") {
                    return Err(msg(format!(
                        "task must be stopped before deletion: {}: failed precondition",
                        fmt::status_word(task.status).to_lowercase()
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
    let detach = p.bool("detach");
    let signals = take_signals()?;
    let conn = g.connect()?;
    let c = get_container(&conn, id)?;
    let terminal = container::spec_terminal(&c);
    let io = Stdio::new(id, "", terminal, p.bool("null-io"), None)?;
    let r: Result<tasks::CreateTaskResponse, Status> = conn.call(
        tasks::SERVICE,
        "Create",
        &tasks::CreateTaskRequest {
            container_id: id.to_string(),
            rootfs: container::rootfs(&conn, &c)?,
            stdin: io.paths.0.clone(),
            stdout: io.paths.1.clone(),
            stderr: io.paths.2.clone(),
            terminal,
            ..Default::default()
        },
    );
    if let Err(s) = r {
        io.remove();
        return Err(s.into());
    }
    match process::run(&conn, id, "", io, detach, &signals) {
        Ok(Outcome::Detached) => Ok(()),
        outcome => {
            // As ctr: an attached start deletes the task once it exited
            // (or never started).
            let _ = delete_task(&conn, id);
            match outcome? {
                Outcome::Exited(status) => exit_with(status),
                Outcome::Cancelled(sig) => Err(cancelled(sig)),
                Outcome::Detached => Ok(()),
            }
        }
    }
}

/// Take every signal from here on (before any thread exists): until the
/// task runs, ^C cancels the command (twice: at once); then signals go
/// to the task.
fn take_signals() -> Result<Signals, Fail> {
    Ok(Signals::take_over(|sig| std::process::exit(128 + sig))?)
}

/// The command was cancelled by `sig` before its process started: exit
/// as a process that signal ended (128+N), quietly, as Go's ctr dies.
fn cancelled(sig: i32) -> Fail {
    Fail::Exit((128 + sig) as u8)
}

/// A process's exit status as ctr's own.
fn exit_with(status: u32) -> Res {
    match status {
        0 => Ok(()),
        n => Err(Fail::Exit(n as u8)),
    }
}

fn cmd_task_attach(g: &Globals, p: &Parsed) -> Res {
    let id = arg(p, 0, "container id")?;
    let signals = take_signals()?;
    let conn = g.connect()?;
    let c = get_container(&conn, id)?;
    let task = need_task(&conn, id)?;
    let status = process::attach(&conn, id, &task, container::spec_terminal(&c), &signals);
    // As ctr (a deferred task.Delete once it has the task): deleted on
    // every path from here, an error included; a task still running
    // refuses, which is ignored as ctr does.
    let _ = delete_task(&conn, id);
    exit_with(status?)
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
    let signals = take_signals()?;
    let conn = g.connect()?;
    let c = get_container(&conn, id)?;
    need_task(&conn, id)?;
    let terminal = p.bool("tty");
    let process = container::exec_process(
        &conn,
        &c,
        &p.args[1..],
        terminal,
        p.get("cwd"),
        p.get("user"),
    )?;
    let detach = p.bool("detach");
    let io = Stdio::new(id, exec_id, terminal, false, p.get("fifo-dir"))?;
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
    if let Err(s) = r {
        io.remove();
        return Err(s.into());
    }
    let outcome = process::run(&conn, id, exec_id, io, detach, &signals);
    let delete = || {
        let _: Result<tasks::DeleteResponse, Status> = conn.call(
            tasks::SERVICE,
            "DeleteProcess",
            &tasks::DeleteProcessRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
            },
        );
    };
    match outcome {
        Err(e) => {
            delete();
            Err(e.into())
        }
        Ok(Outcome::Detached) => Ok(()),
        Ok(Outcome::Exited(status)) => {
            delete();
            exit_with(status)
        }
        Ok(Outcome::Cancelled(sig)) => {
            delete();
            Err(cancelled(sig))
        }
    }
}

fn cmd_run(g: &Globals, p: &Parsed) -> Res {
    let detach = p.bool("detach");
    let rm = p.bool("rm");
    if detach && rm {
        return Err(msg("flags --detach and --rm cannot be specified together"));
    }
    let signals = take_signals()?;
    let conn = g.connect()?;
    let c = container::create(&conn, p)?;
    let id = c.id.clone();
    // What a failure or ^C before the task ran undoes: the task, and the
    // container this command made (as --rm would).
    let undo = |conn: &Conn| {
        let _ = delete_task(conn, &id);
        let _ = objects::delete_container(conn, &id, true);
    };
    if let Some(sig) = signals.cancelled() {
        undo(&conn);
        return Err(cancelled(sig));
    }
    // A failure leaves the container as ctr does, unless --rm. Once its
    // own task is deleted, what run made goes without look-ups.
    let failed = |conn: &Conn| {
        let task_deleted = process::delete_own_task(conn, &id).is_ok();
        if rm && !(task_deleted && container::remove_made(conn, &c).is_ok()) {
            let _ = objects::delete_container(conn, &id, true);
        }
    };
    let terminal = p.bool("tty");
    let io = match Stdio::new(&id, "", terminal, p.bool("null-io"), p.get("fifo-dir")) {
        Ok(io) => io,
        Err(e) => {
            failed(&conn);
            return Err(e.into());
        }
    };
    let rootfs = match container::rootfs(&conn, &c) {
        Ok(m) => m,
        Err(e) => {
            io.remove();
            failed(&conn);
            return Err(e.into());
        }
    };
    let r: Result<tasks::CreateTaskResponse, Status> = conn.call(
        tasks::SERVICE,
        "Create",
        &tasks::CreateTaskRequest {
            container_id: id.clone(),
            rootfs,
            stdin: io.paths.0.clone(),
            stdout: io.paths.1.clone(),
            stderr: io.paths.2.clone(),
            terminal,
            ..Default::default()
        },
    );
    if let Err(s) = r {
        io.remove();
        failed(&conn);
        return Err(s.into());
    }
    match process::run(&conn, &id, "", io, detach, &signals) {
        Ok(Outcome::Detached) => Ok(()),
        Ok(Outcome::Cancelled(sig)) => {
            undo(&conn);
            Err(cancelled(sig))
        }
        outcome => {
            failed(&conn);
            match outcome? {
                Outcome::Exited(status) => exit_with(status),
                _ => Ok(()),
            }
        }
    }
}

// ---- snapshots, content, leases, events -------------------------------------

fn cmd_snapshot_ls(g: &Globals, p: &Parsed) -> Res {
    let conn = g.connect()?;
    let mut name = objects::named_snapshotter(&conn, p.get("snapshotter"))?.unwrap_or_default();
    let list = |name: &str| -> Result<Vec<snapshots::Info>, Status> {
        let stream = conn.stream(
            snapshots::SERVICE,
            "List",
            &snapshots::ListSnapshotsRequest {
                snapshotter: name.to_string(),
                filters: Vec::new(),
            },
        )?;
        let mut infos = Vec::new();
        while let Some(m) = stream.recv(conn.stream_timeout()?)? {
            let r = <snapshots::ListSnapshotsResponse as prost::Message>::decode(&m[..]).map_err(
                |e| Status::new(Code::Internal, format!("decode ListSnapshotsResponse: {e}")),
            )?;
            infos.extend(r.info);
        }
        Ok(infos)
    };
    let infos = match list(&name) {
        Err(s) if objects::retry_with_ctr_default(&name, &s) => {
            name = objects::CTR_DEFAULT_SNAPSHOTTER.to_string();
            list(&name)?
        }
        r => r?,
    };
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
    let mut name = objects::named_snapshotter(&conn, p.get("snapshotter"))?.unwrap_or_default();
    for key in &p.args {
        let remove = |name: &str| -> Result<Empty, Status> {
            conn.call(
                snapshots::SERVICE,
                "Remove",
                &snapshots::RemoveSnapshotRequest {
                    snapshotter: name.to_string(),
                    key: key.clone(),
                },
            )
        };
        let r = match remove(&name) {
            Err(s) if objects::retry_with_ctr_default(&name, &s) => {
                name = objects::CTR_DEFAULT_SNAPSHOTTER.to_string();
                remove(&name)
            }
            r => r,
        };
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
            filters: filters(p, ("", ": invalid argument"))?,
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
            fmt::labels(&i.labels)
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
            filters: filters(p, ("failed to list leases: ", TWICE_INVALID))?,
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
            fmt::rfc3339(l.created_at.as_ref()),
            fmt::labels(&l.labels)
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
            filters: filters(p, ("", ""))?,
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
