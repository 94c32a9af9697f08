//! Model cards (`README.md`): the YAML front matter between `---` lines at the top, where the
//! Hub keeps a repository's metadata (`base_model`, `library_name`, `tags`). Read for
//! `POST /hf/api/validate-yaml` (which `huggingface_hub` calls before it uploads a card) and
//! for the base model a commit's card names.

use serde_json::{Map, Value};

/// The front matter of `text`: `Ok(None)` when the card has none, the mapping when it has
/// one, `Err` (why) when it is not YAML or not a mapping.
pub fn front_matter(text: &str) -> Result<Option<Map<String, Value>>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    if lines.next().is_none_or(|l| l.trim_end() != "---") {
        return Ok(None);
    }
    let start = text.find('\n').map_or(text.len(), |i| i + 1);
    let mut end = None;
    let mut at = start;
    for line in lines {
        if line.trim_end() == "---" {
            end = Some(at);
            break;
        }
        at += line.len();
    }
    let Some(end) = end else {
        return Err("the metadata block opened by `---` is never closed".into());
    };
    let value: Value = serde_yaml_ng::from_str(&text[start..end])
        .map_err(|e| format!("the metadata is not valid YAML: {e}"))?;
    match value {
        Value::Null => Ok(Some(Map::new())),
        Value::Object(map) => Ok(Some(map)),
        _ => Err("the metadata must be a YAML mapping (`key: value` lines)".into()),
    }
}

/// The base models the metadata names (`base_model`: one id or a list of them).
pub fn base_models(meta: &Map<String, Value>) -> Vec<String> {
    match meta.get("base_model") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_with_and_without_metadata() {
        let card =
            "---\nbase_model: example/tiny-llama\nlibrary_name: peft\ntags:\n- lora\n---\n# Card\n";
        let meta = front_matter(card).unwrap().unwrap();
        assert_eq!(base_models(&meta), ["example/tiny-llama"]);
        assert_eq!(meta["library_name"], "peft");
        let list = "\u{feff}---\r\nbase_model:\r\n- a/b\r\n- c/d\r\n---\r\ntext";
        assert_eq!(
            base_models(&front_matter(list).unwrap().unwrap()),
            ["a/b", "c/d"]
        );
        assert_eq!(front_matter("# Just a title\n---\n").unwrap(), None);
        assert_eq!(front_matter("---\n---\n").unwrap(), Some(Map::new()));
    }

    #[test]
    fn broken_metadata_is_an_error() {
        for bad in [
            "---\nbase_model: [unclosed\n---\n",
            "---\n- a list\n---\n",
            "---\nkey: value\n",
        ] {
            assert!(front_matter(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn alias_bombs_are_refused_not_expanded() {
        let mut yaml = String::from("---\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            yaml.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        yaml.push_str("---\n");
        assert!(front_matter(&yaml).is_err());
    }
}
