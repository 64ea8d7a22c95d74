//! containerd.services.introspection.v1.Introspection
//! (api/services/introspection/v1/introspection.proto): Plugins, Server.

use crate::proto::types::{Platform, RpcStatus};
use std::collections::BTreeMap;

pub const SERVICE: &str = "containerd.services.introspection.v1.Introspection";

#[derive(Clone, PartialEq, prost::Message)]
pub struct Plugin {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub id: String,
    #[prost(string, repeated, tag = "3")]
    pub requires: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub platforms: Vec<Platform>,
    #[prost(btree_map = "string, string", tag = "5")]
    pub exports: BTreeMap<String, String>,
    #[prost(string, repeated, tag = "6")]
    pub capabilities: Vec<String>,
    #[prost(message, optional, tag = "7")]
    pub init_err: Option<RpcStatus>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginsRequest {
    #[prost(string, repeated, tag = "1")]
    pub filters: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginsResponse {
    #[prost(message, repeated, tag = "1")]
    pub plugins: Vec<Plugin>,
}

/// Server answers Empty requests with this.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerResponse {
    #[prost(string, tag = "1")]
    pub uuid: String,
    #[prost(uint64, tag = "2")]
    pub pid: u64,
    #[prost(uint64, tag = "3")]
    pub pidns: u64,
}
