//! Model autoscaling (`--model-autoscaler-interval-us`, the `node-pools` / `autoscaler` /
//! `instance-lifecycle` blocks) from a run spec.

use blis_sim::PoolConfig;
use blis_sim::autoscale::{AutoscaleConfig, Delay};

use super::{Ctx, required};
use crate::autoscale::DelaySpec;
use crate::error::ConfigError;
use crate::spec::RunSpec;

fn delay(cx: &Ctx, key: &str, what: &str, d: DelaySpec) -> Result<Delay, ConfigError> {
    for (field, v) in [("mean", d.mean), ("stddev", d.stddev)] {
        if !v.is_finite() || v < 0.0 {
            return Err(
                cx.err(key, format!("{what}.{field} must be a finite number of seconds >= 0, got {v}"))
            );
        }
    }
    Ok(Delay { mean_us: d.mean * 1e6, stddev_us: d.stddev * 1e6 })
}

/// The autoscaler, validated; `None` when its interval is 0. A `node-pools` block is read only
/// with autoscaling on (without it, it is refused rather than ignored).
pub(super) fn autoscale(
    spec: &RunSpec,
    cx: &Ctx,
    pools: &[PoolConfig],
) -> Result<Option<AutoscaleConfig>, ConfigError> {
    let block = spec.autoscaler.unwrap_or_default();
    let interval_us = if cx.explicit("model-autoscaler-interval-us") {
        required(&spec.model_autoscaler_interval_us, "model-autoscaler-interval-us") as f64
    } else {
        block.interval_us
    };
    if !interval_us.is_finite() || interval_us < 0.0 {
        return Err(cx.err("autoscaler", format!("interval_us must be >= 0 (0 = off), got {interval_us}")));
    }
    let windows = [
        ("scale_up_stabilization_window_us", block.scale_up_stabilization_window_us),
        ("scale_down_stabilization_window_us", block.scale_down_stabilization_window_us),
    ];
    for (name, v) in windows {
        if !v.is_finite() || v < 0.0 {
            return Err(cx.err("autoscaler", format!("{name} must be a finite number of µs >= 0, got {v}")));
        }
    }
    let a = block.analyzer;
    let or = |v: f64, d: f64| if v == 0.0 { d } else { v };
    let (kv, up, down, avg_in) = (
        or(a.kv_cache_threshold, 0.8),
        or(a.scale_up_threshold, 0.8),
        or(a.scale_down_boundary, 0.4),
        or(a.avg_input_tokens, 512.0),
    );
    if !(kv > 0.0 && kv <= 1.0) {
        return Err(cx.err("autoscaler", format!("analyzer.kv_cache_threshold must be in (0, 1], got {kv}")));
    }
    for (name, v) in [("scale_up_threshold", up), ("scale_down_boundary", down), ("avg_input_tokens", avg_in)]
    {
        if !(v.is_finite() && v > 0.0) {
            return Err(cx.err("autoscaler", format!("analyzer.{name} must be a finite number > 0, got {v}")));
        }
    }
    if down >= up {
        return Err(cx.err(
            "autoscaler",
            format!("analyzer.scale_down_boundary ({down}) must be < scale_up_threshold ({up})"),
        ));
    }
    let scrape = delay(cx, "autoscaler", "hpa_scrape_delay", block.hpa_scrape_delay)?;
    let lifecycle = spec.instance_lifecycle.clone().unwrap_or_default();
    let loading = delay(cx, "instance-lifecycle", "loading_delay", lifecycle.loading_delay)?;

    if interval_us == 0.0 {
        for key in ["node-pools", "instance-lifecycle"] {
            if cx.explicit(key) {
                return Err(cx.err(
                    key,
                    "only simulated with the model autoscaler on (set autoscaler.interval_us or \
                     --model-autoscaler-interval-us > 0)",
                ));
            }
        }
        return Ok(None);
    }
    // What BLIS does not simulate (yet) is refused rather than ignored.
    let warm_up = [
        ("warm_up_request_count", lifecycle.warm_up_request_count != 0),
        ("warm_up_ttft_factor", lifecycle.warm_up_ttft_factor != 0.0),
    ];
    if let Some((key, _)) = warm_up.iter().find(|(_, set)| *set) {
        return Err(cx.err(
            "instance-lifecycle",
            format!("{key}: a new instance's slower warm-up requests are not simulated yet; remove the key"),
        ));
    }
    if let Some(p) = lifecycle.drain_policy.as_deref().filter(|p| !p.eq_ignore_ascii_case("WAIT")) {
        return Err(cx.err(
            "instance-lifecycle",
            format!("drain_policy {p} is not simulated yet; only WAIT (finish in-flight requests) is"),
        ));
    }
    if !lifecycle.warm_start_initial_instances && loading != Delay::default() {
        return Err(cx.err(
            "instance-lifecycle",
            "initial instances that load at start-up are not simulated yet; set warm_start_initial_instances: true",
        ));
    }
    let node_pools = spec.node_pools.clone().unwrap_or_default();
    let [np] = node_pools.as_slice() else {
        return Err(cx.err(
            "node-pools",
            format!(
                "autoscaling needs exactly one node pool (it bounds the fleet), got {}",
                node_pools.len()
            ),
        ));
    };
    if pools.iter().any(|p| p.role.is_some()) {
        return Err(cx.err(
            "prefill-instances",
            "a disaggregated (prefill/decode) fleet is not simulated with the model autoscaler on; \
             drop the disaggregation or the autoscaler",
        ));
    }
    let [pool] = pools else {
        return Err(cx.err(
            "pools",
            format!(
                "the model autoscaler scales a single pool of instances, got {} pools; drop the pools or the autoscaler",
                pools.len()
            ),
        ));
    };
    if !np.gpu_type.eq_ignore_ascii_case(&pool.gpu.name) {
        return Err(cx.err(
            "node-pools",
            format!(
                "node pool {} has gpu_type {} but the instances run on {}",
                np.name, np.gpu_type, pool.gpu.name
            ),
        ));
    }
    if np.gpus_per_node < pool.tp {
        return Err(cx.err(
            "node-pools",
            format!(
                "node pool {}: gpus_per_node {} < the instances' TP {}",
                np.name, np.gpus_per_node, pool.tp
            ),
        ));
    }
    if np.max_nodes == 0 || np.initial_nodes > np.max_nodes || np.min_nodes > np.initial_nodes {
        return Err(cx.err(
            "node-pools",
            format!(
                "node pool {}: need min_nodes <= initial_nodes <= max_nodes and max_nodes >= 1, got {} / {} / {}",
                np.name, np.min_nodes, np.initial_nodes, np.max_nodes
            ),
        ));
    }
    if !(np.cost_per_hour.is_finite() && np.cost_per_hour >= 0.0) {
        return Err(cx.err("node-pools", format!("node pool {}: cost_per_hour must be >= 0", np.name)));
    }
    let provisioning = delay(cx, "node-pools", "provisioning_delay", np.provisioning_delay)?;
    let config = AutoscaleConfig {
        interval_us: interval_us as u64,
        scale_up_window_us: windows[0].1 as u64,
        scale_down_window_us: windows[1].1 as u64,
        kv_cache_threshold: kv,
        scale_up_threshold: up,
        scale_down_boundary: down,
        avg_input_tokens: avg_in,
        loading_delay: loading,
        scrape_delay: scrape,
        pool_name: np.name.clone(),
        gpus_per_node: np.gpus_per_node,
        gpus_per_instance: pool.tp,
        initial_nodes: np.initial_nodes,
        max_nodes: np.max_nodes,
        provisioning_delay: provisioning,
        cost_per_node_hour: np.cost_per_hour,
    };
    let per_node = config.instances_per_node();
    if pool.instances > per_node * np.initial_nodes {
        return Err(cx.err(
            "num-instances",
            format!(
                "{} initial instances do not fit node pool {}'s {} initial nodes ({per_node} instances each)",
                pool.instances, np.name, np.initial_nodes
            ),
        ));
    }
    Ok(Some(config))
}
