//! OCI formats: the runtime spec's config.json and state.
pub mod resources;
pub mod spec;
