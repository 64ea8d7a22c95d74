//! Containers as `ctr run` and `ctr containers create` make them: the
//! record with its OCI spec built from the image config and ctr's flags,
//! and the process spec of `tasks exec`.

use super::client::Conn;
use super::flags::Parsed;
use super::{format, objects, user};
use crate::error::{Error, Kind, Result};
use crate::image::digest::Digest;
use crate::proto::services::{containers, snapshots};
use crate::proto::types::Any;
use crate::ttrpc::{Code, Status};

/// The runtime a container gets without `--runtime`.
pub const DEFAULT_RUNTIME: &str = "io.containerd.skiff.v2";

/// `run IMAGE ID [CMD...]`/`c create`: the container record with its spec
/// (the daemon prepares the snapshot from the image, as ctr's
/// Snapshots.Prepare would).
pub fn create(conn: &Conn, p: &Parsed) -> Result<containers::Container> {
    let reference = p
        .args
        .first()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::of(Kind::InvalidArgument, "image ref must be provided"))?;
    let id = p
        .args
        .get(1)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::of(Kind::InvalidArgument, "container id must be provided"))?;
    let image = objects::get_image(conn, reference)?;
    let target = image.target.clone().unwrap_or_default();
    let config = objects::image_facts(conn, &target)
        .and_then(|f| f.config)
        .ok_or_else(|| {
            Error::of(
                Kind::NotFound,
                format!("image \"{reference}\": content is missing (pull it again)"),
            )
        })?;
    let spec = build_spec(conn, p, id, &config)?;
    let prepared = prepare_snapshot(conn, p.get("snapshotter").unwrap_or(""), id, &config)?;
    let mut labels = format::key_values(&p.all("label"));
    labels
        .entry("io.containerd.image.config.stop-signal".into())
        .or_insert_with(|| "SIGTERM".into());
    let container = containers::Container {
        id: id.clone(),
        labels,
        image: image.name.clone(),
        runtime: Some(containers::Runtime {
            name: p.get("runtime").unwrap_or(DEFAULT_RUNTIME).to_string(),
            options: None,
        }),
        spec: Some(Any {
            type_url: crate::daemon::spec::SPEC_TYPE_URL.into(),
            value: spec,
        }),
        snapshotter: prepared.snapshotter.clone(),
        snapshot_key: id.clone(),
        ..Default::default()
    };
    let r: std::result::Result<containers::CreateContainerResponse, Status> = conn.call(
        containers::SERVICE,
        "Create",
        &containers::CreateContainerRequest {
            container: Some(container.clone()),
        },
    );
    if r.is_err() && prepared.by_us {
        // Nothing half-made: the snapshot prepared for it goes again.
        let _: std::result::Result<crate::proto::types::Empty, Status> = conn.call(
            snapshots::SERVICE,
            "Remove",
            &snapshots::RemoveSnapshotRequest {
                snapshotter: prepared.snapshotter.clone(),
                key: id.clone(),
            },
        );
    }
    let created = match r {
        Ok(r) => r.container.unwrap_or(container),
        Err(s) if s.code == Code::AlreadyExists => {
            return Err(Error::of(
                Kind::AlreadyExists,
                format!("container \"{id}\": already exists"),
            ))
        }
        Err(s) => return Err(s.into()),
    };
    match p.get("user") {
        None => Ok(created),
        Some(spec) => apply_user(conn, &created, spec).inspect_err(|_| {
            // Nothing half-made: the container goes again.
            let _ = objects::delete_container(conn, id, true);
        }),
    }
}

/// Remove a container this command made and whose task it deleted (`run
/// --rm`): its snapshot, then its record, as
/// [`objects::delete_container`] does but without looking up what the
/// caller knows (the container, and that no task is left).
pub fn remove_made(conn: &Conn, c: &containers::Container) -> Result<()> {
    if !c.snapshot_key.is_empty() {
        let r: std::result::Result<crate::proto::types::Empty, Status> = conn.call(
            snapshots::SERVICE,
            "Remove",
            &snapshots::RemoveSnapshotRequest {
                snapshotter: c.snapshotter.clone(),
                key: c.snapshot_key.clone(),
            },
        );
        match r {
            Ok(_) => {}
            Err(s) if s.code == Code::NotFound => {}
            Err(s) => return Err(s.into()),
        }
    }
    let _: crate::proto::types::Empty = conn.call(
        containers::SERVICE,
        "Delete",
        &containers::DeleteContainerRequest { id: c.id.clone() },
    )?;
    Ok(())
}

/// The mounts of the container's snapshot, for Tasks.Create: containerd
/// mounts the rootfs its client names (skiff's daemon would look them up
/// itself).
pub fn rootfs(conn: &Conn, c: &containers::Container) -> Result<Vec<crate::proto::types::Mount>> {
    if c.snapshot_key.is_empty() {
        return Ok(Vec::new());
    }
    let r: snapshots::MountsResponse = conn.call(
        snapshots::SERVICE,
        "Mounts",
        &snapshots::MountsRequest {
            snapshotter: c.snapshotter.clone(),
            key: c.snapshot_key.clone(),
        },
    )?;
    Ok(r.mounts)
}

/// containerd's ctr default snapshotter, for a server that picks none
/// itself (containerd rejects an empty name; skiff's daemon resolves it).
const CTR_DEFAULT_SNAPSHOTTER: &str = "overlayfs";

/// The container's snapshot as [`prepare_snapshot`] left it.
struct PreparedSnapshot {
    /// The snapshotter to record on the container ("" = the daemon's default).
    snapshotter: String,
    /// Whether this call made it (then a failed Create removes it).
    by_us: bool,
}

/// Prepare the container's snapshot (key = its id) on the image's top
/// layer, as containerd's ctr does client-side: containerd itself never
/// prepares one. skiff's daemon would (it unpacks a not yet unpacked
/// image then), so a missing parent is left to it when it is the server.
fn prepare_snapshot(
    conn: &Conn,
    snapshotter: &str,
    id: &str,
    config: &crate::image::oci::ImageConfig,
) -> Result<PreparedSnapshot> {
    let diff_ids = config
        .diff_ids
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<Result<Vec<_>>>()?;
    let parent = crate::metadata::unpack::chain_ids(&diff_ids)
        .last()
        .map(|d| d.to_string())
        .unwrap_or_default();
    let prepare = |name: &str| -> std::result::Result<snapshots::PrepareSnapshotResponse, Status> {
        conn.call(
            snapshots::SERVICE,
            "Prepare",
            &snapshots::PrepareSnapshotRequest {
                snapshotter: name.to_string(),
                key: id.to_string(),
                parent: parent.clone(),
                ..Default::default()
            },
        )
    };
    let mut name = snapshotter.to_string();
    let mut r = prepare(&name);
    if name.is_empty() && matches!(&r, Err(s) if s.code == Code::InvalidArgument) {
        name = CTR_DEFAULT_SNAPSHOTTER.to_string();
        r = prepare(&name);
    }
    let resolved = name != snapshotter;
    match r {
        Ok(_) => Ok(PreparedSnapshot {
            snapshotter: name,
            by_us: true,
        }),
        // The container (and its snapshot) exist: Create says so.
        Err(s) if s.code == Code::AlreadyExists => Ok(PreparedSnapshot {
            snapshotter: name,
            by_us: false,
        }),
        Err(s) if s.code == Code::NotFound && !resolved => Ok(PreparedSnapshot {
            snapshotter: name,
            by_us: false,
        }),
        Err(s) if s.code == Code::NotFound => Err(Error::of(
            Kind::NotFound,
            format!(
                "image is not unpacked in snapshotter {name:?} (parent snapshot {parent}): {}",
                s.message
            ),
        )),
        Err(s) => Err(s.into()),
    }
}

fn build_spec(
    conn: &Conn,
    p: &Parsed,
    id: &str,
    config: &crate::image::oci::ImageConfig,
) -> Result<Vec<u8>> {
    use crate::daemon::spec::{build, MountSpec, SpecOptions};
    let mounts = p
        .all("mount")
        .iter()
        .map(|m| MountSpec::parse(m))
        .collect::<Result<Vec<_>>>()?;
    let number = |name: &str| -> Result<Option<f64>> {
        p.get(name)
            .map(|v| {
                v.parse::<f64>().map_err(|_| {
                    Error::of(
                        Kind::InvalidArgument,
                        format!("invalid value {v:?} for flag -{name}: parse error"),
                    )
                })
            })
            .transpose()
    };
    let opts = SpecOptions {
        args: (p.args.len() > 2).then(|| p.args[2..].to_vec()),
        env: p.all("env").iter().map(|s| s.to_string()).collect(),
        cwd: p.get("cwd").map(str::to_string),
        // Resolved after the snapshot exists (see apply_user); root
        // until then.
        user: p.get("user").map(|_| "0:0".to_string()),
        terminal: p.bool("tty"),
        read_only: p.bool("read-only"),
        net_host: p.bool("net-host"),
        memory_limit: number("memory-limit")?.map(|n| n as u64),
        cpus: number("cpus")?,
        mounts,
        seccomp: p.bool("seccomp"),
        hostname: p.get("hostname").map(str::to_string),
        id: id.to_string(),
        namespace: conn.namespace().to_string(),
    };
    build(config, &opts)
}

/// Whether the container's process has a terminal.
pub fn spec_terminal(c: &containers::Container) -> bool {
    c.spec
        .as_ref()
        .and_then(|s| std::str::from_utf8(&s.value).ok().map(str::to_string))
        .and_then(|t| crate::oci::spec::parse(&t).ok())
        .and_then(|s| s.process.map(|p| p.terminal))
        .unwrap_or(false)
}

/// The exec's process: the daemon's builder (the container's process
/// with the new args and terminal), then ctr's `--cwd` and `--user`
/// (resolved in the container's /etc/passwd and /etc/group).
pub fn exec_process(
    conn: &Conn,
    c: &containers::Container,
    args: &[String],
    terminal: bool,
    cwd: Option<&str>,
    user: Option<&str>,
) -> Result<Vec<u8>> {
    use miniserde::json::Value;
    let spec = c
        .spec
        .as_ref()
        .ok_or_else(|| Error::new(format!("container \"{}\" has no spec", c.id)))?;
    let process = crate::daemon::spec::exec_process(&spec.value, args, terminal)?;
    if cwd.is_none() && user.is_none() {
        return Ok(process);
    }
    let text = String::from_utf8_lossy(&process);
    let Ok(Value::Object(mut process)) = crate::json::parse(&text, "process") else {
        return Err(Error::new("exec: the process is not a JSON object"));
    };
    if let Some(cwd) = cwd {
        process.insert("cwd".into(), Value::String(cwd.to_string()));
    }
    if let Some(user) = user {
        let u = user::resolve(user, &user::Rootfs::of(conn, c)?, false)?;
        process.insert("user".into(), user_json(&u));
    }
    Ok(miniserde::json::to_string(&Value::Object(process)).into_bytes())
}

/// The OCI `process.user` object.
fn user_json(u: &user::User) -> miniserde::json::Value {
    use miniserde::json::{Array, Number, Object, Value};
    let mut o = Object::new();
    o.insert("uid".into(), Value::Number(Number::U64(u.uid.into())));
    o.insert("gid".into(), Value::Number(Number::U64(u.gid.into())));
    let mut gids = Array::new();
    gids.extend(
        u.additional_gids
            .iter()
            .map(|g| Value::Number(Number::U64((*g).into()))),
    );
    o.insert("additionalGids".into(), Value::Array(gids));
    Value::Object(o)
}

/// `run --user`: resolve it in the new container's snapshot (it exists
/// once the container does) and put it in the stored spec.
fn apply_user(conn: &Conn, c: &containers::Container, spec: &str) -> Result<containers::Container> {
    use miniserde::json::Value;
    let u = user::resolve(spec, &user::Rootfs::of(conn, c)?, true)?;
    let any = c.spec.clone().unwrap_or_default();
    let text = String::from_utf8_lossy(&any.value);
    let Ok(Value::Object(mut root)) = crate::json::parse(&text, "spec") else {
        return Err(Error::new("the container's spec is not a JSON object"));
    };
    let Some(Value::Object(process)) = root.get_mut("process") else {
        return Err(Error::new("the container's spec has no process"));
    };
    process.insert("user".into(), user_json(&u));
    let mut updated = c.clone();
    updated.spec = Some(Any {
        type_url: any.type_url,
        value: miniserde::json::to_string(&Value::Object(root)).into_bytes(),
    });
    let r: containers::UpdateContainerResponse = conn.call(
        containers::SERVICE,
        "Update",
        &containers::UpdateContainerRequest {
            container: Some(updated.clone()),
            update_mask: Some(crate::proto::services::FieldMask {
                paths: vec!["spec".into()],
            }),
        },
    )?;
    Ok(r.container.unwrap_or(updated))
}
