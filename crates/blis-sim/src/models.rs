//! Fleets whose pools serve several models: each request is routed among the instances of
//! the pools serving the model it names.

/// The served models and the instances serving each (a fleet of at least two models).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRouting {
    /// `(registry key, instances)`, in pool order of first appearance.
    models: Vec<(String, Vec<usize>)>,
}

/// What identifies a model name: the part after the last `/`, trimmed, compared
/// case-insensitively (as the model registry matches HuggingFace ids).
fn key(name: &str) -> &str {
    let name = name.trim();
    name.rsplit('/').next().unwrap_or(name)
}

impl ModelRouting {
    /// From the model each instance serves (in instance order); `None` when they all serve
    /// the same model.
    pub fn new<'a>(instance_models: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut models: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, name) in instance_models.into_iter().enumerate() {
            let k = key(name);
            match models.iter_mut().find(|(m, _)| m.eq_ignore_ascii_case(k)) {
                Some((_, instances)) => instances.push(i),
                None => models.push((k.to_lowercase(), vec![i])),
            }
        }
        (models.len() > 1).then_some(ModelRouting { models })
    }

    /// Index of the model a request names, or `None` when no pool serves it (or it names
    /// none: a fleet of several models has no default).
    pub fn index(&self, model: Option<&str>) -> Option<usize> {
        let k = key(model?);
        self.models.iter().position(|(m, _)| m.eq_ignore_ascii_case(k))
    }

    /// The instances serving model `index`.
    pub fn instances(&self, index: usize) -> &[usize] {
        &self.models[index].1
    }

    /// `(registry key, instances)` of every model.
    pub fn models(&self) -> &[(String, Vec<usize>)] {
        &self.models
    }

    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_model_needs_no_routing() {
        assert!(ModelRouting::new(["a/llama", "llama", "LLAMA"]).is_none());
    }

    #[test]
    fn requests_match_by_registry_key() {
        let m = ModelRouting::new([
            "meta-llama/Llama-3.1-8B-Instruct",
            "qwen2.5-7b-instruct",
            "llama-3.1-8b-instruct",
        ])
        .expect("two models");
        assert_eq!(m.len(), 2);
        assert_eq!(m.index(Some("llama-3.1-8b-instruct")), Some(0));
        assert_eq!(m.instances(0), &[0, 2]);
        assert_eq!(m.index(Some(" Qwen/Qwen2.5-7B-Instruct ")), Some(1));
        assert_eq!(m.instances(1), &[1]);
        assert_eq!(m.index(Some("mistral")), None);
        assert_eq!(m.index(None), None);
    }
}
