//! The runc applet: runc's command line over `skiff::runtime`. Parsing,
//! output formats and exit codes live here; every decision is in the
//! library.

use crate::args::{normalize, Flags};
use crate::output::print;
use argh::FromArgs;
use skiff::runtime::{self, create::CreateOptions, ops, ps, StateRoot};
use skiff::{json, Error, Result};
use std::io::Write;
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
    /// enable debug logging (accepted; skiff logs only errors)
    #[argh(switch)]
    #[allow(dead_code)]
    debug: bool,
    /// use systemd to manage cgroups (not supported: an error if used)
    #[argh(switch)]
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
}

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
    ],
};

/// Where errors go: the log file in its format, and a plain line on stderr;
/// without --log, one logrus-style line on stderr (as runc does).
struct Logger {
    file: Option<String>,
    json: bool,
}

impl Logger {
    fn line(&self, level: &str, msg: &str) -> String {
        let (secs, _) = skiff::time::now();
        let time = skiff::time::rfc3339_nano(secs, 0);
        if self.json {
            let mut w = json::Writer::compact();
            w.begin_object();
            w.key("level")
                .str(level)
                .key("msg")
                .str(msg)
                .key("time")
                .str(&time);
            w.end_object();
            w.finish()
        } else {
            format!(
                "time={} level={level} msg={}",
                json::quote(&time),
                json::quote(msg)
            )
        }
    }

    fn error(&self, msg: &str) {
        match &self.file {
            Some(path) => {
                let line = self.line("error", msg);
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                {
                    let _ = writeln!(f, "{line}");
                }
                eprintln!("{msg}");
            }
            None => eprintln!("{}", self.line("error", msg)),
        }
    }
}

pub fn main(_name: &str, args: Vec<String>) -> ExitCode {
    let args = normalize(args, &FLAGS, None);
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
                    eprintln!("{}", early.output.trim_end());
                    ExitCode::from(1)
                }
            };
        }
    };
    let logger = Logger {
        file: cli.log.clone(),
        json: cli.log_format == "json",
    };
    if cli.log_format != "text" && cli.log_format != "json" {
        logger.error(&format!(
            "invalid log-format {:?}: use text or json",
            cli.log_format
        ));
        return ExitCode::from(1);
    }
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            logger.error(e.message());
            ExitCode::from(1)
        }
    }
}

fn dispatch(cli: Runc) -> Result<u8> {
    if cli.version {
        print(&format!(
            "runc version {v}+skiff\ncommit: skiff {v}\nspec: {}\n",
            runtime::OCI_VERSION,
            v = env!("CARGO_PKG_VERSION")
        ));
        return Ok(0);
    }
    if cli.systemd_cgroup {
        return Err(Error::new(
            "--systemd-cgroup: systemd cgroup management is not supported by skiff (no systemd)",
        ));
    }
    let root = StateRoot::new(&cli.root);
    let Some(command) = cli.command else {
        print(&format!("{}\n", usage()));
        return Ok(0);
    };
    match command {
        Command::Spec(c) => spec(c).map(|_| 0),
        Command::Create(c) => runtime::create::create(&root, &c.options()).map(|_| 0),
        Command::Start(c) => runtime::create::start(&root, &c.id).map(|_| 0),
        Command::Run(c) => {
            let status = ops::run(&root, &c.options())?;
            Ok(status.clamp(0, 255) as u8)
        }
        Command::State(c) => {
            let (container, status) = ops::state(&root, &c.id)?;
            let mut w = json::Writer::pretty();
            container.to_json(status, "", &mut w);
            print(&w.finish());
            Ok(0)
        }
        Command::List(c) => list(&root, c).map(|_| 0),
        Command::Ps(c) => ps_cmd(&root, c).map(|_| 0),
        Command::Kill(c) => {
            let sig = skiff::sys::signal::parse(&c.signal)
                .ok_or_else(|| Error::new(format!("unknown signal {:?}", c.signal)))?;
            ops::kill(&root, &c.id, sig, c.all).map(|_| 0)
        }
        Command::Delete(c) => ops::delete(&root, &c.id, c.force).map(|_| 0),
    }
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
    let text = runtime::spec_default::default_spec(
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
