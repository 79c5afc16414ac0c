//! Which tensor-parallel sizes vLLM accepts for a model.
//!
//! vLLM refuses a TP size that does not split the attention heads evenly:
//! `ModelConfig.verify_with_parallel_config` (vllm/config/model.py) raises "Total number of
//! attention heads (H) must be divisible by tensor parallel size (TP)". KV heads are split by
//! `QKVParallelLinear` (vllm/model_executor/layers/linear.py): with TP ≥ KV heads each rank
//! keeps one KV head, replicated `divide(TP, KV)` times, otherwise each keeps
//! `divide(KV, TP)`; `divide` (vllm/distributed/utils.py) asserts exact divisibility. So KV
//! heads must divide TP or TP must divide KV heads. MLA models (DeepSeek) replicate one latent
//! KV on every rank instead, so only the head rule applies to them.

use crate::error::ModelError;
use crate::model::ModelSpec;

/// Whether vLLM can run `model` with tensor-parallel size `tp` (see the module docs); the
/// error names `--tp`, the rule broken and the sizes that work.
pub fn check_tensor_parallel(model: &ModelSpec, tp: u32) -> Result<(), ModelError> {
    let refuse = |why: String| ModelError::InvalidArgument {
        what: "--tp".into(),
        reason: format!("{why}; TP sizes vLLM accepts for this model: {}", accepted_list(model)),
    };
    if tp == 0 {
        return Err(refuse("must be at least 1".into()));
    }
    let (heads, kv, tp64) = (model.num_attention_heads, model.num_kv_heads, u64::from(tp));
    if heads % tp64 != 0 {
        return Err(refuse(format!(
            "{tp} does not divide the {heads} attention heads of model {} (vLLM requires it)",
            model.name
        )));
    }
    if !kv_rule(model, tp64) {
        return Err(refuse(format!(
            "{tp} and the {kv} KV heads of model {} do not divide one another (vLLM shards or replicates \
             KV heads only evenly)",
            model.name
        )));
    }
    Ok(())
}

fn kv_rule(model: &ModelSpec, tp: u64) -> bool {
    let kv = model.num_kv_heads;
    model.mla_kv_dim > 0 || kv.is_multiple_of(tp) || tp.is_multiple_of(kv)
}

/// The accepted TP sizes: divisors of the head count that pass the KV rule (at most 12 shown).
fn accepted_list(model: &ModelSpec) -> String {
    let heads = model.num_attention_heads;
    let mut divisors: Vec<u64> =
        (1..=heads.isqrt()).filter(|d| heads.is_multiple_of(*d)).flat_map(|d| [d, heads / d]).collect();
    divisors.sort_unstable();
    divisors.dedup();
    let ok: Vec<String> = divisors
        .into_iter()
        .filter(|&d| d <= u64::from(u32::MAX) && kv_rule(model, d))
        .map(|d| d.to_string())
        .collect();
    if ok.len() > 12 { format!("{}, …", ok[..12].join(", ")) } else { ok.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundled_config;

    fn model(name: &str) -> ModelSpec {
        let (key, json) = bundled_config(name).unwrap();
        ModelSpec::from_config_json(key, json).unwrap()
    }

    #[test]
    fn llama_8b_accepts_powers_of_two_up_to_its_heads() {
        let m = model("llama-3.1-8b-instruct"); // 32 heads, 8 KV heads
        for tp in [1, 2, 4, 8, 16, 32] {
            check_tensor_parallel(&m, tp).unwrap();
        }
        assert_eq!(
            check_tensor_parallel(&m, 3).unwrap_err().to_string(),
            "invalid --tp: 3 does not divide the 32 attention heads of model llama-3.1-8b-instruct (vLLM \
             requires it); TP sizes vLLM accepts for this model: 1, 2, 4, 8, 16, 32"
        );
        assert!(
            check_tensor_parallel(&m, 1024)
                .unwrap_err()
                .to_string()
                .starts_with("invalid --tp: 1024 does not divide the 32 attention heads")
        );
        assert!(check_tensor_parallel(&m, 0).is_err());
    }

    #[test]
    fn kv_heads_must_divide_or_be_divided_by_tp() {
        let mut m = model("llama-3.1-8b-instruct");
        (m.num_attention_heads, m.num_kv_heads) = (48, 8);
        check_tensor_parallel(&m, 16).unwrap(); // 8 KV heads replicated twice
        let e = check_tensor_parallel(&m, 12).unwrap_err().to_string();
        assert!(e.starts_with("invalid --tp: 12 and the 8 KV heads of model"), "{e}");
        assert!(e.ends_with("accepts for this model: 1, 2, 4, 8, 16, 24, 48"), "{e}");
        // MLA: one latent KV per rank, only the head rule applies.
        let mut ds = model("deepseek-v2-lite");
        ds.num_kv_heads = 3;
        check_tensor_parallel(&ds, 16).unwrap();
    }

    #[test]
    fn every_bundled_model_accepts_tp_1_and_its_measured_tps() {
        for name in crate::bundled_model_names() {
            check_tensor_parallel(&model(name), 1).unwrap();
        }
        check_tensor_parallel(&model("llama-4-scout-17b-16e-instruct-fp8-dynamic"), 2).unwrap();
        check_tensor_parallel(&model("llama-3.1-70b-instruct"), 4).unwrap();
    }
}
