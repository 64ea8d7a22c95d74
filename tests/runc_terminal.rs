//! `process.terminal` with `--console-socket`: the runtime sends the pty
//! master over the unix socket with SCM_RIGHTS; the test reads and writes
//! the container's terminal through it.
//!
//! Run against Debian's runc: `SKIFF_TEST_RUNTIME=/usr/bin/runc cargo test --test runc_terminal`.

mod common;

use common::*;
use miniserde::json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn tty_config(ctx: &Ctx, script: &str) -> Config {
    let mut c = ctx.config();
    c.set("process.terminal", Value::Bool(true)).sh(script);
    c
}

#[test]
fn console_socket_receives_pty_master() {
    let ctx = Ctx::new("console");
    let mut c = tty_config(
        &ctx,
        "tty; test -t 0 && test -t 1 && test -t 2 && echo all-ttys; stty size; echo done",
    );
    c.set("process.consoleSize", js(r#"{"height":33,"width":101}"#));
    ctx.write_config(&c);
    let sock = ConsoleSocket::new(&ctx);
    let id = ctx.id();
    let b = ctx.bundle_str();
    ctx.rt(&[
        "create",
        "--console-socket",
        &sock.path_str(),
        "--bundle",
        &b,
        &id,
    ])
    .ok();
    ctx.track_pid(ctx.pid_of(&id));
    let master = sock.receive_master(T);
    ctx.start(&id).ok();
    let text = read_pty(&master, T, |s| s.contains("done"));
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert_eq!(lines.first(), Some(&"/dev/pts/0"), "pty output: {text:?}");
    assert!(
        lines.contains(&"all-ttys"),
        "stdin/stdout/stderr are the tty: {text:?}"
    );
    assert!(lines.contains(&"33 101"), "consoleSize applied: {text:?}");
    assert!(
        text.contains("\r\n"),
        "the pty translates newlines (onlcr): {text:?}"
    );
    ctx.wait_status(&id, "stopped", T);
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
}

#[test]
fn terminal_input_reaches_the_container() {
    let ctx = Ctx::new("ttyinput");
    ctx.write_config(&tty_config(
        &ctx,
        "stty -echo; echo ready; read line; echo got:$line",
    ));
    let sock = ConsoleSocket::new(&ctx);
    let id = ctx.id();
    let b = ctx.bundle_str();
    ctx.rt(&[
        "create",
        "--console-socket",
        &sock.path_str(),
        "--bundle",
        &b,
        &id,
    ])
    .ok();
    ctx.track_pid(ctx.pid_of(&id));
    let master = sock.receive_master(T);
    ctx.start(&id).ok();
    let text = read_pty(&master, T, |s| s.contains("ready"));
    assert!(text.contains("ready"), "{text:?}");
    write_pty(&master, b"typed words\n");
    let text = read_pty(&master, T, |s| s.contains("got:"));
    assert!(text.contains("got:typed words"), "{text:?}");
    ctx.wait_status(&id, "stopped", T);
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
}

#[test]
fn run_detach_with_console_socket() {
    let ctx = Ctx::new("ttydetach");
    ctx.write_config(&tty_config(&ctx, "echo detached-tty; exec sleep 1000"));
    let sock = ConsoleSocket::new(&ctx);
    let id = ctx.id();
    let b = ctx.bundle_str();
    ctx.rt(&[
        "run",
        "--detach",
        "--console-socket",
        &sock.path_str(),
        "--bundle",
        &b,
        &id,
    ])
    .ok();
    ctx.track_pid(ctx.pid_of(&id));
    let master = sock.receive_master(T);
    let text = read_pty(&master, T, |s| s.contains("detached-tty"));
    assert!(text.contains("detached-tty"), "{text:?}");
    assert_eq!(ctx.status(&id), "running");
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped", T);
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
}

#[test]
fn terminal_without_console_socket_fails() {
    // create with terminal: true needs --console-socket.
    let ctx = Ctx::new("ttynosock");
    ctx.write_config(&tty_config(&ctx, "true"));
    let id = ctx.id();
    let b = ctx.bundle_str();
    ctx.rt(&["create", "--bundle", &b, &id]).fails();
    assert!(!ctx.root.join(&id).exists());
    ctx.assert_gone(&id);
}

#[test]
fn console_socket_without_terminal_fails() {
    // --console-socket makes no sense when no terminal is asked for.
    let ctx = Ctx::new("socknotty");
    let mut c = ctx.config();
    c.args(&["true"]);
    ctx.write_config(&c);
    let sock = ConsoleSocket::new(&ctx);
    let id = ctx.id();
    let b = ctx.bundle_str();
    ctx.rt(&[
        "create",
        "--console-socket",
        &sock.path_str(),
        "--bundle",
        &b,
        &id,
    ])
    .fails();
    assert!(!ctx.root.join(&id).exists());
    ctx.assert_gone(&id);
}

#[test]
fn console_socket_not_listening_fails() {
    let ctx = Ctx::new("socknone");
    ctx.write_config(&tty_config(&ctx, "true"));
    let id = ctx.id();
    let b = ctx.bundle_str();
    let missing = ctx.path("nobody-listens.sock");
    ctx.rt(&[
        "create",
        "--console-socket",
        missing.to_str().unwrap(),
        "--bundle",
        &b,
        &id,
    ])
    .fails();
    assert!(!ctx.root.join(&id).exists());
    ctx.assert_gone(&id);
}
