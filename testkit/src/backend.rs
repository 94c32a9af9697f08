//! What one server process needs for a storage stack.

use std::path::Path;

use tempfile::TempDir;

use crate::{PgDatabase, S3Bucket, Stack};

/// The region passed to the server for the test S3 endpoint.
const S3_REGION: &str = "us-east-1";

/// Storage for one server: a temporary data directory and, for [`Stack::Scaleout`], a
/// fresh PostgreSQL database and S3 bucket. Everything is removed when it is dropped.
///
/// Several [`ServerProcess`](crate::ServerProcess)es may run on one backend in turn (a
/// restart test) or at once (a scale-out test).
#[derive(Debug)]
pub struct Backend {
    stack: Stack,
    data_dir: TempDir,
    postgres: Option<PgDatabase>,
    s3: Option<S3Bucket>,
}

impl Backend {
    /// Makes the storage for `stack`.
    ///
    /// # Panics
    /// If the scale-out services are not configured or do not answer.
    pub fn new(stack: &Stack) -> Backend {
        Backend::new_in(stack, &std::env::temp_dir())
    }

    /// [`new`](Backend::new) with the data directory made inside `parent` (a benchmark puts
    /// it on the filesystem it measures).
    ///
    /// # Panics
    /// As [`new`](Backend::new), and if `parent` cannot hold a new directory.
    pub fn new_in(stack: &Stack, parent: &Path) -> Backend {
        let data_dir = tempfile::Builder::new()
            .prefix("adapter-registry-test-")
            .tempdir_in(parent)
            .expect("cannot create a temporary data directory");
        let (postgres, s3) = match stack {
            Stack::Embedded => (None, None),
            Stack::Scaleout => (Some(PgDatabase::create()), Some(S3Bucket::create())),
        };
        Backend {
            stack: stack.clone(),
            data_dir,
            postgres,
            s3,
        }
    }

    /// The stack this backend was made for.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// Arguments for `adapter-registry serve` (all but `--listen`).
    pub fn server_args(&self) -> Vec<String> {
        let mut args = vec![
            "--data-dir".to_string(),
            self.data_dir().display().to_string(),
        ];
        if let (Some(pg), Some(s3)) = (&self.postgres, &self.s3) {
            args.extend([
                "--database-url".to_string(),
                pg.url.clone(),
                "--blob-store".to_string(),
                s3.url("blobs"),
                "--s3-endpoint".to_string(),
                s3.endpoint.clone(),
                "--s3-region".to_string(),
                S3_REGION.to_string(),
            ]);
        }
        args
    }

    /// Environment for the server: S3 credentials (moto accepts any) on the scale-out stack.
    pub fn server_env(&self) -> Vec<(String, String)> {
        match self.stack {
            Stack::Embedded => Vec::new(),
            Stack::Scaleout => [
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_REGION", S3_REGION),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }

    /// The metadata database: the PostgreSQL URL on the scale-out stack; on the embedded
    /// stack the server's default SQLite file, `sqlite://<data_dir>/registry.db`.
    pub fn database_url(&self) -> String {
        match &self.postgres {
            Some(pg) => pg.url.clone(),
            None => format!("sqlite://{}", self.data_dir().join("registry.db").display()),
        }
    }

    /// The blob store: `s3://<bucket>/blobs` on the scale-out stack; on the embedded stack
    /// the server's default directory, `file://<data_dir>/blobs`.
    pub fn blob_store_url(&self) -> String {
        match &self.s3 {
            Some(s3) => s3.url("blobs"),
            None => format!("file://{}", self.data_dir().join("blobs").display()),
        }
    }

    /// The S3 bucket, on the scale-out stack.
    pub fn s3(&self) -> Option<&S3Bucket> {
        self.s3.as_ref()
    }

    /// The PostgreSQL database, on the scale-out stack.
    pub fn postgres(&self) -> Option<&PgDatabase> {
        self.postgres.as_ref()
    }

    /// The server's `--data-dir` (also where server logs are written).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_backend_passes_only_the_data_dir() {
        let backend = Backend::new(&Stack::Embedded);
        let dir = backend.data_dir().to_path_buf();
        assert!(dir.is_dir());
        assert_eq!(
            backend.server_args(),
            ["--data-dir".to_string(), dir.display().to_string()]
        );
        assert!(backend.server_env().is_empty());
        assert!(backend.database_url().starts_with("sqlite://"));
        drop(backend);
        assert!(!dir.exists(), "the data dir outlived its backend");
    }

    #[test]
    fn scaleout_backend_names_its_database_and_bucket() {
        if !crate::stacks().contains(&Stack::Scaleout) {
            return;
        }
        let backend = Backend::new(&Stack::Scaleout);
        let args = backend.server_args();
        let value = |flag: &str| {
            let i = args
                .iter()
                .position(|a| a == flag)
                .unwrap_or_else(|| panic!("no {flag}"));
            args[i + 1].clone()
        };
        assert_eq!(value("--database-url"), backend.database_url());
        assert_eq!(value("--blob-store"), backend.blob_store_url());
        assert!(value("--blob-store").starts_with("s3://test-"));
        assert_eq!(value("--s3-endpoint"), backend.s3().unwrap().endpoint);
        assert_eq!(value("--s3-region"), "us-east-1");
        assert!(
            backend
                .server_env()
                .iter()
                .any(|(k, v)| k == "AWS_ACCESS_KEY_ID" && v == "test")
        );
    }
}
