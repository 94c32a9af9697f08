//! The "use it" panel of a version page: commands to copy, each pinned to this version:
//! `adapterctl pull` (by version and by manifest digest), the `adapters.lock` entry that
//! `pull --lock` writes, the Hugging Face protocol (`HF_ENDPOINT`, docs/HF.md) with PEFT or
//! transformers, `vllm serve` with the adapter (its `--max-lora-rank` from the serving
//! profile), and `llama-cli -m` for a GGUF model.

use adapter_core::api::{Summary, VersionInfo, metadata};
use adapter_core::compat::serving::VLLM_MAX_LORA_RANKS;
use adapter_core::manifest::Kind;
use axum::http::HeaderMap;
use axum::http::header;

use super::html::esc;
use crate::app::AppState;

/// Where people reach this registry: `--public-url`, else the request's `Host`.
pub fn origin(app: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &app.config.public_url {
        return u.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost:8080");
    format!("http://{host}")
}

/// One snippet: a heading, the text (escaped here) in a `<pre>` with an id for scripts and
/// tests, and a copy button (`assets/ui.js` wires it; without scripts, select and copy).
fn snippet(id: &str, title: &str, text: &str) -> String {
    format!(
        "<h3>{title}</h3><pre id=\"{id}\" data-copy><code>{}</code></pre>",
        esc(text)
    )
}

/// The directory a pull writes to: the repository's name.
fn out_dir(info: &VersionInfo) -> &str {
    &info.name
}

/// The panel, for a version of `kind` seen from `origin`.
pub fn panel(origin: &str, info: &VersionInfo, max_lora_rank: Option<u64>) -> String {
    let repo = format!("{}/{}", info.namespace, info.name);
    let kind_flag = match info.kind {
        Kind::Adapter => "",
        Kind::Model => " --kind model",
    };
    let dir = out_dir(info);
    let mut out = String::from("<h2 id=\"use-it\">Use it</h2><div class=\"panel\">");
    out.push_str(&snippet(
        "pull",
        "adapterctl pull (with a token: <code>adapterctl login</code>)",
        &format!(
            "export ADAPTERCTL_URL={origin}\nadapterctl pull {repo}@{}{kind_flag} -o {dir}",
            info.version
        ),
    ));
    out.push_str(&snippet(
        "pull-pinned",
        "Pinned by manifest digest",
        &format!(
            "adapterctl pull {repo}@{}{kind_flag} -o {dir}",
            info.manifest_digest
        ),
    ));
    out.push_str(&snippet(
        "lock",
        "adapters.lock (written by <code>pull --lock adapters.lock</code>)",
        &format!(
            "[\"{repo}\"]\nkind = \"{}\"\nversion = \"{}\"\nmanifest_digest = \"{}\"",
            info.kind.as_str(),
            info.version,
            info.manifest_digest
        ),
    ));
    let hf = format!("{origin}/hf");
    match &info.summary {
        Summary::Adapter(a) => {
            let (base_id, base_rev) = match a.base.reference.as_deref().map(|r| r.split_once('@')) {
                Some(Some((id, rev))) => (id.to_owned(), Some(rev.to_owned())),
                _ => (
                    a.base
                        .name_or_path
                        .clone()
                        .unwrap_or_else(|| "BASE_MODEL".into()),
                    None,
                ),
            };
            let base_rev = base_rev
                .map(|r| format!(", revision=\"{r}\""))
                .unwrap_or_default();
            out.push_str(&snippet(
                "hf",
                "PEFT through the Hugging Face protocol",
                &format!(
                    "export HF_ENDPOINT={hf} HF_TOKEN=<your token>\npython - <<'EOF'\n\
                     from transformers import AutoModelForCausalLM\nfrom peft import PeftModel\n\
                     base = AutoModelForCausalLM.from_pretrained(\"{base_id}\"{base_rev})\n\
                     model = PeftModel.from_pretrained(base, \"{repo}\", revision=\"{}\")\nEOF",
                    info.version
                ),
            ));
            let rank = max_lora_rank.or_else(|| {
                let (_, max) = a.rank_range();
                VLLM_MAX_LORA_RANKS.iter().copied().find(|&r| r >= max)
            });
            let rank_flag = rank
                .map(|r| format!(" --max-lora-rank {r}"))
                .unwrap_or_default();
            out.push_str(&snippet(
                "vllm",
                "vLLM",
                &format!(
                    "adapterctl pull {repo}@{} -o {dir}\n\
                     HF_ENDPOINT={hf} vllm serve {base_id} --enable-lora{rank_flag} \\\n    \
                     --lora-modules {}=./{dir}",
                    info.version, info.name
                ),
            ));
        }
        Summary::Model(m) => {
            out.push_str(&snippet(
                "hf",
                "transformers through the Hugging Face protocol",
                &format!(
                    "export HF_ENDPOINT={hf} HF_TOKEN=<your token>\npython - <<'EOF'\n\
                     from huggingface_hub import snapshot_download\n\
                     path = snapshot_download(\"{repo}\", revision=\"{}\")\nEOF",
                    info.version
                ),
            ));
            if m.format.as_deref() == Some("gguf") {
                let gguf = info
                    .manifest
                    .files()
                    .iter()
                    .map(|f| f.path.as_str())
                    .find(|p| p.ends_with(".gguf"))
                    .unwrap_or("model.gguf");
                out.push_str(&snippet(
                    "llama",
                    "llama.cpp",
                    &format!(
                        "adapterctl pull {repo}@{}{kind_flag} -o {dir}\n\
                         llama-cli -m {dir}/{gguf} -p \"Hello\"",
                        info.version
                    ),
                ));
            } else if !m.headers_only {
                out.push_str(&snippet(
                    "vllm",
                    "vLLM",
                    &format!(
                        "adapterctl pull {repo}@{}{kind_flag} -o {dir}\nvllm serve ./{dir}",
                        info.version
                    ),
                ));
            }
        }
    }
    if info
        .manifest
        .metadata()
        .get(metadata::HEADERS_ONLY)
        .and_then(serde_json::Value::as_bool)
        == Some(true)
    {
        out.push_str(
            "<p class=\"warn\">Registered headers-only: its weight files are not stored here; \
             a pull gets the configs and headers.</p>",
        );
    }
    out.push_str("</div>");
    out
}
