//! Seccomp on the real kernel.
//!
//! The first tests fork a child that installs a compiled filter through
//! `sys::seccomp::install` and then makes syscalls, reporting through its
//! exit status (or a pipe): they need no runtime support. The container
//! tests at the end run profiles through the `runc` applet.
//!
//! The docker-like default profile is podman's, from Debian's
//! golang-github-containers-common (/usr/share/containers/seccomp.json);
//! its `includes`/`excludes` are resolved here as podman does before it
//! writes config.json.

mod common;

use common::*;
use miniserde::json::{Array, Object, Value};
use skiff::json::Node;
use skiff::seccomp::{self, Program};
use std::ffi::CString;
use std::io::Read;
use std::os::fd::FromRawFd;

const CONTAINERS_PROFILE: &str = "/usr/share/containers/seccomp.json";

fn compile(text: &str) -> Program {
    let v = skiff::json::parse(text, "profile").unwrap();
    let p = seccomp::parse(&Node::new(&v, "linux.seccomp")).unwrap();
    seccomp::compile(&p).unwrap()
}

/// The wait status of a child that set no_new_privs (when `nnp`),
/// installed `prog`, then ran `body`, exiting with its result. Exit 100:
/// the install failed.
fn in_child(prog: &Program, nnp: bool, body: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only makes raw syscalls (prctl, seccomp, the body's
    // syscalls, execve) and leaves with _exit; it does not allocate (the
    // program is compiled and every string is built before the fork), so
    // locks held by other test threads at fork time do not matter.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: plain prctl and _exit in the forked child.
        unsafe {
            if nnp && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(101);
            }
            if skiff::sys::seccomp::install(prog).is_err() {
                libc::_exit(100);
            }
            libc::_exit(body());
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
    status
}

/// The errno of a raw syscall (0 when it succeeded).
fn errno_of(ret: libc::c_long) -> i32 {
    if ret == -1 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    }
}

#[track_caller]
fn exited(status: i32) -> i32 {
    assert!(
        libc::WIFEXITED(status),
        "child did not exit normally: status {status:#x}"
    );
    libc::WEXITSTATUS(status)
}

#[track_caller]
fn killed_by(status: i32) -> i32 {
    assert!(
        libc::WIFSIGNALED(status),
        "child was not killed: status {status:#x}"
    );
    libc::WTERMSIG(status)
}

#[test]
fn errno_rule_blocks_only_its_syscall() {
    let prog = compile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC"],"syscalls":[
        {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
        {"names":["rmdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let path = CString::new("/nonexistent-skiff-dir/x").unwrap();
    for nnp in [true, false] {
        // SAFETY: syscalls with a valid NUL-terminated path.
        let st = in_child(&prog, nnp, || unsafe {
            errno_of(libc::syscall(libc::SYS_mkdir, path.as_ptr(), 0o755))
        });
        assert_eq!(exited(st), libc::ENOSYS, "mkdir (nnp {nnp})");
    }
    // SAFETY: as above.
    let st = in_child(&prog, true, || unsafe {
        errno_of(libc::syscall(libc::SYS_rmdir, path.as_ptr()))
    });
    assert_eq!(exited(st), libc::EPERM, "rmdir: EPERM by default");
    // Allowed syscalls reach the kernel (which says ENOENT).
    // SAFETY: as above.
    let st = in_child(&prog, true, || unsafe {
        errno_of(libc::syscall(libc::SYS_chdir, path.as_ptr()))
    });
    assert_eq!(exited(st), libc::ENOENT, "chdir");
    // SAFETY: getpid cannot fail.
    let st = in_child(&prog, true, || unsafe {
        (libc::syscall(libc::SYS_getpid) > 0) as i32
    });
    assert_eq!(exited(st), 1);
}

#[test]
fn argument_conditions_match_only_their_values() {
    // lseek's offset is a full 64-bit argument: the rule must look at both
    // halves. umask: a masked compare on the low bits.
    let prog = compile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["lseek"],"action":"SCMP_ACT_ERRNO","errnoRet":61,"args":[
            {"index":1,"value":4294967296,"op":"SCMP_CMP_GT"},{"index":2,"value":0,"op":"SCMP_CMP_EQ"}]},
        {"names":["umask"],"action":"SCMP_ACT_ERRNO","errnoRet":5,"args":[
            {"index":0,"value":7,"valueTwo":7,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
    );
    let devnull = CString::new("/dev/null").unwrap();
    let lseek = |off: i64, whence: i32| {
        let path = devnull.clone();
        move || {
            // SAFETY: open/lseek on /dev/null with a valid path.
            unsafe {
                let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
                if fd < 0 {
                    return 102;
                }
                errno_of(libc::syscall(libc::SYS_lseek, fd, off, whence))
            }
        }
    };
    assert_eq!(
        exited(in_child(&prog, true, lseek(0x2_0000_0000, libc::SEEK_SET))),
        61
    );
    assert_eq!(
        exited(in_child(&prog, true, lseek(0x1_0000_0001, libc::SEEK_SET))),
        61
    );
    assert_eq!(
        exited(in_child(&prog, true, lseek(0x1_0000_0000, libc::SEEK_SET))),
        0,
        "not greater"
    );
    assert_eq!(
        exited(in_child(&prog, true, lseek(5, libc::SEEK_SET))),
        0,
        "low half alone is not enough"
    );
    assert_eq!(
        exited(in_child(&prog, true, lseek(0x2_0000_0000, libc::SEEK_CUR))),
        0,
        "second condition"
    );
    let umask = |m: libc::c_long| {
        // SAFETY: umask cannot fail in the kernel; only the filter refuses.
        move || unsafe { errno_of(libc::syscall(libc::SYS_umask, m)) }
    };
    assert_eq!(exited(in_child(&prog, true, umask(0o077))), 5);
    assert_eq!(exited(in_child(&prog, true, umask(0o022))), 0);
}

#[test]
fn kill_and_trap_actions() {
    let prog = compile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW"],"syscalls":[
        {"names":["getppid"],"action":"SCMP_ACT_KILL_PROCESS"},
        {"names":["getpgrp"],"action":"SCMP_ACT_KILL"},
        {"names":["getsid"],"action":"SCMP_ACT_TRAP"}]}"#,
    );
    assert_eq!(prog.flags, 2 | 4);
    let call = |nr: libc::c_long| {
        move || {
            // SAFETY: raw syscalls without pointer arguments.
            unsafe { libc::syscall(nr, 0) };
            0
        }
    };
    assert_eq!(
        killed_by(in_child(&prog, true, call(libc::SYS_getppid))),
        libc::SIGSYS
    );
    assert_eq!(
        killed_by(in_child(&prog, true, call(libc::SYS_getpgrp))),
        libc::SIGSYS
    );
    assert_eq!(
        killed_by(in_child(&prog, true, call(libc::SYS_getsid))),
        libc::SIGSYS
    );
    assert_eq!(exited(in_child(&prog, true, call(libc::SYS_getpid))), 0);
}

#[test]
fn x32_syscalls_are_refused_when_x32_is_not_listed() {
    let prog = compile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    // x32's getpid (nr 39 | 0x40000000): the filter kills before the kernel
    // would even look at whether x32 is configured.
    // SAFETY: a raw syscall without arguments.
    let st = in_child(&prog, true, || unsafe {
        libc::syscall(0x4000_0000 | libc::SYS_getpid);
        0
    });
    assert_eq!(killed_by(st), libc::SIGSYS);
}

/// An i386 syscall from this 64-bit process: `int 0x80` enters the kernel's
/// ia32 path, so seccomp sees AUDIT_ARCH_I386 and i386 numbers. Returns
/// the raw result (-errno on failure).
fn int80(nr: u32, a0: u32) -> i32 {
    let ret: i32;
    // SAFETY: int 0x80 with an i386 syscall number and one integer
    // argument; the syscalls used here (getpid, getppid, umask) take no
    // pointers. rbx is reserved by LLVM, so the argument is swapped in and
    // out around the trap.
    unsafe {
        std::arch::asm!(
            "xchg {a0:r}, rbx",
            "int 0x80",
            "xchg {a0:r}, rbx",
            a0 = inout(reg) a0 as u64 => _,
            inlateout("eax") nr as i32 => ret,
            lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
        );
    }
    ret
}

const I386_GETPID: u32 = 20;
const I386_UMASK: u32 = 60;

fn ia32_available() -> bool {
    // No filter at all: does int 0x80 getpid work here?
    // SAFETY: fork; the child only traps into the kernel and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: _exit in the child.
        unsafe { libc::_exit((int80(I386_GETPID, 0) == libc::getpid()) as i32) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 1
}

#[test]
fn i386_syscalls_use_i386_numbers() {
    if !common::applies(
        ia32_available(),
        "int 0x80 (ia32 emulation) is not available on this kernel",
    ) {
        return;
    }
    let rules = r#""syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":42},
        {"names":["umask"],"action":"SCMP_ACT_ERRNO","errnoRet":43,"args":[{"index":0,"value":18,"op":"SCMP_CMP_EQ"}]}]"#;
    let with_x86 = compile(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],{rules}}}"#
    ));
    let st = in_child(&with_x86, true, || -int80(I386_GETPID, 0));
    assert_eq!(exited(st), 42, "i386 getpid (20)");
    let st = in_child(&with_x86, true, || (int80(I386_UMASK, 0o22) < 0) as i32);
    assert_eq!(exited(st), 1, "i386 umask(022) refused");
    let st = in_child(&with_x86, true, || (int80(I386_UMASK, 0o27) < 0) as i32);
    assert_eq!(exited(st), 0, "i386 umask(027) allowed");
    // 20 on x86_64 is writev, 60 is exit: the x86_64 rules must not apply
    // to i386 numbers and the other way round.
    // SAFETY: getpid takes no arguments.
    let st = in_child(&with_x86, true, || unsafe {
        errno_of(libc::syscall(libc::SYS_getpid))
    });
    assert_eq!(exited(st), 42, "x86_64 getpid (39)");
    // i386 not listed: killed as a bad arch.
    let without = compile(&format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW",{rules}}}"#));
    let st = in_child(&without, true, || {
        int80(I386_GETPID, 0);
        0
    });
    assert_eq!(killed_by(st), libc::SIGSYS);
}

#[test]
fn x32_numbers_are_filtered_when_x32_is_listed() {
    let prog = compile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X32"],
        "syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":44}]}"#,
    );
    // The filter answers before the kernel looks at whether it has x32.
    // SAFETY: x32 getpid takes no arguments.
    let st = in_child(&prog, true, || unsafe {
        errno_of(libc::syscall(0x4000_0000 | libc::SYS_getpid))
    });
    assert_eq!(exited(st), 44);
    // An x32 syscall the profile does not name reaches the kernel (ENOSYS
    // when it lacks x32 support, else it runs).
    // SAFETY: x32 getppid takes no arguments.
    let st = in_child(&prog, true, || unsafe {
        errno_of(libc::syscall(0x4000_0000 | libc::SYS_getppid))
    });
    assert!(matches!(exited(st), 0 | libc::ENOSYS));
}

#[test]
fn install_reports_errors() {
    // An empty program is refused before the kernel sees it.
    let empty = Program {
        filter: Vec::new(),
        flags: 0,
    };
    assert!(skiff::sys::seccomp::install(&empty)
        .unwrap_err()
        .message()
        .contains("0 instructions"));
}

// ---------------------------------------------------------------------------
// The containers/docker default profile

fn kernel_version() -> (u32, u32) {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = rel
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|s| s.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    as_array(v)
        .map(|a| {
            a.iter()
                .filter_map(|s| as_str(Some(s)).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The containers profile as podman writes it into config.json for a
/// process with bounding set `caps` on amd64: archMap becomes
/// architectures, rules whose includes/excludes do not fit are dropped.
/// None (the test skips; a failure under CI=true) when the profile is missing.
#[track_caller]
fn containers_profile_for(caps: &[&str]) -> Option<Value> {
    let text = std::fs::read_to_string(CONTAINERS_PROFILE).ok();
    let what = format!("{CONTAINERS_PROFILE} (package golang-github-containers-common)");
    if !common::require(text.is_some(), &what) {
        return None;
    }
    let text = text.unwrap();
    let v = js(&text);
    let has_cap = |c: &String| caps.contains(&c.as_str());
    let kernel_at_least = |min: &str| {
        let mut it = min.split('.').map(|s| s.parse::<u32>().unwrap_or(0));
        kernel_version() >= (it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    let mut out = Object::new();
    for key in ["defaultAction", "defaultErrnoRet", "flags"] {
        if let Some(x) = jget(&v, key) {
            out.insert(key.into(), x.clone());
        }
    }
    let mut arches = vec![jstr("SCMP_ARCH_X86_64")];
    for m in as_array(jget(&v, "archMap")).into_iter().flatten() {
        if as_str(jget(m, "architecture")) == Some("SCMP_ARCH_X86_64") {
            arches.extend(strings(jget(m, "subArchitectures")).iter().map(|s| jstr(s)));
        }
    }
    out.insert(
        "architectures".into(),
        Value::Array(arches.into_iter().collect()),
    );
    let mut rules = Array::new();
    for r in as_array(jget(&v, "syscalls")).into_iter().flatten() {
        let inc_caps = strings(jget(r, "includes.caps"));
        let inc_arches = strings(jget(r, "includes.arches"));
        let exc_caps = strings(jget(r, "excludes.caps"));
        let exc_arches = strings(jget(r, "excludes.arches"));
        let min_kernel = as_str(jget(r, "includes.minKernel"));
        let keep = inc_caps.iter().all(has_cap)
            && (inc_arches.is_empty() || inc_arches.iter().any(|a| a == "amd64"))
            && !exc_caps.iter().any(has_cap)
            && !exc_arches.iter().any(|a| a == "amd64")
            && min_kernel.is_none_or(kernel_at_least);
        if !keep {
            continue;
        }
        let mut rule = Object::new();
        for key in ["names", "action", "errnoRet", "args"] {
            if let Some(x) = jget(r, key) {
                rule.insert(key.into(), x.clone());
            }
        }
        rules.push(Value::Object(rule));
    }
    out.insert("syscalls".into(), Value::Array(rules));
    Some(Value::Object(out))
}

/// The capabilities of the harness's base config.
const BASE_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

fn containers_program() -> Option<Program> {
    let v = containers_profile_for(BASE_CAPS)?;
    let p = seccomp::parse(&Node::new(&v, "linux.seccomp")).unwrap();
    let t = std::time::Instant::now();
    let prog = seccomp::compile(&p).unwrap();
    eprintln!(
        "containers profile: {} instructions, compiled in {:?}",
        prog.filter.len(),
        t.elapsed()
    );
    Some(prog)
}

#[test]
fn default_profile_runs_busybox_and_refuses_what_it_should() {
    let Some(prog) = containers_program() else {
        return;
    };
    // fork + exec busybox sh, which forks and execs echo... all allowed.
    let busybox = CString::new("/bin/busybox").unwrap();
    let argv_s: Vec<CString> = ["sh", "-c", "echo ok; busybox true && echo forked"]
        .iter()
        .map(|s| CString::new(*s).unwrap())
        .collect();
    let mut argv: Vec<*const libc::c_char> = argv_s.iter().map(|s| s.as_ptr()).collect();
    argv.push(std::ptr::null());
    let env_s = [CString::new("PATH=/bin:/usr/bin").unwrap()];
    let envp: [*const libc::c_char; 2] = [env_s[0].as_ptr(), std::ptr::null()];
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let st = in_child(&prog, true, || {
        // SAFETY: dup2 onto stdout, then execve with NUL-terminated arrays
        // built before the fork.
        unsafe {
            libc::dup2(fds[1], 1);
            libc::execve(busybox.as_ptr(), argv.as_ptr(), envp.as_ptr());
        }
        103
    });
    // SAFETY: we own the write end; closing it lets the read see EOF.
    unsafe { libc::close(fds[1]) };
    // SAFETY: we own the read end.
    let mut out = String::new();
    unsafe { std::fs::File::from_raw_fd(fds[0]) }
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(exited(st), 0, "busybox under the default profile: {out:?}");
    assert_eq!(out, "ok\nforked\n");

    // Refused: without the capabilities (EPERM rules), or not listed at all
    // (the profile's default, ENOSYS).
    // SAFETY: raw syscalls with null or integer arguments; all are refused
    // by the filter (or fail in the kernel) without side effects.
    let call = |nr: libc::c_long| move || unsafe { errno_of(libc::syscall(nr, 0, 0, 0, 0, 0)) };
    for (name, nr, want) in [
        ("bpf", libc::SYS_bpf, libc::EPERM),
        ("sethostname", libc::SYS_sethostname, libc::EPERM),
        ("kexec_load", libc::SYS_kexec_load, libc::EPERM),
        ("chroot", libc::SYS_chroot, libc::EPERM),
        ("acct", libc::SYS_acct, libc::EPERM),
        ("add_key", libc::SYS_add_key, libc::ENOSYS),
        ("request_key", libc::SYS_request_key, libc::ENOSYS),
        ("io_uring_setup", libc::SYS_io_uring_setup, libc::ENOSYS),
    ] {
        assert_eq!(exited(in_child(&prog, true, call(nr))), want, "{name}");
    }
    // personality: only the listed personas.
    // SAFETY: personality(0xffffffff) only queries.
    let st = in_child(&prog, true, || unsafe {
        errno_of(libc::syscall(libc::SYS_personality, 0xffff_ffffu64))
    });
    assert_eq!(exited(st), 0);
    // SAFETY: refused by the filter before the kernel acts.
    let st = in_child(&prog, true, || unsafe {
        errno_of(libc::syscall(libc::SYS_personality, 0x0040_0000u64))
    });
    assert_eq!(exited(st), libc::ENOSYS);
    // socket(AF_NETLINK, _, NETLINK_AUDIT) is refused only without
    // CAP_AUDIT_WRITE, which the base config has.
    // SAFETY: socket with integer arguments; the fd is left to _exit.
    let st = in_child(&prog, true, || unsafe {
        errno_of(libc::syscall(libc::SYS_socket, 16, 3, 9))
    });
    assert_ne!(exited(st), libc::EINVAL);
}

#[test]
fn default_profile_without_audit_write_refuses_audit_sockets() {
    let Some(v) = containers_profile_for(&["CAP_KILL"]) else {
        return;
    };
    let p = seccomp::parse(&Node::new(&v, "linux.seccomp")).unwrap();
    let prog = seccomp::compile(&p).unwrap();
    // SAFETY: socket with integer arguments.
    let sock = |dom: i64, proto: i64| {
        move || unsafe { errno_of(libc::syscall(libc::SYS_socket, dom, libc::SOCK_RAW, proto)) }
    };
    assert_eq!(
        exited(in_child(&prog, true, sock(16, 9))),
        libc::EINVAL,
        "NETLINK_AUDIT"
    );
    assert_eq!(
        exited(in_child(&prog, true, sock(16, 0))),
        0,
        "NETLINK_ROUTE"
    );
}

// ---------------------------------------------------------------------------
// Through the runtime

#[test]
fn container_with_the_default_profile() {
    let Some(profile) = containers_profile_for(BASE_CAPS) else {
        return;
    };
    let ctx = Ctx::new("seccomp-default");
    let mut c = ctx.config();
    c.set("linux.seccomp", profile)
        .sh("echo ok; busybox true && echo forked; ls / >/dev/null && echo listed");
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "ok\nforked\nlisted\n");
    // Something the profile refuses: sethostname needs CAP_SYS_ADMIN's rule.
    let mut c = ctx.config();
    c.set("linux.seccomp", containers_profile_for(BASE_CAPS).unwrap())
        .sh("hostname other 2>&1; echo status=$?");
    let out = ctx.run_config(&c);
    assert!(out.stdout.contains("status=1"), "{}", out.stdout);
}

#[test]
fn container_with_a_custom_errno_rule() {
    let ctx = Ctx::new("seccomp-mkdir");
    // With no_new_privs the filter goes on right before exec; without, it
    // goes on while the init still has CAP_SYS_ADMIN.
    for nnp in [true, false] {
        let mut c = ctx.config();
        c.writable_rootfs()
            .set("process.noNewPrivileges", Value::Bool(nnp))
            .set(
                "linux.seccomp",
                js(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#),
            )
            .sh("mkdir /tmp/x; echo status=$?; test -d /tmp/x && echo exists; touch /tmp/y && echo touched");
        let out = ctx.run_config(&c);
        out.ok();
        assert_eq!(
            out.stdout, "status=1\ntouched\n",
            "nnp {nnp}; stderr: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("Function not implemented"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn container_rejects_a_bad_profile() {
    let ctx = Ctx::new("seccomp-bad");
    let mut c = ctx.config();
    c.set(
        "linux.seccomp",
        js(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_FOO"}]}"#),
    )
    .sh("true");
    let out = ctx.run_config(&c);
    out.fails();
    // runc: "string SCMP_ACT_FOO is not a valid action for seccomp".
    if is_skiff() {
        assert!(
            out.stderr
                .contains(r#"linux.seccomp.syscalls[0].action: unknown action \"SCMP_ACT_FOO\""#)
                || out
                    .stderr
                    .contains(r#"linux.seccomp.syscalls[0].action: unknown action "SCMP_ACT_FOO""#),
            "{}",
            out.stderr
        );
    }
}
