//! `--policy-config FILE.yaml`: a bundle of control-plane and engine policies. Flags that were
//! given explicitly on the command line win over the bundle; the bundle wins over defaults.
//!
//! ```yaml
//! admission:
//!   policy: tier-shed            # any --admission-policy name
//!   token_bucket_capacity: 5000
//!   token_bucket_refill_rate: 800
//!   tier_shed_threshold: 8       # bundle only
//!   tier_shed_min_priority: 3    # bundle only (default 3 when the bundle picks tier-shed)
//!   gaie_qd_threshold: 5         # bundle only
//!   gaie_kv_threshold: 0.8       # bundle only
//! routing:
//!   policy: weighted
//!   scorers: [{name: precise-prefix-cache, weight: 2}, {name: queue-depth, weight: 1}]
//! scheduler: priority-fcfs
//! preemption: priority
//! priority_policy: slo-based
//! ```

use std::path::Path;

use blis_sim::cluster::{admission, routing, scorer};
use blis_sim::scenario::Scenario;
use blis_sim::{preemption, scheduler};
use serde::Deserialize;

use crate::args::{ClusterArgs, EngineArgs};
use crate::run::CliResult;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBundle {
    #[serde(default)]
    pub admission: Option<AdmissionSection>,
    #[serde(default)]
    pub routing: Option<RoutingSection>,
    #[serde(default)]
    pub scheduler: Option<String>,
    #[serde(default)]
    pub preemption: Option<String>,
    #[serde(default)]
    pub priority_policy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionSection {
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub token_bucket_capacity: Option<f64>,
    #[serde(default)]
    pub token_bucket_refill_rate: Option<f64>,
    #[serde(default)]
    pub tier_shed_threshold: Option<u64>,
    #[serde(default)]
    pub tier_shed_min_priority: Option<i32>,
    #[serde(default)]
    pub gaie_qd_threshold: Option<f64>,
    #[serde(default)]
    pub gaie_kv_threshold: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingSection {
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub scorers: Option<Vec<ScorerEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorerEntry {
    pub name: String,
    pub weight: f64,
}

/// Settings that have no flag, to be applied to the built scenario.
#[derive(Debug, Default)]
pub struct Extras {
    tier_shed_threshold: Option<u64>,
    tier_shed_min_priority: Option<i32>,
    gaie_qd_threshold: Option<f64>,
    gaie_kv_threshold: Option<f64>,
    scorers: Option<Vec<(String, f64)>>,
}

impl Extras {
    pub fn apply_to(&self, scenario: &mut Scenario) {
        let a = &mut scenario.admission;
        if let Some(v) = self.tier_shed_threshold {
            a.tier_shed_threshold = v;
        }
        if let Some(v) = self.tier_shed_min_priority {
            a.tier_shed_min_priority = v;
        }
        if let Some(v) = self.gaie_qd_threshold {
            a.gaie_qd_threshold = v;
        }
        if let Some(v) = self.gaie_kv_threshold {
            a.gaie_kv_threshold = v;
        }
        if let Some(s) = &self.scorers {
            scenario.routing.scorers = s.clone();
        }
    }
}

/// Default `tier_shed_min_priority` when the bundle chooses `tier-shed`.
const BUNDLE_TIER_SHED_MIN_PRIORITY: i32 = 3;

/// Fills the flags not given on the command line from `--policy-config` (when given), and
/// returns the bundle-only settings.
pub fn resolve(engine: &EngineArgs, cluster: &ClusterArgs) -> CliResult<(EngineArgs, ClusterArgs, Extras)> {
    let (mut out_engine, mut out_cluster) = (engine.clone(), cluster.clone());
    let bundle = match &cluster.policy_config {
        Some(path) => load(path)?,
        None => PolicyBundle::default(),
    };
    let mut extras = Extras::default();
    let admission = bundle.admission.unwrap_or_default();
    let routing = bundle.routing.unwrap_or_default();
    let c = &mut out_cluster;
    let e = &mut out_engine;
    let policy_from_bundle = c.admission_policy.is_none() && admission.policy.is_some();
    fill(&mut c.admission_policy, admission.policy);
    fill(&mut c.token_bucket_capacity, admission.token_bucket_capacity);
    fill(&mut c.token_bucket_refill_rate, admission.token_bucket_refill_rate);
    fill(&mut c.routing_policy, routing.policy);
    fill(&mut e.scheduler, bundle.scheduler);
    fill(&mut e.preemption_policy, bundle.preemption);
    fill(&mut e.priority_policy, bundle.priority_policy);
    if c.routing_scorers.is_none() {
        extras.scorers = routing.scorers.map(|v| v.into_iter().map(|s| (s.name, s.weight)).collect());
    }
    extras.tier_shed_threshold = admission.tier_shed_threshold;
    extras.gaie_qd_threshold = admission.gaie_qd_threshold;
    extras.gaie_kv_threshold = admission.gaie_kv_threshold;
    extras.tier_shed_min_priority = admission.tier_shed_min_priority;
    if c.admission_policy.as_deref() == Some("tier-shed") && extras.tier_shed_min_priority.is_none() {
        if policy_from_bundle {
            extras.tier_shed_min_priority = Some(BUNDLE_TIER_SHED_MIN_PRIORITY);
        } else {
            eprintln!(
                "warning: --admission-policy tier-shed without tier_shed_min_priority (set it in \
                 --policy-config); using 0: only classes with negative priority are shed"
            );
        }
    }
    Ok((out_engine, out_cluster, extras))
}

fn fill<T>(flag: &mut Option<T>, from_bundle: Option<T>) {
    if flag.is_none() {
        *flag = from_bundle;
    }
}

/// Reads and validates a bundle.
pub fn load(path: &Path) -> CliResult<PolicyBundle> {
    let file = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--policy-config: cannot read {file}: {e}"))?;
    parse(&text).map_err(|e| format!("--policy-config: {file}: {e}"))
}

/// Parses and validates bundle text; errors are one line, starting with the offending key.
pub fn parse(text: &str) -> Result<PolicyBundle, String> {
    let bundle: PolicyBundle = serde_saphyr::from_str(text).map_err(|e| yaml_error(text, &e))?;
    validate(&bundle)?;
    Ok(bundle)
}

fn validate(b: &PolicyBundle) -> Result<(), String> {
    let one_of = |key: &str, v: &Option<String>, names: &[&str]| match v {
        Some(name) if !names.contains(&name.as_str()) => {
            Err(format!("{key}: unknown '{name}' (accepted: {})", names.join(", ")))
        }
        _ => Ok(()),
    };
    let positive = |key: &str, v: Option<f64>| match v {
        Some(x) if !(x.is_finite() && x > 0.0) => Err(format!("{key}: must be a finite number > 0, got {x}")),
        _ => Ok(()),
    };
    if let Some(a) = &b.admission {
        one_of("admission.policy", &a.policy, admission::NAMES)?;
        positive("admission.token_bucket_capacity", a.token_bucket_capacity)?;
        positive("admission.token_bucket_refill_rate", a.token_bucket_refill_rate)?;
        positive("admission.gaie_qd_threshold", a.gaie_qd_threshold)?;
        if let Some(kv) = a.gaie_kv_threshold
            && !(kv > 0.0 && kv <= 1.0)
        {
            return Err(format!("admission.gaie_kv_threshold: must be in (0, 1], got {kv}"));
        }
    }
    if let Some(r) = &b.routing {
        one_of("routing.policy", &r.policy, routing::NAMES)?;
        for (i, s) in r.scorers.iter().flatten().enumerate() {
            if !scorer::NAMES.contains(&s.name.as_str()) {
                return Err(format!(
                    "routing.scorers[{i}].name: unknown scorer '{}' (accepted: {})",
                    s.name,
                    scorer::NAMES.join(", ")
                ));
            }
            positive(&format!("routing.scorers[{i}].weight"), Some(s.weight))?;
            if r.scorers.iter().flatten().take(i).any(|p| p.name == s.name) {
                return Err(format!("routing.scorers[{i}].name: '{}' appears twice", s.name));
            }
        }
    }
    one_of("scheduler", &b.scheduler, scheduler::NAMES)?;
    one_of("preemption", &b.preemption, preemption::NAMES)?;
    one_of("priority_policy", &b.priority_policy, &["constant", "slo-based"])?;
    Ok(())
}

/// A one-line message for a YAML/serde error: the key path at the error's line, then the cause.
fn yaml_error(text: &str, err: &serde_saphyr::Error) -> String {
    let bare = err.without_snippet();
    let full = bare.to_string();
    let first = full.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let line = bare.location().or_else(|| err.location()).map(|l| l.line() as usize).unwrap_or(0);
    let path = if line > 0 { key_path_at(text, line) } else { String::new() };
    let message = first.split_whitespace().collect::<Vec<_>>().join(" ");
    if path.is_empty() { message } else { format!("{path}: {message}") }
}

/// The dotted key path (`admission.token_bucket_capacity`) of the block-style YAML key on
/// 1-based `line`: that line's key, preceded by the keys of the less-indented lines above it.
fn key_path_at(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(&here) = lines.get(line.wrapping_sub(1)) else { return String::new() };
    let key_of = |l: &str| -> Option<(usize, String)> {
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return None;
        }
        let indent = l.len() - trimmed.len();
        let body = trimmed.trim_start_matches("- ");
        let indent = indent + (trimmed.len() - body.len());
        let key = body.split_once(':')?.0.trim();
        (!key.is_empty() && !key.contains(['{', '[', ' '])).then(|| (indent, key.to_string()))
    };
    let Some((mut indent, key)) = key_of(here) else { return String::new() };
    let mut parts = vec![key];
    for l in lines[..line - 1].iter().rev() {
        if let Some((i, k)) = key_of(l)
            && i < indent
        {
            parts.push(k);
            indent = i;
        }
    }
    parts.reverse();
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_bundle_parses() {
        let b = parse(
            "admission:\n  policy: tier-shed\n  tier_shed_threshold: 8\n  tier_shed_min_priority: 4\n\
             routing:\n  policy: weighted\n  scorers:\n    - name: queue-depth\n      weight: 2\n    \
             - {name: load-balance, weight: 1}\nscheduler: priority-fcfs\npreemption: priority\n\
             priority_policy: constant\n",
        )
        .unwrap();
        let a = b.admission.unwrap();
        assert_eq!(a.policy.as_deref(), Some("tier-shed"));
        assert_eq!((a.tier_shed_threshold, a.tier_shed_min_priority), (Some(8), Some(4)));
        let scorers = b.routing.unwrap().scorers.unwrap();
        assert_eq!(scorers.len(), 2);
        assert_eq!(scorers[1].name, "load-balance");
        assert_eq!(b.preemption.as_deref(), Some("priority"));
    }

    #[test]
    fn errors_are_one_line_and_name_the_key() {
        let cases = [
            ("admission:\n  polcy: x\n", "polcy"),
            ("admission:\n  token_bucket_capacity: lots\n", "admission.token_bucket_capacity"),
            ("admission:\n  token_bucket_capacity: -3\n", "admission.token_bucket_capacity"),
            ("admission:\n  policy: maybe\n", "admission.policy"),
            ("routing:\n  scorers:\n    - name: nope\n      weight: 1\n", "routing.scorers[0].name"),
            ("routing:\n  scorers:\n    - name: queue-depth\n      weight: 0\n", "routing.scorers[0].weight"),
            ("routing:\n  scorers:\n    - name: queue-depth\n      wieght: 1\n", "wieght"),
            ("scheduler: lifo\n", "scheduler"),
            ("tenant_budgets: {}\n", "tenant_budgets"),
            ("admission:\n  gaie_kv_threshold: 1.5\n", "admission.gaie_kv_threshold"),
        ];
        for (text, key) in cases {
            let e = parse(text).err().unwrap_or_else(|| panic!("{text} parsed"));
            assert!(!e.contains('\n'), "{e}");
            assert!(e.contains(key), "{text:?}: {e}");
        }
    }

    #[test]
    fn key_paths() {
        let t = "admission:\n  policy: x\nrouting:\n  scorers:\n    - name: a\n      weight: b\n";
        assert_eq!(key_path_at(t, 2), "admission.policy");
        assert_eq!(key_path_at(t, 6), "routing.scorers.weight");
        assert_eq!(key_path_at(t, 5), "routing.scorers.name");
        assert_eq!(key_path_at(t, 99), "");
    }
}
