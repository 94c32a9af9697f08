//! The OpenAPI document around the routes: info (with the error-code table), tags, and the
//! per-kind naming of the repository routes. The routes describe themselves (`#[utoipa::path]`
//! on each handler).

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder};

/// `info.description`: what the API is and every error code with its status (the table in
/// docs/API.md; `server/src/error.rs` `status_of` is the source of truth, and a test checks
/// that they agree).
pub const DESCRIPTION: &str = "\
The contract between `adapter-registry` and `adapterctl` (docs/API.md). Adapters and models \
live in repositories `{ns}/{name}` under `/v1/adapters` and `/v1/models`; files are \
content-addressed blobs (`sha256:<64 hex>`) uploaded first, then a version is published with \
a manifest that lists them.

Every error answers `{\"error\": {\"code\", \"message\", \"details\"}}` (`ErrorBody`) with one \
of these codes:

| status | codes |
|---|---|
| 400 | `invalid_token_request`, `invalid_name`, `invalid_version`, `invalid_selector`, `invalid_digest`, `invalid_json`, `invalid_manifest`, `invalid_path`, `invalid_query`, `invalid_cursor`, `invalid_range`, `invalid_offset`, `invalid_body`, `upload_interrupted`, `digest_mismatch`, `missing_blobs`, `size_mismatch`, `kind_mismatch`, `base_mismatch`, `too_many_digests`, `invalid_eval`, `invalid_alias`, `invalid_reason`, `invalid_precondition`, `invalid_gate`, `invalid_filter`, `invalid_sort`, `invalid_label`, `invalid_job` |
| 401 | `unauthenticated` |
| 403 | `forbidden` |
| 404 | `token_not_found`, `not_found`, `blob_not_found`, `upload_not_found`, `repository_not_found`, `version_not_found`, `alias_not_found`, `gate_not_found`, `no_match`, `job_not_found` |
| 405 | `method_not_allowed` |
| 409 | `version_exists`, `upload_finishing`, `conflict`, `gate_failed`, `job_finished` |
| 412 | `alias_conflict` |
| 413 | `payload_too_large` |
| 416 | `range_not_satisfiable`, `wrong_offset` |
| 422 | `invalid_adapter`, `invalid_model` |
| 500 | `internal` |
| 503 | `not_ready` |
";

const TAGS: [(&str, &str); 8] = [
    ("health", "Liveness and readiness."),
    (
        "blobs",
        "Content-addressed blobs: check, upload in one request, download (ranges).",
    ),
    ("uploads", "Resumable blob uploads in chunks."),
    ("adapters", "Adapter repositories and versions."),
    ("models", "Model repositories and versions."),
    (
        "tokens",
        "Bearer tokens (admin) and the caller's identity (`/v1/whoami`).",
    ),
    ("audit", "The audit log of every mutation (admin)."),
    (
        "jobs",
        "Jobs (`validate`, `merge`, `quantise`): submit, state, progress, logs, cancel, events.",
    ),
];

/// The document the routes are added to.
pub fn base() -> OpenApi {
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("adapter-registry")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION))
                .build(),
        )
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    "bearer",
                    SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
                )
                // Job parameters and `metadata.derived_from`: carried as free JSON by the
                // routes, documented here.
                .schema_from::<adapter_core::api::MergeParams>()
                .schema_from::<adapter_core::api::QuantiseParams>()
                .schema_from::<adapter_core::api::Derivation>()
                .schema_from::<adapter_core::api::DerivedInput>()
                .build(),
        ))
        // A bearer token, or none where the server allows it (health, docs, `--public-read`).
        .security(Some([
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::default(),
        ]))
        .tags(Some(TAGS.map(|(name, description)| {
            TagBuilder::new()
                .name(name)
                .description(Some(description))
                .build()
        })))
        .build()
}

/// The repository routes are mounted once per kind: tag them with the kind's path segment
/// and make their operation ids unique (`adapters_publish_version`, `models_…`).
pub fn for_kind(api: &mut OpenApi, segment: &str) {
    for item in api.paths.paths.values_mut() {
        for op in operations_mut(item) {
            op.tags = Some(vec![segment.to_owned()]);
            if let Some(id) = &op.operation_id {
                op.operation_id = Some(format!("{segment}_{id}"));
            }
        }
    }
}

/// An optional request body (`Option<T>` in `#[utoipa::path]`) means "may be empty", not "may
/// be JSON `null`": describe it as `T` (the body stays `required: false`).
pub fn optional_bodies_are_not_null(api: &mut OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
    for item in api.paths.paths.values_mut() {
        for op in operations_mut(item) {
            let Some(RefOr::T(body)) = &mut op.request_body else {
                continue;
            };
            for content in body.content.values_mut() {
                let RefOr::T(content) = content else { continue };
                let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
                    continue;
                };
                if let [a, b] = &one_of.items[..] {
                    let keep = if is_null(b) { a } else { b };
                    if is_null(a) != is_null(b) {
                        content.schema = Some(keep.clone());
                    }
                }
            }
        }
    }
}

pub(super) fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
        &mut item.query,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Schema of a raw byte body (blobs, upload chunks): any bytes.
#[derive(Debug)]
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/octet-stream")
            .into()
    }
}

impl utoipa::ToSchema for Binary {}
