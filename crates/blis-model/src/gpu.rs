//! GPU specifications (peak compute, memory bandwidth, memory size): the built-in table of
//! latency.md §8.1 plus user overrides from a `hardware_config.json`.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::ModelError;

/// One GPU type. Figures are per GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSpec {
    pub name: String,
    /// Dense BF16 peak, TFLOP/s.
    pub tflops_bf16: f64,
    /// Dense FP8 peak, TFLOP/s (0 = no FP8 support).
    pub tflops_fp8: f64,
    /// HBM bandwidth, TB/s.
    pub hbm_bandwidth_tbs: f64,
    /// Achievable fraction of peak FLOPs in prefill / decode (roofline efficiency factors).
    pub mfu_prefill: f64,
    pub mfu_decode: f64,
    pub memory_gib: f64,
}

impl GpuSpec {
    const fn builtin(
        name: &'static str,
        bf16: f64,
        fp8: f64,
        bw: f64,
        pf: f64,
        dc: f64,
        mem: f64,
    ) -> Builtin {
        Builtin { name, figures: [bf16, fp8, bw, pf, dc, mem] }
    }
}

/// A const-constructible row of the built-in table (`String` is not const).
struct Builtin {
    name: &'static str,
    figures: [f64; 6],
}

impl Builtin {
    fn spec(&self) -> GpuSpec {
        let [tflops_bf16, tflops_fp8, hbm_bandwidth_tbs, mfu_prefill, mfu_decode, memory_gib] = self.figures;
        GpuSpec {
            name: self.name.to_string(),
            tflops_bf16,
            tflops_fp8,
            hbm_bandwidth_tbs,
            mfu_prefill,
            mfu_decode,
            memory_gib,
        }
    }
}

/// latency.md §8.1. `A100-80` is an alias row of `A100-SXM` (the reference ships both).
const BUILTIN: &[Builtin] = &[
    GpuSpec::builtin("H100", 989.5, 1979.0, 3.35, 0.45, 0.30, 80.0),
    GpuSpec::builtin("A100-SXM", 312.0, 0.0, 2.039, 0.38, 0.18, 80.0),
    GpuSpec::builtin("A100-80", 312.0, 0.0, 2.039, 0.38, 0.18, 80.0),
    GpuSpec::builtin("L40S", 362.05, 1466.0, 0.864, 0.32, 0.08, 48.0),
];

/// The built-in GPU table.
pub fn builtin_gpus() -> Vec<GpuSpec> {
    BUILTIN.iter().map(Builtin::spec).collect()
}

/// Looks a GPU up case-insensitively; `extra` (from [`load_hardware_config`]) wins over the
/// built-ins. The error lists every accepted name.
pub fn gpu_by_name(name: &str, extra: &[GpuSpec]) -> Result<GpuSpec, ModelError> {
    let wanted = name.trim();
    if let Some(g) = extra.iter().rev().find(|g| g.name.trim().eq_ignore_ascii_case(wanted)) {
        return Ok(g.clone());
    }
    if let Some(b) = BUILTIN.iter().find(|b| b.name.eq_ignore_ascii_case(wanted)) {
        return Ok(b.spec());
    }
    let mut accepted: Vec<String> = BUILTIN.iter().map(|b| b.name.to_string()).collect();
    for g in extra {
        if !accepted.iter().any(|a| a.eq_ignore_ascii_case(&g.name)) {
            accepted.push(g.name.clone());
        }
    }
    Err(ModelError::UnknownGpu { name: name.to_string(), accepted })
}

/// Upper bounds of hardware-config figures: ~500× to 5000× today's largest GPUs, so any real
/// or imagined GPU fits while a typo of ten extra digits is caught before it turns into
/// billions of KV blocks or zero-length steps.
pub const MAX_TFLOPS: f64 = 1e6;
pub const MAX_BANDWIDTH_TBS: f64 = 1e4;
pub const MAX_MEMORY_GIB: f64 = 1_048_576.0;

/// A number for a message: scientific when huge or tiny, plain otherwise.
pub(crate) fn num(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-4..1e15).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Reads `{"NAME": {"TFlopsPeak", "TFlopsFP8", "BwPeakTBs", "mfuPrefill", "mfuDecode",
/// "MemoryGiB"}}`. An entry naming a built-in GPU may give only the fields it overrides;
/// a new GPU must give all but `TFlopsFP8` (default 0 = no FP8). Unknown keys are ignored.
/// Figures must be finite and positive, MFUs at most 1, and none above [`MAX_TFLOPS`],
/// [`MAX_BANDWIDTH_TBS`] or [`MAX_MEMORY_GIB`].
pub fn load_hardware_config(path: &Path) -> Result<Vec<GpuSpec>, ModelError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ModelError::Io { path: path.display().to_string(), message: e.to_string() })?;
    parse_hardware_config(&text, &path.display().to_string())
}

/// [`load_hardware_config`] on text; `source` names the file in messages.
pub fn parse_hardware_config(text: &str, source: &str) -> Result<Vec<GpuSpec>, ModelError> {
    let json_err = |message: String| ModelError::Json { source: source.to_string(), message };
    let root: Value = serde_json::from_str(text).map_err(|e| json_err(e.to_string()))?;
    let Value::Object(root) = root else {
        return Err(json_err("top level is not a JSON object of GPU names".into()));
    };
    root.iter().map(|(name, entry)| parse_entry(name, entry, source)).collect()
}

fn parse_entry(name: &str, entry: &Value, source: &str) -> Result<GpuSpec, ModelError> {
    let invalid = |field: &str, reason: String| ModelError::InvalidArgument {
        what: format!("hardware config {source}"),
        reason: format!("GPU `{name}` field `{field}` {reason}"),
    };
    let Value::Object(fields) = entry else {
        return Err(invalid("(entry)", "must be an object".into()));
    };
    // Names are matched trimmed (as `gpu_by_name` trims the name asked for).
    let name = name.trim();
    let base = BUILTIN.iter().find(|b| b.name.eq_ignore_ascii_case(name)).map(Builtin::spec);
    if name.trim().is_empty() {
        return Err(invalid("(name)", "must not be empty".into()));
    }
    let get = |field: &str, allow_zero: bool, max: f64, fallback: Option<f64>| -> Result<f64, ModelError> {
        match number(fields, field) {
            Some(Ok(v)) if v.is_finite() && v > max => {
                Err(invalid(field, format!("must be ≤ {}, got {}", num(max), num(v))))
            }
            Some(Ok(v)) if v.is_finite() && (v > 0.0 || (allow_zero && v == 0.0)) => Ok(v),
            Some(Ok(v)) => {
                let want = if allow_zero { "a non-negative" } else { "a positive" };
                Err(invalid(field, format!("must be {want} finite number, got {}", num(v))))
            }
            Some(Err(v)) => Err(invalid(field, format!("must be a number, got {v}"))),
            None => fallback.ok_or_else(|| invalid(field, "is missing".into())),
        }
    };
    let b = base.as_ref();
    Ok(GpuSpec {
        name: b.map_or_else(|| name.to_string(), |b| b.name.clone()),
        tflops_bf16: get("TFlopsPeak", false, MAX_TFLOPS, b.map(|b| b.tflops_bf16))?,
        tflops_fp8: get("TFlopsFP8", true, MAX_TFLOPS, Some(b.map_or(0.0, |b| b.tflops_fp8)))?,
        hbm_bandwidth_tbs: get("BwPeakTBs", false, MAX_BANDWIDTH_TBS, b.map(|b| b.hbm_bandwidth_tbs))?,
        mfu_prefill: get("mfuPrefill", false, 1.0, b.map(|b| b.mfu_prefill))?,
        mfu_decode: get("mfuDecode", false, 1.0, b.map(|b| b.mfu_decode))?,
        memory_gib: get("MemoryGiB", false, MAX_MEMORY_GIB, b.map(|b| b.memory_gib))?,
    })
}

/// `None` when absent/null, `Err(value)` when not a number.
fn number<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<Result<f64, &'a Value>> {
    match fields.get(key)? {
        Value::Null => None,
        v => Some(v.as_f64().ok_or(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_case_insensitive() {
        let h = gpu_by_name("h100", &[]).unwrap();
        assert_eq!(
            (h.tflops_bf16, h.tflops_fp8, h.hbm_bandwidth_tbs, h.memory_gib),
            (989.5, 1979.0, 3.35, 80.0)
        );
        let a = gpu_by_name("a100-80", &[]).unwrap();
        assert_eq!(a.tflops_bf16, gpu_by_name("A100-SXM", &[]).unwrap().tflops_bf16);
        assert_eq!(gpu_by_name("L40s", &[]).unwrap().memory_gib, 48.0);
        let err = gpu_by_name("B200", &[]).unwrap_err().to_string();
        assert!(err.contains("B200") && err.contains("H100, A100-SXM, A100-80, L40S"), "{err}");
    }

    #[test]
    fn hardware_config_adds_and_overrides() {
        let text = r#"{"B200": {"TFlopsPeak": 2250, "TFlopsFP8": 4500, "BwPeakTBs": 8, "mfuPrefill": 0.5,
            "mfuDecode": 0.3, "MemoryGiB": 180, "comment": "ignored"}, "h100": {"MemoryGiB": 94}}"#;
        let extra = parse_hardware_config(text, "hw.json").unwrap();
        assert_eq!(gpu_by_name("b200", &extra).unwrap().memory_gib, 180.0);
        let h = gpu_by_name("H100", &extra).unwrap();
        assert_eq!((h.memory_gib, h.tflops_bf16), (94.0, 989.5));
        let err = gpu_by_name("X", &extra).unwrap_err().to_string();
        assert!(err.contains("B200"), "{err}");
    }

    #[test]
    fn hardware_config_errors_name_the_field() {
        let err = |t: &str| parse_hardware_config(t, "hw.json").unwrap_err().to_string();
        assert!(
            err(r#"{"X": {"TFlopsPeak": 1, "BwPeakTBs": 1, "mfuPrefill": 0.5, "mfuDecode": 0.5}}"#)
                .contains("`MemoryGiB` is missing")
        );
        assert!(err(r#"{"H100": {"BwPeakTBs": -1}}"#).contains("`BwPeakTBs` must be a positive"));
        assert!(err(r#"{"H100": {"mfuDecode": "fast"}}"#).contains("`mfuDecode` must be a number"));
        assert!(err(r#"{"H100": 3}"#).contains("must be an object"));
        assert_eq!(
            err(r#"{"H100": {"MemoryGiB": 1e12}}"#),
            "invalid hardware config hw.json: GPU `H100` field `MemoryGiB` must be ≤ 1048576, got 1000000000000"
        );
        assert!(err(r#"{"H100": {"mfuDecode": 1.5}}"#).contains("`mfuDecode` must be ≤ 1, got 1.5"));
        assert!(
            err(r#"{"H100": {"TFlopsPeak": 1e300}}"#).contains("`TFlopsPeak` must be ≤ 1000000, got 1e300")
        );
        assert!(err(r#"{" ": {"MemoryGiB": 1}}"#).contains("`(name)` must not be empty"));
        let padded = parse_hardware_config(r#"{" B200 ": {"TFlopsPeak": 1, "BwPeakTBs": 1, "mfuPrefill": 0.5, "mfuDecode": 0.5, "MemoryGiB": 8}}"#, "hw.json").unwrap();
        assert_eq!(gpu_by_name("b200", &padded).unwrap().name, "B200");
        assert!(err("[1]").contains("hw.json"));
        assert!(err("{").contains("invalid JSON"));
    }

    #[test]
    fn load_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hw.json");
        std::fs::write(&p, r#"{"L40S": {"TFlopsFP8": 0}}"#).unwrap();
        assert_eq!(load_hardware_config(&p).unwrap()[0].tflops_fp8, 0.0);
        assert!(
            load_hardware_config(&dir.path().join("nope.json"))
                .unwrap_err()
                .to_string()
                .contains("cannot read")
        );
    }
}
