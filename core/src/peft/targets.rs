//! Which modules a config targets, and each module's rank, alpha and scale — PEFT's rules,
//! compiled once from an [`AdapterConfig`].

use regex::Regex;

use super::config::AdapterConfig;
use super::error::PeftError;
use super::values::{LayersToTransform, ModulePatterns, TargetModules};

/// What the config says about one module name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Targeted,
    /// Matched `exclude_modules`.
    Excluded,
    /// Inside a `modules_to_save` module: PEFT never puts an adapter there.
    InModulesToSave,
    /// Matches no target.
    NotTargeted,
    /// Matches a list target but `layers_to_transform` rules it out (`None`: no layer index
    /// could be found in the name).
    OutsideLayers(Option<u64>),
    /// `target_modules` is absent: PEFT would use per-architecture defaults we cannot see.
    Unknown,
}

#[derive(Debug)]
enum Targets {
    Unknown,
    AllLinear,
    Regex(Regex),
    List(Vec<String>),
}

#[derive(Debug)]
enum Patterns {
    Regex(Regex),
    List(Vec<String>),
}

impl Patterns {
    fn matches(&self, key: &str) -> bool {
        match self {
            Self::Regex(re) => re.is_match(key),
            Self::List(list) => list.iter().any(|t| suffix_match(key, t)),
        }
    }
}

/// The compiled targeting rules of one config.
#[derive(Debug)]
pub struct Targeting {
    targets: Targets,
    exclude: Option<Patterns>,
    modules_to_save: Vec<Regex>,
    layers: Option<LayersToTransform>,
    layer_res: Vec<Regex>,
    ranks: Vec<(String, Regex, u64)>,
    alphas: Vec<(String, Regex, f64)>,
    r: u64,
    lora_alpha: f64,
    use_rslora: bool,
}

/// The rank, alpha and scale PEFT gives one module.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleScale {
    pub rank: u64,
    pub alpha: f64,
    pub scale: f64,
    /// The `rank_pattern` key that set the rank, if any.
    pub rank_key: Option<String>,
    /// The `alpha_pattern` key that set alpha, if any.
    pub alpha_key: Option<String>,
}

/// List-target rule: `key == t` or `key.endswith("." + t)`
/// (`src/peft/tuners/tuners_utils.py`, `check_target_module_exists`).
pub fn suffix_match(key: &str, target: &str) -> bool {
    key == target
        || (key.len() > target.len()
            && key.ends_with(target)
            && key.as_bytes()[key.len() - target.len() - 1] == b'.')
}

/// Python `re.fullmatch(pattern, key)` as a `regex` crate pattern.
fn full(field: &str, pattern: &str) -> Result<Regex, PeftError> {
    compile(field, pattern, &format!("^(?:{pattern})$"))
}

fn compile(field: &str, pattern: &str, source: &str) -> Result<Regex, PeftError> {
    Regex::new(source).map_err(|e| PeftError::Regex {
        field: field.to_owned(),
        pattern: pattern.to_owned(),
        message: e.to_string().lines().last().unwrap_or_default().to_owned(),
    })
}

impl Targeting {
    /// Compile every pattern of `config`. A pattern the `regex` crate cannot compile is a
    /// [`PeftError::Regex`] naming the field.
    pub fn new(config: &AdapterConfig) -> Result<Self, PeftError> {
        let targets = match &config.target_modules {
            None => Targets::Unknown,
            Some(TargetModules::AllLinear(_)) => Targets::AllLinear,
            // `tuners_utils.py` → `utils/other.py`, `match_target_against_key`: re.fullmatch.
            Some(TargetModules::Regex(p)) => Targets::Regex(full("target_modules", p)?),
            Some(TargetModules::List(l)) => Targets::List(l.clone()),
        };
        let exclude = match &config.exclude_modules {
            None => None,
            Some(ModulePatterns::Regex(p)) => Some(Patterns::Regex(full("exclude_modules", p)?)),
            Some(ModulePatterns::List(l)) => Some(Patterns::List(l.clone())),
        };
        // `tuners_utils.py`, `check_target_module_exists`:
        // `re.match(rf"(^|.*\.){m}($|\..*)", key)` for each modules_to_save entry (unescaped).
        let modules_to_save = config
            .effective_modules_to_save()
            .iter()
            .map(|m| {
                compile(
                    "modules_to_save",
                    m,
                    &format!(r"^(?:^|.*\.)(?:{m})(?:$|\..*)"),
                )
            })
            .collect::<Result<_, _>>()?;
        // `tuners_utils.py`, `check_target_module_exists`: the lazy `.*?` picks the first
        // numbered segment (PEFT ≥ 0.15; older releases used a greedy `.*`).
        let layer_res = match config.layers_pattern.as_deref() {
            None | Some([]) => vec![compile("layers_pattern", "", r"^.*?\.[^.]*\.(\d+)\.")?],
            Some(list) => list
                .iter()
                .map(|p| compile("layers_pattern", p, &format!(r"^.*?\.{p}\.(\d+)\.")))
                .collect::<Result<_, _>>()?,
        };
        // `src/peft/utils/other.py`, `get_pattern_key`: `re.match(rf"(.*\.)?({key})$", name)`.
        let key_re = |field: &str, k: &str| compile(field, k, &format!(r"^(?:.*\.)?(?:{k})$"));
        let ranks = config
            .rank_pattern
            .iter()
            .map(|(k, v)| Ok((k.clone(), key_re("rank_pattern", k)?, *v)))
            .collect::<Result<_, PeftError>>()?;
        let alphas = config
            .alpha_pattern
            .iter()
            .map(|(k, v)| Ok((k.clone(), key_re("alpha_pattern", k)?, *v)))
            .collect::<Result<_, PeftError>>()?;
        Ok(Self {
            targets,
            exclude,
            modules_to_save,
            layers: config.layers_to_transform.clone(),
            layer_res,
            ranks,
            alphas,
            r: config.r,
            lora_alpha: config.lora_alpha,
            use_rslora: config.use_rslora,
        })
    }

    /// PEFT's `check_target_module_exists` for a module name (no base model: `all-linear`
    /// targets every module here; callers restrict it to linear modules).
    pub fn verdict(&self, key: &str) -> Verdict {
        if self.exclude.as_ref().is_some_and(|e| e.matches(key)) {
            return Verdict::Excluded;
        }
        if self.modules_to_save.iter().any(|re| re.is_match(key)) {
            return Verdict::InModulesToSave;
        }
        let list = match &self.targets {
            Targets::Unknown => return Verdict::Unknown,
            Targets::AllLinear => return Verdict::Targeted,
            Targets::Regex(re) => {
                return if re.is_match(key) {
                    Verdict::Targeted
                } else {
                    Verdict::NotTargeted
                };
            }
            Targets::List(list) => list,
        };
        // A module named exactly in the list is targeted whatever layers_to_transform says.
        if list.iter().any(|t| t == key) {
            return Verdict::Targeted;
        }
        if !list.iter().any(|t| suffix_match(key, t)) {
            return Verdict::NotTargeted;
        }
        match &self.layers {
            Some(layers) if layers.is_active() => match self.layer_index(key) {
                Some(i) if layers.contains(i) => Verdict::Targeted,
                other => Verdict::OutsideLayers(other),
            },
            _ => Verdict::Targeted,
        }
    }

    /// The layer index PEFT reads from a module name for `layers_to_transform`.
    pub fn layer_index(&self, key: &str) -> Option<u64> {
        self.layer_res
            .iter()
            .find_map(|re| re.captures(key))
            .and_then(|c| c[1].parse().ok())
    }

    /// Whether `target_modules` is the `all-linear` shorthand.
    pub fn is_all_linear(&self) -> bool {
        matches!(self.targets, Targets::AllLinear)
    }

    /// The list targets, if `target_modules` is a list.
    pub fn list_targets(&self) -> Option<&[String]> {
        match &self.targets {
            Targets::List(l) => Some(l),
            _ => None,
        }
    }

    /// Rank, alpha and scale of one module: the FIRST key in file order of `rank_pattern`
    /// (resp. `alpha_pattern`) that matches gives the value, else `r` (`lora_alpha`)
    /// (`src/peft/utils/other.py`, `get_pattern_key`; `src/peft/tuners/lora/model.py`,
    /// `_create_and_replace`). Scale: `src/peft/tuners/lora/layer.py`, `update_layer`.
    pub fn scale_of(&self, key: &str) -> ModuleScale {
        let rank_hit = self.ranks.iter().find(|(_, re, _)| re.is_match(key));
        let alpha_hit = self.alphas.iter().find(|(_, re, _)| re.is_match(key));
        let rank = rank_hit.map_or(self.r, |h| h.2);
        let alpha = alpha_hit.map_or(self.lora_alpha, |h| h.2);
        ModuleScale {
            rank,
            alpha,
            scale: scale(alpha, rank, self.use_rslora),
            rank_key: rank_hit.map(|h| h.0.clone()),
            alpha_key: alpha_hit.map(|h| h.0.clone()),
        }
    }
}

/// `lora_alpha / r`, or `lora_alpha / sqrt(r)` with rsLoRA
/// (`src/peft/tuners/lora/layer.py`, `LoraLayer.update_layer`).
pub fn scale(alpha: f64, rank: u64, use_rslora: bool) -> f64 {
    // u64 → f64 is exact for every rank a real adapter has (< 2^53).
    #[allow(clippy::cast_precision_loss)]
    let r = rank as f64;
    if use_rslora {
        alpha / r.sqrt()
    } else {
        alpha / r
    }
}

/// The first all-digit segment that has at least one segment before it and one after
/// (`model.layers.40.mlp` → (`model.layers`, 40)). Used for the report's layer list and for
/// comparing an adapter's layers with a base's, where base names may lack a prefix.
pub fn layer_segment(name: &str) -> Option<(String, u64)> {
    let parts: Vec<&str> = name.split('.').collect();
    (1..parts.len().saturating_sub(1)).find_map(|i| {
        let p = parts[i];
        if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse().ok().map(|n| (parts[..i].join("."), n))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> AdapterConfig {
        AdapterConfig::from_json_bytes(json.as_bytes()).unwrap()
    }

    #[test]
    fn suffix_rule_needs_a_dot() {
        assert!(suffix_match("model.layers.0.self_attn.q_proj", "q_proj"));
        assert!(suffix_match("q_proj", "q_proj"));
        assert!(!suffix_match("model.layers.0.self_attn.xq_proj", "q_proj"));
        assert!(suffix_match(
            "model.layers.0.self_attn.q_proj",
            "self_attn.q_proj"
        ));
    }

    #[test]
    fn regex_target_is_a_full_match() {
        let t = Targeting::new(&cfg(r#"{"target_modules": ".*\\.(q|v)_proj"}"#)).unwrap();
        assert_eq!(
            t.verdict("model.layers.0.self_attn.q_proj"),
            Verdict::Targeted
        );
        assert_eq!(
            t.verdict("model.layers.0.self_attn.q_proj.x"),
            Verdict::NotTargeted
        );
        assert_eq!(
            t.verdict("model.layers.0.self_attn.k_proj"),
            Verdict::NotTargeted
        );
        let t = Targeting::new(&cfg(r#"{"target_modules": "q_proj"}"#)).unwrap();
        assert_eq!(
            t.verdict("model.layers.0.self_attn.q_proj"),
            Verdict::NotTargeted
        );
    }

    #[test]
    fn layers_to_transform_uses_the_first_numbered_segment() {
        let t = Targeting::new(&cfg(
            r#"{"target_modules": ["w1"], "layers_to_transform": [1]}"#,
        ))
        .unwrap();
        assert_eq!(t.verdict("model.layers.1.experts.0.w1"), Verdict::Targeted);
        assert_eq!(
            t.verdict("model.layers.0.experts.1.w1"),
            Verdict::OutsideLayers(Some(0))
        );
        // A name with too few segments before the index gives no layer index at all.
        assert_eq!(t.verdict("layers.1.w1"), Verdict::OutsideLayers(None));
        // Named exactly: targeted whatever the layer.
        let t = Targeting::new(&cfg(
            r#"{"target_modules": ["model.layers.5.w1"], "layers_to_transform": 1}"#,
        ))
        .unwrap();
        assert_eq!(t.verdict("model.layers.5.w1"), Verdict::Targeted);
    }

    #[test]
    fn layers_pattern_selects_the_container() {
        let t = Targeting::new(&cfg(
            r#"{"target_modules": ["q"], "layers_to_transform": [2], "layers_pattern": "blocks"}"#,
        ))
        .unwrap();
        assert_eq!(t.verdict("enc.layers.0.blocks.2.q"), Verdict::Targeted);
        assert_eq!(
            t.verdict("enc.layers.2.blocks.0.q"),
            Verdict::OutsideLayers(Some(0))
        );
    }

    #[test]
    fn exclude_and_modules_to_save_win_over_targets() {
        let t = Targeting::new(&cfg(
            r#"{"target_modules": ["q_proj", "lm_head"], "exclude_modules": ["layers.3.self_attn.q_proj"], "modules_to_save": ["lm_head"]}"#,
        ))
        .unwrap();
        assert_eq!(
            t.verdict("model.layers.3.self_attn.q_proj"),
            Verdict::Excluded
        );
        assert_eq!(
            t.verdict("model.layers.13.self_attn.q_proj"),
            Verdict::Targeted
        );
        assert_eq!(t.verdict("lm_head"), Verdict::InModulesToSave);
    }

    #[test]
    fn python_only_regex_is_a_config_error() {
        let e =
            Targeting::new(&cfg(r#"{"target_modules": "(?<=self_attn\\.)q_proj"}"#)).unwrap_err();
        assert!(matches!(&e, PeftError::Regex { field, .. } if field == "target_modules"));
        assert!(e.to_string().contains("cannot be compiled"), "{e}");
    }

    #[test]
    fn first_pattern_key_in_file_order_wins_and_is_anchored() {
        let c = cfg(
            r#"{"r": 8, "lora_alpha": 16, "rank_pattern": {"layers.1.self_attn.q_proj": 4, "q_proj": 32, "layers.1.self_attn.q_proj.*": 2},
               "alpha_pattern": {"q_proj": 64, "layers.1.self_attn.q_proj": 1}}"#,
        );
        let t = Targeting::new(&c).unwrap();
        let one = t.scale_of("model.layers.1.self_attn.q_proj");
        assert_eq!((one.rank, one.alpha), (4, 64.0));
        assert_eq!(one.rank_key.as_deref(), Some("layers.1.self_attn.q_proj"));
        // `layers.1.` must not match inside `layers.11.`.
        let eleven = t.scale_of("model.layers.11.self_attn.q_proj");
        assert_eq!((eleven.rank, eleven.alpha), (32, 64.0));
        let other = t.scale_of("model.layers.1.self_attn.v_proj");
        assert_eq!((other.rank, other.alpha, other.scale), (8, 16.0, 2.0));
    }

    #[test]
    fn rslora_divides_by_the_square_root() {
        assert_eq!(scale(16.0, 64, true), 2.0);
        assert_eq!(scale(16.0, 64, false), 0.25);
    }

    #[test]
    fn layer_segments() {
        assert_eq!(
            layer_segment("model.layers.40.self_attn.q_proj"),
            Some(("model.layers".to_owned(), 40))
        );
        assert_eq!(layer_segment("h.3.attn.c_attn"), Some(("h".to_owned(), 3)));
        assert_eq!(layer_segment("lm_head"), None);
    }
}
