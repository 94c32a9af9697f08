//! The grammar of each request parameter in the OpenAPI spec: patterns and lengths taken from
//! the parsers themselves (`Name::PATTERN`, `reference::VERSION_PATTERN`, …; core's
//! `tests/patterns.rs` holds each pattern to its parser). A parameter the spec describes as a
//! bare string would tell clients, and API fuzzers, that any string is valid; the server
//! refuses most of them with 400.

use adapter_core::digest::Digest;
use adapter_core::name::{AliasName, MAX_NAME_LEN, Name};
use adapter_core::reference::{RANGE_PATTERN, VERSION_PATTERN};
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{OpenApi, RefOr};

use super::doc::operations_mut;
use super::search;
use crate::extract::MAX_VERSION_LEN;

fn pattern(pattern: &str, max_length: usize) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .max_length(Some(max_length))
        .into()
}

/// `^(…)?$`: the pattern, or the empty string (a query parameter given empty is no
/// condition).
fn or_empty(p: &str) -> String {
    let inner = p.trim_start_matches('^').trim_end_matches('$');
    format!("^({inner})?$")
}

fn name() -> Schema {
    pattern(Name::PATTERN, MAX_NAME_LEN)
}

fn alias() -> Schema {
    pattern(AliasName::PATTERN, MAX_NAME_LEN)
}

fn version() -> Schema {
    pattern(VERSION_PATTERN, MAX_VERSION_LEN)
}

fn digest() -> Schema {
    pattern(Digest::PATTERN, Digest::PATTERN.len())
}

/// A selector: an exact version, a range, an alias or a manifest digest.
fn selector() -> Schema {
    AnyOfBuilder::new()
        .item(version())
        .item(pattern(RANGE_PATTERN, MAX_VERSION_LEN))
        .item(alias())
        .item(digest())
        .into()
}

/// A repeatable query parameter: up to [`search::MAX_REPEAT`] values of `item`.
fn repeated(item: Schema) -> Schema {
    use utoipa::openapi::schema::ArrayBuilder;
    ArrayBuilder::new()
        .items(RefOr::T(item))
        .max_items(Some(search::MAX_REPEAT))
        .into()
}

/// Any string of at most `max` characters.
fn text(max: usize) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(max))
        .into()
}

/// Benchmark and metric names as the spec gives them: a subset of what the server takes
/// (printable, no `:`, `<`, `>`, `=`, at most 128 bytes) that is ASCII, so that its length in
/// characters bounds its length in bytes.
const EVAL_NAME: &str = "[A-Za-z0-9_.-]{1,32}";

/// The schema of parameter `name` in `location` of the route `path`, where the spec has a
/// grammar for it.
fn grammar(path: &str, location: &ParameterIn, name: &str) -> Option<Schema> {
    let search = path == "/v1/adapters" || path == "/v1/models";
    Some(match (location, name) {
        (ParameterIn::Path, "ns" | "name") => self::name(),
        (ParameterIn::Path, "alias") => alias(),
        (ParameterIn::Path, "version") => version(),
        (ParameterIn::Path, "digest") | (ParameterIn::Query, "digest") => digest(),
        (ParameterIn::Path, "selector") => selector(),
        // `GET /v1/{kind}` (`api/search.rs`): an empty value of a single parameter is no
        // condition; every value is at most `MAX_VALUE` characters.
        (ParameterIn::Query, "namespace") if search => {
            pattern(&or_empty(Name::PATTERN), MAX_NAME_LEN)
        }
        (ParameterIn::Query, "q") if search => text(search::MAX_VALUE),
        (ParameterIn::Query, "base") if search => AnyOfBuilder::new()
            .item(pattern(&or_empty(Digest::PATTERN), Digest::PATTERN.len()))
            .item(pattern("^[a-z0-9][a-z0-9._/-]{0,63}$", 64))
            .into(),
        (ParameterIn::Query, "compatible_with") if search => pattern(
            &or_empty(&format!(
                "^{n}/{n}(@{v})?$",
                n = "[a-z0-9]{1,16}([._-][a-z0-9]{1,16}){0,3}",
                v = VERSION_PATTERN
                    .trim_start_matches('^')
                    .trim_end_matches('$'),
            )),
            search::MAX_VALUE,
        ),
        (ParameterIn::Query, "target") if search => {
            repeated(pattern("^[A-Za-z0-9_.-]{1,128}$", 128))
        }
        (ParameterIn::Query, "label") if search => repeated(pattern(
            "^[a-z0-9][a-z0-9._-]{0,62}(=[ -~]{0,128})?$",
            search::MAX_VALUE,
        )),
        (ParameterIn::Query, "eval") if search => repeated(pattern(
            &format!("^{EVAL_NAME}:{EVAL_NAME}(>=|<=|>|<|=)-?[0-9]{{1,12}}(\\.[0-9]{{1,6}})?$"),
            search::MAX_VALUE,
        )),
        (ParameterIn::Query, "variant") if search => {
            pattern("^(lora|dora|rslora|rslora\\+dora|dora\\+rslora)?$", 11)
        }
        (ParameterIn::Query, "sort") if search => pattern(
            &format!("^(-?(name|created|eval:{EVAL_NAME}:{EVAL_NAME}))?$"),
            search::MAX_VALUE,
        ),
        // `GET /v1/jobs`: a cursor is a job id; `input` a manifest digest.
        (ParameterIn::Query, "state") if path == "/v1/jobs" => {
            pattern("^(queued|running|succeeded|failed|cancelled)?$", 9)
        }
        (ParameterIn::Query, "kind") if path == "/v1/jobs" => text(64),
        (ParameterIn::Query, "input") if path == "/v1/jobs" => {
            pattern(&or_empty(Digest::PATTERN), Digest::PATTERN.len())
        }
        (ParameterIn::Query, "cursor") if path == "/v1/jobs" => {
            pattern("^(job_[0-9a-f]{32})?$", 36)
        }
        // `GET /v1/audit`: a cursor is an entry id.
        (ParameterIn::Query, "cursor") if path == "/v1/audit" => {
            pattern("^([1-9][0-9]{0,17})?$", 18)
        }
        _ => return None,
    })
}

/// Give every parameter with a known grammar its schema.
pub fn parameter_grammars(api: &mut OpenApi) {
    for (path, item) in api.paths.paths.iter_mut() {
        for op in operations_mut(item) {
            for p in op.parameters.iter_mut().flatten() {
                let RefOr::T(p) = p else { continue };
                if let Some(schema) = grammar(path, &p.parameter_in, &p.name) {
                    p.schema = Some(RefOr::T(schema));
                }
            }
        }
    }
}

/// Every route but the health checks needs a token (or `--public-read` for reads): give each
/// operation the 401 and 403 answers the auth layer gives before its handler runs, where its
/// own description does not list them already.
pub fn auth_responses(api: &mut OpenApi) {
    use utoipa::openapi::ResponseBuilder;
    use utoipa::openapi::content::ContentBuilder;
    let answers = [
        (
            "401",
            "`unauthenticated`: no token, or one that is unknown, expired or revoked.",
        ),
        (
            "403",
            "`forbidden`: the token lacks the scope or namespace this needs (docs/API.md, \
             \"Authentication and authorization\").",
        ),
    ];
    for (path, item) in api.paths.paths.iter_mut() {
        if path == "/healthz" || path == "/readyz" {
            continue;
        }
        for op in operations_mut(item) {
            for (status, description) in answers {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(description)
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(RefOr::Ref(
                                        utoipa::openapi::Ref::from_schema_name("ErrorBody"),
                                    )))
                                    .build(),
                            )
                            .into()
                    });
            }
        }
    }
}

/// Grammars inside request bodies that a derive cannot state: a token's namespaces are names.
pub fn body_grammars(api: &mut OpenApi) {
    use utoipa::openapi::schema::ArrayItems;
    let Some(components) = api.components.as_mut() else {
        return;
    };
    if let Some(RefOr::T(Schema::Object(token))) = components.schemas.get_mut("TokenCreate")
        && let Some(RefOr::T(Schema::Array(list))) = token.properties.get_mut("namespaces")
    {
        list.items = ArrayItems::RefOrSchema(Box::new(RefOr::T(name())));
    }
}
