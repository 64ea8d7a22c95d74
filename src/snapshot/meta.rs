//! Which snapshot id has which key, parent, kind and labels.
//!
//! One record per snapshot, `metadata/<id>.json`, named by the id (which
//! never changes) rather than by the key (which Commit changes): Commit is
//! then one atomic record replace, and no crash can leave two records for
//! one snapshot. The order of steps keeps one invariant across crashes:
//! every record has its directory (`snapshots/<id>` is made before its
//! record is written and removed after its record is gone), so a crash
//! leaves at worst a directory without a record, which [`Table::orphans`]
//! finds.

use super::{Info, SnapshotKind};
use crate::error::{Context, Result};
use crate::json::{Node, Writer};
use crate::record;
use std::collections::{HashMap, HashSet};

use std::path::{Path, PathBuf};

/// A snapshot as stored: its directory id and its info.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: u64,
    pub info: Info,
}

/// The in-memory table of all snapshots, loaded once, kept in step with the
/// records on disk.
pub struct Table {
    dir: PathBuf,
    by_key: HashMap<String, Record>,
    /// Snapshots still being built (directory made, no record yet), with
    /// their parent's key: not orphans, and their parent must stay.
    reserved: HashMap<u64, String>,
    next_id: u64,
}

impl Table {
    /// Load every record in `dir`. `existing_ids` are the directory ids
    /// present, so a new id never reuses an orphan's directory.
    pub fn load(dir: &Path, existing_ids: &[u64]) -> Result<Table> {
        record::create_dir(dir)?;
        record::sweep_temporaries(dir);
        let mut by_key = HashMap::new();
        let mut max = existing_ids.iter().copied().max().unwrap_or(0);
        for path in record::list(dir)? {
            let text = record::read(&path)?.unwrap_or_default();
            let rec = decode(&text, &path)?;
            max = max.max(rec.id);
            by_key.insert(rec.info.name.clone(), rec);
        }
        Ok(Table {
            dir: dir.to_path_buf(),
            by_key,
            reserved: HashMap::new(),
            next_id: max + 1,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Record> {
        self.by_key.get(key)
    }

    pub fn all(&self) -> impl Iterator<Item = &Record> {
        self.by_key.values()
    }

    /// Has `key` children, made or being made?
    pub fn has_children(&self, key: &str) -> bool {
        self.by_key.values().any(|r| r.info.parent == key)
            || self.reserved.values().any(|p| p == key)
    }

    /// A fresh id for a snapshot about to be built on `parent`.
    pub fn reserve(&mut self, parent: &str) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.reserved.insert(id, parent.to_string());
        id
    }

    pub fn release(&mut self, id: u64) {
        self.reserved.remove(&id);
    }

    /// Write (create or replace) a record.
    pub fn put(&mut self, rec: Record) -> Result<()> {
        record::write(&self.path(rec.id), encode(&rec).as_bytes())?;
        self.reserved.remove(&rec.id);
        // Commit renames: drop the entry under the old key.
        self.by_key.retain(|_, r| r.id != rec.id);
        self.by_key.insert(rec.info.name.clone(), rec);
        Ok(())
    }

    /// Remove a record; its directory is the caller's to remove after.
    pub fn delete(&mut self, key: &str) -> Result<Option<Record>> {
        let Some(rec) = self.by_key.get(key) else {
            return Ok(None);
        };
        record::remove(&self.path(rec.id))?;
        Ok(self.by_key.remove(key))
    }

    /// Remove the record file of `id` if one is on disk but not in the
    /// table (a write that failed after its rename).
    pub fn forget(&mut self, id: u64) {
        let _ = record::remove(&self.path(id));
    }

    /// Ids present as directories that neither a record nor a build in
    /// progress owns.
    pub fn orphans(&self, dir_ids: &[u64]) -> Vec<u64> {
        let owned: HashSet<u64> = self.by_key.values().map(|r| r.id).collect();
        dir_ids
            .iter()
            .copied()
            .filter(|id| !owned.contains(id) && !self.reserved.contains_key(id))
            .collect()
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }
}

fn encode(rec: &Record) -> String {
    let i = &rec.info;
    let mut w = Writer::compact();
    w.begin_object();
    w.key("id").num(rec.id);
    w.key("key").str(&i.name);
    w.key("parent").str(&i.parent);
    w.key("kind").str(i.kind.name());
    record::write_labels(&mut w, &i.labels);
    w.key("created").num(i.created);
    w.key("updated").num(i.updated);
    w.end_object();
    w.finish()
}

fn decode(text: &str, path: &Path) -> Result<Record> {
    let v = record::parse(text, path)?;
    let n = Node::new(&v, "");
    let inner = || -> Result<Record> {
        let kind = n.need("kind")?;
        Ok(Record {
            id: n.need("id")?.u64()?,
            info: Info {
                kind: SnapshotKind::parse(kind.str()?)
                    .ok_or_else(|| kind.invalid("unknown kind"))?,
                name: n.need("key")?.string()?,
                parent: n.need("parent")?.string()?,
                labels: record::read_labels(&n)?,
                created: n.need("created")?.u64()?,
                updated: n.need("updated")?.u64()?,
            },
        })
    };
    inner().with_context(|| format!("snapshot record {}", path.display()))
}
