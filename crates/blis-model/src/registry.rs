//! Bundled HuggingFace `config.json` files, so common models work offline.
//!
//! Keys are the repository name after the organisation, lower-cased: HF ids are matched
//! case-insensitively and regardless of organisation (`RedHatAI/...`, `meta-llama/...`).
//! A small alias table maps chat/instruct variants onto a bundled config of the *same*
//! architecture (fine-tuning does not change any field the simulator reads).

/// `(key, config.json text)`, sorted by key. Must list every file in `data/models/`.
const BUNDLED: &[(&str, &str)] = &[
    ("codellama-34b-instruct-hf", include_str!("../data/models/codellama-34b-instruct-hf.json")),
    ("deepseek-v2-lite", include_str!("../data/models/deepseek-v2-lite.json")),
    ("glm-5.2-fp8", include_str!("../data/models/glm-5.2-fp8.json")),
    ("llama-2-70b-hf", include_str!("../data/models/llama-2-70b-hf.json")),
    ("llama-2-7b-hf", include_str!("../data/models/llama-2-7b-hf.json")),
    ("llama-3.1-70b-instruct", include_str!("../data/models/llama-3.1-70b-instruct.json")),
    ("llama-3.1-8b-instruct", include_str!("../data/models/llama-3.1-8b-instruct.json")),
    (
        "llama-4-scout-17b-16e-instruct-fp8-dynamic",
        include_str!("../data/models/llama-4-scout-17b-16e-instruct-fp8-dynamic.json"),
    ),
    ("mistral-nemo-instruct-2407", include_str!("../data/models/mistral-nemo-instruct-2407.json")),
    ("mixtral-8x22b-v0.1", include_str!("../data/models/mixtral-8x22b-v0.1.json")),
    ("mixtral-8x7b-v0.1", include_str!("../data/models/mixtral-8x7b-v0.1.json")),
    ("qwen2.5-7b-instruct", include_str!("../data/models/qwen2.5-7b-instruct.json")),
    ("qwen3-14b", include_str!("../data/models/qwen3-14b.json")),
    ("qwen3-30b-a3b", include_str!("../data/models/qwen3-30b-a3b.json")),
    ("yi-34b", include_str!("../data/models/yi-34b.json")),
];

/// Variants sharing a bundled architecture: `(alias key, bundled key)`.
const ALIASES: &[(&str, &str)] = &[
    ("mixtral-8x22b-instruct-v0.1", "mixtral-8x22b-v0.1"),
    ("mixtral-8x7b-instruct-v0.1", "mixtral-8x7b-v0.1"),
    ("llama-2-7b-chat-hf", "llama-2-7b-hf"),
    ("llama-2-70b-chat-hf", "llama-2-70b-hf"),
    ("yi-34b-chat", "yi-34b"),
];

/// Registry key of a model id: the part after the last `/`, trimmed and lower-cased.
pub fn registry_key(model: &str) -> String {
    let name = model.trim();
    name.rsplit('/').next().unwrap_or(name).to_lowercase()
}

/// Keys of all bundled configs (sorted).
pub fn bundled_model_names() -> Vec<&'static str> {
    BUNDLED.iter().map(|(k, _)| *k).collect()
}

/// The bundled `config.json` for a model id, with the bundled key it resolved to.
pub fn bundled_config(model: &str) -> Option<(&'static str, &'static str)> {
    let key = registry_key(model);
    let key = ALIASES.iter().find(|(a, _)| *a == key).map_or(key.as_str(), |(_, t)| t);
    BUNDLED.iter().find(|(k, _)| *k == key).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelSpec;

    #[test]
    fn lookups_are_case_and_org_insensitive() {
        for id in
            ["meta-llama/llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b-instruct"]
        {
            assert_eq!(bundled_config(id).unwrap().0, "llama-3.1-8b-instruct", "{id}");
        }
        let scout = "RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic";
        assert_eq!(bundled_config(scout).unwrap().0, "llama-4-scout-17b-16e-instruct-fp8-dynamic");
        assert_eq!(bundled_config("mistralai/Mixtral-8x22B-Instruct-v0.1").unwrap().0, "mixtral-8x22b-v0.1");
        assert_eq!(bundled_config("01-ai/Yi-34B-Chat").unwrap().0, "yi-34b");
        assert!(bundled_config("org/unknown-model").is_none());
        assert!(bundled_config("").is_none());
    }

    #[test]
    fn every_data_file_is_listed_and_aliases_resolve() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/models");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".json").to_string())
            .collect();
        files.sort();
        assert_eq!(files, bundled_model_names());
        for (alias, target) in ALIASES {
            assert_eq!(bundled_config(alias).map(|x| x.0), Some(*target));
        }
    }

    #[test]
    fn every_bundled_config_parses() {
        for (key, json) in BUNDLED {
            let m = ModelSpec::from_config_json(key, json).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(m.num_moe_layers + m.num_dense_layers, m.num_layers, "{key}");
            assert!(m.param_count() > 1_000_000_000, "{key}");
            assert!(m.derived_max_model_len >= 4096, "{key}");
        }
    }

    #[test]
    fn bundled_architectures_match_published_sizes() {
        let params = |id: &str| {
            let (key, json) = bundled_config(id).unwrap();
            ModelSpec::from_config_json(key, json).unwrap().param_count() as f64 / 1e9
        };
        // Published totals (B): checks the per-family field handling end to end.
        for (id, billions) in [
            ("llama-3.1-8b-instruct", 8.03),
            ("llama-3.1-70b-instruct", 70.6),
            ("mistral-nemo-instruct-2407", 12.2),
            ("mixtral-8x7b-v0.1", 46.7),
            ("mixtral-8x22b-v0.1", 140.6),
            ("qwen3-30b-a3b", 30.5),
            ("llama-4-scout-17b-16e-instruct-fp8-dynamic", 107.8), // 109 incl. vision tower
        ] {
            let p = params(id);
            assert!((p - billions).abs() / billions < 0.02, "{id}: {p}");
        }
        let (key, json) = bundled_config("RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic").unwrap();
        let scout = ModelSpec::from_config_json(key, json).unwrap();
        assert_eq!((scout.num_moe_layers, scout.weight_moe_layers, scout.weight_bytes), (24, 48, 1.0));
        assert_eq!(scout.derived_max_model_len, 10_485_760); // llama3 rope type: not scaled
    }
}
