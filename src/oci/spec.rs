//! The OCI runtime config (config.json).
