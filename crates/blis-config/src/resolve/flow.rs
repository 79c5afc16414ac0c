//! Flow control (`--flow-control`, the gateway queue) from a run spec.

use blis_sim::cluster::flow::{DispatchOrder, FlowControlConfig, SaturationDetectorKind as D};
use blis_sim::priority::SloPriorities;

use super::{Ctx, clear_key, positive, required, slo_class};
use crate::error::ConfigError;
use crate::spec::RunSpec;

/// Keys of flow control (`--flow-control` and what it reads).
const FLOW_CONTROL_KEYS: &[&str] = &[
    "flow-control",
    "saturation-detector",
    "dispatch-order",
    "max-gateway-queue-depth",
    "queue-depth-threshold",
    "kv-cache-util-threshold",
    "max-concurrency",
    "per-band-capacity",
    "usage-limit-threshold",
    "fairness-policy",
    "request-ttl",
    "queue-shedding",
    "dispatch-tick-interval",
    "in-flight-eviction",
];

/// Flow control (the gateway queue), validated whether or not it is on; `None` when off. As
/// in the reference, it applies to a single instance too (the queue then feeds that instance).
/// Off, its keys leave the resolved spec unless set explicitly (so a run without flow control
/// records the configuration it always did).
pub(super) fn flow_control(
    spec: &mut RunSpec,
    cx: &mut Ctx,
    slo_priorities: SloPriorities,
) -> Result<Option<FlowControlConfig>, ConfigError> {
    let on = required(&spec.flow_control, "flow-control");
    let usage = required(&spec.usage_limit_threshold, "usage-limit-threshold");
    if !(usage > 0.0 && usage <= 1.0) {
        return Err(cx.err("usage-limit-threshold", format!("must be in (0, 1], got {usage}")));
    }
    let max_concurrency = required(&spec.max_concurrency, "max-concurrency");
    if max_concurrency == 0 {
        return Err(cx.err("max-concurrency", "must be > 0, got 0"));
    }
    // As the reference: 0 means the default period (1 ms, llm-d's dispatch ticker).
    let tick = match required(&spec.dispatch_tick_interval, "dispatch-tick-interval").0 {
        0 => 1000,
        t => t,
    };
    let mut slo_targets_us = [None; 5];
    for (name, &t) in spec.slo_targets.iter().flat_map(|m| &m.0) {
        let class = slo_class(cx, "slo-targets", name)?;
        if t == 0 {
            return Err(cx.err("slo-targets", format!("target of {name} must be > 0 µs, got 0")));
        }
        slo_targets_us[class as usize] = Some(t);
    }
    let config = FlowControlConfig {
        detector: required(&spec.saturation_detector, "saturation-detector"),
        queue_depth_threshold: positive(
            cx,
            "queue-depth-threshold",
            required(&spec.queue_depth_threshold, "queue-depth-threshold"),
        )?,
        kv_cache_util_threshold: positive(
            cx,
            "kv-cache-util-threshold",
            required(&spec.kv_cache_util_threshold, "kv-cache-util-threshold"),
        )?,
        max_concurrency,
        dispatch_order: required(&spec.dispatch_order, "dispatch-order"),
        fairness: required(&spec.fairness_policy, "fairness-policy"),
        max_queue_depth: required(&spec.max_gateway_queue_depth, "max-gateway-queue-depth") as usize,
        per_band_capacity: required(&spec.per_band_capacity, "per-band-capacity") as usize,
        usage_limit_threshold: usage,
        request_ttl_us: required(&spec.request_ttl, "request-ttl").0,
        queue_shedding: required(&spec.queue_shedding, "queue-shedding"),
        dispatch_tick_us: tick,
        in_flight_eviction: required(&spec.in_flight_eviction, "in-flight-eviction"),
        slo_targets_us,
        slo_priorities,
    };
    if !on {
        for key in FLOW_CONTROL_KEYS.iter().skip(1).chain(&["slo-targets"]) {
            if cx.customized(key) {
                cx.warn(key, "no effect without --flow-control");
            }
        }
        for key in FLOW_CONTROL_KEYS {
            if !cx.explicit(key) {
                clear_key(spec, key);
            }
        }
        return Ok(None);
    }
    if cx.customized("admission-policy") {
        cx.warn("admission-policy", "replaced by the gateway queue under --flow-control");
    }
    match config.detector {
        D::Never => cx.warn(
            "saturation-detector",
            "never: the gateway queue passes every request through (choose utilization or concurrency to gate dispatch)",
        ),
        D::Utilization => {
            if cx.customized("max-concurrency") {
                cx.warn("max-concurrency", "no effect without --saturation-detector concurrency");
            }
        }
        D::Concurrency => {
            for key in ["queue-depth-threshold", "kv-cache-util-threshold"] {
                if cx.customized(key) {
                    cx.warn(key, "no effect without --saturation-detector utilization");
                }
            }
        }
    }
    if config.dispatch_order != DispatchOrder::SloDeadline && spec.slo_targets.is_some() {
        cx.warn("slo-targets", "no effect without --dispatch-order slo-deadline");
    }
    if usage < 1.0 && config.dispatch_order == DispatchOrder::Fifo {
        cx.warn(
            "usage-limit-threshold",
            "below 1 with --dispatch-order fifo: head-of-line gating visits bands by priority, so dispatch is not FIFO across bands",
        );
    }
    if !config.slo_priorities.sheddable_any() {
        for key in ["queue-shedding", "in-flight-eviction"] {
            if cx.customized(key) {
                cx.warn(key, "no effect: no SLO class is sheddable (negative priority)");
            }
        }
    }
    Ok(Some(config))
}
