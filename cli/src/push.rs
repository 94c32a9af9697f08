//! `adapterctl push DIR --name NS/NAME --version V [--base REF | --base-dir DIR] [--headers-only]`:
//! validate locally, upload only the blobs the registry lacks, publish the manifest, print the
//! pinned reference.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use adapter_core::api::{BaseModelRef, HeadersOnlyWeight, metadata};
use adapter_core::digest::Digest;
use adapter_core::manifest::{FileEntry, FilePath, Kind, Manifest};
use adapter_core::model::{self, Hashing, ModelDir, ModelError};
use adapter_core::peft;
use adapter_core::reference::Reference;
use anyhow::{Context, anyhow};
use serde_json::{Map, Value, json};

use crate::Ctx;
use crate::cache::{DigestCache, Lookup, UploadState};
use crate::exit::{CONFLICT, Failure, PROBLEMS, VERIFY};
use crate::progress::Bars;
use crate::upload::{self, Blob, Job, Pending, Source};

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
    evals: Vec<adapter_core::api::EvalInput>,
    /// A label `KEY=VALUE` stored in the manifest's `metadata.labels` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = crate::labels::parse_label)]
    labels: Vec<(String, String)>,
}

/// One local file to push.
#[derive(Debug, Clone)]
struct LocalFile {
    path: FilePath,
    abs: PathBuf,
    size: u64,
    digest: Digest,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<(), Failure> {
    // Everything the user typed is checked before any work or request.
    let repo: Reference = args
        .name
        .parse()
        .map_err(|e| Failure::usage(anyhow!("--name `{}`: {e}", args.name.escape_debug())))?;
    if repo.selector.is_some() {
        return Err(Failure::usage(anyhow!(
            "--name is `namespace/name`; the version goes in --version"
        )));
    }
    let version = semver::Version::parse(&args.version).map_err(|e| {
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
    let kind = detect_kind(&args.dir)?;
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

    let bars = Bars::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut warn = |bars: &Bars, w: String| {
        bars.warn(&format!("warning: {w}"));
        warnings.push(w);
    };
    let mut cache = DigestCache::load(ctx.cache_dir.as_deref());
    let listed = list_top_level(&args.dir)?;
    for skipped in &listed.skipped_dirs {
        warn(
            &bars,
            format!("skipping subdirectory {skipped}/ (only top-level files are pushed)"),
        );
    }

    let mut meta = Map::new();
    if let Some(labels) = labels {
        meta.insert(metadata::LABELS.into(), labels);
    }
    // The files the manifest lists (hashed below, or while they upload).
    let to_push: Vec<(FilePath, PathBuf)>;
    let mut extra_blobs: Vec<Blob> = Vec::new();
    match kind {
        Kind::Adapter => {
            let base_dir = match &args.base_dir {
                Some(b) => Some(open_model(b, "base model")?),
                None => None,
            };
            let base_tensors = base_dir.as_ref().map(ModelDir::tensor_infos);
            let report = peft::inspect_adapter_dir(&args.dir, base_tensors.as_ref())
                .with_context(|| format!("reading adapter {}", args.dir.display()))
                .map_err(Failure::unreadable)?;
            for w in &report.findings.warnings {
                warn(&bars, format!("[{}] {}", w.code, w.message));
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
            to_push = listed.files.clone();
            let mut base = BaseModelRef {
                name_or_path: report.base_model_name_or_path.clone(),
                ..BaseModelRef::default()
            };
            if let Some(r) = &base_ref {
                resolve_base(ctx, r, &mut base, &mut |w| warn(&bars, w)).await?;
            } else if let Some(m) = &base_dir {
                let weights: Vec<PathBuf> = m.files.iter().map(|f| m.root.join(&f.path)).collect();
                let hashed = hash_paths(&mut cache, &weights, &bars).await?;
                let list: Vec<(&str, u64, Digest)> = m
                    .files
                    .iter()
                    .zip(&hashed)
                    .map(|(f, (d, size))| (f.path.as_str(), *size, *d))
                    .collect();
                base.content_digest = Some(model::content_digest(&list));
                base.shape_fingerprint = Some(m.shape_fingerprint());
            } else {
                warn(
                    &bars,
                    "the base model's identity is unknown (only its name is recorded); pass \
                     --base REF or --base-dir DIR to record its content digest and shape fingerprint"
                        .into(),
                );
            }
            meta.insert(
                metadata::BASE.into(),
                serde_json::to_value(&base).expect("serialises"),
            );
        }
        Kind::Model => {
            let m = open_model(&args.dir, "model")?;
            if args.headers_only {
                let weights: BTreeSet<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
                let others: Vec<(FilePath, PathBuf)> = listed
                    .files
                    .iter()
                    .filter(|(p, _)| !weights.contains(p.as_str()))
                    .cloned()
                    .collect();
                to_push = others;
                let paths: Vec<PathBuf> = m.files.iter().map(|f| m.root.join(&f.path)).collect();
                let hashed = hash_paths(&mut cache, &paths, &bars).await?;
                let mut described = Vec::new();
                for (w, (digest, size)) in m.files.iter().zip(hashed) {
                    let header = read_prefix(&m.root.join(&w.path), w.header.data_start())?;
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
            } else {
                to_push = listed.files.clone();
            }
        }
    }
    if to_push.is_empty() {
        return Err(Failure::unreadable(anyhow!(
            "{}: no files to push",
            args.dir.display()
        )));
    }

    // Digests the cache knows (and of small files, hashed now) are checked with the registry
    // before anything is sent; large files it does not know are hashed while they upload.
    let client = ctx.client()?;
    let planned = plan(&mut cache, &to_push, &bars).await?;
    if let Err(e) = cache.save() {
        warn(&bars, format!("could not save the digest cache: {e:#}"));
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
    let (stats, hashed) = upload::upload_all(&client, &state, jobs, &bars).await?;
    let mut hashed = hashed.into_iter().skip(known_jobs).flatten();
    let mut files: Vec<LocalFile> = Vec::with_capacity(planned.len());
    for (f, (path, abs)) in planned.into_iter().zip(&to_push) {
        files.push(match f {
            Planned::Known(f) => f,
            Planned::Pending(p) => {
                let digest = hashed.next().expect("one digest per hashing upload");
                if let Err(e) = cache.remember(&p.miss, digest, p.miss.before.size) {
                    warn(&bars, format!("{}: {e}", p.miss.path.display()));
                }
                LocalFile {
                    path: path.clone(),
                    abs: abs.clone(),
                    size: p.miss.before.size,
                    digest,
                }
            }
        });
    }
    if let Err(e) = cache.save() {
        warn(&bars, format!("could not save the digest cache: {e:#}"));
    }

    let entries: Vec<FileEntry> = files
        .iter()
        .map(|f| FileEntry {
            path: f.path.clone(),
            size: f.size,
            digest: f.digest,
        })
        .collect();
    let manifest = Manifest::new(kind, entries, meta)
        .map_err(|e| Failure::unreadable(anyhow!("{}: {e}", args.dir.display())))?;
    let manifest_digest = manifest.digest();

    // Publish.
    let (created, info) = match client
        .publish(
            repo.namespace.as_str(),
            repo.name.as_str(),
            &version.to_string(),
            &manifest,
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
    let (evals_added, evals_skipped) = crate::evals::record_after_push(
        &client,
        kind,
        repo.namespace.as_str(),
        repo.name.as_str(),
        &version.to_string(),
        &args.evals,
    )
    .await?;
    let pinned = format!("{}@{version}", repo.repository());
    let uploaded_bytes = stats.uploaded.load(Ordering::Relaxed);
    let resumed_bytes = stats.resumed.load(Ordering::Relaxed);
    if ctx.json {
        println!(
            "{}",
            json!({
                "reference": pinned,
                "pinned": format!("{}@{manifest_digest}", repo.repository()),
                "kind": kind,
                "version": version.to_string(),
                "manifest_digest": manifest_digest,
                "created": created,
                "files": files.len(),
                "uploaded_files": uploaded_files,
                "skipped_files": skipped_files,
                "uploaded_bytes": uploaded_bytes,
                "resumed_bytes": resumed_bytes,
                "hashed_bytes": cache.hashed_bytes,
                "cache_hits": cache.hits,
                "warnings": warnings,
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
            "{what}: {} file(s), {uploaded_files} uploaded ({uploaded_bytes} bytes{}), {skipped_files} already in the registry",
            files.len(),
            if resumed_bytes > 0 {
                format!(", resumed after {resumed_bytes}")
            } else {
                String::new()
            }
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

fn detect_kind(dir: &Path) -> Result<Kind, Failure> {
    model::kind_of(|f| dir.join(f).is_file()).ok_or_else(|| {
        Failure::unreadable(anyhow!(
            "{}: neither an adapter ({}) nor a model ({}, {} or {})",
            dir.display(),
            peft::CONFIG_FILE,
            model::CONFIG_FILE,
            model::SINGLE_FILE,
            model::INDEX_FILE
        ))
    })
}

fn open_model(dir: &Path, what: &str) -> Result<ModelDir, Failure> {
    ModelDir::open(dir, Hashing::HeadersOnly).map_err(|e| {
        let code = match e {
            ModelError::Io { .. } | ModelError::NoWeights(..) => crate::exit::UNREADABLE,
            _ => PROBLEMS,
        };
        Failure::new(
            code,
            anyhow::Error::new(e).context(format!("reading {what} {}", dir.display())),
        )
    })
}

#[derive(Debug, Default)]
struct Listing {
    files: Vec<(FilePath, PathBuf)>,
    skipped_dirs: Vec<String>,
}

/// Regular top-level files (symlinks to regular files included), without dotfiles. Pickle
/// checkpoints are refused.
fn list_top_level(dir: &Path) -> Result<Listing, Failure> {
    let read = |e: std::io::Error| Failure::unreadable(anyhow!("{}: {e}", dir.display()));
    let mut out = Listing::default();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(Failure::unreadable(anyhow!(
                "{}: file name {:?} is not UTF-8",
                dir.display(),
                entry.file_name()
            )));
        };
        if name.starts_with('.') {
            continue;
        }
        let meta = std::fs::metadata(entry.path()).map_err(read)?;
        if meta.is_dir() {
            out.skipped_dirs.push(name.to_owned());
            continue;
        }
        if !meta.is_file() {
            continue;
        }
        if model::is_pickle(name) {
            return Err(Failure::new(
                PROBLEMS,
                anyhow!(
                    "{}: `{name}` is a pickle checkpoint, which is never pushed (loading one can \
                     run arbitrary code); convert it to safetensors or move it out of the directory",
                    dir.display()
                ),
            ));
        }
        let path = FilePath::new(name).map_err(|e| {
            Failure::unreadable(anyhow!("{}: `{}`: {e}", dir.display(), name.escape_debug()))
        })?;
        out.files.push((path, entry.path()));
    }
    out.files.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    out.skipped_dirs.sort();
    Ok(out)
}

async fn hash_all(
    cache: &mut DigestCache,
    files: &[(FilePath, PathBuf)],
    bars: &Bars,
) -> Result<Vec<LocalFile>, Failure> {
    let paths: Vec<PathBuf> = files.iter().map(|(_, p)| p.clone()).collect();
    let hashed = hash_paths(cache, &paths, bars).await?;
    Ok(files
        .iter()
        .zip(hashed)
        .map(|((path, abs), (digest, size))| LocalFile {
            path: path.clone(),
            abs: abs.clone(),
            size,
            digest,
        })
        .collect())
}

/// A file to push: its digest known (cached, or hashed now because it is small enough for
/// one `PUT`), or pending (hashed while it uploads).
enum Planned {
    Known(LocalFile),
    Pending(Pending),
}

async fn plan(
    cache: &mut DigestCache,
    files: &[(FilePath, PathBuf)],
    bars: &Bars,
) -> Result<Vec<Planned>, Failure> {
    let mut small: Vec<(FilePath, PathBuf)> = Vec::new();
    let mut out: Vec<Option<Planned>> = Vec::with_capacity(files.len());
    for (path, abs) in files {
        let looked = cache
            .lookup(abs)
            .map_err(|e| Failure::unreadable(anyhow!("{}: {e}", abs.display())))?;
        out.push(match looked {
            Lookup::Hit(digest, size) => Some(Planned::Known(LocalFile {
                path: path.clone(),
                abs: abs.clone(),
                size,
                digest,
            })),
            Lookup::Miss(miss) if miss.before.size > upload::MONOLITHIC_MAX => {
                Some(Planned::Pending(Pending {
                    label: path.to_string(),
                    miss,
                }))
            }
            Lookup::Miss(_) => {
                small.push((path.clone(), abs.clone()));
                None
            }
        });
    }
    let mut hashed = hash_all(cache, &small, bars).await?.into_iter();
    Ok(out
        .into_iter()
        .map(|p| p.unwrap_or_else(|| Planned::Known(hashed.next().expect("hashed in order"))))
        .collect())
}

/// Digest and size of each path, through the cache, on a blocking thread.
async fn hash_paths(
    cache: &mut DigestCache,
    paths: &[PathBuf],
    bars: &Bars,
) -> Result<Vec<(Digest, u64)>, Failure> {
    let total: u64 = paths
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = bars.bytes("hashing", total);
    let mut owned = std::mem::take(cache);
    let paths = paths.to_vec();
    let b = bar.clone();
    let (owned, result) = tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(paths.len());
        for p in &paths {
            match owned.digest(p, |n| b.inc(n)) {
                Ok(d) => out.push(d),
                Err(e) => return (owned, Err(anyhow!("hashing {}: {e}", p.display()))),
            }
        }
        (owned, Ok(out))
    })
    .await
    .map_err(|e| Failure::unreadable(anyhow!("hashing thread failed: {e}")))?;
    *cache = owned;
    bar.finish_and_clear();
    result.map_err(Failure::unreadable)
}

/// The first `len` bytes of a file (a safetensors header: bounded by the header limit).
fn read_prefix(path: &Path, len: u64) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| Failure::unreadable(anyhow!("{}: {e}", path.display())))?;
    let mut buf = Vec::new();
    f.take(len)
        .read_to_end(&mut buf)
        .map_err(|e| Failure::unreadable(anyhow!("{}: {e}", path.display())))?;
    if buf.len() as u64 != len {
        return Err(Failure::unreadable(anyhow!(
            "{}: shorter than its header",
            path.display()
        )));
    }
    Ok(buf)
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
