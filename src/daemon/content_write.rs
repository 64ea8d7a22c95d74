//! Content Write: containerd's resumable upload, one session per stream.
//!
//! The first message names the ingest by `ref` (required; `total` and
//! `expected` optional: a push may learn its digest only at the end).
//! The ingest lives on disk under the content store, keyed by namespace
//! and ref, so a session that breaks off is resumed by the next one with
//! the same ref (a STAT answers the offset reached). Each message is
//! answered with the offset and the digest so far:
//! - STAT only reports;
//! - WRITE appends `data` at `offset` (an offset other than the ingest's
//!   is OutOfRange; offset 0 on a non-empty ingest starts over);
//! - COMMIT (which may carry the last data) checks size and digest
//!   (FailedPrecondition on a mismatch, and the ingest goes), moves the
//!   blob into the store and records it in the namespace with `labels`.
//!
//! A blob already in the namespace is AlreadyExists from the first
//! message on. A blob stored for another namespace is shared: its ingest
//! reports it complete, and COMMIT only records it here (a client that
//! writes it anyway from offset 0 gets a real ingest). One session per
//! ingest: a second is Unavailable ("ref ... locked"), which containerd's
//! clients retry.

use super::api::{encode, status, Ctx, Sink};
use super::content::{hold, parse_digest};
use super::services::DecodeReq;
use super::store::Stores;
use crate::image::content::{self as ic, RefIngest};
use crate::image::digest::Digest;
use crate::proto::services::content::{
    write_action as act, WriteContentRequest, WriteContentResponse,
};
use crate::proto::types::Timestamp;
use crate::ttrpc::{Code, Status};

/// Where a session writes.
enum Target {
    /// A blob on disk already (stored for another namespace) of this size.
    Shared(u64),
    Ingest(Box<RefIngest>),
}

struct Session<'a> {
    stores: &'a Stores,
    ctx: &'a Ctx,
    r#ref: String,
    total: u64,
    expected: Option<Digest>,
    target: Target,
    started: Timestamp,
}

pub fn write(stores: &Stores, ctx: &Ctx, first: &[u8], out: &dyn Sink) -> Result<(), Status> {
    let req = WriteContentRequest::decode_req(first)?;
    if req.r#ref.is_empty() {
        return Err(Status::new(
            Code::InvalidArgument,
            "write: the first message must have a ref",
        ));
    }
    let mut s = Session::open(stores, ctx, &req)?;
    let res = s.run(req, out);
    if res.is_err() {
        s.drop_if_empty();
    }
    res
}

impl<'a> Session<'a> {
    fn open(stores: &'a Stores, ctx: &'a Ctx, req: &WriteContentRequest) -> Result<Self, Status> {
        let r = req.r#ref.clone();
        let expected = if req.expected.is_empty() {
            None
        } else {
            Some(parse_digest(
                &format!("write {r:?}: expected"),
                &req.expected,
            )?)
        };
        let total = u64::try_from(req.total).map_err(|_| {
            Status::new(
                Code::InvalidArgument,
                format!("write {r:?}: negative total {}", req.total),
            )
        })?;
        let store = stores.content().map_err(status)?;
        store.delegate_collection().map_err(status)?;
        let mut s = Session {
            stores,
            ctx,
            r#ref: r.clone(),
            total,
            expected: None,
            target: Target::Shared(0),
            started: Timestamp::now(),
        };
        if let Some(e) = &expected {
            s.check_not_in_namespace(e)?;
            if let Ok(md) = std::fs::metadata(store.blob_path(e)) {
                if md.is_file() && (total == 0 || total == md.len()) {
                    s.expected = expected;
                    s.total = md.len();
                    s.target = Target::Shared(md.len());
                    return Ok(s);
                }
            }
        }
        s.expected = expected;
        hold(stores, ctx, "ingests", &r)?;
        s.target = Target::Ingest(Box::new(s.open_ingest()?));
        if let Target::Ingest(i) = &s.target {
            s.started = ts(i.status().started);
        }
        Ok(s)
    }

    fn open_ingest(&self) -> Result<RefIngest, Status> {
        let store = self.stores.content().map_err(status)?;
        ic::open_ref_ingest(
            store,
            &self.ctx.namespace,
            &self.r#ref,
            self.total,
            self.expected.as_ref(),
        )
        .map_err(status)?
        .ok_or_else(|| {
            Status::new(
                Code::Unavailable,
                format!("ref {} locked: another writer has it open", self.r#ref),
            )
        })
    }

    /// AlreadyExists when the namespace has the blob (the ingest, if any,
    /// is no longer needed: it goes, as in containerd).
    fn check_not_in_namespace(&mut self, d: &Digest) -> Result<(), Status> {
        let db = self.stores.db().map_err(status)?;
        let store = self.stores.content().map_err(status)?;
        let recorded = db
            .content(&self.ctx.namespace, d)
            .map_err(status)?
            .is_some();
        if recorded && store.blob_path(d).is_file() {
            hold(self.stores, self.ctx, "content", &d.to_string())?;
            if let Target::Ingest(_) = &self.target {
                if let Target::Ingest(i) = std::mem::replace(&mut self.target, Target::Shared(0)) {
                    i.remove();
                }
            }
            return Err(Status::new(
                Code::AlreadyExists,
                format!("content {d}: already exists"),
            ));
        }
        Ok(())
    }

    fn offset(&self) -> u64 {
        match &self.target {
            Target::Shared(size) => *size,
            Target::Ingest(i) => i.offset(),
        }
    }

    fn digest(&self) -> String {
        match &self.target {
            Target::Shared(_) => self
                .expected
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_default(),
            Target::Ingest(i) => i.digest().to_string(),
        }
    }

    fn run(&mut self, first: WriteContentRequest, out: &dyn Sink) -> Result<(), Status> {
        let mut next = Some(first);
        while let Some(req) = next.take() {
            let action = req.action;
            let resp = self.step(req)?;
            out.send(&encode(&resp))?;
            if action == act::COMMIT {
                return Ok(());
            }
            next = match out.recv()? {
                Some(m) => Some(WriteContentRequest::decode_req(&m)?),
                // The client went away before COMMIT: the ingest stays
                // for a retry under the same ref.
                None => None,
            };
        }
        Ok(())
    }

    fn step(&mut self, req: WriteContentRequest) -> Result<WriteContentResponse, Status> {
        let r = self.r#ref.clone();
        if !req.expected.is_empty() {
            let e = parse_digest(&format!("write {r:?}: expected"), &req.expected)?;
            self.check_not_in_namespace(&e)?;
            self.expected = Some(e);
        }
        if req.total > 0 {
            self.total = req.total as u64;
        }
        let mut resp = WriteContentResponse {
            action: req.action,
            started_at: Some(self.started),
            updated_at: Some(Timestamp::now()),
            offset: 0,
            total: self.total as i64,
            digest: String::new(),
        };
        match req.action {
            act::STAT => {}
            act::WRITE | act::COMMIT => {
                self.write_at(req.offset, &req.data)?;
                if req.action == act::COMMIT {
                    self.commit(req.labels)?;
                }
            }
            a => {
                return Err(Status::new(
                    Code::InvalidArgument,
                    format!("write {r:?}: unknown action {a}"),
                ))
            }
        }
        resp.offset = self.offset() as i64;
        resp.digest = self.digest();
        Ok(resp)
    }

    fn write_at(&mut self, offset: i64, data: &[u8]) -> Result<(), Status> {
        let r = self.r#ref.clone();
        let at = self.offset();
        if offset < 0 || (offset > 0 && offset as u64 != at) {
            return Err(Status::new(
                Code::OutOfRange,
                format!("write {r:?} at offset {offset}: the ingest is at {at}"),
            ));
        }
        if offset == 0 && at > 0 && !data.is_empty() {
            // Start over: a shared blob becomes an ingest of its own.
            match &mut self.target {
                Target::Ingest(i) => i.restart().map_err(status)?,
                Target::Shared(_) => {
                    hold(self.stores, self.ctx, "ingests", &r)?;
                    let mut i = self.open_ingest()?;
                    i.restart().map_err(status)?;
                    self.target = Target::Ingest(Box::new(i));
                }
            }
        }
        if data.is_empty() {
            return Ok(());
        }
        let Target::Ingest(i) = &mut self.target else {
            unreachable!("a shared blob with data became an ingest above")
        };
        if self.total > 0 && i.offset() + data.len() as u64 > self.total {
            return Err(Status::new(
                Code::OutOfRange,
                format!(
                    "write {r:?}: {} bytes at offset {} go past the total of {}",
                    data.len(),
                    i.offset(),
                    self.total
                ),
            ));
        }
        i.write(data).map_err(status)
    }

    fn commit(&mut self, labels: crate::record::Labels) -> Result<(), Status> {
        let ns = self.ctx.namespace.clone();
        let store = self.stores.content().map_err(status)?;
        let db = self.stores.db().map_err(status)?;
        // No collection between the blob's arrival and its record.
        let _pin = store.pin().map_err(status)?;
        let (digest, size) = match std::mem::replace(&mut self.target, Target::Shared(0)) {
            Target::Shared(size) => {
                let d = self.expected.clone().expect("a shared blob is expected");
                if self.total > 0 && self.total != size {
                    return Err(Status::new(
                        Code::FailedPrecondition,
                        format!(
                            "commit {:?}: unexpected size {size}, expected {}",
                            self.r#ref, self.total
                        ),
                    ));
                }
                (d, size)
            }
            Target::Ingest(i) => {
                let (d, size, _) = i
                    .commit(self.total, self.expected.as_ref())
                    .map_err(status)?;
                (d, size)
            }
        };
        self.target = Target::Shared(size);
        self.expected = Some(digest.clone());
        hold(self.stores, self.ctx, "content", &digest.to_string())?;
        if db.content(&ns, &digest).map_err(status)?.is_some() {
            return Err(Status::new(
                Code::AlreadyExists,
                format!("content {digest}: already exists"),
            ));
        }
        db.add_content(&ns, &digest, size, labels).map_err(status)?;
        Ok(())
    }

    /// After a failed session: an ingest this session made and never
    /// wrote to goes (a bad first message leaves nothing behind).
    fn drop_if_empty(&mut self) {
        if let Target::Ingest(i) = &self.target {
            if i.created && i.offset() == 0 {
                if let Target::Ingest(i) = std::mem::replace(&mut self.target, Target::Shared(0)) {
                    i.remove();
                }
            }
        }
    }
}

fn ts(nanos: u64) -> Timestamp {
    Timestamp {
        seconds: (nanos / 1_000_000_000) as i64,
        nanos: (nanos % 1_000_000_000) as i32,
    }
}
