//! How a request's SLO class becomes priorities: the cluster-side admission priority (GAIE
//! convention: higher = more important, negative = sheddable) and the instance-side scheduling
//! priority (vLLM convention: lower = more urgent) that `priority-fcfs` and priority preemption
//! order by.

use blis_workload::SloClass;
use serde::{Deserialize, Serialize};

/// `--priority-policy`: what a request's instance priority is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PriorityKind {
    /// Every request has the same priority (the SLO class is ignored).
    Constant,
    /// Urgency follows the SLO class (critical first, background last).
    SloBased,
    /// The SLO order reversed (a pathological setting, for experiments).
    InvertedSlo,
}

/// Admission priority of every SLO class (GAIE convention). `slo_priorities` in a policy file
/// overrides single classes; the same map orders requests on instances under `slo-based`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SloPriorities {
    by_class: [i32; 5],
}

impl SloPriorities {
    /// The Gateway API Inference Extension defaults: critical 4, standard 3, batch −1,
    /// sheddable −2, background −3.
    pub const GAIE: SloPriorities = SloPriorities { by_class: [4, 3, -1, -2, -3] };

    /// The defaults with `class → priority` overrides applied.
    pub fn with_overrides(overrides: impl IntoIterator<Item = (SloClass, i32)>) -> Self {
        let mut p = Self::GAIE;
        for (class, priority) in overrides {
            p.by_class[class as usize] = priority;
        }
        p
    }

    /// Cluster-side priority (higher = more important).
    pub fn admission(&self, class: SloClass) -> i32 {
        self.by_class[class as usize]
    }

    /// Whether admission may shed the class (negative priority, as GAIE's `IsSheddable`).
    pub fn sheddable(&self, class: SloClass) -> bool {
        self.admission(class) < 0
    }

    /// Whether any class is sheddable.
    pub fn sheddable_any(&self) -> bool {
        self.by_class.iter().any(|&p| p < 0)
    }

    /// Instance-side scheduling priority (lower = more urgent) under `kind`.
    pub fn instance(&self, kind: PriorityKind, class: SloClass) -> i32 {
        match kind {
            PriorityKind::Constant => 0,
            PriorityKind::SloBased => -self.admission(class),
            PriorityKind::InvertedSlo => self.admission(class),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slo_based_orders_critical_first_and_overrides_apply() {
        let p = SloPriorities::GAIE;
        let order: Vec<i32> = SloClass::ALL.iter().map(|&c| p.instance(PriorityKind::SloBased, c)).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        let inverted: Vec<i32> =
            SloClass::ALL.iter().map(|&c| p.instance(PriorityKind::InvertedSlo, c)).collect();
        assert!(inverted.windows(2).all(|w| w[0] > w[1]), "{inverted:?}");
        assert!(SloClass::ALL.iter().all(|&c| p.instance(PriorityKind::Constant, c) == 0));
        assert!(p.sheddable(SloClass::Batch) && !p.sheddable(SloClass::Standard));
        let q = SloPriorities::with_overrides([(SloClass::Batch, 0)]);
        assert!(!q.sheddable(SloClass::Batch));
        assert_eq!(q.admission(SloClass::Critical), 4);
    }
}
