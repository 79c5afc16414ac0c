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
    /// FP8 peak of the reference's table, TFLOP/s (0 = no FP8 support). The reference lists
    /// L40S at its sparse rate; `roofline`/`trained-physics` keep that figure.
    pub tflops_fp8: f64,
    /// HBM bandwidth, TB/s.
    pub hbm_bandwidth_tbs: f64,
    /// Achievable fraction of peak FLOPs in prefill / decode: the reference's roofline fudge
    /// factors, used only by `roofline`/`trained-physics` (0 = not given for this GPU).
    pub mfu_prefill: f64,
    pub mfu_decode: f64,
    pub memory_gib: f64,
    /// Dense FP8 peak from the datasheet, TFLOP/s (0 = no FP8 tensor cores).
    pub tflops_fp8_dense: f64,
    /// GPU-to-GPU bandwidth one way, GB/s, over the link a TP all-reduce uses (NVLink/NVSwitch
    /// on SXM parts, PCIe on cards without NVLink).
    pub link_gbs: f64,
    /// Which interconnect `link_gbs` describes.
    pub link: Interconnect,
}

/// The GPU-to-GPU path of a TP group. NCCL reaches a different fraction of the link's
/// bandwidth on each (docs/hardware.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interconnect {
    /// NVLink through NVSwitch (HGX/DGX boards): every pair at full link bandwidth.
    NvSwitch,
    /// PCIe (through the host or a PCIe switch), no NVLink.
    Pcie,
}

impl Interconnect {
    /// The name used in hardware-config files.
    pub fn name(self) -> &'static str {
        match self {
            Self::NvSwitch => "nvswitch",
            Self::Pcie => "pcie",
        }
    }
}

/// A const-constructible row of the built-in table (`String` is not const).
struct Builtin {
    name: &'static str,
    /// The reference's columns: BF16 TFLOPS, FP8 TFLOPS, TB/s, MFU prefill, MFU decode, GiB.
    reference: [f64; 6],
    /// Datasheet columns the reference lacks: dense FP8 TFLOPS, link GB/s one way.
    fp8_dense: f64,
    link_gbs: f64,
    link: Interconnect,
}

impl Builtin {
    fn spec(&self) -> GpuSpec {
        let [tflops_bf16, tflops_fp8, hbm_bandwidth_tbs, mfu_prefill, mfu_decode, memory_gib] =
            self.reference;
        GpuSpec {
            name: self.name.to_string(),
            tflops_bf16,
            tflops_fp8,
            hbm_bandwidth_tbs,
            mfu_prefill,
            mfu_decode,
            memory_gib,
            tflops_fp8_dense: self.fp8_dense,
            link_gbs: self.link_gbs,
            link: self.link,
        }
    }
}

/// Shorthand for a table row.
const fn row(
    name: &'static str,
    reference: [f64; 6],
    fp8_dense: f64,
    link_gbs: f64,
    link: Interconnect,
) -> Builtin {
    Builtin { name, reference, fp8_dense, link_gbs, link }
}

use Interconnect::{NvSwitch, Pcie};

/// The first four rows are latency.md §8.1 (the reference's table; `A100-80` is an alias row of
/// `A100-SXM`), the rest are added by BLIS. The MFU columns are the reference's and are 0 for the
/// added GPUs. Every other figure is a dense (not sparse) datasheet figure; docs/hardware.md cites
/// the datasheet of each row. Links: NVLink 4 = 900 GB/s both ways (450 one way), NVLink 3 = 600
/// (300), NVLink 5 = 1.8 TB/s (900), PCIe 4.0 x16 = 32 GB/s one way, PCIe 5.0 x16 = 64.
const BUILTIN: &[Builtin] = &[
    row("H100", [989.5, 1979.0, 3.35, 0.45, 0.30, 80.0], 1979.0, 450.0, NvSwitch),
    row("A100-SXM", [312.0, 0.0, 2.039, 0.38, 0.18, 80.0], 0.0, 300.0, NvSwitch),
    row("A100-80", [312.0, 0.0, 2.039, 0.38, 0.18, 80.0], 0.0, 300.0, NvSwitch),
    row("L40S", [362.05, 1466.0, 0.864, 0.32, 0.08, 48.0], 733.0, 32.0, Pcie),
    row("H200", [989.5, 1979.0, 4.8, 0.0, 0.0, 141.0], 1979.0, 450.0, NvSwitch),
    row("B200", [2250.0, 4500.0, 8.0, 0.0, 0.0, 180.0], 4500.0, 900.0, NvSwitch),
    row("H100-PCIe", [756.0, 1513.0, 2.0, 0.0, 0.0, 80.0], 1513.0, 64.0, Pcie),
    row("A100-40", [312.0, 0.0, 1.555, 0.0, 0.0, 40.0], 0.0, 300.0, NvSwitch),
    row("L4", [121.0, 242.5, 0.3, 0.0, 0.0, 24.0], 242.5, 32.0, Pcie),
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
/// GPU-to-GPU link bandwidth, GB/s (NVLink 5 is 900 one way).
pub const MAX_LINK_GBS: f64 = 1e5;

/// A number for a message: scientific when huge or tiny, plain otherwise.
pub(crate) fn num(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-4..1e15).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Reads `{"NAME": {"TFlopsPeak", "TFlopsFP8", "BwPeakTBs", "mfuPrefill", "mfuDecode",
/// "MemoryGiB"}}` plus the optional BLIS fields `TFlopsFP8Dense` (default: `TFlopsFP8`),
/// `LinkGBs` (GPU-to-GPU bandwidth one way, GB/s) and `Link` (`"nvswitch"` | `"pcie"`). An entry
/// naming a built-in GPU may give only the fields it overrides; a new GPU must give the reference's
/// fields but `TFlopsFP8` (default 0 = no FP8); without `LinkGBs`/`Link` it is taken to talk over
/// PCIe 4.0 x16 (32 GB/s), the slowest link a TP group has. Unknown keys are ignored, so the
/// reference's files load unchanged. Figures must be finite and positive, MFUs at most 1, and none
/// above [`MAX_TFLOPS`], [`MAX_BANDWIDTH_TBS`], [`MAX_MEMORY_GIB`] or [`MAX_LINK_GBS`].
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
    let link = match fields.get("Link") {
        None | Some(Value::Null) => b.map_or(Interconnect::Pcie, |b| b.link),
        Some(Value::String(v)) if v.eq_ignore_ascii_case("nvswitch") => Interconnect::NvSwitch,
        Some(Value::String(v)) if v.eq_ignore_ascii_case("pcie") => Interconnect::Pcie,
        Some(v) => return Err(invalid("Link", format!("must be \"nvswitch\" or \"pcie\", got {v}"))),
    };
    let tflops_fp8 = get("TFlopsFP8", true, MAX_TFLOPS, Some(b.map_or(0.0, |b| b.tflops_fp8)))?;
    // A new GPU's dense FP8 rate defaults to its `TFlopsFP8`; a built-in keeps its datasheet figure
    // unless `TFlopsFP8` itself is overridden.
    let fp8_default = match (b, fields.contains_key("TFlopsFP8")) {
        (Some(b), false) => b.tflops_fp8_dense,
        _ => tflops_fp8,
    };
    Ok(GpuSpec {
        name: b.map_or_else(|| name.to_string(), |b| b.name.clone()),
        tflops_bf16: get("TFlopsPeak", false, MAX_TFLOPS, b.map(|b| b.tflops_bf16))?,
        tflops_fp8,
        hbm_bandwidth_tbs: get("BwPeakTBs", false, MAX_BANDWIDTH_TBS, b.map(|b| b.hbm_bandwidth_tbs))?,
        mfu_prefill: get("mfuPrefill", false, 1.0, b.map(|b| b.mfu_prefill))?,
        mfu_decode: get("mfuDecode", false, 1.0, b.map(|b| b.mfu_decode))?,
        memory_gib: get("MemoryGiB", false, MAX_MEMORY_GIB, b.map(|b| b.memory_gib))?,
        tflops_fp8_dense: get("TFlopsFP8Dense", true, MAX_TFLOPS, Some(fp8_default))?,
        link_gbs: get("LinkGBs", false, MAX_LINK_GBS, Some(b.map_or(32.0, |b| b.link_gbs)))?,
        link,
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
        let err = gpu_by_name("B300", &[]).unwrap_err().to_string();
        assert!(err.contains("B300") && err.contains("H100, A100-SXM, A100-80, L40S, H200"), "{err}");
        let l = gpu_by_name("L40S", &[]).unwrap();
        assert_eq!((l.tflops_fp8, l.tflops_fp8_dense, l.link), (1466.0, 733.0, Interconnect::Pcie));
    }

    #[test]
    fn hardware_config_adds_and_overrides() {
        let text = r#"{"X200": {"TFlopsPeak": 2250, "TFlopsFP8": 4500, "BwPeakTBs": 8, "mfuPrefill": 0.5,
            "mfuDecode": 0.3, "MemoryGiB": 180, "comment": "ignored"}, "h100": {"MemoryGiB": 94},
            "Y": {"TFlopsPeak": 1, "BwPeakTBs": 1, "mfuPrefill": 0.5, "mfuDecode": 0.5, "MemoryGiB": 8,
            "LinkGBs": 450, "Link": "NVSwitch", "TFlopsFP8Dense": 2}}"#;
        let extra = parse_hardware_config(text, "hw.json").unwrap();
        let x = gpu_by_name("x200", &extra).unwrap();
        assert_eq!(
            (x.memory_gib, x.tflops_fp8_dense, x.link_gbs, x.link),
            (180.0, 4500.0, 32.0, Interconnect::Pcie)
        );
        let y = gpu_by_name("y", &extra).unwrap();
        assert_eq!((y.tflops_fp8_dense, y.link_gbs, y.link), (2.0, 450.0, Interconnect::NvSwitch));
        let h = gpu_by_name("H100", &extra).unwrap();
        assert_eq!((h.memory_gib, h.tflops_bf16, h.link_gbs), (94.0, 989.5, 450.0));
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
        assert!(err(r#"{"H100": {"Link": "ib"}}"#).contains("`Link` must be \"nvswitch\" or \"pcie\""));
        assert!(err(r#"{"H100": {"LinkGBs": 0}}"#).contains("`LinkGBs` must be a positive"));
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
