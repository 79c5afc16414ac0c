//! The one error type of this crate. Every message is a single line that names the model,
//! GPU, file or field at fault, so the CLI can print it as-is.

use std::fmt;

/// Why a model, GPU or capacity question could not be answered.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    /// The text is not valid JSON (or not a JSON object).
    Json { source: String, message: String },
    /// A required `config.json` field is absent.
    MissingField { model: String, field: String },
    /// A field is present but unusable (wrong type, zero, inconsistent, not finite...).
    InvalidField { model: String, field: String, reason: String },
    /// A file could not be read.
    Io { path: String, message: String },
    /// The model is not bundled and no HuggingFace fetch is possible or it failed.
    Fetch { model: String, endpoint: String, message: String },
    /// No GPU of that name is known.
    UnknownGpu { name: String, accepted: Vec<String> },
    /// The MLP is not of the SwiGLU family the weight formula assumes.
    UnsupportedActivation { model: String, hidden_act: String },
    /// Weights and reserves do not leave room for a single KV block at this TP.
    InsufficientMemory { model: String, gpu: String, tp: u32, min_tp: Option<u32>, detail: String },
    /// The GPU's memory gives more KV blocks than an instance supports ([`crate::MAX_KV_BLOCKS`]).
    TooManyBlocks { model: String, gpu: String, memory_gib: f64, tp: u32, blocks: f64 },
    /// A caller-supplied argument is out of range (TP 0, utilization > 1, ...).
    InvalidArgument { what: String, reason: String },
}

impl fmt::Display for ModelError {
    /// One line even when a name or value taken from the input holds line breaks (escaped).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = Raw(self).to_string();
        if text.contains(['\n', '\r']) {
            f.write_str(&text.replace('\n', "\\n").replace('\r', "\\r"))
        } else {
            f.write_str(&text)
        }
    }
}

/// The message as composed, before line breaks are escaped.
struct Raw<'a>(&'a ModelError);

impl fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ModelError::Json { source, message } => {
                write!(f, "invalid JSON in {source}: {message}")
            }
            ModelError::MissingField { model, field } => {
                write!(f, "config.json of model {model}: missing required field `{field}`")
            }
            ModelError::InvalidField { model, field, reason } => {
                write!(f, "config.json of model {model}: field `{field}` {reason}")
            }
            ModelError::Io { path, message } => write!(f, "cannot read {path}: {message}"),
            ModelError::Fetch { model, endpoint, message } => write!(
                f,
                "cannot fetch config.json for model {model} from {endpoint}: {message}; \
                 pass --model-config-folder DIR"
            ),
            ModelError::UnknownGpu { name, accepted } => write!(
                f,
                "unknown GPU `{name}`; accepted: {} (or add it with --hardware-config FILE)",
                accepted.join(", ")
            ),
            ModelError::UnsupportedActivation { model, hidden_act } => write!(
                f,
                "model {model}: unsupported hidden_act `{hidden_act}` for KV capacity; \
                 accepted: silu, swiglu, geglu, situ (or absent); pass --total-kv-blocks N"
            ),
            ModelError::InsufficientMemory { model, gpu, tp, min_tp, detail } => {
                write!(f, "model {model} does not fit on {gpu} at TP={tp} ({detail}); ")?;
                match min_tp {
                    Some(m) => write!(f, "the minimum TP that fits is {m}"),
                    None => write!(f, "it does not fit at any TP up to 64"),
                }
            }
            ModelError::TooManyBlocks { model, gpu, memory_gib, tp, blocks } => write!(
                f,
                "GPU {gpu} with MemoryGiB = {} would hold {blocks:.3e} KV blocks of model {model} at TP={tp}, \
                 more than the {} an instance supports; check MemoryGiB in the hardware config",
                crate::gpu::num(*memory_gib),
                crate::MAX_KV_BLOCKS
            ),
            ModelError::InvalidArgument { what, reason } => write!(f, "invalid {what}: {reason}"),
        }
    }
}

impl std::error::Error for ModelError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_name_the_field() {
        let e = ModelError::MissingField { model: "m".into(), field: "hidden_size".into() };
        let s = e.to_string();
        assert!(s.contains("hidden_size") && !s.contains('\n'));
        let e = ModelError::InsufficientMemory {
            model: "m".into(),
            gpu: "H100".into(),
            tp: 1,
            min_tp: Some(4),
            detail: "x".into(),
        };
        assert!(e.to_string().contains("minimum TP that fits is 4"));
        let e = ModelError::InvalidField {
            model: "m".into(),
            field: "dtype".into(),
            reason: "has `l\r\n`".into(),
        };
        assert_eq!(e.to_string(), "config.json of model m: field `dtype` has `l\\r\\n`");
    }
}
