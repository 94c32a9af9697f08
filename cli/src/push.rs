//! `adapterctl push DIR --name NS/NAME --version V [--base REF | --base-dir DIR] [--headers-only]`:
//! validate locally, upload only the blobs the registry lacks, publish the manifest, print the
//! pinned reference.

mod local;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use adapter_core::api::{BaseModelRef, EvalInput, HeadersOnlyWeight, metadata};
use adapter_core::digest::Digest;
use adapter_core::manifest::{FileEntry, FilePath, Kind, Manifest};
use adapter_core::model::{self, ModelDir};
use adapter_core::peft;
use adapter_core::reference::Reference;
use anyhow::{Context, anyhow};
use semver::Version;
use serde_json::{Map, Value, json};

use crate::Ctx;
use crate::cache::{DigestCache, UploadState};
use crate::client::Client;
use crate::exit::{CONFLICT, Failure, PROBLEMS, VERIFY};
use crate::progress::Bars;
use crate::upload::{self, Blob, Job, Source};
use local::{LocalFile, Planned};

/// Arguments of `adapterctl push`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// An adapter directory (adapter_config.json) or a model directory (config.json,
    /// model.safetensors or its index). Every regular top-level file except dotfiles is pushed.
    dir: PathBuf,
    /// Repository: `namespace/name`.
    #[arg(long, value_name = "NS/NAME")]
    name: String,
    /// Semver version to publish (immutable once published).
    #[arg(long = "version", value_name = "VERSION")]
    version: String,
    /// Adapters: the registered base model (`ns/name[@selector]`); its content digest and
    /// shape fingerprint are recorded.
    #[arg(long, value_name = "REF", conflicts_with = "base_dir")]
    base: Option<String>,
    /// Adapters: a local base model directory; checked against the adapter, its content
    /// digest and shape fingerprint are recorded.
    #[arg(long, value_name = "DIR")]
    base_dir: Option<PathBuf>,
    /// Models: upload everything but the *.safetensors weights, whose headers, sizes and
    /// digests are recorded instead.
    #[arg(long)]
    headers_only: bool,
    /// After publishing, record an eval result `BENCHMARK:METRIC=VALUE` (repeatable;
    /// results the version already has, identical, are not recorded again).
    #[arg(long = "eval", value_name = "BENCH:METRIC=VALUE", value_parser = crate::evals::parse_eval)]
    evals: Vec<EvalInput>,
    /// A label `KEY=VALUE` stored in the manifest's `metadata.labels` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = crate::labels::parse_label)]
    labels: Vec<(String, String)>,
}

/// What the user typed, checked before any work or request.
struct Checked {
    repo: Reference,
    version: Version,
    base_ref: Option<Reference>,
    labels: Option<Value>,
    kind: Kind,
}

/// The warnings of a push: shown as they come, and listed in `--json`'s output.
struct Warnings<'a> {
    bars: &'a Bars,
    list: Vec<String>,
}

impl Warnings<'_> {
    fn warn(&mut self, w: String) {
        self.bars.warn(&format!("warning: {w}"));
        self.list.push(w);
    }
}

/// What the directory will publish: the files the manifest lists (hashed later, or while
/// they upload), blobs that are no file of it (headers of headers-only weights), and the
/// manifest's metadata.
struct Described {
    to_push: Vec<(FilePath, PathBuf)>,
    extra_blobs: Vec<Blob>,
    meta: Map<String, Value>,
}

/// The files as uploaded, and what the upload did.
struct Uploaded {
    files: Vec<LocalFile>,
    uploaded_files: usize,
    skipped_files: usize,
    uploaded_bytes: u64,
    resumed_bytes: u64,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<(), Failure> {
    let checked = check(args)?;
    let bars = Bars::new();
    let mut warnings = Warnings {
        bars: &bars,
        list: Vec::new(),
    };
    let mut cache = DigestCache::load(ctx.cache_dir.as_deref());
    let described = describe(ctx, args, &checked, &mut cache, &mut warnings).await?;
    let client = ctx.client()?;
    let up = upload_files(
        &client,
        ctx,
        &mut cache,
        described.to_push,
        described.extra_blobs,
        &mut warnings,
    )
    .await?;
    let entries: Vec<FileEntry> = up
        .files
        .iter()
        .map(|f| FileEntry {
            path: f.path.clone(),
            size: f.size,
            digest: f.digest,
        })
        .collect();
    let manifest = Manifest::new(checked.kind, entries, described.meta)
        .map_err(|e| Failure::unreadable(anyhow!("{}: {e}", args.dir.display())))?;
    let created = publish(&client, &checked, &manifest).await?;
    let (evals_added, evals_skipped) = crate::evals::record_after_push(
        &client,
        checked.kind,
        checked.repo.namespace.as_str(),
        checked.repo.name.as_str(),
        &checked.version.to_string(),
        &args.evals,
    )
    .await?;
    let (repo, version, manifest_digest) = (
        checked.repo.repository(),
        &checked.version,
        manifest.digest(),
    );
    let pinned = format!("{repo}@{version}");
    if ctx.json {
        println!(
            "{}",
            json!({
                "reference": pinned,
                "pinned": format!("{repo}@{manifest_digest}"),
                "kind": checked.kind,
                "version": version.to_string(),
                "manifest_digest": manifest_digest,
                "created": created,
                "files": up.files.len(),
                "uploaded_files": up.uploaded_files,
                "skipped_files": up.skipped_files,
                "uploaded_bytes": up.uploaded_bytes,
                "resumed_bytes": up.resumed_bytes,
                "hashed_bytes": cache.hashed_bytes,
                "cache_hits": cache.hits,
                "warnings": warnings.list,
                "evals": {"added": evals_added, "skipped": evals_skipped},
            })
        );
    } else {
        let what = if created {
            "pushed"
        } else {
            "already published (identical)"
        };
        eprintln!(
            "{what}: {} file(s), {} uploaded ({} bytes{}), {} already in the registry",
            up.files.len(),
            up.uploaded_files,
            up.uploaded_bytes,
            if up.resumed_bytes > 0 {
                format!(", resumed after {}", up.resumed_bytes)
            } else {
                String::new()
            },
            up.skipped_files,
        );
        if !args.evals.is_empty() {
            eprintln!(
                "evals: {} recorded, {evals_skipped} already recorded",
                evals_added.len()
            );
        }
        println!("{pinned} {manifest_digest}");
    }
    Ok(())
}

/// Everything the user typed is checked before any work or request.
fn check(args: &Args) -> Result<Checked, Failure> {
    let repo: Reference = args
        .name
        .parse()
        .map_err(|e| Failure::usage(anyhow!("--name `{}`: {e}", args.name.escape_debug())))?;
    if repo.selector.is_some() {
        return Err(Failure::usage(anyhow!(
            "--name is `namespace/name`; the version goes in --version"
        )));
    }
    let version = Version::parse(&args.version).map_err(|e| {
        Failure::usage(anyhow!(
            "--version `{}` is not a semver version: {e}",
            args.version.escape_debug()
        ))
    })?;
    let base_ref: Option<Reference> = args
        .base
        .as_deref()
        .map(|b| {
            b.parse()
                .map_err(|e| Failure::usage(anyhow!("--base `{}`: {e}", b.escape_debug())))
        })
        .transpose()?;
    if !args.evals.is_empty() {
        let batch = adapter_core::api::EvalBatch {
            results: args.evals.to_vec(),
        };
        batch
            .check()
            .map_err(|e| Failure::usage(anyhow!("--eval: {e}")))?;
    }
    let labels = crate::labels::to_metadata(&args.labels)?;
    if !args.dir.is_dir() {
        return Err(Failure::unreadable(anyhow!(
            "{}: not a directory",
            args.dir.display()
        )));
    }
    let kind = local::detect_kind(&args.dir)?;
    match kind {
        Kind::Adapter if args.headers_only => {
            return Err(Failure::usage(anyhow!(
                "--headers-only applies to models; {} is an adapter",
                args.dir.display()
            )));
        }
        Kind::Model if args.base.is_some() || args.base_dir.is_some() => {
            return Err(Failure::usage(anyhow!(
                "--base and --base-dir apply to adapters; {} is a model",
                args.dir.display()
            )));
        }
        _ => {}
    }
    Ok(Checked {
        repo,
        version,
        base_ref,
        labels,
        kind,
    })
}

/// Read the directory: its files, and the manifest's metadata (an adapter's checked config
/// and base identity; a headers-only model's weight headers).
async fn describe(
    ctx: &Ctx,
    args: &Args,
    checked: &Checked,
    cache: &mut DigestCache,
    warnings: &mut Warnings<'_>,
) -> Result<Described, Failure> {
    let bars = warnings.bars;
    let listed = local::list_top_level(&args.dir)?;
    for skipped in &listed.skipped_dirs {
        warnings.warn(format!(
            "skipping subdirectory {skipped}/ (only top-level files are pushed)"
        ));
    }
    let mut meta = Map::new();
    if let Some(labels) = checked.labels.clone() {
        meta.insert(metadata::LABELS.into(), labels);
    }
    let mut extra_blobs: Vec<Blob> = Vec::new();
    let to_push = match checked.kind {
        Kind::Adapter => {
            let base_dir = match &args.base_dir {
                Some(b) => Some(local::open_model(b, "base model")?),
                None => None,
            };
            let base_tensors = base_dir.as_ref().map(ModelDir::tensor_infos);
            let report = peft::inspect_adapter_dir(&args.dir, base_tensors.as_ref())
                .with_context(|| format!("reading adapter {}", args.dir.display()))
                .map_err(Failure::unreadable)?;
            for w in &report.findings.warnings {
                warnings.warn(format!("[{}] {}", w.code, w.message));
            }
            if report.findings.has_errors() {
                let errors: Vec<String> = report
                    .findings
                    .errors
                    .iter()
                    .map(|e| format!("[{}] {}", e.code, e.message))
                    .collect();
                let mut f = Failure::new(
                    PROBLEMS,
                    anyhow!(
                        "{} has {} error(s), not pushed: {}",
                        args.dir.display(),
                        errors.len(),
                        errors.join("; ")
                    ),
                );
                f.details = json!({"errors": errors});
                return Err(f);
            }
            let mut base = BaseModelRef {
                name_or_path: report.base_model_name_or_path.clone(),
                ..BaseModelRef::default()
            };
            if let Some(r) = &checked.base_ref {
                resolve_base(ctx, r, &mut base, &mut |w| warnings.warn(w)).await?;
            } else if let Some(m) = &base_dir {
                let weights: Vec<PathBuf> = m.files.iter().map(|f| m.root.join(&f.path)).collect();
                let hashed = local::hash_paths(cache, &weights, bars).await?;
                let list: Vec<(&str, u64, Digest)> = m
                    .files
                    .iter()
                    .zip(&hashed)
                    .map(|(f, (d, size))| (f.path.as_str(), *size, *d))
                    .collect();
                base.content_digest = Some(model::content_digest(&list));
                base.shape_fingerprint = Some(m.shape_fingerprint());
            } else {
                warnings.warn(
                    "the base model's identity is unknown (only its name is recorded); pass \
                     --base REF or --base-dir DIR to record its content digest and shape fingerprint"
                        .into(),
                );
            }
            meta.insert(
                metadata::BASE.into(),
                serde_json::to_value(&base).expect("serialises"),
            );
            listed.files
        }
        Kind::Model if args.headers_only => {
            let m = local::open_model(&args.dir, "model")?;
            let weights: BTreeSet<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
            let others: Vec<(FilePath, PathBuf)> = listed
                .files
                .into_iter()
                .filter(|(p, _)| !weights.contains(p.as_str()))
                .collect();
            let paths: Vec<PathBuf> = m.files.iter().map(|f| m.root.join(&f.path)).collect();
            let hashed = local::hash_paths(cache, &paths, bars).await?;
            let mut described = Vec::new();
            for (w, (digest, size)) in m.files.iter().zip(hashed) {
                let header = local::read_prefix(&m.root.join(&w.path), w.header.data_start())?;
                let header_digest = Digest::of_bytes(&header);
                described.push(HeadersOnlyWeight {
                    path: w.path.clone(),
                    size,
                    sha256: digest,
                    header_blob: header_digest,
                });
                extra_blobs.push(Blob {
                    digest: header_digest,
                    size: header.len() as u64,
                    label: format!("{} (header)", w.path),
                    source: Source::Bytes(Arc::new(header)),
                });
            }
            meta.insert(metadata::HEADERS_ONLY.into(), Value::Bool(true));
            meta.insert(
                metadata::WEIGHTS.into(),
                serde_json::to_value(&described).expect("serialises"),
            );
            others
        }
        Kind::Model => {
            local::open_model(&args.dir, "model")?;
            listed.files
        }
    };
    if to_push.is_empty() {
        return Err(Failure::unreadable(anyhow!(
            "{}: no files to push",
            args.dir.display()
        )));
    }
    Ok(Described {
        to_push,
        extra_blobs,
        meta,
    })
}

/// Upload what the registry lacks. Digests the cache knows (and of small files, hashed now)
/// are checked with the registry before anything is sent; large files it does not know are
/// hashed while they upload.
async fn upload_files(
    client: &Client,
    ctx: &Ctx,
    cache: &mut DigestCache,
    to_push: Vec<(FilePath, PathBuf)>,
    extra_blobs: Vec<Blob>,
    warnings: &mut Warnings<'_>,
) -> Result<Uploaded, Failure> {
    let bars = warnings.bars;
    let planned = local::plan(cache, &to_push, bars).await?;
    if let Err(e) = cache.save() {
        warnings.warn(format!("could not save the digest cache: {e:#}"));
    }
    let mut blobs: BTreeMap<Digest, Blob> = BTreeMap::new();
    for f in &planned {
        if let Planned::Known(f) = f {
            blobs.entry(f.digest).or_insert_with(|| Blob {
                digest: f.digest,
                size: f.size,
                label: f.path.to_string(),
                source: Source::File(f.abs.clone()),
            });
        }
    }
    for b in extra_blobs {
        blobs.entry(b.digest).or_insert(b);
    }
    let digests: Vec<Digest> = blobs.keys().copied().collect();
    let missing: BTreeSet<Digest> = client
        .missing_blobs(&digests)
        .await
        .map_err(|e| Failure::from(e).context("checking which blobs the registry has"))?
        .into_iter()
        .collect();
    let mut jobs: Vec<Job> = blobs
        .values()
        .filter(|b| missing.contains(&b.digest))
        .cloned()
        .map(Job::Known)
        .collect();
    let known_jobs = jobs.len();
    jobs.extend(planned.iter().filter_map(|f| match f {
        Planned::Pending(pending) => Some(Job::Hashing(pending.clone())),
        Planned::Known(_) => None,
    }));
    let uploaded_files = jobs.len();
    let skipped_files = blobs.len() - known_jobs;
    let state = UploadState::new(ctx.cache_dir.as_deref());
    let (stats, hashed) = upload::upload_all(client, &state, jobs, bars).await?;
    let mut hashed = hashed.into_iter().skip(known_jobs).flatten();
    let mut files: Vec<LocalFile> = Vec::with_capacity(planned.len());
    for (f, (path, abs)) in planned.into_iter().zip(to_push) {
        files.push(match f {
            Planned::Known(f) => f,
            Planned::Pending(p) => {
                let digest = hashed.next().expect("one digest per hashing upload");
                if let Err(e) = cache.remember(&p.miss, digest, p.miss.before.size) {
                    warnings.warn(format!("{}: {e}", p.miss.path.display()));
                }
                LocalFile {
                    path,
                    abs,
                    size: p.miss.before.size,
                    digest,
                }
            }
        });
    }
    if let Err(e) = cache.save() {
        warnings.warn(format!("could not save the digest cache: {e:#}"));
    }
    Ok(Uploaded {
        files,
        uploaded_files,
        skipped_files,
        uploaded_bytes: stats.uploaded.load(Ordering::Relaxed),
        resumed_bytes: stats.resumed.load(Ordering::Relaxed),
    })
}

/// Publish the manifest; whether the version was created (false: it was there, identical).
async fn publish(client: &Client, checked: &Checked, manifest: &Manifest) -> Result<bool, Failure> {
    let (repo, version) = (&checked.repo, &checked.version);
    let manifest_digest = manifest.digest();
    let (created, info) = match client
        .publish(
            repo.namespace.as_str(),
            repo.name.as_str(),
            &version.to_string(),
            manifest,
        )
        .await
    {
        Ok(r) => r,
        Err(e) if e.code() == Some("version_exists") => {
            let existing = e
                .details()
                .get("manifest_digest")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned();
            let mut f = Failure::from(e);
            f.code = CONFLICT;
            f.error = anyhow!(
                "{}@{version} already exists with other content (manifest {existing}; yours is \
                 {manifest_digest}); versions are immutable: publish a new version",
                repo.repository()
            );
            return Err(f);
        }
        Err(e) => {
            return Err(
                Failure::from(e).context(format!("publishing {}@{version}", repo.repository()))
            );
        }
    };
    if info.manifest_digest != manifest_digest {
        return Err(Failure::new(
            VERIFY,
            anyhow!(
                "the registry recorded manifest {} for {}@{version}, but the manifest sent has digest {manifest_digest}",
                info.manifest_digest,
                repo.repository()
            ),
        ));
    }
    Ok(created)
}

/// `--base REF`: resolve against the registry's models and take the identity from the
/// version's summary.
async fn resolve_base(
    ctx: &Ctx,
    r: &Reference,
    base: &mut BaseModelRef,
    warn: &mut dyn FnMut(String),
) -> Result<(), Failure> {
    let client = ctx.client()?;
    let (ns, name) = (r.namespace.as_str(), r.name.as_str());
    let resolved = client
        .resolve(Kind::Model, ns, name, r.selector.as_ref())
        .await
        .map_err(|e| Failure::from(e).context(format!("resolving base model {r}")))?;
    if resolved.yanked {
        warn(format!(
            "base model {}@{} is yanked",
            r.repository(),
            resolved.version
        ));
    }
    let info = client
        .version(Kind::Model, ns, name, &resolved.version)
        .await
        .map_err(|e| Failure::from(e).context(format!("reading base model {r}")))?;
    let model = info.summary.model();
    base.reference = Some(format!("{}@{}", r.repository(), resolved.version));
    base.content_digest = model.map(|m| m.content_digest);
    base.shape_fingerprint = model.and_then(|m| m.shape_fingerprint);
    if base.content_digest.is_none() || base.shape_fingerprint.is_none() {
        warn(format!(
            "the registry's summary of {}@{} lacks content_digest/shape_fingerprint; the base identity is incomplete",
            r.repository(),
            resolved.version
        ));
    }
    Ok(())
}
