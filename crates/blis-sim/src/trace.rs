//! Decision traces: one record per admission/routing decision, with counterfactual regret.

use serde::Serialize;

/// One candidate considered by a routing decision.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Candidate {
    pub instance: usize,
    pub score: f64,
    pub queue_depth: u32,
    pub batch_size: u32,
    pub in_flight: u32,
    pub kv_utilization: f64,
}

/// One decision.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DecisionRecord {
    pub time_us: u64,
    pub request_id: u64,
    pub admitted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen_score: Option<f64>,
    /// Every candidate's score, by instance index, when the policy scores candidates (weighted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<Vec<f64>>,
    /// The top-K candidates by score (K = `--counterfactual-k`), best first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    /// max(0, best score − chosen score); 0 when K = 0.
    pub regret: f64,
}

impl DecisionRecord {
    /// A request refused before routing, for `reason`.
    pub fn rejected(time_us: u64, request_id: u64, reason: &'static str) -> Self {
        DecisionRecord {
            time_us,
            request_id,
            admitted: false,
            reason: Some(reason),
            chosen: None,
            chosen_score: None,
            scores: None,
            candidates: Vec::new(),
            regret: 0.0,
        }
    }

    /// A request routed to `chosen` by a decision without scores to record (routing within a
    /// subset of the fleet: a model's pools, a prefill/decode role).
    pub fn routed_unscored(time_us: u64, request_id: u64, chosen: usize) -> Self {
        DecisionRecord {
            admitted: true,
            reason: None,
            chosen: Some(chosen),
            ..Self::rejected(time_us, request_id, "")
        }
    }
}

/// Aggregates over all decisions (always kept, even when records are streamed to a file).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TraceSummary {
    pub total_decisions: u64,
    pub admitted: u64,
    pub rejected: u64,
    pub unique_targets: usize,
    /// Requests routed to each instance, by index.
    pub target_distribution: Vec<u64>,
    pub mean_regret: f64,
    pub max_regret: f64,
    #[serde(skip)]
    regret_sum: f64,
    #[serde(skip)]
    routed: u64,
}

impl TraceSummary {
    pub fn new(num_instances: usize) -> Self {
        Self { target_distribution: vec![0; num_instances], ..Self::default() }
    }

    pub fn record(&mut self, r: &DecisionRecord) {
        self.total_decisions += 1;
        if !r.admitted {
            self.rejected += 1;
            return;
        }
        self.admitted += 1;
        if let Some(t) = r.chosen {
            self.target_distribution[t] += 1;
            self.routed += 1;
            self.regret_sum += r.regret;
            self.max_regret = self.max_regret.max(r.regret);
            self.mean_regret = self.regret_sum / self.routed as f64;
            self.unique_targets = self.target_distribution.iter().filter(|&&c| c > 0).count();
        }
    }
}

/// Scores every candidate, keeps the top `k` (score desc, index asc), and computes regret.
pub fn counterfactual(
    scores: &[f64],
    chosen: usize,
    k: usize,
    describe: impl Fn(usize, f64) -> Candidate,
) -> (Vec<Candidate>, f64) {
    if k == 0 {
        return (Vec::new(), 0.0);
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let best = scores[order[0]];
    let regret = (best - scores[chosen]).max(0.0);
    let top = order.into_iter().take(k).map(|i| describe(i, scores[i])).collect();
    (top, regret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(i: usize, s: f64) -> Candidate {
        Candidate { instance: i, score: s, queue_depth: 0, batch_size: 0, in_flight: 0, kv_utilization: 0.0 }
    }

    #[test]
    fn regret_is_gap_to_best() {
        let (top, regret) = counterfactual(&[-3.0, -1.0, -1.0, -5.0], 0, 2, cand);
        assert_eq!(regret, 2.0);
        assert_eq!(top.iter().map(|c| c.instance).collect::<Vec<_>>(), vec![1, 2]);
        let (_, zero) = counterfactual(&[-3.0, -1.0], 1, 2, cand);
        assert_eq!(zero, 0.0);
        let (none, r) = counterfactual(&[-3.0, -1.0], 0, 0, cand);
        assert!(none.is_empty() && r == 0.0);
    }
}
