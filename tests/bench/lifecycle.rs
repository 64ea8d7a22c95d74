//! Lifecycle benchmark: `<runtime> --root R run -b BUNDLE ID` of /bin/true
//! (create + start + wait + delete) for skiff, crun and runc, interleaved
//! round-robin in one run, on the same busybox bundle. Reports median and
//! p90 wall time, the ratio to crun, peak RSS per run (ru_maxrss from wait4
//! of that very run: the largest of the runtime and the processes it
//! reaped), CPU time, and binary sizes; writes the table to
//! docs/benchmarks.md.
//!
//! `make bench` (= `scripts/bench`) runs it; directly:
//! `cargo bench --bench lifecycle -- [--iterations N] [--warmup N]
//!  [--runtimes skiff,crun,runc] [--no-write]`.
//! SKIFF_BENCH_BIN names the skiff binary (default: the release musl build).

// Cargo also auto-discovers this file as an integration test named `bench`
// (tests/*/main.rs); built that way it has no tests and nothing is used.
#![cfg_attr(test, allow(dead_code, unused_imports))]

#[path = "../common/mod.rs"]
mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Give up on a runtime after this many failures in a row.
const MAX_FAILS_IN_A_ROW: u32 = 5;

/// What one sample measures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// `run` of /bin/true: create + start + wait + delete.
    Run,
    /// The same with memory and pids limits and the containers' default
    /// seccomp profile.
    Limits,
    /// `exec` of /bin/true in a running container.
    Exec,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Run => "run",
            Scenario::Limits => "limits",
            Scenario::Exec => "exec",
        }
    }
    fn describe(self) -> &'static str {
        match self {
            Scenario::Run => "`<runtime> --root R run -b BUNDLE ID` of `/bin/true` with the busybox bundle (config = `runc spec` with terminal off)",
            Scenario::Limits => "`<runtime> --root R run -b BUNDLE ID` of `/bin/true`, the config adding a 256 MB memory limit, a pids limit of 1024 and the seccomp profile of /usr/share/containers/seccomp.json (Debian's golang-github-containers-common: docker's default profile)",
            Scenario::Exec => "`<runtime> --root R exec ID /bin/true` in a running busybox container (one per runtime, started before the rounds)",
        }
    }
    /// The doc section's marker name (the first one predates scenarios).
    fn marker(self) -> &'static str {
        match self {
            Scenario::Run => "lifecycle",
            Scenario::Limits => "limits",
            Scenario::Exec => "exec",
        }
    }
}

struct Opts {
    scenario: Scenario,
    iterations: usize,
    warmup: usize,
    runtimes: Vec<String>,
    write: bool,
    out: PathBuf,
}

fn parse_opts() -> Opts {
    let env_n = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let mut o = Opts {
        scenario: Scenario::Run,
        iterations: env_n("ITERATIONS", 200),
        warmup: env_n("WARMUP", 20),
        runtimes: vec!["skiff".into(), "crun".into(), "runc".into()],
        write: true,
        out: Path::new(MANIFEST_DIR).join("docs/benchmarks.md"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (k, inline) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let mut val = || inline.clone().or_else(|| args.next()).unwrap_or_default();
        match k.as_str() {
            "--iterations" | "-n" => o.iterations = val().parse().expect("--iterations N"),
            "--warmup" => o.warmup = val().parse().expect("--warmup N"),
            "--runtimes" => o.runtimes = val().split(',').map(String::from).collect(),
            "--out" => o.out = PathBuf::from(val()),
            "--no-write" => o.write = false,
            "--scenario" => {
                o.scenario = match val().as_str() {
                    "run" => Scenario::Run,
                    "limits" => Scenario::Limits,
                    "exec" => Scenario::Exec,
                    other => panic!("--scenario {other:?}: use run, limits or exec"),
                }
            }
            // cargo bench passes --bench; ignore what we do not know.
            _ => {}
        }
    }
    o
}

struct Rt {
    name: String,
    /// What we execute (for skiff a symlink named `runc`).
    exe: PathBuf,
    /// The real binary, for its size.
    binary: PathBuf,
    version: String,
    root: PathBuf,
    wall_ms: Vec<f64>,
    cpu_ms: Vec<f64>,
    rss_kb: Vec<u64>,
    fails: u32,
    fails_in_a_row: u32,
    gave_up: Option<String>,
    last_error: Option<String>,
}

struct RunResult {
    ok: bool,
    wall: Duration,
    cpu: Duration,
    maxrss_kb: u64,
    err: String,
}

/// Kills a child that overruns its deadline (the main thread is blocked in
/// wait4 on it).
#[derive(Clone)]
struct Watchdog(Arc<Mutex<Option<(i32, Instant)>>>);

impl Watchdog {
    fn start() -> Watchdog {
        let w = Watchdog(Arc::new(Mutex::new(None)));
        let w2 = w.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(100));
            if let Some((pid, deadline)) = *w2.0.lock().unwrap() {
                if Instant::now() > deadline {
                    // SAFETY: kill(2) on the pid of our own child, which is
                    // still unreaped: the main thread clears this slot (under
                    // the same lock) right after wait4 returns.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        });
        w
    }
}

/// wait4(2) on one child: its exit status and its own rusage.
fn wait4(pid: i32) -> (i32, libc::rusage) {
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4 on our own child with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            return (status, ru);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            panic!("wait4({pid}): {e}");
        }
    }
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

fn run_once(
    rt: &Rt,
    scenario: Scenario,
    bundle: &Path,
    id: &str,
    errfile: &Path,
    dog: &Watchdog,
) -> RunResult {
    let mut cmd = Command::new(&rt.exe);
    cmd.arg("--root").arg(&rt.root);
    if scenario == Scenario::Exec {
        cmd.args(["exec", &exec_target(rt), "/bin/true"]);
    } else {
        cmd.arg("run").arg("-b").arg(bundle).arg(id);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(errfile).expect("stderr file"));
    let t0 = Instant::now();
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return RunResult {
                ok: false,
                wall: t0.elapsed(),
                cpu: Duration::ZERO,
                maxrss_kb: 0,
                err: e.to_string(),
            }
        }
    };
    let pid = child.id() as i32;
    *dog.0.lock().unwrap() = Some((pid, t0 + RUN_TIMEOUT));
    let (status, ru) = wait4(pid);
    let wall = t0.elapsed();
    *dog.0.lock().unwrap() = None;
    drop(child); // already reaped by wait4; dropping does not wait again
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let err = if ok {
        String::new()
    } else {
        let text = fs::read_to_string(errfile).unwrap_or_default();
        let line = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string();
        let how = if libc::WIFEXITED(status) {
            format!("exit {}", libc::WEXITSTATUS(status))
        } else {
            format!("signal {}", libc::WTERMSIG(status))
        };
        if line.is_empty() {
            format!("{how}, nothing on stderr")
        } else {
            format!("{how}: {line}")
        }
    };
    RunResult {
        ok,
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        maxrss_kb: ru.ru_maxrss as u64,
        err,
    }
}

/// The long-running container `exec` goes into.
fn exec_target(rt: &Rt) -> String {
    format!("bench-exec-target-{}", rt.name.replace('/', "_"))
}

fn version_of(exe: &Path) -> String {
    Command::new(exe)
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // nearest-rank
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s
}

fn fmt_size(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1_000_000.0)
}

fn main() {
    let opts = parse_opts();
    assert!(
        is_root(),
        "the lifecycle bench starts containers: run it as root (make bench)"
    );
    let work = std::env::temp_dir().join(format!("skiff-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();

    // One bundle for every runtime: the busybox rootfs, /bin/true.
    let bundle = work.join("bundle");
    common::copy_tree(common::busybox_rootfs(), &bundle.join("rootfs")).expect("copy rootfs");
    let mut cfg = common::Config::base();
    match opts.scenario {
        Scenario::Run => {
            cfg.args(&["/bin/true"]);
        }
        Scenario::Limits => {
            let profile = "/usr/share/containers/seccomp.json";
            let text = fs::read_to_string(profile).unwrap_or_else(|e| {
                panic!("{profile}: {e} (apt-get install golang-github-containers-common)")
            });
            cfg.args(&["/bin/true"])
                .set(
                    "linux.resources",
                    common::js(r#"{"memory":{"limit":268435456},"pids":{"limit":1024}}"#),
                )
                .set("linux.seccomp", common::js(&text));
        }
        Scenario::Exec => {
            cfg.args(&["/bin/sleep", "1000000"]);
        }
    }
    fs::write(bundle.join("config.json"), cfg.to_json()).unwrap();

    let skiff_bin = std::env::var_os("SKIFF_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(MANIFEST_DIR).join("target/x86_64-unknown-linux-musl/release/skiff")
        });
    let skiff_bin = if skiff_bin.is_absolute() {
        skiff_bin
    } else {
        Path::new(MANIFEST_DIR).join(skiff_bin)
    };
    let link_dir = work.join("skiff-bin");
    fs::create_dir_all(&link_dir).unwrap();
    symlink(&skiff_bin, link_dir.join("runc")).unwrap();

    let mut rts: Vec<Rt> = Vec::new();
    for name in &opts.runtimes {
        let (exe, binary) = match name.as_str() {
            "skiff" => (link_dir.join("runc"), skiff_bin.clone()),
            other => {
                let p = if other.contains('/') {
                    PathBuf::from(other)
                } else {
                    PathBuf::from(format!("/usr/bin/{other}"))
                };
                (p.clone(), p)
            }
        };
        let root = work.join(format!("root-{}", name.replace('/', "_")));
        fs::create_dir_all(&root).unwrap();
        let mut rt = Rt {
            name: name.clone(),
            // skiff answers --version under its own name
            version: version_of(if name == "skiff" { &binary } else { &exe }),
            exe,
            binary,
            root,
            wall_ms: Vec::new(),
            cpu_ms: Vec::new(),
            rss_kb: Vec::new(),
            fails: 0,
            fails_in_a_row: 0,
            gave_up: None,
            last_error: None,
        };
        if !rt.binary.exists() {
            rt.gave_up = Some(format!("{} does not exist", rt.binary.display()));
        }
        rts.push(rt);
    }

    let dog = Watchdog::start();
    let errfile = work.join("stderr");

    // Sanity check: each runtime really runs the container (a process that
    // exits 3 makes `run` exit 3) before its timings count.
    let check = work.join("check-bundle");
    fs::create_dir_all(&check).unwrap();
    let mut ccfg = common::Config::base();
    ccfg.sh("exit 3").set(
        "root.path",
        common::jstr(bundle.join("rootfs").to_str().unwrap()),
    );
    fs::write(check.join("config.json"), ccfg.to_json()).unwrap();
    for rt in rts.iter_mut().filter(|r| r.gave_up.is_none()) {
        let id = format!("bench-check-{}", rt.name.replace('/', "_"));
        let mut cmd = Command::new(&rt.exe);
        cmd.arg("--root")
            .arg(&rt.root)
            .args(["run", "-b"])
            .arg(&check)
            .arg(&id);
        let out = cmd.stdin(Stdio::null()).output();
        let code = out.as_ref().ok().and_then(|o| o.status.code());
        if code != Some(3) {
            let err = out
                .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
                .unwrap_or_else(|e| e.to_string());
            let why = format!(
                "sanity run of a container that exits 3: runtime exited {}; {err}",
                code.map_or("by a signal".to_string(), |c| c.to_string())
            );
            eprintln!("bench: {}: {why}", rt.name);
            rt.gave_up = Some(why);
            let _ = Command::new(&rt.exe)
                .arg("--root")
                .arg(&rt.root)
                .args(["delete", "--force", &id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    if opts.scenario == Scenario::Exec {
        for rt in rts.iter_mut().filter(|r| r.gave_up.is_none()) {
            let ok = Command::new(&rt.exe)
                .arg("--root")
                .arg(&rt.root)
                .args(["run", "-d", "-b"])
                .arg(&bundle)
                .arg(exec_target(rt))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                rt.gave_up = Some("could not start the container to exec into".into());
            }
        }
    }
    let total = opts.warmup + opts.iterations;
    eprintln!(
        "bench: {} warm-up + {} measured rounds of `{} /bin/true`, interleaved: {}",
        opts.warmup,
        opts.iterations,
        if opts.scenario == Scenario::Exec {
            "exec"
        } else {
            "run"
        },
        opts.runtimes.join(", ")
    );
    let started = Instant::now();
    for round in 0..total {
        let measured = round >= opts.warmup;
        // Rotate the order every round so no runtime always goes first.
        let n = rts.len();
        for k in 0..n {
            let rt = &mut rts[(round + k) % n];
            if rt.gave_up.is_some() {
                continue;
            }
            let id = format!("bench-{}-{round}", rt.name.replace('/', "_"));
            let r = run_once(rt, opts.scenario, &bundle, &id, &errfile, &dog);
            if r.ok {
                rt.fails_in_a_row = 0;
                if measured {
                    rt.wall_ms.push(r.wall.as_secs_f64() * 1e3);
                    rt.cpu_ms.push(r.cpu.as_secs_f64() * 1e3);
                    rt.rss_kb.push(r.maxrss_kb);
                }
            } else {
                rt.fails += 1;
                rt.fails_in_a_row += 1;
                rt.last_error = Some(r.err.clone());
                // Clean up whatever the failed run left.
                let _ = Command::new(&rt.exe)
                    .arg("--root")
                    .arg(&rt.root)
                    .args(["delete", "--force", &id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                if rt.fails_in_a_row >= MAX_FAILS_IN_A_ROW {
                    eprintln!("bench: giving up on {}: {}", rt.name, r.err);
                    rt.gave_up = Some(r.err);
                }
            }
        }
        if round + 1 == opts.warmup {
            eprintln!("bench: warm-up done");
        }
    }
    let elapsed = started.elapsed();

    if opts.scenario == Scenario::Exec {
        for rt in &rts {
            let _ = Command::new(&rt.exe)
                .arg("--root")
                .arg(&rt.root)
                .args(["delete", "--force", &exec_target(rt)])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    // Nothing may be left behind by any runtime.
    for rt in &rts {
        if let Ok(rd) = fs::read_dir(&rt.root) {
            let left: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if !left.is_empty() {
                eprintln!("bench: {} left state behind: {left:?}", rt.name);
                for id in &left {
                    let _ = Command::new(&rt.exe)
                        .arg("--root")
                        .arg(&rt.root)
                        .args(["delete", "--force", id])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }
    let _ = fs::remove_dir_all(&work);

    let report = render(&opts, &rts, elapsed);
    println!("{report}");
    if opts.write {
        write_doc(&opts.out, opts.scenario, &report);
        eprintln!("bench: wrote {}", opts.out.display());
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn render(opts: &Opts, rts: &[Rt], elapsed: Duration) -> String {
    let crun_median = rts
        .iter()
        .find(|r| r.name == "crun" && !r.wall_ms.is_empty())
        .map(|r| percentile(&sorted(&r.wall_ms), 50.0));
    let mut s = String::new();
    s.push_str(&format!(
        "Measured {} UTC on {} ({} CPUs, kernel {}); {} warm-up + {} measured rounds per runtime, interleaved round-robin; {:.0} s in all.\n\n",
        utc_now(),
        cpu_model(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        opts.warmup,
        opts.iterations,
        elapsed.as_secs_f64()
    ));
    let env = if opts.iterations != 200 || opts.warmup != 20 {
        format!("ITERATIONS={} WARMUP={} ", opts.iterations, opts.warmup)
    } else {
        String::new()
    };
    s.push_str(&format!(
        "Command: `{env}make bench`, i.e. `scripts/bench` (cgroup set-up, then \
         `cargo bench --bench lifecycle -- --scenario {} --iterations {} --warmup {} --runtimes {}`)",
        opts.scenario.name(),
        opts.iterations,
        opts.warmup,
        opts.runtimes.join(",")
    ));
    s.push_str(&format!(
        "; each sample is one {}.\n\n",
        opts.scenario.describe()
    ));
    s.push_str("| runtime | version | median ms | p90 ms | vs crun (median) | CPU ms (median) | peak RSS (median / max) | binary size | runs ok / failed |\n");
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut notes: Vec<String> = Vec::new();
    for rt in rts {
        if rt.fails > 0 && !rt.wall_ms.is_empty() {
            notes.push(format!(
                "- {} failed {} run(s); last error: `{}`\n",
                rt.name,
                rt.fails,
                rt.last_error.clone().unwrap_or_default().replace('`', "'")
            ));
        }
        let size = fs::metadata(&rt.binary)
            .map(|m| fmt_size(m.len()))
            .unwrap_or_else(|_| "missing".into());
        let status = format!("{} / {}", rt.wall_ms.len(), rt.fails);
        if rt.wall_ms.is_empty() {
            let why = rt
                .gave_up
                .clone()
                .or(rt.last_error.clone())
                .unwrap_or_else(|| "no runs".into());
            s.push_str(&format!(
                "| {} | {} | failed | | | | | {} | {} |\n",
                rt.name,
                rt.version.replace('|', "/"),
                size,
                status
            ));
            notes.push(format!(
                "- {} failed: `{}`\n",
                rt.name,
                why.replace('`', "'")
            ));
            continue;
        }
        let w = sorted(&rt.wall_ms);
        let med = percentile(&w, 50.0);
        let ratio = crun_median
            .map(|c| format!("{:.2}x", med / c))
            .unwrap_or_else(|| "n/a".into());
        let cpu = percentile(&sorted(&rt.cpu_ms), 50.0);
        let rss: Vec<f64> = rt.rss_kb.iter().map(|&k| k as f64).collect();
        let rss_s = sorted(&rss);
        s.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {} | {:.2} | {:.1} MB / {:.1} MB | {} | {} |\n",
            rt.name,
            rt.version.replace('|', "/"),
            med,
            percentile(&w, 90.0),
            ratio,
            cpu,
            percentile(&rss_s, 50.0) / 1024.0,
            rss_s.last().copied().unwrap_or(0.0) / 1024.0,
            size,
            status
        ));
    }
    if !notes.is_empty() {
        s.push('\n');
        for n in notes {
            s.push_str(&n);
        }
    }
    s.push_str(
        "\nPeak RSS is `ru_maxrss` from `wait4` of each run: the larger of the runtime process and the \
         processes it reaped (the container init, which runs the runtime's own code before exec). \
         Binary size is the file size; crun also loads shared libraries (not counted).\n",
    );
    if let Some(sk) = rts.iter().find(|r| r.name == "skiff") {
        let size = fs::metadata(&sk.binary).map(|m| m.len()).ok();
        let crun = rts
            .iter()
            .find(|r| r.name == "crun" && !r.wall_ms.is_empty());
        let mut t = String::from("\nTargets for skiff: ");
        if sk.wall_ms.is_empty() {
            t.push_str("not measured (skiff failed to run); ");
        } else if let Some(c) = crun {
            let sm = percentile(&sorted(&sk.wall_ms), 50.0);
            let cm = percentile(&sorted(&c.wall_ms), 50.0);
            let srss = percentile(
                &sorted(&sk.rss_kb.iter().map(|&k| k as f64).collect::<Vec<_>>()),
                50.0,
            );
            let crss = percentile(
                &sorted(&c.rss_kb.iter().map(|&k| k as f64).collect::<Vec<_>>()),
                50.0,
            );
            t.push_str(&format!(
                "median ≤ crun's: {}; peak RSS ≤ crun's: {}; ",
                yes_no(sm <= cm),
                yes_no(srss <= crss)
            ));
        }
        if let Some(sz) = size {
            t.push_str(&format!("binary < 4 MB: {}.", yes_no(sz < 4_000_000)));
        }
        s.push_str(&t);
        s.push('\n');
    }
    s
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into())
}

fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    // civil-from-days (proleptic Gregorian)
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Replace the scenario's generated section of docs/benchmarks.md, keeping
/// the rest.
fn write_doc(path: &Path, scenario: Scenario, report: &str) {
    let name = scenario.marker();
    let begin = format!(
        "<!-- bench:{name}:begin (generated by `make bench`; edits inside are overwritten) -->"
    );
    let end = format!("<!-- bench:{name}:end -->");
    let old = fs::read_to_string(path).unwrap_or_default();
    let section = format!("{begin}\n{report}{end}");
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{}{}", &old[..b], section, &old[e + end.len()..]),
        _ if old.trim().is_empty() => format!(
            "# Benchmarks\n\n## Container lifecycle: `run` of /bin/true\n\n\
             skiff against crun and runc on the same bundle, interleaved in one run \
             (see `tests/bench/main.rs`). Targets: skiff's median at or below crun's, \
             peak RSS at or below crun's, binary under 4 MB.\n\n{section}\n"
        ),
        _ => format!("{}\n\n{}\n", old.trim_end(), section),
    };
    if let Some(dir) = path.parent() {
        let _ = fs::create_dir_all(dir);
    }
    fs::write(path, new).expect("write docs/benchmarks.md");
}
