//! Task events a shim publishes (containerd api/events/task.proto) and the
//! envelope they travel in to containerd's
//! `containerd.services.events.ttrpc.v1.Events/Forward`
//! (api/services/ttrpc/events/v1/events.proto; 2.x moves the Envelope to
//! `containerd.types.Envelope` with the same numbers).

use super::types::{Any, Mount, Timestamp};

/// The ttrpc service and method a shim forwards events to.
pub const EVENTS_SERVICE: &str = "containerd.services.events.ttrpc.v1.Events";
pub const FORWARD_METHOD: &str = "Forward";

/// Topics (containerd runtime/events.go).
pub mod topic {
    pub const TASK_CREATE: &str = "/tasks/create";
    pub const TASK_START: &str = "/tasks/start";
    pub const TASK_OOM: &str = "/tasks/oom";
    pub const TASK_EXIT: &str = "/tasks/exit";
    pub const TASK_DELETE: &str = "/tasks/delete";
    pub const TASK_EXEC_ADDED: &str = "/tasks/exec-added";
    pub const TASK_EXEC_STARTED: &str = "/tasks/exec-started";
    pub const TASK_PAUSED: &str = "/tasks/paused";
    pub const TASK_RESUMED: &str = "/tasks/resumed";
    pub const TASK_CHECKPOINTED: &str = "/tasks/checkpointed";
}

/// Type names for an event's Any: bare names, which is what ctr 1.6 decodes.
pub const TASK_CREATE: &str = "containerd.events.TaskCreate";
pub const TASK_START: &str = "containerd.events.TaskStart";
pub const TASK_DELETE: &str = "containerd.events.TaskDelete";
pub const TASK_EXIT: &str = "containerd.events.TaskExit";
pub const TASK_OOM: &str = "containerd.events.TaskOOM";
pub const TASK_EXEC_ADDED: &str = "containerd.events.TaskExecAdded";
pub const TASK_EXEC_STARTED: &str = "containerd.events.TaskExecStarted";
pub const TASK_PAUSED: &str = "containerd.events.TaskPaused";
pub const TASK_RESUMED: &str = "containerd.events.TaskResumed";
pub const TASK_CHECKPOINTED: &str = "containerd.events.TaskCheckpointed";

/// Wrap an encoded message in an Any named `type_name`.
pub fn any<M: prost::Message>(type_name: &str, m: &M) -> Any {
    Any {
        type_url: type_name.to_string(),
        value: m.encode_to_vec(),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ForwardRequest {
    #[prost(message, optional, tag = "1")]
    pub envelope: Option<Envelope>,
}

/// containerd refuses an envelope without a timestamp (InvalidArgument).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub namespace: String,
    #[prost(string, tag = "3")]
    pub topic: String,
    #[prost(message, optional, tag = "4")]
    pub event: Option<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskCreate {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub bundle: String,
    #[prost(message, repeated, tag = "3")]
    pub rootfs: Vec<Mount>,
    #[prost(message, optional, tag = "4")]
    pub io: Option<TaskIo>,
    #[prost(string, tag = "5")]
    pub checkpoint: String,
    #[prost(uint32, tag = "6")]
    pub pid: u32,
}

/// containerd.events.TaskIO, the `io` of a TaskCreate.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskIo {
    #[prost(string, tag = "1")]
    pub stdin: String,
    #[prost(string, tag = "2")]
    pub stdout: String,
    #[prost(string, tag = "3")]
    pub stderr: String,
    #[prost(bool, tag = "4")]
    pub terminal: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskStart {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(uint32, tag = "2")]
    pub pid: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskDelete {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(uint32, tag = "2")]
    pub pid: u32,
    #[prost(uint32, tag = "3")]
    pub exit_status: u32,
    #[prost(message, optional, tag = "4")]
    pub exited_at: Option<Timestamp>,
    #[prost(string, tag = "5")]
    pub id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskExit {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub id: String,
    #[prost(uint32, tag = "3")]
    pub pid: u32,
    #[prost(uint32, tag = "4")]
    pub exit_status: u32,
    #[prost(message, optional, tag = "5")]
    pub exited_at: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskOom {
    #[prost(string, tag = "1")]
    pub container_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskExecAdded {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskExecStarted {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(uint32, tag = "3")]
    pub pid: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskPaused {
    #[prost(string, tag = "1")]
    pub container_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskResumed {
    #[prost(string, tag = "1")]
    pub container_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskCheckpointed {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub checkpoint: String,
}
