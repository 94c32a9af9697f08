//! The catalogue, read: the one way every route (`/v1`, the HTML pages), job and publish
//! reads repositories, versions, aliases, files and references. Results are typed; a
//! missing thing is a typed [`CatalogError`] that a front maps to its own shape in one place
//! (`/v1` and, for now, the HTML pages: the `From` impl in [`error`]).
//!
//! Middle floor, lowest of it: imports only `db` (it takes the [`Db`](crate::db::Db)
//! handle) and `error`. Writes (publish, alias moves, yank, evals) live elsewhere.

pub mod error;
mod repositories;
mod resolve;
mod versions;

pub use error::{CatalogError, CatalogResult};
pub use repositories::{
    all_repositories, page_versions, repository, repository_info, repository_infos, versions,
};
pub use resolve::{Pick, Resolved, job_input, pick, resolve, resolve_reference};
pub use versions::{attach_latest_evals, summary_of, version, version_info, version_info_of};
