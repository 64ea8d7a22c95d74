//! OCI image-spec and Docker schema2 documents: descriptors, index (manifest
//! list), manifest, image config; platform matching as containerd does it.

use crate::error::{Error, Result};
use crate::image::digest::Digest;
use crate::json::{self, Node, Writer};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What we send as Accept for manifests.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Size limit for manifests and configs held in memory.
pub const MAX_DOCUMENT: u64 = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression a layer media type announces; None for non-layer types.
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
        | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: String,
}

impl Platform {
    /// `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(Error::new(format!(
                "invalid platform {s:?}: expected OS/ARCH[/VARIANT]"
            )));
        }
        let (architecture, variant) = normalize_arch(parts[1], parts.get(2).copied().unwrap_or(""));
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture,
            variant,
        })
    }

    /// The platform this binary runs on.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        let variant = if arch == "arm" { "v7" } else { "" };
        let (architecture, variant) = normalize_arch(arch, variant);
        Platform {
            os: "linux".into(),
            architecture,
            variant,
        }
    }

    /// How well `candidate` serves this (requested) platform: None when it
    /// cannot, else a rank where lower is better (containerd's ordering:
    /// the exact variant first, then older compatible ones).
    pub fn rank(&self, candidate: &Platform) -> Option<usize> {
        if self.os != candidate.os {
            return None;
        }
        let (arch, variant) = normalize_arch(&candidate.architecture, &candidate.variant);
        if arch != self.architecture {
            return None;
        }
        compatible_variants(&self.architecture, &self.variant)
            .iter()
            .position(|v| *v == variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// containerd's normalization: aliases for architectures, a default variant
/// spelled out (arm64 is v8, arm is v7), amd64's v1 is no variant.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    match arch.as_str() {
        "i386" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            let v = if variant == "v1" {
                String::new()
            } else {
                variant
            };
            ("amd64".into(), v)
        }
        "aarch64" | "arm64" => {
            let v = if variant.is_empty() || variant == "8" {
                "v8".into()
            } else {
                variant
            };
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let v = match variant.as_str() {
                "" | "7" => "v7".into(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".into(), v)
        }
        _ => (arch, variant),
    }
}

/// The variants an image may have to run on `arch`/`variant`, best first.
fn compatible_variants(arch: &str, variant: &str) -> Vec<String> {
    let ladder: &[&str] = match arch {
        "arm" => &["v8", "v7", "v6", "v5"],
        "arm64" => &[
            "v9.5", "v9.4", "v9.3", "v9.2", "v9.1", "v9", "v8.9", "v8.8", "v8.7", "v8.6", "v8.5",
            "v8.4", "v8.3", "v8.2", "v8.1", "v8",
        ],
        "amd64" => &["v4", "v3", "v2", ""],
        _ => &[],
    };
    match ladder.iter().position(|v| *v == variant) {
        Some(i) => ladder[i..].iter().map(|v| v.to_string()).collect(),
        None => vec![variant.to_string()],
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub platform: Option<Platform>,
    pub annotations: Vec<(String, String)>,
}

impl Descriptor {
    pub fn from_node(n: &Node) -> Result<Descriptor> {
        let digest_node = n.need("digest")?;
        let digest = Digest::parse(digest_node.str()?).map_err(|e| digest_node.invalid(e))?;
        let platform = match n.get("platform")? {
            Some(p) => Some(Platform {
                os: p.need("os")?.string()?,
                architecture: p.need("architecture")?.string()?,
                variant: p
                    .get("variant")?
                    .map(|v| v.string())
                    .transpose()?
                    .unwrap_or_default(),
            }),
            None => None,
        };
        Ok(Descriptor {
            media_type: n
                .get("mediaType")?
                .map(|v| v.string())
                .transpose()?
                .unwrap_or_default(),
            digest,
            size: n.need("size")?.u64()?,
            platform,
            annotations: n
                .get("annotations")?
                .map(|a| a.string_map())
                .transpose()?
                .unwrap_or_default(),
        })
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn write(&self, w: &mut Writer) {
        w.object();
        w.key("mediaType").str(&self.media_type);
        w.key("digest").str(&self.digest.to_string());
        w.key("size").num(self.size);
        if !self.annotations.is_empty() {
            w.key("annotations").object();
            for (k, v) in &self.annotations {
                w.key(k).str(v);
            }
            w.end_object();
        }
        if let Some(p) = &self.platform {
            w.key("platform").object();
            w.key("architecture").str(&p.architecture);
            w.key("os").str(&p.os);
            if !p.variant.is_empty() {
                w.key("variant").str(&p.variant);
            }
            w.end_object();
        }
        w.end_object();
    }
}

/// A parsed manifest document: either an index or an image manifest.
#[derive(Debug, Clone)]
pub enum Document {
    Index(Vec<Descriptor>),
    Manifest(Manifest),
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// Parse a manifest or index; `content_type` is the server's (may be empty),
/// `what` names it for errors.
pub fn parse_document(data: &[u8], content_type: &str, what: &str) -> Result<Document> {
    let text =
        std::str::from_utf8(data).map_err(|_| Error::new(format!("{what}: not UTF-8 JSON")))?;
    let v = json::parse(text, what)?;
    let root = Node::new(&v, "");
    let inner = |root: &Node| -> Result<Document> {
        let media_type = match root.get("mediaType")? {
            Some(m) => m.string()?,
            None => content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
        };
        let is_index = match media_type.as_str() {
            OCI_INDEX | DOCKER_LIST => true,
            OCI_MANIFEST | DOCKER_MANIFEST => false,
            "" => root.get("manifests")?.is_some(),
            "application/vnd.docker.distribution.manifest.v1+json"
            | "application/vnd.docker.distribution.manifest.v1+prettyjws" => {
                return Err(Error::new("Docker schema 1 manifests are not supported"))
            }
            other => {
                return Err(Error::new(format!(
                    "unsupported manifest media type {other:?}"
                )))
            }
        };
        if is_index {
            let list = root.need("manifests")?.items()?;
            Ok(Document::Index(
                list.iter()
                    .map(Descriptor::from_node)
                    .collect::<Result<_>>()?,
            ))
        } else {
            let config = Descriptor::from_node(&root.need("config")?)?;
            let layers = root.need("layers")?.items()?;
            let layers = layers
                .iter()
                .map(Descriptor::from_node)
                .collect::<Result<Vec<_>>>()?;
            let media_type = if media_type.is_empty() {
                OCI_MANIFEST.to_string()
            } else {
                media_type
            };
            Ok(Document::Manifest(Manifest {
                media_type,
                config,
                layers,
            }))
        }
    };
    inner(&root).map_err(|e| e.wrap(what))
}

/// Pick the manifest for `want` from an index. An entry that names no
/// platform is taken only when none matches (as containerd does; the
/// image config's platform is checked after).
pub fn select_platform<'a>(list: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    let candidates = || {
        list.iter()
            .filter(|d| !d.media_type.contains("attestation"))
    };
    candidates()
        .filter_map(|d| {
            d.platform
                .as_ref()
                .and_then(|p| want.rank(p))
                .map(|r| (r, d))
        })
        .min_by_key(|(r, _)| *r)
        .map(|(_, d)| d)
        .or_else(|| candidates().find(|d| d.platform.is_none()))
}

/// The parts of the image config that matter to run it.
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    pub platform: Platform,
    pub created: Option<String>,
    pub user: String,
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub diff_ids: Vec<String>,
}

pub fn parse_config(data: &[u8], what: &str) -> Result<ImageConfig> {
    let text =
        std::str::from_utf8(data).map_err(|_| Error::new(format!("{what}: not UTF-8 JSON")))?;
    let v = json::parse(text, what)?;
    let root = Node::new(&v, "");
    let inner = || -> Result<ImageConfig> {
        let opt_str = |n: &Node, k: &str| -> Result<String> {
            Ok(n.get(k)?
                .map(|v| v.string())
                .transpose()?
                .unwrap_or_default())
        };
        let opt_list = |n: &Node, k: &str| -> Result<Vec<String>> {
            Ok(n.get(k)?
                .map(|v| v.strings())
                .transpose()?
                .unwrap_or_default())
        };
        let mut c = ImageConfig {
            platform: Platform {
                os: opt_str(&root, "os")?,
                architecture: opt_str(&root, "architecture")?,
                variant: opt_str(&root, "variant")?,
            },
            created: root.get("created")?.map(|v| v.string()).transpose()?,
            ..Default::default()
        };
        if let Some(cfg) = root.get("config")? {
            c.user = opt_str(&cfg, "User")?;
            c.env = opt_list(&cfg, "Env")?;
            c.entrypoint = opt_list(&cfg, "Entrypoint")?;
            c.cmd = opt_list(&cfg, "Cmd")?;
            c.working_dir = opt_str(&cfg, "WorkingDir")?;
        }
        if let Some(rootfs) = root.get("rootfs")? {
            c.diff_ids = opt_list(&rootfs, "diff_ids")?;
        }
        Ok(c)
    };
    inner().map_err(|e| e.wrap(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    fn desc(plat: &str) -> Descriptor {
        let d = Digest::of(plat.as_bytes());
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: d,
            size: 1,
            platform: Some(p(plat)),
            annotations: vec![],
        }
    }

    #[test]
    fn platform_parse_and_normalize() {
        assert_eq!(p("linux/amd64").to_string(), "linux/amd64");
        assert_eq!(p("linux/aarch64").to_string(), "linux/arm64/v8");
        assert_eq!(p("linux/arm").to_string(), "linux/arm/v7");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v7").is_err());
        assert_eq!(Platform::host().os, "linux");
    }

    #[test]
    fn selects_platform_like_containerd() {
        let list = vec![
            desc("linux/arm/v6"),
            desc("linux/arm64"),
            desc("linux/amd64"),
            desc("linux/arm/v7"),
            desc("windows/amd64"),
        ];
        let pick = |want: &str| {
            select_platform(&list, &p(want)).map(|d| d.platform.clone().unwrap().to_string())
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some("linux/amd64"));
        assert_eq!(pick("linux/arm64/v8").as_deref(), Some("linux/arm64/v8"));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("linux/arm/v7"));
        assert_eq!(pick("linux/arm/v8").as_deref(), Some("linux/arm/v7"));
        assert_eq!(pick("linux/arm/v6").as_deref(), Some("linux/arm/v6"));
        assert_eq!(pick("linux/arm/v5"), None);
        assert_eq!(pick("linux/amd64/v3").as_deref(), Some("linux/amd64"));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("windows/amd64").as_deref(), Some("windows/amd64"));
        // An entry without a platform serves only when nothing matches.
        let mut bare = desc("linux/amd64");
        bare.platform = None;
        let list = vec![desc("linux/arm64"), bare];
        assert!(select_platform(&list, &p("linux/amd64")).is_some_and(|d| d.platform.is_none()));
        assert!(select_platform(&list, &p("linux/arm64")).is_some_and(|d| d.platform.is_some()));
    }

    #[test]
    fn parses_documents() {
        let d = Digest::of(b"x");
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{d}","size":1}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{d}","size":1}}]}}"#
        );
        match parse_document(m.as_bytes(), "", "manifest").unwrap() {
            Document::Manifest(m) => assert_eq!(m.layers.len(), 1),
            _ => panic!(),
        }
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        match parse_document(i.as_bytes(), OCI_INDEX, "index").unwrap() {
            Document::Index(l) => assert_eq!(l[0].platform.as_ref().unwrap().architecture, "amd64"),
            _ => panic!(),
        }
        let bad = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:zz","size":1},"layers":[]}"#;
        let e = parse_document(bad.as_bytes(), "", "manifest m").unwrap_err();
        assert!(
            e.message()
                .starts_with("manifest m: config.digest: invalid digest"),
            "{}",
            e.message()
        );
        assert_eq!(
            layer_compression("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(Compression::Zstd)
        );
    }
}
