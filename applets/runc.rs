//! The runc applet: runc's command line over `skiff::runtime`. Parsing,
//! output formats and exit codes live here; every decision is in the
//! library.

use crate::args::{normalize_with_shorts, Flags};
use crate::output::print;
use argh::FromArgs;
use skiff::runtime::{self, create::CreateOptions, ops, ps, StateRoot};
use skiff::{json, Error, Result};
use std::process::ExitCode;

const DEFAULT_ROOT: &str = "/run/skiff/runc";

#[derive(FromArgs)]
/// skiff's OCI runtime, command-line compatible with runc.
struct Runc {
    /// root directory for storage of container state (default /run/skiff/runc)
    #[argh(option, default = "DEFAULT_ROOT.to_string()")]
    root: String,
    /// set the log file to write runtime logs to (default: stderr)
    #[argh(option)]
    log: Option<String>,
    /// set the log format: text (default) or json
    #[argh(option, default = "String::from(\"text\")")]
    log_format: String,
    /// enable debug logging
    #[argh(switch)]
    #[allow(dead_code)]
    debug: bool,
    /// accepted; skiff manages cgroups itself, and a systemd-style
    /// cgroupsPath (slice:prefix:name) is refused with a clear error
    #[argh(switch)]
    #[allow(dead_code)]
    systemd_cgroup: bool,
    /// rootless mode: true, false or auto (accepted for compatibility)
    #[argh(option)]
    #[allow(dead_code)]
    rootless: Option<String>,
    /// path to the criu binary (accepted for compatibility)
    #[argh(option)]
    #[allow(dead_code)]
    criu: Option<String>,
    /// print the version
    #[argh(switch, short = 'v')]
    version: bool,
    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Spec(SpecCmd),
    Create(CreateCmd),
    Start(StartCmd),
    Run(RunCmd),
    State(StateCmd),
    List(ListCmd),
    Ps(PsCmd),
    Kill(KillCmd),
    Delete(DeleteCmd),
    Exec(ExecCmd),
    Pause(PauseCmd),
    Resume(ResumeCmd),
    Update(UpdateCmd),
    Events(EventsCmd),
    Features(FeaturesCmd),
}

#[derive(FromArgs)]
/// execute a new process inside a container
#[argh(subcommand, name = "exec")]
struct ExecCmd {
    /// container id
    #[argh(positional)]
    id: String,
    /// the command and its arguments
    #[argh(positional, greedy)]
    args: Vec<String>,
    /// path to a process.json to run instead of ARGS
    #[argh(option, short = 'p')]
    process: Option<String>,
    /// allocate a pseudo-TTY
    #[argh(switch, short = 't')]
    tty: bool,
    /// path to an AF_UNIX socket which will receive the pty master
    #[argh(option)]
    console_socket: Option<String>,
    /// detach from the process
    #[argh(switch, short = 'd')]
    detach: bool,
    /// file to write the process's pid to
    #[argh(option)]
    pid_file: Option<String>,
    /// add an environment variable (K=V; repeatable)
    #[argh(option, short = 'e')]
    env: Vec<String>,
    /// current working directory in the container
    #[argh(option)]
    cwd: Option<String>,
    /// UID[:GID] to run as
    #[argh(option, short = 'u')]
    user: Option<String>,
    /// an additional group id (repeatable)
    #[argh(option, short = 'g')]
    additional_gids: Vec<u32>,
    /// add a capability to the bounding, effective and permitted sets (repeatable)
    #[argh(option, short = 'c')]
    cap: Vec<String>,
    /// set no_new_privs for the process
    #[argh(switch)]
    no_new_privs: bool,
    /// pass N additional file descriptors (3 .. 3+N-1) to the process
    #[argh(option, default = "0")]
    preserve_fds: u32,
    /// exec even when the container is paused
    #[argh(switch)]
    ignore_paused: bool,
    /// run the process in an existing sub-cgroup of the container's:
    /// PATH, or CONTROLLER[,CONTROLLER]:PATH on cgroup v1 (repeatable)
    #[argh(option)]
    cgroup: Vec<String>,
    /// set the apparmor profile (accepted; no AppArmor here)
    #[argh(option)]
    #[allow(dead_code)]
    apparmor: Option<String>,
    /// set the SELinux process label (accepted; SELinux is inactive here)
    #[argh(option)]
    #[allow(dead_code)]
    process_label: Option<String>,
}

#[derive(FromArgs)]
/// suspend every process in a container
#[argh(subcommand, name = "pause")]
struct PauseCmd {
    /// container id
    #[argh(positional)]
    id: String,
}

#[derive(FromArgs)]
/// resume every process in a paused container
#[argh(subcommand, name = "resume")]
struct ResumeCmd {
    /// container id
    #[argh(positional)]
    id: String,
}

#[derive(FromArgs)]
/// update a container's resource limits
#[argh(subcommand, name = "update")]
struct UpdateCmd {
    /// container id
    #[argh(positional)]
    id: String,
    /// path to a JSON file of linux.resources ("-" for stdin)
    #[argh(option, short = 'r')]
    resources: Option<String>,
    /// memory limit (bytes, or with k/m/g suffix)
    #[argh(option, short = 'm')]
    memory: Option<String>,
    /// total memory plus swap (-1 for unlimited)
    #[argh(option)]
    memory_swap: Option<String>,
    /// memory reservation (soft limit)
    #[argh(option)]
    memory_reservation: Option<String>,
    /// relative CPU weight (runc's name)
    #[argh(option)]
    cpu_share: Option<u64>,
    /// the same as --cpu-share
    #[argh(option)]
    cpu_shares: Option<u64>,
    /// CPU CFS quota in microseconds
    #[argh(option)]
    cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds
    #[argh(option)]
    cpu_period: Option<u64>,
    /// realtime period in microseconds
    #[argh(option)]
    cpu_rt_period: Option<u64>,
    /// realtime runtime in microseconds
    #[argh(option)]
    cpu_rt_runtime: Option<i64>,
    /// CPUs to allow (0-3, 0,1)
    #[argh(option)]
    cpuset_cpus: Option<String>,
    /// memory nodes to allow (0-3, 0,1)
    #[argh(option)]
    cpuset_mems: Option<String>,
    /// maximum number of pids (0 or -1 for no limit)
    #[argh(option)]
    pids_limit: Option<i64>,
    /// block IO weight (10-1000)
    #[argh(option)]
    blkio_weight: Option<u16>,
}

#[derive(FromArgs)]
/// print container events: stats and OOM notices
#[argh(subcommand, name = "events")]
struct EventsCmd {
    /// container id
    #[argh(positional)]
    id: String,
    /// print one stats event and exit
    #[argh(switch)]
    stats: bool,
    /// time between stats events (like 5s, 500ms; default 5s)
    #[argh(option, default = "String::from(\"5s\")")]
    interval: String,
}

#[derive(FromArgs)]
/// show what this runtime supports, as JSON
#[argh(subcommand, name = "features")]
struct FeaturesCmd {}

#[derive(FromArgs)]
/// create a new specification file (config.json)
#[argh(subcommand, name = "spec")]
struct SpecCmd {
    /// path to the root of the bundle directory
    #[argh(option, short = 'b', default = "String::from(\".\")")]
    bundle: String,
    /// generate a configuration for a rootless container
    #[argh(switch)]
    rootless: bool,
}

#[derive(FromArgs)]
/// create a container
#[argh(subcommand, name = "create")]
struct CreateCmd {
    /// container id
    #[argh(positional)]
    id: String,
    /// path to the root of the bundle directory (default: current directory)
    #[argh(option, short = 'b', default = "String::from(\".\")")]
    bundle: String,
    /// path to an AF_UNIX socket which will receive the pty master
    #[argh(option)]
    console_socket: Option<String>,
    /// file to write the init's pid to
    #[argh(option)]
    pid_file: Option<String>,
    /// do not use pivot_root to jail the process inside the rootfs
    #[argh(switch)]
    no_pivot: bool,
    /// do not create a new session keyring for the container
    #[argh(switch)]
    no_new_keyring: bool,
    /// pass N additional file descriptors (3 .. 3+N-1) to the container
    #[argh(option, default = "0")]
    preserve_fds: u32,
}

#[derive(FromArgs)]
/// create and run a container
#[argh(subcommand, name = "run")]
struct RunCmd {
    /// container id
    #[argh(positional)]
    id: String,
    /// path to the root of the bundle directory (default: current directory)
    #[argh(option, short = 'b', default = "String::from(\".\")")]
    bundle: String,
    /// path to an AF_UNIX socket which will receive the pty master
    #[argh(option)]
    console_socket: Option<String>,
    /// detach from the container's process
    #[argh(switch, short = 'd')]
    detach: bool,
    /// do not delete the container after it exits
    #[argh(switch)]
    keep: bool,
    /// file to write the init's pid to
    #[argh(option)]
    pid_file: Option<String>,
    /// do not make the runtime a subreaper (accepted for compatibility)
    #[argh(switch)]
    #[allow(dead_code)]
    no_subreaper: bool,
    /// do not use pivot_root to jail the process inside the rootfs
    #[argh(switch)]
    no_pivot: bool,
    /// do not create a new session keyring for the container
    #[argh(switch)]
    no_new_keyring: bool,
    /// pass N additional file descriptors (3 .. 3+N-1) to the container
    #[argh(option, default = "0")]
    preserve_fds: u32,
}

#[derive(FromArgs)]
/// execute the user process of a created container
#[argh(subcommand, name = "start")]
struct StartCmd {
    /// container id
    #[argh(positional)]
    id: String,
}

#[derive(FromArgs)]
/// output the state of a container
#[argh(subcommand, name = "state")]
struct StateCmd {
    /// container id
    #[argh(positional)]
    id: String,
}

#[derive(FromArgs)]
/// list containers
#[argh(subcommand, name = "list")]
struct ListCmd {
    /// output format: table (default) or json
    #[argh(option, short = 'f', default = "String::from(\"table\")")]
    format: String,
    /// display only container ids
    #[argh(switch, short = 'q')]
    quiet: bool,
}

#[derive(FromArgs)]
/// show the processes running inside a container
#[argh(subcommand, name = "ps")]
struct PsCmd {
    /// container id
    #[argh(positional)]
    id: String,
    /// ps arguments (after --; default -ef)
    #[argh(positional, greedy)]
    ps_args: Vec<String>,
    /// output format: table (default) or json
    #[argh(option, short = 'f', default = "String::from(\"table\")")]
    format: String,
}

#[derive(FromArgs)]
/// send a signal (default SIGTERM) to a container's init
#[argh(subcommand, name = "kill")]
struct KillCmd {
    /// container id
    #[argh(positional)]
    id: String,
    /// signal: a name (KILL, SIGKILL) or a number
    #[argh(positional, default = "String::from(\"SIGTERM\")")]
    signal: String,
    /// send the signal to every process in the container
    #[argh(switch, short = 'a')]
    all: bool,
}

#[derive(FromArgs)]
/// delete a container and everything it holds
#[argh(subcommand, name = "delete")]
struct DeleteCmd {
    /// container id
    #[argh(positional)]
    id: String,
    /// kill the container first if it is still running
    #[argh(switch, short = 'f')]
    force: bool,
}

const FLAGS: Flags = Flags {
    options: &[
        "root",
        "log",
        "log-format",
        "rootless",
        "criu",
        "bundle",
        "console-socket",
        "pid-file",
        "preserve-fds",
        "format",
        "process",
        "env",
        "cwd",
        "user",
        "additional-gids",
        "cap",
        "apparmor",
        "process-label",
        "resources",
        "memory",
        "memory-swap",
        "memory-reservation",
        "cpu-share",
        "cpu-shares",
        "cpu-quota",
        "cpu-period",
        "cpu-rt-period",
        "cpu-rt-runtime",
        "cpuset-cpus",
        "cpuset-mems",
        "pids-limit",
        "blkio-weight",
        "interval",
        "cgroup",
    ],
    switches: &[
        "debug",
        "systemd-cgroup",
        "version",
        "detach",
        "keep",
        "no-subreaper",
        "no-pivot",
        "no-new-keyring",
        "quiet",
        "all",
        "force",
        "help",
        "tty",
        "no-new-privs",
        "ignore-paused",
        "stats",
    ],
};

/// The one-letter flags of `command` that take a value (-b DIR, -e K=V,
/// -u UID, ...): `-f` takes one for list and ps, and is a switch for delete.
fn short_options(command: Option<&str>) -> &'static str {
    match command {
        Some("exec") => "cegpu",
        Some("update") => "mr",
        Some("spec" | "create" | "run") => "b",
        Some("list" | "ps") => "f",
        _ => "",
    }
}

/// Is `name` one of our commands (as argh knows them)?
fn is_command(name: &str) -> bool {
    <Command as argh::SubCommands>::COMMANDS
        .iter()
        .any(|c| c.name == name)
}

/// runc's answer to an unknown command or help topic: exit 3, through the
/// log the global flags ask for.
fn no_help_topic(args: &[String], topic: &str) -> ExitCode {
    let globals: Vec<String> = args.iter().take_while(|a| *a != topic).cloned().collect();
    let globals = normalize_with_shorts(globals, &FLAGS, "", None);
    let strs: Vec<&str> = globals.iter().map(String::as_str).collect();
    if let Ok(cli) = Runc::from_args(&["runc"], &strs) {
        let _ = init_log(&cli);
    }
    report(&format!("No help topic for '{topic}'"));
    ExitCode::from(3)
}

/// What a command's failure exits with: exec's own failures are 255 (as
/// runc's), so they cannot be mistaken for the process's status.
struct Failure {
    error: Error,
    code: u8,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure { error, code: 1 }
    }
}

/// Errors go to the log (runc's logrus line); when the log is a file, the
/// plain message goes to stderr too (as runc's).
fn report(msg: &str) {
    if !skiff::log::enabled(skiff::log::Level::Error) {
        // No log set up yet (bad flags): runc's shape on stderr.
        let line = skiff::log::format_line(
            skiff::log::Format::Text,
            &skiff::time::rfc3339_nano(skiff::time::now().0, 0),
            skiff::log::Level::Error,
            msg,
            None,
        );
        eprint!("{line}");
        return;
    }
    skiff::log::error!("{msg}");
    if !skiff::log::to_stderr() {
        eprintln!("{msg}");
    }
}

/// Set up the log once: `--log` (else stderr), `--log-format`, `--debug`.
fn init_log(cli: &Runc) -> Result<()> {
    let format = match cli.log_format.as_str() {
        "text" | "" => skiff::log::Format::Text,
        "json" => skiff::log::Format::Json,
        other => {
            return Err(Error::new(format!(
                "invalid log-format {other:?}: use text or json"
            )))
        }
    };
    let file = match &cli.log {
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o644)
                .open(path)
                .map_err(|e| Error::from(e).wrap(format!("open log file {path}")))?;
            Some(std::os::fd::OwnedFd::from(f))
        }
        None => None,
    };
    let level = if cli.debug {
        skiff::log::Level::Debug
    } else {
        skiff::log::Level::Warn
    };
    skiff::log::init(file, format, level);
    Ok(())
}

pub fn main(_name: &str, args: Vec<String>) -> ExitCode {
    // exec's command line after the container id is the container's own,
    // and so are ps's arguments (for ps(1)).
    let first = first_positional(&args);
    let args = match first.as_deref() {
        // `runc help [COMMAND]`, as urfave/cli has it.
        Some("help") => {
            let args = help_args(args);
            match first_positional(&args) {
                Some(topic) if !is_command(&topic) => return no_help_topic(&args, &topic),
                _ => args,
            }
        }
        Some(cmd @ ("checkpoint" | "restore")) => {
            report(&format!(
                "runc {cmd}: not supported by skiff (it has no CRIU support)"
            ));
            return ExitCode::from(1);
        }
        // The global flags still say where the message goes.
        Some(cmd) if !is_command(cmd) => return no_help_topic(&args, cmd),
        _ => args,
    };
    let command = first_positional(&args);
    let stop = matches!(command.as_deref(), Some("exec" | "ps")).then_some(2);
    let args = normalize_with_shorts(args, &FLAGS, short_options(command.as_deref()), stop);
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let cli = match Runc::from_args(&["runc"], &strs) {
        Ok(cli) => cli,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    print(&early.output);
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    // One line, as every other error: argh spreads some over two.
                    let msg: Vec<&str> = early.output.split_whitespace().collect();
                    eprintln!("{}", msg.join(" "));
                    ExitCode::from(1)
                }
            };
        }
    };
    if let Err(e) = init_log(&cli) {
        report(e.message());
        return ExitCode::from(1);
    }
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            report(f.error.message());
            ExitCode::from(f.code)
        }
    }
}

/// `help` / `help CMD` as `--help` / `CMD --help` (global flags kept).
fn help_args(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut seen_help = false;
    for a in args {
        if !seen_help && a == "help" {
            seen_help = true;
            continue;
        }
        out.push(a);
    }
    out.push("--help".to_string());
    out
}

fn dispatch(cli: Runc) -> std::result::Result<u8, Failure> {
    if cli.version {
        print(&format!(
            "runc version {v}+skiff\ncommit: skiff {v}\nspec: {}\n",
            runtime::OCI_VERSION,
            v = env!("CARGO_PKG_VERSION")
        ));
        return Ok(0);
    }
    let root = StateRoot::new(&cli.root);
    let Some(command) = cli.command else {
        print(&format!("{}\n", usage()));
        return Ok(0);
    };
    if let Command::Exec(c) = command {
        return match runtime::exec::exec(&root, &c.options()) {
            Ok(status) => Ok(status.clamp(0, 255) as u8),
            Err(e) => Err(Failure {
                error: e.wrap("exec failed"),
                code: 255,
            }),
        };
    }
    Ok(run_command(&root, command)?)
}

/// What went wrong without stopping the command (failed poststart and
/// poststop hooks) goes to the log as runc's `level=warning` lines.
fn warn(warnings: Vec<Error>) {
    for w in warnings {
        skiff::log::warn!("{}", w.message());
    }
}

fn run_command(root: &StateRoot, command: Command) -> Result<u8> {
    match command {
        Command::Spec(c) => spec(c).map(|_| 0),
        Command::Create(c) => runtime::create::create(root, &c.options()).map(|_| 0),
        Command::Start(c) => runtime::create::start(root, &c.id).map(|w| {
            warn(w);
            0
        }),
        Command::Run(c) => {
            let exit = ops::run(root, &c.options())?;
            warn(exit.warnings);
            Ok(exit.status.clamp(0, 255) as u8)
        }
        Command::State(c) => {
            let (container, status) = ops::state(root, &c.id)?;
            let mut w = json::Writer::pretty();
            container.to_json(status, "", &mut w);
            print(&w.finish());
            Ok(0)
        }
        Command::List(c) => list(root, c).map(|_| 0),
        Command::Ps(c) => ps_cmd(root, c).map(|_| 0),
        Command::Kill(c) => {
            // A number is taken as it is (0 included), as runc does.
            let sig = c
                .signal
                .parse::<i32>()
                .ok()
                .filter(|n| (0..=64).contains(n))
                .or_else(|| skiff::sys::signal::parse(&c.signal))
                .ok_or_else(|| Error::new(format!("unknown signal {:?}", c.signal)))?;
            ops::kill(root, &c.id, sig, c.all).map(|_| 0)
        }
        Command::Delete(c) => ops::delete(root, &c.id, c.force).map(|w| {
            warn(w);
            0
        }),
        Command::Exec(_) => unreachable!("exec is dispatched above"),
        Command::Pause(c) => ops::pause(root, &c.id).map(|_| 0),
        Command::Resume(c) => ops::resume(root, &c.id).map(|_| 0),
        Command::Update(c) => {
            let res = c.resources()?;
            ops::update(root, &c.id, &res).map(|_| 0)
        }
        Command::Events(c) => {
            let interval = parse_duration(&c.interval)?;
            runtime::events::events(root, &c.id, c.stats, interval, |line| {
                print(&format!("{line}\n"))
            })
            .map(|_| 0)
        }
        Command::Features(_) => {
            print(&format!("{}\n", runtime::features::json()));
            Ok(0)
        }
    }
}

/// The subcommand name: the first argument that is neither a flag nor a
/// global option's value.
fn first_positional(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(flag) = a.strip_prefix('-') {
            let name = flag.trim_start_matches('-');
            if !name.contains('=') && FLAGS.options.contains(&name) {
                it.next();
            }
            continue;
        }
        return Some(a.clone());
    }
    None
}

fn usage() -> String {
    match Runc::from_args(&["runc"], &["--help"]) {
        Err(e) => e.output,
        Ok(_) => String::new(),
    }
}

impl CreateCmd {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
            own_console: false,
        }
    }
}

impl RunCmd {
    fn options(&self) -> ops::RunOptions {
        ops::RunOptions {
            create: CreateOptions {
                id: self.id.clone(),
                bundle: self.bundle.clone(),
                pid_file: self.pid_file.clone(),
                console_socket: self.console_socket.clone(),
                no_pivot: self.no_pivot,
                no_new_keyring: self.no_new_keyring,
                preserve_fds: self.preserve_fds,
                own_console: false,
            },
            detach: self.detach,
            keep: self.keep,
        }
    }
}

fn spec(c: SpecCmd) -> Result<()> {
    let path = std::path::Path::new(&c.bundle).join("config.json");
    if path.exists() {
        return Err(Error::new("File config.json exists. Remove it first."));
    }
    let text = skiff::oci::default_config::default_spec(
        c.rootless,
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    std::fs::write(&path, text)
        .map_err(|e| Error::from(e).wrap(format!("write {}", path.display())))
}

fn list(root: &StateRoot, c: ListCmd) -> Result<()> {
    let containers = ops::list(root)?;
    if c.quiet {
        let ids: String = containers
            .iter()
            .map(|(c, _)| format!("{}\n", c.id()))
            .collect();
        print(&ids);
        return Ok(());
    }
    match c.format.as_str() {
        "json" => {
            let mut w = json::Writer::compact();
            w.begin_array();
            for (container, status) in &containers {
                container.to_json(*status, &ops::owner_name(container), &mut w);
            }
            w.end_array();
            // runc prints `null` for no containers.
            let text = if containers.is_empty() {
                "null".to_string()
            } else {
                w.finish()
            };
            print(&format!("{text}\n"));
        }
        "table" => {
            let mut rows =
                vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
            for (container, status) in &containers {
                rows.push([
                    container.id().to_string(),
                    container.shown_pid(*status).to_string(),
                    status.as_str().to_string(),
                    container.state.bundle.clone(),
                    container.state.created.clone(),
                    ops::owner_name(container),
                ]);
            }
            print(&tabulate(&rows));
        }
        other => {
            return Err(Error::new(format!(
                "invalid format option {other:?}: use table or json"
            )))
        }
    }
    Ok(())
}

/// Go's tabwriter as runc sets it up (minwidth 12, padding 3, spaces);
/// the last column is not padded.
fn tabulate<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count() + 3).max(12);
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < N {
                out.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

fn ps_cmd(root: &StateRoot, c: PsCmd) -> Result<()> {
    let container = root.load(&c.id)?;
    match c.format.as_str() {
        "json" => {
            let pids = ps::pids(&container)?;
            let mut w = json::Writer::compact();
            w.begin_array();
            for p in pids {
                w.num(p);
            }
            w.end_array();
            print(&format!("{}\n", w.finish()));
        }
        "table" => {
            let args: Vec<String> = c.ps_args.into_iter().skip_while(|a| a == "--").collect();
            print(&ps::table(&container, &args)?);
        }
        other => {
            return Err(Error::new(format!(
                "invalid format option {other:?}: use table or json"
            )))
        }
    }
    Ok(())
}

impl ExecCmd {
    fn options(&self) -> runtime::exec::ExecOptions {
        runtime::exec::ExecOptions {
            id: self.id.clone(),
            process_file: self.process.clone(),
            args: self
                .args
                .iter()
                .skip_while(|a| *a == "--")
                .cloned()
                .collect(),
            tty: self.tty,
            console_socket: self.console_socket.clone(),
            detach: self.detach,
            pid_file: self.pid_file.clone(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            user: self.user.clone(),
            additional_gids: self.additional_gids.clone(),
            caps: self.cap.clone(),
            no_new_privs: self.no_new_privs,
            preserve_fds: self.preserve_fds,
            ignore_paused: self.ignore_paused,
            sub_cgroups: self.cgroup.clone(),
        }
    }
}

/// Bytes with an optional k/m/g/t suffix (docker's units); "-1" is unlimited.
fn parse_bytes(flag: &str, s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| Error::new(format!("--{flag} {s:?}: not a size (like 512m)")))?;
    Ok(if n < 0.0 {
        -1
    } else {
        (n * mult as f64) as i64
    })
}

/// Go-style durations: 5s, 250ms, 1m, 1h.
fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let bad = || {
        Error::new(format!(
            "--interval {s:?}: not a duration (like 5s or 500ms)"
        ))
    };
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .ok_or_else(bad)?;
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if secs <= 0.0 {
        return Err(Error::new(format!("--interval {s:?}: must be positive")));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

impl UpdateCmd {
    fn resources(&self) -> Result<skiff::oci::resources::Resources> {
        use skiff::oci::resources;
        let mut r = match self.resources.as_deref() {
            Some(path) => {
                // No larger than a config.json, whose section it is.
                let limit = skiff::oci::spec::MAX_CONFIG_BYTES;
                let text = if path == "-" {
                    skiff::fsutil::read_bounded_from(std::io::stdin(), limit)
                        .map_err(|e| Error::from(e).wrap("read resources from stdin"))?
                } else {
                    skiff::fsutil::read_bounded(std::path::Path::new(path), limit)
                        .map_err(|e| Error::from(e).wrap(format!("read {path}")))?
                };
                let value = json::parse(&text, path)?;
                resources::parse(&json::Node::new(&value, "")).map_err(|e| e.wrap(path))?
            }
            None => resources::Resources::default(),
        };
        if let Some(m) = &self.memory {
            r.memory.limit = Some(parse_bytes("memory", m)?);
        }
        if let Some(m) = &self.memory_swap {
            r.memory.swap = Some(parse_bytes("memory-swap", m)?);
        }
        if let Some(m) = &self.memory_reservation {
            r.memory.reservation = Some(parse_bytes("memory-reservation", m)?);
        }
        r.cpu.shares = self.cpu_share.or(self.cpu_shares).or(r.cpu.shares);
        r.cpu.quota = self.cpu_quota.or(r.cpu.quota);
        r.cpu.period = self.cpu_period.or(r.cpu.period);
        r.cpu.realtime_period = self.cpu_rt_period.or(r.cpu.realtime_period);
        r.cpu.realtime_runtime = self.cpu_rt_runtime.or(r.cpu.realtime_runtime);
        r.cpu.cpus = self.cpuset_cpus.clone().or(r.cpu.cpus);
        r.cpu.mems = self.cpuset_mems.clone().or(r.cpu.mems);
        r.pids_limit = self.pids_limit.or(r.pids_limit);
        r.block_io.weight = self.blkio_weight.or(r.block_io.weight);
        r.validate("")?;
        Ok(r)
    }
}
