//! The seeds' walkthrough with skiff's `containerd` and `ctr`, as a user
//! types it: pull busybox (a docker-registry on 127.0.0.1 stands in for
//! docker.io), `run -t` a shell under script(1) and talk to it, then
//! `run -d`, `c ls`, `t ls`, `t exec`, `t kill`, `t rm`, `c rm`, `i tag`,
//! `i rm` — outputs checked, and nothing left behind: no shim, mount,
//! bundle, snapshot, blob or store tag (the image's blobs go with the
//! collection a plain `i rm` schedules).
//!
//! Table shapes are containerd 1.6's ctr: Go's tabwriter with minwidth 4,
//! padding 4 (`c ls`, `t ls`), each cell padded, the last one too.

#![allow(dead_code)] // the shared harness has more than this file uses

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
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

include!("common/daemon.rs");

/// Lines as Go's tabwriter.NewWriter(w, 4, 8, 4, ' ', 0) prints them
/// (ctr's `c ls`, `t ls`): a tab ends a cell, which is padded to its
/// column's widest cell + 4; text after the last tab is not padded. (The
/// columns here are not interrupted by a line without them, so one width
/// per column is Go's.)
fn tabwriter(lines: &[String]) -> String {
    let split: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let cols = split.iter().map(|c| c.len() - 1).max().unwrap();
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            let widest = split
                .iter()
                .filter(|cells| cells.len() - 1 > c)
                .map(|cells| cells[c].len())
                .max()
                .unwrap();
            (widest + 4).max(4)
        })
        .collect();
    split
        .iter()
        .map(|cells| {
            let (last, terminated) = cells.split_last().unwrap();
            let mut line: String = terminated
                .iter()
                .zip(&width)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            line.push_str(last);
            line.push('\n');
            line
        })
        .collect()
}

#[test]
fn the_seeds_walkthrough() {
    if !tool("/usr/bin/script", "bsdutils") {
        return;
    }
    let work = TempDir::new("walk-src");
    let Some((_reg, r)) = registry_with_busybox_as(&work, "library/busybox", "latest") else {
        return;
    };
    let d = Daemon::new();

    // ctr images pull: plain progress lines off a terminal, then the image.
    let out = d.ok(&["images", "pull", "--plain-http", &r]);
    assert!(out.contains("elapsed: "), "{out}");
    assert!(out.contains("unpacking linux/amd64 sha256:"), "{out}");
    assert_eq!(d.ids("i"), [r.as_str()]);

    // ctr run -t: a shell on a real terminal; what is typed runs, what it
    // prints comes back, its exit status is ctr's.
    let typescript = work.join("typescript");
    let cmd = format!(
        "{} -a {} -n {} run --rm -t {r} tty1 sh",
        d.dir.join("bin/ctr").display(),
        d.address(),
        d.ns
    );
    let mut script = Command::new("script")
        .args(["-qfec", &cmd])
        .arg(&typescript)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut keys = script.stdin.take().unwrap();
    // The product is only on the screen once the shell ran the command
    // (the echo of what was typed has the expression, not 42).
    keys.write_all(b"echo answer-$((6*7)); [ -t 0 ] && echo on-a-tty\n")
        .unwrap();
    let seen = |want: &str| {
        fs::read_to_string(&typescript)
            .unwrap_or_default()
            .contains(want)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(seen("answer-42") && seen("on-a-tty")) {
        if Instant::now() > deadline || script.try_wait().unwrap().is_some() {
            let _ = script.kill();
            panic!(
                "the shell did not answer:\n{}\ndaemon log: {}",
                read(&typescript),
                d.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    keys.write_all(b"exit 3\n").unwrap();
    drop(keys);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = script.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = script.kill();
            panic!("run -t did not end: {}", read(&typescript));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(3), "{}", read(&typescript));
    assert!(d.ids("c").is_empty(), "run --rm left its container");

    // run -d: two containers in the background.
    for id in ["web", "db"] {
        assert_eq!(d.ok(&["run", "-d", &r, id, "sleep", "1000"]), "");
    }
    let runtime = "io.containerd.skiff.v2";
    // ctr: "CONTAINER\tIMAGE\tRUNTIME\t" and "%s\t%s\t%s\t" per container.
    assert_eq!(
        d.ok(&["c", "ls"]),
        tabwriter(&[
            "CONTAINER\tIMAGE\tRUNTIME\t".into(),
            format!("db\t{r}\t{runtime}\t"),
            format!("web\t{r}\t{runtime}\t"),
        ])
    );
    let mut ts = tasks(&d);
    ts.sort();
    assert_eq!(ts.len(), 2, "{ts:?}");
    // ctr: "TASK\tPID\tSTATUS\t" and "%s\t%d\t%s" per task.
    let rows: Vec<String> = std::iter::once("TASK\tPID\tSTATUS\t".to_string())
        .chain(ts.iter().map(|(id, pid, st)| format!("{id}\t{pid}\t{st}")))
        .collect();
    // The daemon's order, the columns ctr's.
    let listed = d.ok(&["t", "ls"]);
    let mut lines: Vec<&str> = listed.lines().collect();
    lines[1..].sort();
    assert_eq!(
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        tabwriter(&rows)
    );
    for (id, pid, status) in &ts {
        assert_eq!(status, "RUNNING", "{id}");
        assert!(Path::new(&format!("/proc/{pid}")).exists(), "{id}: {pid}");
    }

    // t exec: output and exit status through.
    let o = d.ctr(&[
        "t",
        "exec",
        "--exec-id",
        "probe",
        "web",
        "sh",
        "-c",
        "echo exec-$((1+1)) $(cat /proc/1/cmdline); exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    // (the shell drops the NULs between the arguments)
    assert_eq!(stdout(&o), "exec-2 sleep1000\n");

    // t kill, t rm, c rm.
    for (id, pid, _) in &ts {
        assert_eq!(d.ok(&["t", "kill", "-s", "KILL", id]), "");
        d.wait_for(10, &format!("{id} to stop"), || {
            tasks(&d).iter().any(|t| &t.0 == id && t.2 == "STOPPED")
        });
        let o = d.ctr(&["t", "rm", id]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("exit with non-zero exit code 137"),
            "{}",
            stderr(&o)
        );
        assert!(
            fs::read_to_string(format!("/proc/{pid}/stat")).is_err(),
            "{id}: its process is still there"
        );
        assert_eq!(d.ok(&["c", "rm", id]), "");
    }
    assert_eq!(
        d.ok(&["t", "ls"]),
        tabwriter(&["TASK\tPID\tSTATUS\t".into()])
    );
    assert_eq!(
        d.ok(&["c", "ls"]),
        tabwriter(&["CONTAINER\tIMAGE\tRUNTIME\t".into()])
    );

    // i tag, i rm: by name; the blobs go with the last name, by the
    // collection the delete schedules (no --sync).
    let alias = r.replace(":latest", ":alias");
    assert_eq!(d.ok(&["i", "tag", &r, &alias]), format!("{alias}\n"));
    assert_eq!(d.ids("i"), [alias.clone(), r.clone()]);
    let collections = d.log().matches("garbage collection done").count();
    assert_eq!(d.ok(&["i", "rm", &alias]), format!("{alias}\n"));
    assert_eq!(d.ids("i"), [r.as_str()]);
    d.wait_for(10, "the collection the removal scheduled", || {
        d.log().matches("garbage collection done").count() > collections
    });
    assert!(!d.blobs().is_empty(), "an image still names the blobs");
    assert_eq!(d.ok(&["i", "rm", &r]), format!("{r}\n"));
    d.assert_clean(true);
    // ctr's stdio fifos (under its default fifo root) went with the tasks.
    let left: Vec<PathBuf> = fs::read_dir("/run/skiff/fifo")
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|dir| fs::read_dir(dir.path()).into_iter().flatten().flatten())
        .map(|f| f.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            ["tty1-", "web-", "db-", "probe-"]
                .iter()
                .any(|id| name.starts_with(id))
        })
        .collect();
    assert!(left.is_empty(), "fifos left: {left:?}");
}
