//! containerd.services.tasks.v1.Tasks (api/services/tasks/v1/tasks.proto)
//! and containerd.v1.types.Process/ProcessInfo (api/types/task/task.proto).
//! Kill, Exec, ResizePty, CloseIO, Pause, Resume and Update answer Empty.

use crate::proto::types::{Any, Descriptor, Mount, Timestamp};
use std::collections::BTreeMap;

pub const SERVICE: &str = "containerd.services.tasks.v1.Tasks";

/// containerd.v1.types.Status values (same as the shim's).
pub use crate::proto::task::status;

/// containerd.v1.types.Process and ProcessInfo: the same messages the
/// shim API uses.
pub use crate::proto::task::{Process, ProcessInfo};

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateTaskRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    // 2 is not used.
    #[prost(message, repeated, tag = "3")]
    pub rootfs: Vec<Mount>,
    #[prost(string, tag = "4")]
    pub stdin: String,
    #[prost(string, tag = "5")]
    pub stdout: String,
    #[prost(string, tag = "6")]
    pub stderr: String,
    #[prost(bool, tag = "7")]
    pub terminal: bool,
    #[prost(message, optional, tag = "8")]
    pub checkpoint: Option<Descriptor>,
    #[prost(message, optional, tag = "9")]
    pub options: Option<Any>,
    #[prost(string, tag = "10")]
    pub runtime_path: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateTaskResponse {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(uint32, tag = "2")]
    pub pid: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StartRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StartResponse {
    #[prost(uint32, tag = "1")]
    pub pid: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteTaskRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteResponse {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(uint32, tag = "2")]
    pub pid: u32,
    #[prost(uint32, tag = "3")]
    pub exit_status: u32,
    #[prost(message, optional, tag = "4")]
    pub exited_at: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteProcessRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetResponse {
    #[prost(message, optional, tag = "1")]
    pub process: Option<Process>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListTasksRequest {
    #[prost(string, tag = "1")]
    pub filter: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListTasksResponse {
    #[prost(message, repeated, tag = "1")]
    pub tasks: Vec<Process>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KillRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(uint32, tag = "3")]
    pub signal: u32,
    #[prost(bool, tag = "4")]
    pub all: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecProcessRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub stdin: String,
    #[prost(string, tag = "3")]
    pub stdout: String,
    #[prost(string, tag = "4")]
    pub stderr: String,
    #[prost(bool, tag = "5")]
    pub terminal: bool,
    /// The OCI Process as JSON.
    #[prost(message, optional, tag = "6")]
    pub spec: Option<Any>,
    #[prost(string, tag = "7")]
    pub exec_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResizePtyRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(uint32, tag = "3")]
    pub width: u32,
    #[prost(uint32, tag = "4")]
    pub height: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CloseIoRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(bool, tag = "3")]
    pub stdin: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PauseTaskRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResumeTaskRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPidsRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPidsResponse {
    #[prost(message, repeated, tag = "1")]
    pub processes: Vec<ProcessInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateTaskRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(message, optional, tag = "2")]
    pub resources: Option<Any>,
    #[prost(btree_map = "string, string", tag = "3")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricsRequest {
    #[prost(string, repeated, tag = "1")]
    pub filters: Vec<String>,
}

/// containerd.types.Metric (api/types/metrics.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub id: String,
    #[prost(message, optional, tag = "3")]
    pub data: Option<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricsResponse {
    #[prost(message, repeated, tag = "1")]
    pub metrics: Vec<Metric>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WaitRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
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
