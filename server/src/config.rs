//! Command line and environment: one clap struct for the binary, and the resolved runtime
//! [`Config`] that [`crate::app::App`] is built from (tests build a `Config` directly).
//! Plain types; bottom floor: imports nothing of the crate.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The adapter registry server.
#[derive(Debug, Parser)]
#[command(name = "adapter-registry", version, about)]
pub struct Cli {
    /// Log lines as `text`, or as `json` (one object per line, with the request's span
    /// fields: method, route, request id).
    #[arg(
        long,
        global = true,
        env = "ADAPTER_REGISTRY_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written (stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (migrates the database first).
    Serve(ServeArgs),
    /// Run job workers only (no HTTP), e.g. on GPU machines; any number of them may run
    /// against one database and blob store. Stops on SIGTERM / Ctrl-C.
    Worker(WorkerArgs),
    /// Run the database migrations and exit.
    Migrate(StorageArgs),
    /// Manage bearer tokens directly in the database (the secret is printed once).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Delete the blobs no version references (older than the grace period and than the
    /// oldest running job), expired upload sessions and ended jobs' staging objects. Safe
    /// while servers and workers run.
    Gc(GcArgs),
    /// Check that every manifest matches its digest and every blob a version references
    /// exists and hashes to its digest; exit 1 on damage. `--repair` marks damaged versions
    /// so pulls refuse them.
    Fsck(FsckArgs),
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Keep blobs younger than this (`90s`, `30m`, `24h`, `7d`): an upload about to be
    /// published is never collected.
    #[arg(long, env = "ADAPTER_REGISTRY_GC_GRACE", default_value = "24h", value_parser = parse_duration)]
    pub grace: Duration,
    /// Report what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Mark damaged versions (resolving and pulling them is then refused with 410
    /// `version_damaged`) and unmark versions found sound again.
    #[arg(long)]
    pub repair: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// A duration as operators write it: `90s`, `30m`, `24h`, `7d`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 90s, 30m, 24h, 7d)"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{s}`: the unit is s, m, h or d")),
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{s}` is too long"))
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret on stdout (only its hash is stored).
    Create {
        /// A label for people (`ci-bot`, `alice`).
        #[arg(long)]
        name: String,
        /// read, write or admin.
        #[arg(long, default_value = "read")]
        scope: String,
        /// Limit the token to this namespace (repeat for several); default: all.
        #[arg(long = "namespace")]
        namespaces: Vec<String>,
        /// Expire after this many days.
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// List tokens (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Revoke a token by id (`tok_…`).
    Revoke {
        id: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(
        long,
        env = "ADAPTER_REGISTRY_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// Idle upload sessions are deleted after this many seconds.
    #[arg(long, env = "ADAPTER_REGISTRY_UPLOAD_TTL", default_value_t = 86_400)]
    pub upload_ttl: u64,
    /// Let anonymous callers read the catalogue and blobs (writes always need a token).
    #[arg(long, env = "ADAPTER_REGISTRY_PUBLIC_READ")]
    pub public_read: bool,
    /// The URL people and clients reach this registry at (e.g. `https://registry.example`),
    /// when it differs from what a request's `Host` says: the pages' "use it" commands name
    /// it, and an `https` URL makes the sign-in cookie `Secure`.
    #[arg(long, env = "ADAPTER_REGISTRY_PUBLIC_URL", value_name = "URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
    /// Job workers to run in this process (0: none; jobs then wait for `adapter-registry
    /// worker` processes).
    #[arg(long, env = "ADAPTER_REGISTRY_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// A client must send a request's headers within this time (`30s`, `2m`); slower
    /// connections are closed.
    #[arg(long, env = "ADAPTER_REGISTRY_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// A request body that sends nothing for this long is cut off with 408
    /// `request_timeout`.
    #[arg(long, env = "ADAPTER_REGISTRY_BODY_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub body_idle_timeout: Duration,
    #[command(flatten)]
    pub jobs: JobArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// `adapter-registry worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Job workers to run in this process.
    #[arg(long, env = "ADAPTER_REGISTRY_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Serve `/metrics` (the job durations this process measures, and the shared gauges)
    /// and `/healthz` on this address; none by default.
    #[arg(long, env = "ADAPTER_REGISTRY_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub jobs: JobArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// How jobs are run (docs/API.md, "Jobs").
#[derive(Debug, Args)]
pub struct JobArgs {
    /// A claimed job's lease, in milliseconds; renewed every third of it while the job runs.
    /// A job whose worker died is claimed again after this.
    #[arg(long, env = "ADAPTER_REGISTRY_JOB_LEASE_MS", default_value_t = 30_000)]
    pub job_lease_ms: u64,
    /// How often an idle worker polls for jobs, in milliseconds (submits in the same process,
    /// and on PostgreSQL any submit, wake workers at once).
    #[arg(long, env = "ADAPTER_REGISTRY_JOB_POLL_MS", default_value_t = 1_000)]
    pub job_poll_ms: u64,
    /// Backoff after a failed attempt, in milliseconds; doubles with each further attempt.
    #[arg(long, env = "ADAPTER_REGISTRY_JOB_RETRY_MS", default_value_t = 2_000)]
    pub job_retry_ms: u64,
    /// Attempts before a job ends `failed`.
    #[arg(long, env = "ADAPTER_REGISTRY_JOB_MAX_ATTEMPTS", default_value_t = 3)]
    pub job_max_attempts: u32,
    /// Accept and run the test-only job kinds (`test.block`: it touches files named in its
    /// parameters). Exists only in a build with the `test-hooks` feature (the test suite's).
    #[cfg(feature = "test-hooks")]
    #[arg(long, env = "ADAPTER_REGISTRY_ENABLE_TEST_JOBS")]
    pub enable_test_jobs: bool,
}

impl JobArgs {
    pub fn config(&self) -> JobsConfig {
        JobsConfig {
            lease: Duration::from_millis(self.job_lease_ms.max(30)),
            poll: Duration::from_millis(self.job_poll_ms.max(10)),
            retry_base: Duration::from_millis(self.job_retry_ms),
            max_attempts: self.job_max_attempts.max(1),
            #[cfg(feature = "test-hooks")]
            test_jobs: self.enable_test_jobs,
        }
    }
}

/// How jobs run (flags of `serve` and `worker`).
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// A claim holds the job this long unless renewed (renewed every third of it).
    pub lease: Duration,
    /// How often an idle worker looks for work when nothing woke it.
    pub poll: Duration,
    /// Backoff after the first failed attempt; doubles with every further one.
    pub retry_base: Duration,
    /// Attempts of a new job.
    pub max_attempts: u32,
    /// Accept and run the test-only kinds (`jobs::testing`); `test-hooks` builds only.
    #[cfg(feature = "test-hooks")]
    pub test_jobs: bool,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            retry_base: Duration::from_secs(2),
            max_attempts: 3,
            #[cfg(feature = "test-hooks")]
            test_jobs: false,
        }
    }
}

/// Where metadata and blobs live.
#[derive(Args)]
pub struct StorageArgs {
    /// Directory for the embedded defaults (`registry.db`, `blobs/`).
    #[arg(long, env = "ADAPTER_REGISTRY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; default: SQLite at `<data-dir>/registry.db`.
    #[arg(long, env = "ADAPTER_REGISTRY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// `s3://bucket[/prefix]` or `file:///path`; default: `<data-dir>/blobs`.
    #[arg(long, env = "ADAPTER_REGISTRY_BLOB_STORE")]
    pub blob_store: Option<String>,
    /// S3 endpoint (MinIO, R2, moto…); falls back to `AWS_ENDPOINT_URL`.
    #[arg(long, env = "ADAPTER_REGISTRY_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region; falls back to `AWS_REGION`, then `us-east-1`.
    #[arg(long, env = "ADAPTER_REGISTRY_S3_REGION")]
    pub s3_region: Option<String>,
    /// How long a request waits for a database connection (the pool is busy, or the
    /// database is down) before it is answered 503 `not_ready`.
    #[arg(long, env = "ADAPTER_REGISTRY_DB_ACQUIRE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub db_acquire_timeout: Duration,
}

impl fmt::Debug for StorageArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageArgs")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("blob_store", &self.blob_store)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .finish()
    }
}

/// The resolved configuration the server runs with.
#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    /// How long a request waits for a database connection.
    pub db_acquire_timeout: Duration,
    /// Where `admin.token` is written on first start.
    pub data_dir: PathBuf,
    /// Anonymous callers may read.
    pub public_read: bool,
    /// `--public-url`, without a trailing `/`.
    pub public_url: Option<String>,
    pub blob_store: BlobStoreConfig,
    pub upload_ttl: Duration,
    /// How often expired upload sessions are swept.
    pub gc_interval: Duration,
    /// How jobs are submitted and run.
    pub jobs: JobsConfig,
    /// Connection-level limits (slow headers and bodies).
    pub http: HttpLimits,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("db_acquire_timeout", &self.db_acquire_timeout)
            .field("data_dir", &self.data_dir)
            .field("public_read", &self.public_read)
            .field("public_url", &self.public_url)
            .field("blob_store", &self.blob_store)
            .field("upload_ttl", &self.upload_ttl)
            .field("gc_interval", &self.gc_interval)
            .field("jobs", &self.jobs)
            .field("http", &self.http)
            .finish()
    }
}

/// Connection-level limits of the HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// From the first byte of a request (or the start of a connection) to the end of its
    /// headers.
    pub header_timeout: Duration,
    /// The longest a request body may go without sending a byte.
    pub body_idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Where blobs are stored.
#[derive(Clone, Debug)]
pub enum BlobStoreConfig {
    /// A local directory (created if missing).
    Local(PathBuf),
    S3(S3Config),
}

#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix inside the bucket (may be empty).
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &hidden(&self.access_key_id))
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .finish()
    }
}

impl From<S3Config> for BlobStoreConfig {
    fn from(c: S3Config) -> Self {
        Self::S3(c)
    }
}

impl Config {
    /// Resolve flags, environment and defaults. Reads the AWS credential variables.
    pub fn from_storage_args(args: &StorageArgs, upload_ttl: Duration) -> anyhow::Result<Self> {
        let database_url = match &args.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", args.data_dir.join("registry.db").display()),
        };
        let blob_store = match args.blob_store.as_deref() {
            None => BlobStoreConfig::Local(args.data_dir.join("blobs")),
            Some(url) => {
                BlobStoreConfig::parse(url, args.s3_endpoint.clone(), args.s3_region.clone())?
            }
        };
        Ok(Self {
            database_url,
            db_acquire_timeout: args.db_acquire_timeout,
            data_dir: args.data_dir.clone(),
            public_read: false,
            public_url: None,
            blob_store,
            upload_ttl,
            gc_interval: Duration::from_secs(60),
            jobs: JobsConfig::default(),
            http: HttpLimits::default(),
        })
    }
}

impl BlobStoreConfig {
    /// `s3://bucket[/prefix]` or `file:///abs/path`; S3 credentials come from the standard
    /// AWS variables.
    pub fn parse(
        url: &str,
        endpoint: Option<String>,
        region: Option<String>,
    ) -> anyhow::Result<Self> {
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Self::Local(PathBuf::from(path)));
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            anyhow::bail!("--blob-store must be `s3://bucket[/prefix]` or `file:///path`");
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(!bucket.is_empty(), "--blob-store s3:// URL has no bucket");
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Ok(Self::S3(S3Config {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            endpoint: endpoint.or_else(|| env("AWS_ENDPOINT_URL")),
            region: region
                .or_else(|| env("AWS_REGION"))
                .unwrap_or_else(|| "us-east-1".to_owned()),
            access_key_id: env("AWS_ACCESS_KEY_ID"),
            secret_access_key: env("AWS_SECRET_ACCESS_KEY"),
            session_token: env("AWS_SESSION_TOKEN"),
        }))
    }
}

/// `scheme://user:password@host/db` → `scheme://user:<redacted>@host/db`.
/// `--public-url`: `http://` or `https://` and a host, no query or fragment; kept without
/// a trailing `/`.
fn parse_public_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or("a public URL starts with http:// or https://")?;
    if rest.is_empty()
        || rest.starts_with('/')
        || s.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '"' | '<' | '>')
        })
    {
        return Err("a public URL is http(s)://HOST[:PORT][/PATH], no query or fragment".into());
    }
    Ok(s.trim_end_matches('/').to_owned())
}

pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_once('/').map_or((rest, ""), |(a, t)| (a, t));
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let slash = if rest.contains('/') { "/" } else { "" };
    format!("{scheme}://{user}:<redacted>@{host}{slash}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["", "h", "1w", "-1h", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:<redacted>@h:5432/db"
        );
        assert_eq!(
            redact_url("sqlite://./data/registry.db"),
            "sqlite://./data/registry.db"
        );
    }

    #[test]
    fn s3_url_splits_bucket_and_prefix() {
        let BlobStoreConfig::S3(c) =
            BlobStoreConfig::parse("s3://bucket/a/b/", Some("http://x".into()), None).unwrap()
        else {
            panic!("expected S3");
        };
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("bucket", "a/b"));
        let with_secret = S3Config {
            secret_access_key: Some("hunter2".into()),
            session_token: Some("tok3n".into()),
            ..c
        };
        let shown = format!("{with_secret:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok3n"),
            "{shown}"
        );
    }
}
