//! The shim's task service, `containerd.task.v2.Task` (containerd
//! runtime/v2/task/shim.proto @1.6; `containerd.task.v3.Task` in 2.x has the
//! same messages and numbers) and the process types it uses
//! (api/types/task/task.proto).

use super::types::{Any, Mount, Timestamp};
use std::collections::BTreeMap;

/// The service names containerd calls a shim by.
pub const SERVICE_V2: &str = "containerd.task.v2.Task";
pub const SERVICE_V3: &str = "containerd.task.v3.Task";

/// containerd.v1.types.Status, the state of a process (an enum on the wire,
/// carried as i32).
pub mod status {
    pub const UNKNOWN: i32 = 0;
    pub const CREATED: i32 = 1;
    pub const RUNNING: i32 = 2;
    pub const STOPPED: i32 = 3;
    pub const PAUSED: i32 = 4;
    pub const PAUSING: i32 = 5;
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateTaskRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub bundle: String,
    #[prost(message, repeated, tag = "3")]
    pub rootfs: Vec<Mount>,
    #[prost(bool, tag = "4")]
    pub terminal: bool,
    #[prost(string, tag = "5")]
    pub stdin: String,
    #[prost(string, tag = "6")]
    pub stdout: String,
    #[prost(string, tag = "7")]
    pub stderr: String,
    #[prost(string, tag = "8")]
    pub checkpoint: String,
    #[prost(string, tag = "9")]
    pub parent_checkpoint: String,
    #[prost(message, optional, tag = "10")]
    pub options: Option<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateTaskResponse {
    #[prost(uint32, tag = "1")]
    pub pid: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
}

/// Also what `SHIM … delete` prints on stdout.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteResponse {
    #[prost(uint32, tag = "1")]
    pub pid: u32,
    #[prost(uint32, tag = "2")]
    pub exit_status: u32,
    #[prost(message, optional, tag = "3")]
    pub exited_at: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecProcessRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(bool, tag = "3")]
    pub terminal: bool,
    #[prost(string, tag = "4")]
    pub stdin: String,
    #[prost(string, tag = "5")]
    pub stdout: String,
    #[prost(string, tag = "6")]
    pub stderr: String,
    /// The OCI process spec (JSON) as `types.containerd.io/opencontainers/runtime-spec/1/Process`.
    #[prost(message, optional, tag = "7")]
    pub spec: Option<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecProcessResponse {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResizePtyRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(uint32, tag = "3")]
    pub width: u32,
    #[prost(uint32, tag = "4")]
    pub height: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StateRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StateResponse {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub bundle: String,
    #[prost(uint32, tag = "3")]
    pub pid: u32,
    /// One of [`status`].
    #[prost(int32, tag = "4")]
    pub status: i32,
    #[prost(string, tag = "5")]
    pub stdin: String,
    #[prost(string, tag = "6")]
    pub stdout: String,
    #[prost(string, tag = "7")]
    pub stderr: String,
    #[prost(bool, tag = "8")]
    pub terminal: bool,
    #[prost(uint32, tag = "9")]
    pub exit_status: u32,
    #[prost(message, optional, tag = "10")]
    pub exited_at: Option<Timestamp>,
    #[prost(string, tag = "11")]
    pub exec_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KillRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(uint32, tag = "3")]
    pub signal: u32,
    #[prost(bool, tag = "4")]
    pub all: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CloseIoRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(bool, tag = "3")]
    pub stdin: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PidsRequest {
    #[prost(string, tag = "1")]
    pub id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PidsResponse {
    #[prost(message, repeated, tag = "1")]
    pub processes: Vec<ProcessInfo>,
}

/// containerd.v1.types.Process: a process as the daemon's task service
/// lists it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Process {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub id: String,
    #[prost(uint32, tag = "3")]
    pub pid: u32,
    /// One of [`status`].
    #[prost(int32, tag = "4")]
    pub status: i32,
    #[prost(string, tag = "5")]
    pub stdin: String,
    #[prost(string, tag = "6")]
    pub stdout: String,
    #[prost(string, tag = "7")]
    pub stderr: String,
    #[prost(bool, tag = "8")]
    pub terminal: bool,
    #[prost(uint32, tag = "9")]
    pub exit_status: u32,
    #[prost(message, optional, tag = "10")]
    pub exited_at: Option<Timestamp>,
}

/// containerd.v1.types.ProcessInfo; runc's shim puts
/// `containerd.runc.v1.ProcessDetails{exec_id}` in `info` for exec'd pids.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProcessInfo {
    #[prost(uint32, tag = "1")]
    pub pid: u32,
    #[prost(message, optional, tag = "2")]
    pub info: Option<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckpointTaskRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub path: String,
    #[prost(message, optional, tag = "3")]
    pub options: Option<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateTaskRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    /// The OCI LinuxResources (JSON) in an Any.
    #[prost(message, optional, tag = "2")]
    pub resources: Option<Any>,
    #[prost(btree_map = "string, string", tag = "3")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StartRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StartResponse {
    #[prost(uint32, tag = "1")]
    pub pid: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WaitRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WaitResponse {
    #[prost(uint32, tag = "1")]
    pub exit_status: u32,
    #[prost(message, optional, tag = "2")]
    pub exited_at: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StatsRequest {
    #[prost(string, tag = "1")]
    pub id: String,
}

/// `stats` is an Any of cgroups' metrics (`io.containerd.cgroups.v1.Metrics`
/// or `io.containerd.cgroups.v2.Metrics`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatsResponse {
    #[prost(message, optional, tag = "1")]
    pub stats: Option<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectRequest {
    #[prost(string, tag = "1")]
    pub id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectResponse {
    #[prost(uint32, tag = "1")]
    pub shim_pid: u32,
    #[prost(uint32, tag = "2")]
    pub task_pid: u32,
    #[prost(string, tag = "3")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ShutdownRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(bool, tag = "2")]
    pub now: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PauseRequest {
    #[prost(string, tag = "1")]
    pub id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResumeRequest {
    #[prost(string, tag = "1")]
    pub id: String,
}
