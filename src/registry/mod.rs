//! The OCI distribution client: references, authentication, HTTP.

pub mod auth;
pub mod client;
pub mod hosts;
pub mod reference;

pub use client::{Client, Mirror, Options};
pub use reference::Reference;
