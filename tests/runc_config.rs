//! What config.json asks for, checked from inside (and outside) real
//! containers: hostname, rootfs, mounts, masked and read-only paths, user
//! namespaces, capabilities, rlimits, user, cwd, env, and `runc spec`.
//!
//! Run against Debian's runc: `SKIFF_TEST_RUNTIME=/usr/bin/runc cargo test --test runc_config`.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};

fn host_dir(ctx: &Ctx, name: &str) -> String {
    let p = ctx.path(name);
    fs::create_dir_all(&p).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn hostname_and_domainname() {
    let ctx = Ctx::new("hostname");
    let mut c = ctx.config();
    c.set("hostname", jstr("skiff-box"))
        .set("domainname", jstr("example.test"))
        .sh("hostname; cat /proc/sys/kernel/hostname /proc/sys/kernel/domainname");
    let out = ctx.run_config(&c);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..2], ["skiff-box", "skiff-box"], "{}", out.stdout);
    // RUNC DIFFERS: runc 1.1.5 ignores `domainname` (prints "(none)"); the
    // issue asks for it, so it is only checked for skiff.
    if is_skiff() {
        assert_eq!(lines[2], "example.test");
    }
}

#[test]
fn readonly_rootfs_refuses_writes() {
    let ctx = Ctx::new("rorootfs");
    let mut c = ctx.config();
    c.set("root.readonly", miniserde::json::Value::Bool(true))
        .sh("touch /newfile && echo wrote; grep ' / ' /proc/self/mounts");
    let out = ctx.run_config(&c);
    assert!(
        !out.stdout.contains("wrote"),
        "wrote into a read-only rootfs: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("Read-only file system"),
        "stderr: {}",
        out.stderr
    );
    let root_line = out.stdout.lines().next().unwrap_or("");
    assert!(
        root_line
            .split(' ')
            .nth(3)
            .is_some_and(|o| o.split(',').any(|o| o == "ro")),
        "{root_line}"
    );
    assert!(!ctx.rootfs().join("newfile").exists());

    // The same with a writable rootfs works (the control experiment).
    c.writable_rootfs().sh("touch /newfile && echo wrote");
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "wrote\n");
    assert!(ctx.rootfs().join("newfile").exists());
}

#[test]
fn bind_mounts_rw_and_ro() {
    let ctx = Ctx::new("bind");
    let rw = host_dir(&ctx, "rw");
    let ro = host_dir(&ctx, "ro");
    fs::write(ctx.path("rw/hello.txt"), "from host\n").unwrap();
    fs::write(ctx.path("ro/ro.txt"), "read only\n").unwrap();
    let mut c = ctx.config();
    c.mount("/mnt/rw", "bind", &rw, &["rbind", "rw"])
        .mount("/mnt/ro", "bind", &ro, &["bind", "ro", "nosuid", "nodev"])
        .sh(
            "cat /mnt/rw/hello.txt; echo from-container > /mnt/rw/new.txt; \
             cat /mnt/ro/ro.txt; if echo x > /mnt/ro/bad.txt; then echo ro-writable; fi; \
             grep ' /mnt/ro ' /proc/self/mounts",
        );
    let out = ctx.run_config(&c);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"from host"), "{}", out.stdout);
    assert_eq!(lines.get(1), Some(&"read only"), "{}", out.stdout);
    assert!(!out.stdout.contains("ro-writable"), "{}", out.stdout);
    assert!(
        out.stderr.contains("Read-only file system"),
        "stderr: {}",
        out.stderr
    );
    let opts = lines.get(2).and_then(|l| l.split(' ').nth(3)).unwrap_or("");
    for o in ["ro", "nosuid", "nodev"] {
        assert!(
            opts.split(',').any(|x| x == o),
            "/mnt/ro options {opts:?} lack {o}"
        );
    }
    assert_eq!(
        fs::read_to_string(ctx.path("rw/new.txt")).unwrap(),
        "from-container\n"
    );
    assert!(!ctx.path("ro/bad.txt").exists());
    // The mount points were created inside the rootfs.
    assert!(ctx.rootfs().join("mnt/rw").is_dir());
}

#[test]
fn tmpfs_mount_with_options() {
    let ctx = Ctx::new("tmpfs");
    let mut c = ctx.config();
    c.mount("/scratch", "tmpfs", "tmpfs", &["nosuid", "noexec", "nodev", "size=1m", "mode=0700"])
        .sh("grep ' /scratch ' /proc/self/mounts; stat -c %a /scratch; echo hi > /scratch/f && cat /scratch/f");
    let out = ctx.run_config(&c);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(fields[2], "tmpfs", "{}", out.stdout);
    for o in ["nosuid", "noexec", "nodev", "size=1024k", "mode=700"] {
        assert!(
            fields[3].split(',').any(|x| x == o),
            "tmpfs options {} lack {o}",
            fields[3]
        );
    }
    assert_eq!(&lines[1..], ["700", "hi"]);
}

#[test]
fn mount_destination_symlink_stays_in_rootfs() {
    // A symlink in the rootfs that points outside must be resolved inside
    // the rootfs, never followed to the host.
    let ctx = Ctx::new("symlinkesc");
    let outside = ctx.path("outside");
    fs::create_dir(&outside).unwrap();
    symlink(&outside, ctx.rootfs().join("escape")).unwrap();
    symlink("../../../../../../..", ctx.rootfs().join("up")).unwrap();
    let mut c = ctx.config();
    c.mount("/escape/m1", "tmpfs", "tmpfs", &["size=1m"])
        .mount(
            &format!("/up{}/m2", outside.display()),
            "tmpfs",
            "tmpfs",
            &["size=1m"],
        )
        .sh("echo in > /escape/m1/f; echo ok");
    // runc resolves the symlink inside the rootfs and succeeds; crun
    // refuses. Either is safe: what matters is that the host is untouched.
    let out = ctx.run_config(&c);
    if out.status.success() {
        assert_eq!(out.stdout, "ok\n");
    } else {
        out.fails();
    }
    assert!(
        !outside.join("m1").exists(),
        "mount point created on the host through a symlink"
    );
    assert!(
        !outside.join("m2").exists(),
        "mount point created on the host through a symlink"
    );
    assert!(
        fs::read_dir(&outside).unwrap().next().is_none(),
        "host dir touched"
    );
}

#[test]
fn masked_paths_unreadable() {
    let ctx = Ctx::new("masked");
    fs::create_dir(ctx.rootfs().join("secret")).unwrap();
    fs::write(ctx.rootfs().join("secret/key"), "s3cr3t\n").unwrap();
    fs::write(ctx.rootfs().join("etc/token"), "t0ken\n").unwrap();
    let mut c = ctx.config();
    c.push("linux.maskedPaths", jstr("/secret"))
        .push("linux.maskedPaths", jstr("/etc/token"))
        .push("linux.maskedPaths", jstr("/does/not/exist"))
        .sh(
            "wc -c < /proc/keys; wc -c < /proc/timer_list; cat /etc/token; ls -A /secret; echo end",
        );
    let out = ctx.run_config(&c);
    out.ok();
    // /proc/keys and /proc/timer_list exist on the host kernel (kcore does
    // not here) and are in the default maskedPaths.
    assert!(fs::metadata("/proc/keys").is_ok(), "host has /proc/keys");
    assert_eq!(out.stdout, "0\n0\nend\n", "masked paths must read as empty");
    assert!(!out.stdout.contains("s3cr3t") && !out.stdout.contains("t0ken"));
}

#[test]
fn readonly_paths() {
    let ctx = Ctx::new("ropaths");
    fs::create_dir(ctx.rootfs().join("data")).unwrap();
    let mut c = ctx.config();
    c.writable_rootfs()
        .push("linux.readonlyPaths", jstr("/data"))
        .sh(
            "touch /data/x && echo data-writable; touch /other && echo rootfs-writable; \
             echo 1 > /proc/sys/kernel/ns_last_pid && echo procsys-writable; true",
        );
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "rootfs-writable\n", "stderr: {}", out.stderr);
    assert!(!ctx.rootfs().join("data/x").exists());
}

#[test]
fn user_namespace_id_mapping() {
    let ctx = Ctx::new("userns");
    let shared = ctx.path("shared");
    fs::create_dir(&shared).unwrap();
    std::os::unix::fs::chown(&shared, Some(100000), Some(100000)).unwrap();
    // The mapped root cannot write the host-owned rootfs: make the mount
    // point beforehand, as one would by chowning the rootfs.
    fs::create_dir(ctx.rootfs().join("shared")).unwrap();
    let mut c = ctx.config();
    c.add_namespace("user")
        .set(
            "linux.uidMappings",
            js(r#"[{"containerID":0,"hostID":100000,"size":65536}]"#),
        )
        .set(
            "linux.gidMappings",
            js(r#"[{"containerID":0,"hostID":100000,"size":65536}]"#),
        )
        .remove_mount("/sys/fs/cgroup")
        .mount(
            "/shared",
            "bind",
            shared.to_str().unwrap(),
            &["rbind", "rw"],
        )
        .sh(
            "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /shared/made-inside; \
             echo ready > /shared/ready; exec sleep 1000",
        );
    ctx.write_config(&c);
    let id = ctx.id();
    ctx.create(&id).ok();
    let pid = ctx.pid_of(&id);
    ctx.start(&id).ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !shared.join("ready").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "container never became ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Seen from the host, uid 0 inside is 100000 outside.
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let uids: Vec<&str> = uid_line.split_whitespace().skip(1).collect();
    assert_eq!(uids, ["100000"; 4], "{uid_line}");
    let meta = fs::metadata(shared.join("made-inside")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (100000, 100000),
        "owner of a file made inside"
    );
    let ours = fs::read_link("/proc/self/ns/user").unwrap();
    assert_ne!(fs::read_link(format!("/proc/{pid}/ns/user")).unwrap(), ours);
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

#[test]
fn user_namespace_maps_seen_inside() {
    let ctx = Ctx::new("usermap");
    let mut c = ctx.config();
    c.add_namespace("user")
        .set(
            "linux.uidMappings",
            js(r#"[{"containerID":0,"hostID":200000,"size":1000}]"#),
        )
        .set(
            "linux.gidMappings",
            js(r#"[{"containerID":0,"hostID":300000,"size":1000}]"#),
        )
        .remove_mount("/sys/fs/cgroup")
        .remove_mount("/dev/pts")
        .sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g");
    let out = ctx.run_config(&c);
    out.ok();
    let words: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        words,
        [
            vec!["0", "200000", "1000"],
            vec!["0", "300000", "1000"],
            vec!["0"],
            vec!["0"]
        ]
    );
}

fn mknod_chown_script() -> &'static str {
    "mknod /tmp/null c 1 3 && echo mknod-ok; touch /tmp/f && chown 1000:1000 /tmp/f && echo chown-ok; \
     grep CapEff /proc/self/status; true"
}

#[test]
fn dropped_capabilities_are_missing() {
    let ctx = Ctx::new("capsdrop");
    let mut c = ctx.config();
    c.mount("/tmp", "tmpfs", "tmpfs", &["size=1m"])
        .sh(mknod_chown_script());
    let out = ctx.run_config(&c);
    out.ok();
    assert!(
        !out.stdout.contains("mknod-ok"),
        "mknod worked without CAP_MKNOD: {}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("chown-ok"),
        "chown worked without CAP_CHOWN: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("Operation not permitted"),
        "stderr: {}",
        out.stderr
    );
    // CAP_AUDIT_WRITE (29), CAP_KILL (5), CAP_NET_BIND_SERVICE (10).
    let want = (1u64 << 29) | (1 << 5) | (1 << 10);
    assert!(
        out.stdout.contains(&format!("CapEff:\t{want:016x}")),
        "{}",
        out.stdout
    );
}

#[test]
fn granted_capabilities_work() {
    let ctx = Ctx::new("capsgrant");
    let mut c = ctx.config();
    c.caps(&["CAP_MKNOD", "CAP_CHOWN", "CAP_KILL"])
        .mount("/tmp", "tmpfs", "tmpfs", &["size=1m"])
        .sh(mknod_chown_script());
    let out = ctx.run_config(&c);
    out.ok();
    assert!(
        out.stdout.contains("mknod-ok"),
        "stdout: {} stderr: {}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("chown-ok"),
        "stdout: {} stderr: {}",
        out.stdout,
        out.stderr
    );
    let want = (1u64 << 27) | (1 << 0) | (1 << 5);
    assert!(
        out.stdout.contains(&format!("CapEff:\t{want:016x}")),
        "{}",
        out.stdout
    );
}

#[test]
fn rlimits_in_proc_limits() {
    let ctx = Ctx::new("rlimits");
    let mut c = ctx.config();
    c.set(
        "process.rlimits",
        js(r#"[{"type":"RLIMIT_NOFILE","soft":512,"hard":777},{"type":"RLIMIT_NPROC","soft":300,"hard":400}]"#),
    )
    .sh("cat /proc/self/limits");
    let out = ctx.run_config(&c);
    out.ok();
    let find = |name: &str| -> Vec<String> {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {}", out.stdout));
        line[name.len()..]
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(find("Max open files")[..2], ["512", "777"]);
    assert_eq!(find("Max processes")[..2], ["300", "400"]);
}

#[test]
fn process_user_and_groups() {
    let ctx = Ctx::new("user");
    let mut c = ctx.config();
    c.set(
        "process.user",
        js(r#"{"uid":1000,"gid":100,"additionalGids":[10,65534]}"#),
    )
    .sh("id -u; id -g; id -G; grep -E '^(Uid|Gid|Groups):' /proc/self/status");
    let out = ctx.run_config(&c);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "100");
    let groups: std::collections::BTreeSet<&str> = lines[2].split_whitespace().collect();
    assert!(
        groups.contains("10") && groups.contains("65534") && groups.contains("100"),
        "{}",
        out.stdout
    );
    let status_groups: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("Groups:"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .collect();
    assert_eq!(
        status_groups,
        ["10", "65534"],
        "supplementary groups are exactly additionalGids"
    );
}

#[test]
fn process_umask() {
    let ctx = Ctx::new("umask");
    let mut c = ctx.config();
    c.set("process.user.umask", jnum(0o027))
        .mount("/tmp", "tmpfs", "tmpfs", &["size=1m"])
        .sh("umask; touch /tmp/f; stat -c %a /tmp/f");
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "0027\n640\n");
}

#[test]
fn process_cwd_and_env() {
    let ctx = Ctx::new("cwdenv");
    fs::create_dir_all(ctx.rootfs().join("work/dir")).unwrap();
    let mut c = ctx.config();
    c.set("process.cwd", jstr("/work/dir"))
        .env("GREETING=hello world")
        .env("EMPTY=")
        .sh("pwd; echo \"$GREETING\"; echo \"[$EMPTY]\"; echo $PATH; env | grep -c '^SKIFF_TEST_MARK='");
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(
        out.stdout,
        "/work/dir\nhello world\n[]\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n1\n"
    );
}

#[test]
fn no_new_privileges_and_oom_score_adj() {
    let ctx = Ctx::new("nnp");
    let mut c = ctx.config();
    c.set("process.oomScoreAdj", jnum(500))
        .sh("grep NoNewPrivs /proc/self/status; cat /proc/self/oom_score_adj");
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "NoNewPrivs:\t1\n500\n");
}

#[test]
fn namespaces_are_new() {
    let ctx = Ctx::new("namespaces");
    let mut c = ctx.config();
    c.add_namespace("cgroup")
        .sh("for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done; ls /sys/class/net");
    let out = ctx.run_config(&c);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    for (i, ns) in ["pid", "net", "ipc", "uts", "mnt", "cgroup"]
        .iter()
        .enumerate()
    {
        let host = fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(lines[i], host.to_str().unwrap(), "{ns} namespace is new");
    }
    assert_eq!(&lines[6..], ["lo"], "a new network namespace has only lo");
}

#[test]
fn join_network_namespace_by_path() {
    // A second container joins the network namespace of a first one by
    // path (as a pod's containers do).
    let ctx = Ctx::new("nsjoin");
    let mut c = ctx.config();
    c.sh("exec sleep 1000");
    ctx.write_config(&c);
    let first = ctx.id();
    ctx.create(&first).ok();
    let pid = ctx.pid_of(&first);
    let net = fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let mut c = ctx.config();
    c.remove_namespace("network")
        .push(
            "linux.namespaces",
            js(&format!(
                r#"{{"type":"network","path":"/proc/{pid}/ns/net"}}"#
            )),
        )
        .sh("readlink /proc/self/ns/net");
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout.trim(), net.to_str().unwrap());
    assert_ne!(net, fs::read_link("/proc/self/ns/net").unwrap());
    ctx.rt(&["delete", "--force", &first]).ok();
    ctx.assert_gone(&first);
}

#[test]
fn sysctl_applied() {
    let ctx = Ctx::new("sysctl");
    let mut c = ctx.config();
    c.set(
        "linux.sysctl",
        js(r#"{"net.ipv4.ip_forward":"1","kernel.msgmax":"4096"}"#),
    )
    .sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax");
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "1\n4096\n");
}

#[test]
fn default_devices_present() {
    let ctx = Ctx::new("devices");
    let out = ctx.run_sh(
        "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T' /dev/$d; done; \
         echo x > /dev/null && head -c 4 /dev/zero | wc -c",
    );
    out.ok();
    let want = "/dev/null character special file 1:3\n/dev/zero character special file 1:5\n\
                /dev/full character special file 1:7\n/dev/random character special file 1:8\n\
                /dev/urandom character special file 1:9\n/dev/tty character special file 5:0\n4\n";
    assert_eq!(out.stdout, want);
}

#[test]
fn root_path_absolute() {
    let ctx = Ctx::new("absroot");
    let mut c = ctx.config();
    c.set("root.path", jstr(ctx.rootfs().to_str().unwrap()))
        .sh("echo abs");
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "abs\n");
}

#[test]
fn spec_writes_default_config() {
    let ctx = Ctx::new("spec");
    let dir = ctx.path("specdir");
    fs::create_dir(&dir).unwrap();
    ctx.rt(&["spec", "--bundle", dir.to_str().unwrap()]).ok();
    let text = fs::read_to_string(dir.join("config.json")).unwrap();
    let v: miniserde::json::Value = miniserde::json::from_str(&text).expect("spec writes JSON");
    assert!(as_str(jget(&v, "ociVersion")).is_some_and(|s| s.starts_with("1.")));
    assert_eq!(as_str(jget(&v, "root.path")), Some("rootfs"));
    assert_eq!(as_str(jget(&v, "process.args.0")), Some("sh"));
    assert!(matches!(
        jget(&v, "process.terminal"),
        Some(miniserde::json::Value::Bool(true))
    ));
    let ns: Vec<&str> = as_array(jget(&v, "linux.namespaces"))
        .unwrap()
        .iter()
        .filter_map(|n| as_str(jget(n, "type")))
        .collect();
    for want in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&want), "namespaces {ns:?}");
    }
    assert!(as_array(jget(&v, "mounts")).is_some_and(|m| m.len() >= 5));
    assert!(as_array(jget(&v, "linux.maskedPaths")).is_some_and(|m| !m.is_empty()));

    // A second spec refuses to overwrite.
    ctx.rt(&["spec", "--bundle", dir.to_str().unwrap()]).fails();

    // --rootless adds a user namespace with mappings.
    let dir2 = ctx.path("rootless");
    fs::create_dir(&dir2).unwrap();
    ctx.rt(&["spec", "--rootless", "--bundle", dir2.to_str().unwrap()])
        .ok();
    let text = fs::read_to_string(dir2.join("config.json")).unwrap();
    let v: miniserde::json::Value =
        miniserde::json::from_str(&text).expect("spec --rootless writes JSON");
    let ns: Vec<&str> = as_array(jget(&v, "linux.namespaces"))
        .unwrap()
        .iter()
        .filter_map(|n| as_str(jget(n, "type")))
        .collect();
    assert!(
        ns.contains(&"user"),
        "rootless spec has a user namespace: {ns:?}"
    );
    assert!(as_array(jget(&v, "linux.uidMappings")).is_some_and(|m| !m.is_empty()));
}

#[test]
fn spec_output_runs() {
    // What `spec` writes, with only args/terminal changed, runs here.
    let ctx = Ctx::new("specruns");
    fs::remove_file(ctx.bundle.join("config.json")).unwrap();
    ctx.rt(&["spec", "--bundle", &ctx.bundle_str()]).ok();
    let text = fs::read_to_string(ctx.bundle.join("config.json")).unwrap();
    let mut c = Config(miniserde::json::from_str(&text).unwrap());
    c.set("process.terminal", miniserde::json::Value::Bool(false))
        .sh("echo spec-ok");
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "spec-ok\n");
}

#[test]
fn default_mounts_inside() {
    let ctx = Ctx::new("defmounts");
    let out = ctx.run_sh("cat /proc/self/mounts");
    out.ok();
    let find = |dest: &str| -> (String, Vec<String>) {
        let l = out
            .stdout
            .lines()
            .rev()
            .find(|l| l.split(' ').nth(1) == Some(dest))
            .unwrap_or_else(|| panic!("{dest} mounted: {}", out.stdout));
        let f: Vec<&str> = l.split(' ').collect();
        (
            f[2].to_string(),
            f[3].split(',').map(String::from).collect(),
        )
    };
    let has = |opts: &[String], o: &str| opts.iter().any(|x| x == o);
    let (t, o) = find("/proc");
    assert_eq!(t, "proc");
    assert!(has(&o, "rw"), "{o:?}");
    let (t, o) = find("/dev");
    assert_eq!(t, "tmpfs");
    assert!(has(&o, "nosuid") && has(&o, "mode=755"), "{o:?}");
    let (t, o) = find("/dev/pts");
    assert_eq!(t, "devpts");
    assert!(
        has(&o, "noexec") && has(&o, "ptmxmode=666") && has(&o, "gid=5"),
        "{o:?}"
    );
    let (t, o) = find("/dev/shm");
    assert_eq!(t, "tmpfs");
    assert!(has(&o, "nodev") && has(&o, "noexec"), "{o:?}");
    let (t, _) = find("/dev/mqueue");
    assert_eq!(t, "mqueue");
    let (t, o) = find("/sys");
    assert_eq!(t, "sysfs");
    assert!(has(&o, "ro"), "/sys is read-only: {o:?}");
    let (t, o) = find("/");
    assert!(has(&o, "ro"), "root ({t}) is read-only: {o:?}");
    // The cgroup mount: runc on this v1/v2 hybrid mounts a tmpfs there with
    // one read-only cgroup mount per hierarchy.
    find("/sys/fs/cgroup");
    let cgroup_mounts: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| matches!(l.split(' ').nth(2), Some("cgroup" | "cgroup2")))
        .collect();
    assert!(!cgroup_mounts.is_empty(), "{}", out.stdout);
    for l in cgroup_mounts {
        let opts = l.split(' ').nth(3).unwrap_or("");
        assert!(
            opts.split(',').any(|o| o == "ro"),
            "cgroup mount is read-only: {l}"
        );
    }
}

#[test]
fn extra_device_created() {
    let ctx = Ctx::new("device");
    let mut c = ctx.config();
    c.set(
        "linux.devices",
        js(r#"[{"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":438,"uid":0,"gid":0}]"#),
    )
    .sh("stat -c '%F %t:%T %a' /dev/fuse");
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "character special file a:e5 666\n");
}

#[test]
fn home_from_passwd() {
    // With no HOME in env, the runtime sets it from the rootfs' /etc/passwd.
    let ctx = Ctx::new("home");
    let mut c = ctx.config();
    c.sh("echo $HOME");
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "/root\n");
    c.set("process.user", js(r#"{"uid":1000,"gid":1000}"#));
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "/home/user\n");
}

#[test]
fn no_new_privileges_off() {
    let ctx = Ctx::new("nnpoff");
    let mut c = ctx.config();
    c.set(
        "process.noNewPrivileges",
        miniserde::json::Value::Bool(false),
    )
    .sh("grep NoNewPrivs /proc/self/status");
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "NoNewPrivs:\t0\n");
}

#[test]
fn seccomp_filter_denies_syscall() {
    let ctx = Ctx::new("seccomp");
    let mut c = ctx.config();
    c.set(
        "linux.seccomp",
        js(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
              "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#),
    )
    .mount("/tmp", "tmpfs", "tmpfs", &["size=1m"])
    .sh("mkdir /tmp/d && echo made; touch /tmp/f && echo touched; grep Seccomp: /proc/self/status");
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(
        out.stdout, "touched\nSeccomp:\t2\n",
        "stderr: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Operation not permitted"),
        "stderr: {}",
        out.stderr
    );
}

#[test]
fn bind_mount_noexec() {
    let ctx = Ctx::new("noexecbind");
    let bin = host_dir(&ctx, "bin");
    fs::copy(ctx.rootfs().join("bin/busybox"), ctx.path("bin/busybox")).unwrap();
    let mut c = ctx.config();
    c.mount("/hostbin", "bind", &bin, &["bind", "noexec"])
        .mount("/hostbin2", "bind", &bin, &["bind"])
        .sh("/hostbin2/busybox echo exec-ok; /hostbin/busybox echo noexec-broken; true");
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "exec-ok\n", "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("Permission denied"),
        "stderr: {}",
        out.stderr
    );
}

/// `mount(8)` on the host, for propagation set-up.
fn host_mount(args: &[&str]) {
    let st = std::process::Command::new("mount")
        .args(args)
        .status()
        .expect("run mount");
    assert!(st.success(), "mount {args:?} failed");
}

#[test]
fn bind_mount_propagation_rslave() {
    // A host mount made under a shared source after the container started
    // shows up inside with `rslave`, and not with the default (private).
    let ctx = Ctx::new("propagation");
    let src = host_dir(&ctx, "prop");
    host_mount(&["--bind", &src, &src]);
    host_mount(&["--make-shared", &src]);
    fs::create_dir(ctx.path("prop/sub")).unwrap();
    let mut c = ctx.config();
    c.mount("/slave", "bind", &src, &["rbind", "rslave"])
        .mount("/private", "bind", &src, &["rbind", "rprivate"])
        .sh(
            "echo ready > /slave/ready; while [ ! -e /slave/go ]; do sleep 0.02; done; \
             cat /slave/sub/seen 2>&1; cat /private/sub/seen 2>&1; \
             grep -E ' /(slave|private) ' /proc/self/mountinfo",
        );
    ctx.write_config(&c);
    let id = ctx.id();
    let b = ctx.bundle_str();
    let bg = ctx.spawn(&["run", "--bundle", &b, &id]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ctx.path("prop/ready").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "container never became ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let sub = ctx.path("prop/sub");
    let sub = sub.to_str().unwrap();
    host_mount(&["-t", "tmpfs", "-o", "size=1m", "tmpfs", sub]);
    fs::write(ctx.path("prop/sub/seen"), "propagated\n").unwrap();
    fs::write(ctx.path("prop/go"), "").unwrap();
    let out = bg.wait(std::time::Duration::from_secs(10));
    // Undo the host mounts before the leftover check.
    for m in [sub, src.as_str()] {
        let st = std::process::Command::new("umount")
            .arg(m)
            .status()
            .unwrap();
        assert!(st.success(), "umount {m}");
    }
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"propagated"),
        "rslave sees new host mounts: {}",
        out.stdout
    );
    assert_ne!(
        lines.get(1),
        Some(&"propagated"),
        "rprivate does not: {}",
        out.stdout
    );
    let slave = lines.iter().find(|l| l.contains(" /slave ")).unwrap();
    assert!(
        slave.contains("master:"),
        "/slave is a slave mount: {slave}"
    );
    ctx.assert_gone(&id);
}

#[test]
fn cgroup_resources_applied() {
    let ctx = Ctx::new("cgroups");
    let id = ctx.id();
    let mut c = ctx.config();
    c.set("linux.cgroupsPath", jstr(&format!("/{id}")))
        .set("linux.resources.pids", js(r#"{"limit":42}"#))
        .set("linux.resources.memory", js(r#"{"limit":67108864}"#))
        .sh("cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; exec sleep 1000");
    ctx.write_config(&c);
    let b = ctx.bundle_str();
    let out = ctx.rt(&["run", "--detach", "--bundle", &b, &id]);
    out.ok();
    ctx.track_pid(ctx.pid_of(&id));
    let pid = ctx.pid_of(&id);
    // Seen from the host: the container's cgroups carry the limits.
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let pids_path = cg
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            ctrl.split(',')
                .any(|c| c == "pids")
                .then(|| path.to_string())
        })
        .expect("a pids cgroup");
    let max = fs::read_to_string(format!("/sys/fs/cgroup/pids{pids_path}/pids.max")).unwrap();
    assert_eq!(max.trim(), "42");
    let mem_path = cg
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            ctrl.split(',')
                .any(|c| c == "memory")
                .then(|| path.to_string())
        })
        .expect("a memory cgroup");
    let mem = fs::read_to_string(format!(
        "/sys/fs/cgroup/memory{mem_path}/memory.limit_in_bytes"
    ))
    .unwrap();
    assert_eq!(mem.trim(), "67108864");
    assert!(
        pids_path.ends_with(&id),
        "cgroupsPath honoured: {pids_path}"
    );
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
    assert!(
        !std::path::Path::new(&format!("/sys/fs/cgroup/pids{pids_path}")).exists(),
        "cgroup removed"
    );
    assert!(
        !std::path::Path::new(&format!("/sys/fs/cgroup/memory{mem_path}")).exists(),
        "memory cgroup removed"
    );
}

#[test]
fn rootfs_propagation_shared() {
    // pivot_root refuses a shared parent mount, so the runtime must make the
    // rootfs's parent private first; the container's / then carries the
    // configured propagation (skiff checked alone: runc 1.1.5 leaves / private).
    let ctx = Ctx::new("rshared");
    let mut c = ctx.config();
    c.set("linux.rootfsPropagation", jstr("rshared"));
    c.sh("awk '$5 == \"/\" {print $7}' /proc/self/mountinfo");
    let out = ctx.run_config(&c);
    out.ok();
    if is_skiff() {
        assert!(
            out.stdout.starts_with("shared:"),
            "propagation of / inside: {:?}",
            out.stdout
        );
    }
    // The host's / keeps its own propagation.
    let host = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = host
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or("");
    assert!(!root.contains("shared:"), "host / became shared: {root}");
}

#[test]
fn personality_linux32() {
    // linux.personality (skiff checked alone: runc 1.1.5 ignores it).
    let ctx = Ctx::new("persona");
    let mut c = ctx.config();
    c.set("linux.personality", js(r#"{"domain":"LINUX32"}"#));
    c.args(&["uname", "-m"]);
    let out = ctx.run_config(&c);
    out.ok();
    if is_skiff() {
        assert_eq!(out.stdout.trim(), "i686");
    }
}
