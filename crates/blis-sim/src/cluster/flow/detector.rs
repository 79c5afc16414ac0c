//! Saturation detectors (`--saturation-detector`): how full the cluster looks to the gateway,
//! read from the router's (possibly stale) instance signals. Dispatch holds at 1.0 and above.

use super::super::InstanceSignals;

/// A cluster saturation estimate: 0 idle, 1 saturated (may exceed 1).
pub trait SaturationDetector: Send {
    fn saturation(&self, signals: &[InstanceSignals]) -> f64;
}

/// `never`: always 0 (the gateway queue passes everything through).
pub struct Never;

impl SaturationDetector for Never {
    fn saturation(&self, _: &[InstanceSignals]) -> f64 {
        0.0
    }
}

/// `utilization`: mean over instances of max(queue depth / threshold, KV utilization / threshold).
pub struct Utilization {
    pub queue_depth_threshold: f64,
    pub kv_cache_util_threshold: f64,
}

impl SaturationDetector for Utilization {
    fn saturation(&self, signals: &[InstanceSignals]) -> f64 {
        if signals.is_empty() {
            return 1.0;
        }
        let sum: f64 = signals
            .iter()
            .map(|s| {
                (f64::from(s.queue_depth) / self.queue_depth_threshold)
                    .max(s.kv_utilization / self.kv_cache_util_threshold)
            })
            .sum();
        sum / signals.len() as f64
    }
}

/// `concurrency`: requests in flight / (instances × max concurrency).
pub struct Concurrency {
    pub max_concurrency: u32,
}

impl SaturationDetector for Concurrency {
    fn saturation(&self, signals: &[InstanceSignals]) -> f64 {
        if signals.is_empty() {
            return 1.0;
        }
        let in_flight: u64 = signals.iter().map(|s| u64::from(s.in_flight)).sum();
        in_flight as f64 / (signals.len() as f64 * f64::from(self.max_concurrency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(queue_depth: u32, kv: f64, in_flight: u32) -> InstanceSignals {
        InstanceSignals { queue_depth, kv_utilization: kv, in_flight, ..InstanceSignals::default() }
    }

    #[test]
    fn detectors_follow_their_formulas() {
        let s = [sig(10, 0.2, 3), sig(0, 0.4, 5)];
        assert_eq!(Never.saturation(&s), 0.0);
        let u = Utilization { queue_depth_threshold: 5.0, kv_cache_util_threshold: 0.8 };
        // max(2, 0.25) = 2 and max(0, 0.5) = 0.5 → mean 1.25.
        assert!((u.saturation(&s) - 1.25).abs() < 1e-12);
        let c = Concurrency { max_concurrency: 4 };
        assert!((c.saturation(&s) - 1.0).abs() < 1e-12);
        assert_eq!(c.saturation(&[]), 1.0);
        assert_eq!(u.saturation(&[sig(0, 0.0, 0)]), 0.0);
    }
}
