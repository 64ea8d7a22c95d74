//! containerd.services.diff.v1.Diff (api/services/diff/v1/diff.proto):
//! Apply (a layer onto mounts), Diff (mounts into a layer).

use crate::proto::types::{Any, Descriptor, Mount};
use std::collections::BTreeMap;

pub const SERVICE: &str = "containerd.services.diff.v1.Diff";

#[derive(Clone, PartialEq, prost::Message)]
pub struct ApplyRequest {
    #[prost(message, optional, tag = "1")]
    pub diff: Option<Descriptor>,
    #[prost(message, repeated, tag = "2")]
    pub mounts: Vec<Mount>,
    #[prost(btree_map = "string, message", tag = "3")]
    pub payloads: BTreeMap<String, Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ApplyResponse {
    #[prost(message, optional, tag = "1")]
    pub applied: Option<Descriptor>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DiffRequest {
    #[prost(message, repeated, tag = "1")]
    pub left: Vec<Mount>,
    #[prost(message, repeated, tag = "2")]
    pub right: Vec<Mount>,
    #[prost(string, tag = "3")]
    pub media_type: String,
    #[prost(string, tag = "4")]
    pub r#ref: String,
    #[prost(btree_map = "string, string", tag = "5")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DiffResponse {
    #[prost(message, optional, tag = "3")]
    pub diff: Option<Descriptor>,
}
