//! Starting and cleaning up shims the way containerd does (shim v2
//! protocol): `SHIM -namespace NS -address A -publish-binary EXE -id ID
//! start` in the bundle, `TTRPC_ADDRESS` in the environment, the runtime
//! options `Any` on stdin; the address it prints is then dialled. `delete`
//! (the bundle given) cleans up after a shim that died.

use crate::error::{Context, Error, Result};
use crate::proto::task::DeleteResponse;
use crate::proto::types::Any;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// skiff's own runtime name: this binary as `containerd-shim-skiff-v2`.
pub const SKIFF_RUNTIME: &str = "io.containerd.skiff.v2";

/// How to run one runtime's shim binary.
pub struct Binary {
    path: PathBuf,
    /// argv[0] when it differs from `path` (skiff's multi-call binary).
    arg0: Option<String>,
}

/// The shim binary of a runtime name: `io.containerd.skiff.v2` is this
/// binary; an absolute path is used as is; otherwise
/// `io.containerd.X.vN` → `containerd-shim-X-vN` looked up in PATH (then
/// beside this binary), as containerd resolves it.
pub fn binary(runtime: &str) -> Result<Binary> {
    if runtime == SKIFF_RUNTIME {
        return Ok(Binary {
            path: self_exe()?,
            arg0: Some("containerd-shim-skiff-v2".into()),
        });
    }
    if runtime.starts_with('/') {
        return Ok(Binary {
            path: runtime.into(),
            arg0: None,
        });
    }
    let parts: Vec<&str> = runtime.split('.').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(crate::err_kind!(
            InvalidArgument,
            "runtime {runtime:?}: not a runtime name (io.containerd.NAME.vN)"
        ));
    }
    let name = format!(
        "containerd-shim-{}-{}",
        parts[parts.len() - 2],
        parts[parts.len() - 1]
    );
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let beside = self_exe()?.parent().map(Path::to_path_buf);
    std::env::split_paths(&path_var)
        .chain(beside)
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
        .map(|path| Binary { path, arg0: None })
        .ok_or_else(|| {
            crate::err_kind!(
                NotFound,
                "runtime {runtime:?}: shim binary {name} not found in PATH"
            )
        })
}

fn self_exe() -> Result<PathBuf> {
    std::env::current_exe().context("find the daemon's own binary")
}

/// What every shim command gets.
pub struct Invocation<'a> {
    pub namespace: &'a str,
    pub id: &'a str,
    pub bundle: &'a Path,
    /// The daemon's gRPC address (`-address`, GRPC_ADDRESS); its ttrpc
    /// socket beside it is TTRPC_ADDRESS, as containerd passes them.
    pub address: &'a str,
    pub debug: bool,
}

impl Binary {
    fn command(&self, inv: &Invocation, with_bundle: bool) -> Result<Command> {
        let mut cmd = Command::new(&self.path);
        if let Some(a) = &self.arg0 {
            std::os::unix::process::CommandExt::arg0(&mut cmd, a);
        }
        let exe = self_exe()?;
        cmd.args(["-namespace", inv.namespace, "-address", inv.address])
            .arg("-publish-binary")
            .arg(&exe)
            .args(["-id", inv.id]);
        if with_bundle {
            cmd.arg("-bundle").arg(inv.bundle);
        }
        if inv.debug {
            cmd.arg("-debug");
        }
        cmd.current_dir(inv.bundle)
            .env("TTRPC_ADDRESS", super::ttrpc_address(inv.address))
            .env("GRPC_ADDRESS", inv.address)
            .env("NAMESPACE", inv.namespace)
            .env("MAX_SHIM_VERSION", "2");
        Ok(cmd)
    }

    /// Start the shim; its ttrpc address.
    pub fn start(&self, inv: &Invocation, options: Option<&Any>) -> Result<String> {
        let what = || {
            format!(
                "start shim {} for {}/{}",
                self.path.display(),
                inv.namespace,
                inv.id
            )
        };
        let mut cmd = self.command(inv, false).with_context(what)?;
        cmd.arg("start")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(what)?;
        let input = options
            .map(prost::Message::encode_to_vec)
            .unwrap_or_default();
        if let Some(mut stdin) = child.stdin.take() {
            // A shim that does not read its options closes the pipe early.
            let _ = stdin.write_all(&input);
        }
        let out = wait_bounded(child, START_TIMEOUT).with_context(what)?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(Error::new(format!(
                "{}: {}: {} {}",
                what(),
                out.status,
                err,
                text
            )));
        }
        parse_start_output(&text)
            .ok_or_else(|| Error::new(format!("{}: no address in its output {text:?}", what())))
    }

    /// `shim delete`: clean up after a shim that is gone; the exit it recorded.
    pub fn delete(&self, inv: &Invocation) -> Result<DeleteResponse> {
        let what = || format!("shim delete {}/{}", inv.namespace, inv.id);
        let mut cmd = self.command(inv, true).with_context(what)?;
        let out = cmd
            .arg("delete")
            .stdin(Stdio::null())
            .output()
            .with_context(what)?;
        if !out.status.success() {
            return Err(Error::new(format!(
                "{}: {}: {}",
                what(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        <DeleteResponse as prost::Message>::decode(out.stdout.as_slice())
            .map_err(|e| Error::new(format!("{}: its answer: {e}", what())))
    }
}

/// How long `shim start` may take before it is killed.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `wait_with_output`, but a child still running after `limit` is killed.
fn wait_bounded(
    child: std::process::Child,
    limit: std::time::Duration,
) -> std::io::Result<std::process::Output> {
    let pid = rustix::process::Pid::from_child(&child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out,
        Err(_) => {
            // Not reaped yet (the waiting thread holds it): the pid is still ours.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let _ = rx.recv_timeout(std::time::Duration::from_secs(2));
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("did not finish within {}s: killed", limit.as_secs()),
            ))
        }
    }
}

/// A plain address (1.6 shims), or containerd 1.7's JSON
/// `{"version":2,"address":…,"protocol":"ttrpc"}`.
fn parse_start_output(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    if !text.starts_with('{') {
        return Some(text.to_string());
    }
    let v = crate::json::parse(text, "shim start output").ok()?;
    let n = crate::json::Node::new(&v, "");
    let proto = n
        .get("protocol")
        .ok()
        .flatten()
        .and_then(|p| p.string().ok());
    if proto.is_some_and(|p| p != "ttrpc") {
        return None;
    }
    n.get("address").ok().flatten()?.string().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_output_plain_or_json() {
        assert_eq!(
            parse_start_output("unix:///run/containerd/s/ab").as_deref(),
            Some("unix:///run/containerd/s/ab")
        );
        assert_eq!(
            parse_start_output(r#"{"version":2,"address":"unix:///x","protocol":"ttrpc"}"#)
                .as_deref(),
            Some("unix:///x")
        );
        assert_eq!(
            parse_start_output(r#"{"version":3,"address":"unix:///x","protocol":"grpc"}"#),
            None
        );
        assert_eq!(parse_start_output(""), None);
    }

    #[test]
    fn runtime_names_map_to_binaries() {
        assert!(binary("io.containerd.skiff.v2").unwrap().arg0.is_some());
        assert_eq!(
            binary("/bin/true").unwrap().path,
            PathBuf::from("/bin/true")
        );
        let e = binary("io.containerd.nosuchruntime.v9").err().unwrap();
        assert!(
            e.message().contains("containerd-shim-nosuchruntime-v9"),
            "{e}"
        );
    }
}
