//! OCI formats: the runtime spec's config.json and state.
pub mod default_config;
pub mod resources;
pub mod spec;
