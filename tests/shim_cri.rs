//! Kubernetes' path to a shim: containerd 1.6's CRI plugin with a runtime
//! handler `skiff` runs a pod sandbox and a container through CRI calls
//! (RunPodSandbox, CreateContainer, StartContainer, ExecSync,
//! ContainerStatus, StopContainer, RemoveContainer, StopPodSandbox,
//! RemovePodSandbox); the container's log appears in the CRI log format;
//! after the removal nothing is left.
//!
//! The handler's runtime_type is [`RUNTIME`] (`SKIFF_SHIM_RUNTIME`
//! overrides it; `io.containerd.runc.v2` is the baseline). The pod uses
//! the node's network namespace, so no CNI plugin is needed; the sandbox
//! ("pause") image is a local busybox image whose entrypoint sleeps.
//!
//! The CRI client is Debian's python3-grpcio and python3-protobuf run by
//! /usr/bin/python3, with message classes generated at test time by
//! `protoc --python_out` from the subset of k8s.io/cri-api's
//! runtime/v1/api.proto written below (its field numbers).

mod common;
#[path = "common/containerd.rs"]
mod containerd;

use common::*;
use containerd::*;
use miniserde::json::{self, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The shim under test (the runtime_type of the `skiff` handler);
/// `SKIFF_SHIM_RUNTIME=io.containerd.runc.v2` is the baseline.
const RUNTIME: &str = "io.containerd.skiff.v2";

fn runtime_name() -> String {
    match std::env::var("SKIFF_SHIM_RUNTIME") {
        Ok(r) if !r.is_empty() => r,
        _ => RUNTIME.to_string(),
    }
}

const PYTHON: &str = "/usr/bin/python3";

/// The messages of runtime.v1 the test uses; field numbers as in
/// k8s.io/cri-api pkg/apis/runtime/v1/api.proto.
const API_PROTO: &str = r#"syntax = "proto3";
package runtime.v1;

message VersionRequest { string version = 1; }
message VersionResponse {
  string version = 1;
  string runtime_name = 2;
  string runtime_version = 3;
  string runtime_api_version = 4;
}

enum NamespaceMode { POD = 0; CONTAINER = 1; NODE = 2; TARGET = 3; }
message NamespaceOption {
  NamespaceMode network = 1;
  NamespaceMode pid = 2;
  NamespaceMode ipc = 3;
  string target_id = 4;
}
message LinuxSandboxSecurityContext {
  NamespaceOption namespace_options = 1;
  bool privileged = 6;
}
message LinuxPodSandboxConfig {
  string cgroup_parent = 1;
  LinuxSandboxSecurityContext security_context = 2;
}
message PodSandboxMetadata {
  string name = 1;
  string uid = 2;
  string namespace = 3;
  uint32 attempt = 4;
}
message PodSandboxConfig {
  PodSandboxMetadata metadata = 1;
  string hostname = 2;
  string log_directory = 3;
  map<string, string> labels = 6;
  map<string, string> annotations = 7;
  LinuxPodSandboxConfig linux = 8;
}
message RunPodSandboxRequest {
  PodSandboxConfig config = 1;
  string runtime_handler = 2;
}
message RunPodSandboxResponse { string pod_sandbox_id = 1; }
message StopPodSandboxRequest { string pod_sandbox_id = 1; }
message StopPodSandboxResponse {}
message RemovePodSandboxRequest { string pod_sandbox_id = 1; }
message RemovePodSandboxResponse {}
message PodSandboxStatusRequest {
  string pod_sandbox_id = 1;
  bool verbose = 2;
}
enum PodSandboxState { SANDBOX_READY = 0; SANDBOX_NOTREADY = 1; }
message PodSandboxStatus {
  string id = 1;
  PodSandboxMetadata metadata = 2;
  PodSandboxState state = 3;
  int64 created_at = 4;
  string runtime_handler = 9;
}
message PodSandboxStatusResponse {
  PodSandboxStatus status = 1;
  map<string, string> info = 2;
}

message ImageSpec { string image = 1; }
message KeyValue {
  string key = 1;
  string value = 2;
}
message ContainerMetadata {
  string name = 1;
  uint32 attempt = 2;
}
message LinuxContainerSecurityContext {
  NamespaceOption namespace_options = 3;
}
message LinuxContainerConfig {
  LinuxContainerSecurityContext security_context = 2;
}
message ContainerConfig {
  ContainerMetadata metadata = 1;
  ImageSpec image = 2;
  repeated string command = 3;
  repeated string args = 4;
  string working_dir = 5;
  repeated KeyValue envs = 6;
  map<string, string> labels = 9;
  map<string, string> annotations = 10;
  string log_path = 11;
  LinuxContainerConfig linux = 15;
}
message CreateContainerRequest {
  string pod_sandbox_id = 1;
  ContainerConfig config = 2;
  PodSandboxConfig sandbox_config = 3;
}
message CreateContainerResponse { string container_id = 1; }
message StartContainerRequest { string container_id = 1; }
message StartContainerResponse {}
message StopContainerRequest {
  string container_id = 1;
  int64 timeout = 2;
}
message StopContainerResponse {}
message RemoveContainerRequest { string container_id = 1; }
message RemoveContainerResponse {}
enum ContainerState {
  CONTAINER_CREATED = 0;
  CONTAINER_RUNNING = 1;
  CONTAINER_EXITED = 2;
  CONTAINER_UNKNOWN = 3;
}
message ContainerStatusRequest {
  string container_id = 1;
  bool verbose = 2;
}
message ContainerStatus {
  string id = 1;
  ContainerMetadata metadata = 2;
  ContainerState state = 3;
  int64 created_at = 4;
  int64 started_at = 5;
  int64 finished_at = 6;
  int32 exit_code = 7;
  string reason = 10;
  string message = 11;
  string log_path = 15;
}
message ContainerStatusResponse {
  ContainerStatus status = 1;
  map<string, string> info = 2;
}
message ExecSyncRequest {
  string container_id = 1;
  repeated string cmd = 2;
  int64 timeout = 3;
}
message ExecSyncResponse {
  bytes stdout = 1;
  bytes stderr = 2;
  int32 exit_code = 3;
}
"#;

/// `cri.py SOCKET METHOD` with the request as JSON on stdin: prints the
/// response as JSON, or `ERROR <code> <details>` on stderr with exit 2.
const CLIENT_PY: &str = r#"import json, sys
import grpc
from google.protobuf import json_format
import api_pb2

sock, method = sys.argv[1], sys.argv[2]
req_cls = getattr(api_pb2, method + "Request")
resp_cls = getattr(api_pb2, method + "Response")
req = json_format.Parse(sys.stdin.read() or "{}", req_cls())
with grpc.insecure_channel("unix://" + sock) as ch:
    call = ch.unary_unary("/runtime.v1.RuntimeService/" + method,
                          request_serializer=req_cls.SerializeToString,
                          response_deserializer=resp_cls.FromString)
    try:
        resp = call(req, timeout=60)
    except grpc.RpcError as e:
        sys.stderr.write("ERROR %s %s\n" % (e.code().name, e.details()))
        sys.exit(2)
print(json_format.MessageToJson(resp, preserving_proto_field_name=True,
                                including_default_value_fields=True))
"#;

/// The CRI client: the generated module and the script in `dir`.
struct Cri {
    dir: PathBuf,
    sock: String,
}

struct CriOut {
    ok: bool,
    value: Value,
    stderr: String,
}

impl Cri {
    /// None when python3-grpcio/python3-protobuf/protoc are missing.
    fn new(dir: &Path, sock: &str) -> Result<Cri, String> {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("api.proto"), API_PROTO).unwrap();
        fs::write(dir.join("cri.py"), CLIENT_PY).unwrap();
        let protoc = Command::new("protoc")
            .arg(format!("--proto_path={}", dir.display()))
            .arg(format!("--python_out={}", dir.display()))
            .arg(dir.join("api.proto"))
            .output()
            .map_err(|e| format!("protoc (protobuf-compiler): {e}"))?;
        if !protoc.status.success() {
            return Err(format!(
                "protoc failed: {}",
                String::from_utf8_lossy(&protoc.stderr)
            ));
        }
        let probe = Command::new(PYTHON)
            .args(["-c", "import grpc, google.protobuf"])
            .output()
            .map_err(|e| format!("{PYTHON}: {e}"))?;
        if !probe.status.success() {
            return Err(format!(
                "{PYTHON} lacks grpc/protobuf (python3-grpcio, python3-protobuf): {}",
                String::from_utf8_lossy(&probe.stderr).trim()
            ));
        }
        Ok(Cri {
            dir: dir.to_path_buf(),
            sock: sock.to_string(),
        })
    }

    fn try_call(&self, method: &str, request: &str) -> CriOut {
        let mut child = Command::new(PYTHON)
            .arg(self.dir.join("cri.py"))
            .arg(&self.sock)
            .arg(method)
            .env("PYTHONPATH", &self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the CRI client");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(request.as_bytes()).unwrap();
        }
        // The client's own timeout is 60 s; the pipes end with it.
        let out = child.wait_with_output().expect("CRI client output");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        CriOut {
            ok: out.status.success(),
            value: json::from_str(&stdout).unwrap_or(Value::Null),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    fn call(&self, method: &str, request: &str) -> Value {
        let out = self.try_call(method, request);
        assert!(
            out.ok,
            "CRI {method} failed: {}\nrequest: {request}",
            out.stderr.trim()
        );
        out.value
    }
}

fn s(v: &Value, path: &str) -> String {
    match jget(v, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// Run `f` until it returns Some, or fail after `T`.
#[track_caller]
fn poll<R>(what: &str, mut f: impl FnMut() -> Option<R>) -> R {
    let deadline = Instant::now() + T;
    loop {
        if let Some(r) = f() {
            return r;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cri_runs_a_pod_through_the_skiff_handler() {
    let ctx = Ctx::new("shim-cri");
    if !have_containerd() && skip("no containerd/ctr here (scripts/ensure-deps test installs them)")
    {
        return;
    }
    let cri = match Cri::new(
        &ctx.path("cri"),
        &ctx.path("ctd/c.sock").display().to_string(),
    ) {
        Ok(c) => c,
        Err(why) => {
            if skip(&format!(
                "no CRI client: {why} (scripts/ensure-deps test installs it)"
            )) {
                return;
            }
            unreachable!()
        }
    };
    let dir = ctx.path("ctd");
    let runtime_root = dir.join("runtime-root");
    let cgroup_parent = format!("/{}", ctx.mark);
    let runtime = runtime_name();
    // The handler's options: the runc shim's (containerd.runc.v1.Options),
    // else a runtime config file (runtimeoptions.v1.Options.config_path).
    let options = if runtime == "io.containerd.runc.v2" {
        format!(
            "BinaryName = \"/usr/sbin/runc\"\n      Root = \"{}\"",
            runtime_root.display()
        )
    } else {
        fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("runtime.toml");
        fs::write(&conf, format!("root = \"{}\"\n", runtime_root.display())).unwrap();
        format!("ConfigPath = \"{}\"", conf.display())
    };
    let pause = "docker.io/library/skiff-pause:latest";
    let cri_config = format!(
        r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # root here lacks CAP_SYS_RESOURCE: keep oom_score_adj >= our own
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{dir}/cni/bin"
    conf_dir = "{dir}/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "skiff"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.skiff]
      runtime_type = "{runtime}"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.skiff.options]
      {options}
"#,
        dir = dir.display()
    );
    let ctd = Containerd::start_with(
        &ctx,
        Options {
            cri: Some(cri_config),
            namespace: Some("k8s.io".into()),
            cgroup_parent: Some(cgroup_parent.clone()),
            ..Options::default()
        },
    );
    ctd.import_busybox();
    ctd.import_image(
        busybox_rootfs(),
        r#"{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":["/bin/sleep"],"Cmd":["2147483647"]}"#,
        "docker.io/library/skiff-pause",
    );

    let v = cri.call("Version", "{}");
    assert_eq!(s(&v, "runtime_name"), "containerd", "{v:?}");

    let logs = ctx.path("pod-logs");
    fs::create_dir_all(&logs).unwrap();
    let sandbox_config = format!(
        r#"{{"metadata":{{"name":"pod1","uid":"uid-{mark}","namespace":"default","attempt":0}},
            "log_directory":"{logs}",
            "linux":{{"cgroup_parent":"{cgroup_parent}",
                      "security_context":{{"namespace_options":{{"network":"NODE","pid":"CONTAINER","ipc":"POD"}}}}}}}}"#,
        mark = ctx.mark,
        logs = logs.display()
    );
    let sb = cri.call(
        "RunPodSandbox",
        &format!(r#"{{"config":{sandbox_config},"runtime_handler":"skiff"}}"#),
    );
    let sandbox = s(&sb, "pod_sandbox_id");
    assert!(!sandbox.is_empty(), "{sb:?}");
    ctd.track(&sandbox);
    let st = cri.call(
        "PodSandboxStatus",
        &format!(r#"{{"pod_sandbox_id":"{sandbox}"}}"#),
    );
    assert_eq!(s(&st, "status.state"), "SANDBOX_READY", "{st:?}");
    assert_eq!(s(&st, "status.runtime_handler"), "skiff", "{st:?}");
    // The sandbox task runs the pause image through the handler's shim.
    let (pause_pid, _) = ctd
        .task_status(&sandbox)
        .unwrap_or_else(|| panic!("no task for the sandbox {sandbox}"));
    ctd.track_pid(pause_pid);
    assert_eq!(proc_cmdline(pause_pid), "/bin/sleep 2147483647");
    let shims = ctd.shim_pids();
    assert!(!shims.is_empty(), "no shim process of this containerd");
    let shim_exe = fs::read_link(format!("/proc/{}/exe", shims[0])).unwrap();
    eprintln!("shim: {} ({})", shim_exe.display(), proc_cmdline(shims[0]));

    let container_config = format!(
        r#"{{"metadata":{{"name":"c1","attempt":0}},
            "image":{{"image":"{IMAGE}"}},
            "command":["sh","-c","trap 'echo got-term; exit 5' TERM; echo hello-cri; echo err-cri >&2; while :; do sleep 0.1; done"],
            "log_path":"c1/0.log",
            "linux":{{"security_context":{{"namespace_options":{{"network":"NODE","pid":"CONTAINER","ipc":"POD"}}}}}}}}"#
    );
    let c = cri.call(
        "CreateContainer",
        &format!(
            r#"{{"pod_sandbox_id":"{sandbox}","config":{container_config},"sandbox_config":{sandbox_config}}}"#
        ),
    );
    let cid = s(&c, "container_id");
    assert!(!cid.is_empty(), "{c:?}");
    ctd.track(&cid);
    cri.call("StartContainer", &format!(r#"{{"container_id":"{cid}"}}"#));
    let status = |cid: &str| cri.call("ContainerStatus", &format!(r#"{{"container_id":"{cid}"}}"#));
    let st = status(&cid);
    assert_eq!(s(&st, "status.state"), "CONTAINER_RUNNING", "{st:?}");
    let (pid, _) = ctd.task_status(&cid).expect("container task");
    ctd.track_pid(pid);

    // The log, in the CRI format: TIMESTAMP STREAM TAG MESSAGE.
    let log = logs.join("c1/0.log");
    let text = poll("the container log", || {
        let t = fs::read_to_string(&log).unwrap_or_default();
        (t.contains("hello-cri") && t.contains("err-cri")).then_some(t)
    });
    for (stream, msg) in [("stdout", "hello-cri"), ("stderr", "err-cri")] {
        assert!(
            text.lines().any(|l| {
                let f: Vec<&str> = l.splitn(4, ' ').collect();
                f.len() == 4 && f[1] == stream && f[2] == "F" && f[3] == msg
            }),
            "no {stream} line {msg:?} in {}:\n{text}",
            log.display()
        );
    }

    // ExecSync: an exec through the shim, its output and exit code.
    let ex = cri.call(
        "ExecSync",
        &format!(
            r#"{{"container_id":"{cid}","cmd":["sh","-c","echo exec-out; echo exec-err >&2; exit 4"],"timeout":20}}"#
        ),
    );
    assert_eq!(s(&ex, "exit_code"), "4", "{ex:?}");
    // bytes fields come base64-encoded in JSON.
    assert_eq!(s(&ex, "stdout"), "ZXhlYy1vdXQK", "{ex:?}"); // "exec-out\n"
    assert_eq!(s(&ex, "stderr"), "ZXhlYy1lcnIK", "{ex:?}"); // "exec-err\n"

    // Stop: SIGTERM, the trap exits 5.
    cri.call(
        "StopContainer",
        &format!(r#"{{"container_id":"{cid}","timeout":20}}"#),
    );
    let st = poll("the container to exit", || {
        let st = status(&cid);
        (s(&st, "status.state") == "CONTAINER_EXITED").then_some(st)
    });
    assert_eq!(s(&st, "status.exit_code"), "5", "{st:?}");
    poll("got-term in the log", || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("got-term")
            .then_some(())
    });
    cri.call("RemoveContainer", &format!(r#"{{"container_id":"{cid}"}}"#));
    let gone = cri.try_call("ContainerStatus", &format!(r#"{{"container_id":"{cid}"}}"#));
    assert!(
        !gone.ok && gone.stderr.contains("NOT_FOUND"),
        "status of a removed container: {} {:?}",
        gone.stderr,
        gone.value
    );
    ctd.assert_gone(&cid);

    cri.call(
        "StopPodSandbox",
        &format!(r#"{{"pod_sandbox_id":"{sandbox}"}}"#),
    );
    let st = cri.call(
        "PodSandboxStatus",
        &format!(r#"{{"pod_sandbox_id":"{sandbox}"}}"#),
    );
    assert_eq!(s(&st, "status.state"), "SANDBOX_NOTREADY", "{st:?}");
    cri.call(
        "RemovePodSandbox",
        &format!(r#"{{"pod_sandbox_id":"{sandbox}"}}"#),
    );
    let gone = cri.try_call(
        "PodSandboxStatus",
        &format!(r#"{{"pod_sandbox_id":"{sandbox}"}}"#),
    );
    assert!(
        !gone.ok && gone.stderr.contains("NOT_FOUND"),
        "status of a removed sandbox: {} {:?}",
        gone.stderr,
        gone.value
    );
    ctd.assert_gone(&sandbox);
    assert!(
        ctd.shim_pids().is_empty(),
        "shims left: {:?}",
        ctd.shim_pids()
    );
    let cgroups = CgroupDirs::existing(&format!("{cgroup_parent}/{sandbox}"));
    assert!(cgroups.is_empty(), "sandbox cgroups left: {cgroups:?}");
    // Drop: the instance checks that nothing else is left (sockets,
    // mounts such as the sandbox's /dev/shm, cgroups, processes).
}
