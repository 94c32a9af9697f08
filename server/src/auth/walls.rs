//! Namespaces are a wall for jobs and blobs too: the one place that decides who sees which
//! (docs/API.md, "Who may call what").
//!
//! * A job is visible only to a caller who may read every namespace it touches (its
//!   inputs' and its output's): elsewhere it is absent from lists and `job_not_found` by
//!   id. Cancelling needs what submitting needs (the route asks for `write`, the job's
//!   visibility for every namespace), so a job one may see one may cancel with `write`.
//! * A blob is readable by a caller who may read a version that lists it (any kind), or
//!   who uploaded it (the same token), and by an admin over all namespaces; elsewhere it
//!   is `blob_not_found` and counts as missing in `POST /v1/blobs/check`.

use adapter_core::api::Scope;

use super::Caller;
use crate::db::blobs::BlobReader;

impl Caller {
    /// An admin token over every namespace.
    pub fn is_global_admin(&self) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| t.scope == Scope::Admin && t.namespaces.is_none())
    }

    /// May the caller read namespace `ns`? (Anonymous callers only get this far on reads
    /// with `--public-read`, which covers every namespace.)
    pub fn may_read(&self, ns: &str) -> bool {
        self.visible_namespaces()
            .is_none_or(|allowed| allowed.iter().any(|a| a == ns))
    }

    /// Is a job touching `namespaces` visible to the caller?
    pub fn sees_job(&self, namespaces: &[String]) -> bool {
        namespaces.iter().all(|ns| self.may_read(ns))
    }

    /// Which blobs the caller reads.
    pub fn blob_reader(&self) -> BlobReader {
        if self.is_global_admin() {
            return BlobReader::Everything;
        }
        BlobReader::Versions {
            namespaces: self.visible_namespaces(),
            uploader: self.token.as_ref().map(|t| t.id.clone()),
        }
    }
}
