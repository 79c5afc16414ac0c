//! Model autoscaling, as the reference simulator models it (its WVA-style pipeline): every
//! `interval_us` the autoscaler reads the routable instances, compares their token demand with
//! their KV token supply (the V2 saturation analyzer), and scales the pool out or in.
//!
//! * Supply of a routable instance: total KV tokens × `kv_cache_threshold`. Demand: KV tokens in
//!   use + queue depth × `avg_input_tokens`. Instances still loading count as pending supply.
//! * Scale out when demand / `scale_up_threshold` exceeds supply + pending supply, by as many
//!   instances as cover the shortfall, as far as the node pool has room.
//! * Scale in when more than one instance serves and supply minus one instance still exceeds
//!   demand / `scale_down_boundary`, by as many as the spare capacity allows.
//! * A decision passes only once its signal has held for the stabilization window.
//! * A new instance is placed on a node of the pool; a node beyond the initial ones is
//!   provisioned first (its provisioning delay), then the instance loads (the loading delay). It
//!   joins routing only after both. A scaled-in instance drains: it gets no new requests and
//!   leaves once every request routed to it has finished. The earliest-added instance drains
//!   first (instances the autoscaler added before the initial ones).
//!
//! The fleet's instances are pre-allocated (the pool's capacity); the ones not in use are off.

use rand::RngExt;
use rand_pcg::Pcg64Mcg;

/// A delay distribution: a normal with this mean and deviation (µs), clamped at 0.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Delay {
    pub mean_us: f64,
    pub stddev_us: f64,
}

impl Delay {
    fn sample(&self, rng: &mut Pcg64Mcg) -> u64 {
        if self.stddev_us <= 0.0 {
            return self.mean_us.max(0.0) as u64;
        }
        // Box–Muller.
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random::<f64>();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (self.mean_us + z * self.stddev_us).max(0.0) as u64
    }
}

/// The autoscaler of one homogeneous pool (the fleet's only pool).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscaleConfig {
    pub interval_us: u64,
    pub scale_up_window_us: u64,
    pub scale_down_window_us: u64,
    pub kv_cache_threshold: f64,
    pub scale_up_threshold: f64,
    pub scale_down_boundary: f64,
    pub avg_input_tokens: f64,
    /// Instance loading (model download and start-up) before it is routable.
    pub loading_delay: Delay,
    /// Between a decision and its actuation (the HPA's metrics-scrape delay).
    pub scrape_delay: Delay,
    /// Node pool name, and its shape.
    pub pool_name: String,
    pub gpus_per_node: u32,
    pub gpus_per_instance: u32,
    pub initial_nodes: usize,
    pub max_nodes: usize,
    pub provisioning_delay: Delay,
    /// Cost of one node for one hour.
    pub cost_per_node_hour: f64,
}

impl AutoscaleConfig {
    pub fn instances_per_node(&self) -> usize {
        (self.gpus_per_node / self.gpus_per_instance.max(1)) as usize
    }

    /// Instances the pool can hold at most.
    pub fn capacity(&self) -> usize {
        self.instances_per_node() * self.max_nodes
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Off,
    Loading,
    Active,
    Draining,
}

/// What the autoscaler reads from one instance.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    pub kv_total_tokens: u64,
    pub kv_used_tokens: u64,
    pub queue_depth: u32,
}

/// One change of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScaleEvent {
    pub time_us: u64,
    /// `scale-up` (placed, loading), `ready` (routable), `scale-down` (draining), `drained` (left).
    pub action: &'static str,
    pub instance: usize,
    /// Routable instances after the change.
    pub routable: usize,
}

/// The autoscaling figures of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AutoscaleReport {
    pub pool: String,
    pub ticks: u64,
    /// Decisions that acted (a scale-up that found the pool full is not counted).
    pub scale_up_decisions: u64,
    pub scale_down_decisions: u64,
    pub instances_added: u64,
    pub instances_removed: u64,
    pub initial_instances: usize,
    pub peak_instances: usize,
    pub final_instances: usize,
    /// GPU-hours of the pool: every instance's GPUs from placement until it left (or the end).
    pub gpu_hours: f64,
    /// The time GPU-hours are integrated to (the run's last event).
    pub end_us: u64,
    /// Node cost of those GPU-hours (`cost_per_hour` per node, pro rata per GPU).
    pub cost: f64,
    pub timeline: Vec<ScaleEvent>,
    /// Instances (index) that left while still holding requests (must be empty).
    #[serde(skip)]
    pub left_busy: Vec<usize>,
    /// Instances that left, and those still loading or draining at the end.
    #[serde(skip)]
    pub left: Vec<usize>,
    #[serde(skip)]
    pub loading_at_end: usize,
    #[serde(skip)]
    pub draining_at_end: usize,
    /// Requests routed to an instance that was not routable (must be 0).
    #[serde(skip)]
    pub misrouted: u64,
}

impl AutoscaleReport {
    /// Fleet bookkeeping: every instance added became ready or is loading, every one removed
    /// left or is draining, nothing was routed to an instance outside routing, and every
    /// instance that left was empty.
    pub fn check(&self, still_held: impl Fn(usize) -> u64) -> Result<(), String> {
        let readies = self.timeline.iter().filter(|e| e.action == "ready").count() as u64;
        let drained = self.timeline.iter().filter(|e| e.action == "drained").count() as u64;
        if self.instances_added != readies + self.loading_at_end as u64 {
            return Err(format!(
                "autoscaling: {} instances added but {readies} became ready and {} are loading",
                self.instances_added, self.loading_at_end
            ));
        }
        if self.instances_removed != drained + self.draining_at_end as u64 {
            return Err(format!(
                "autoscaling: {} instances removed but {drained} drained and {} are draining",
                self.instances_removed, self.draining_at_end
            ));
        }
        if self.misrouted != 0 {
            return Err(format!(
                "autoscaling: {} requests routed to an instance outside routing",
                self.misrouted
            ));
        }
        if let Some(&i) = self.left_busy.first() {
            return Err(format!("autoscaling: instance {i} left while holding requests"));
        }
        for &i in &self.left {
            if still_held(i) != 0 {
                return Err(format!(
                    "autoscaling: instance {i} left but still holds {} requests",
                    still_held(i)
                ));
            }
        }
        Ok(())
    }
}

/// What a tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    Nothing,
    /// Acted: the instances placed, with the time each becomes routable.
    Placed(Vec<(usize, u64)>),
    /// Decided; [`Autoscaler::actuate`] acts at this time.
    Deferred(u64),
}

impl Tick {
    /// The instances placed now (none unless `Placed`).
    pub fn placed(self) -> Vec<(usize, u64)> {
        match self {
            Tick::Placed(p) => p,
            _ => Vec::new(),
        }
    }
}

/// The autoscaler's state during a run.
#[derive(Debug)]
pub struct Autoscaler {
    config: AutoscaleConfig,
    life: Vec<Life>,
    /// When each instance's GPUs were taken (placement), while it holds them.
    held_since: Vec<Option<u64>>,
    held_us: Vec<u64>,
    /// Creation order of added instances (drained first, oldest first).
    added_seq: Vec<Option<u64>>,
    next_seq: u64,
    /// Per node: when it is (or will be) ready, while it is up or being provisioned.
    node_ready_at: Vec<Option<u64>>,
    routable: Vec<usize>,
    up_since: Option<u64>,
    down_since: Option<u64>,
    rng: Pcg64Mcg,
    /// Decisions waiting for their scrape delay (oldest first).
    deferred: std::collections::VecDeque<i64>,
    report: AutoscaleReport,
}

impl Autoscaler {
    /// `initial` instances (the lowest indices) serve from the start, of `config.capacity()`.
    pub fn new(config: AutoscaleConfig, initial: usize, rng: Pcg64Mcg) -> Self {
        let n = config.capacity();
        assert!(initial >= 1 && initial <= n, "initial instances within the pool's capacity");
        let per_node = config.instances_per_node();
        let node_ready_at = (0..config.max_nodes)
            .map(|k| (k < config.initial_nodes || k * per_node < initial).then_some(0))
            .collect();
        let report = AutoscaleReport {
            pool: config.pool_name.clone(),
            ticks: 0,
            scale_up_decisions: 0,
            scale_down_decisions: 0,
            instances_added: 0,
            instances_removed: 0,
            initial_instances: initial,
            peak_instances: initial,
            final_instances: initial,
            gpu_hours: 0.0,
            end_us: 0,
            cost: 0.0,
            timeline: Vec::new(),
            left_busy: Vec::new(),
            left: Vec::new(),
            loading_at_end: 0,
            draining_at_end: 0,
            misrouted: 0,
        };
        Self {
            life: (0..n).map(|i| if i < initial { Life::Active } else { Life::Off }).collect(),
            held_since: (0..n).map(|i| (i < initial).then_some(0)).collect(),
            held_us: vec![0; n],
            added_seq: vec![None; n],
            next_seq: 0,
            node_ready_at,
            routable: (0..initial).collect(),
            up_since: None,
            down_since: None,
            rng,
            deferred: Default::default(),
            report,
            config,
        }
    }

    pub fn interval_us(&self) -> u64 {
        self.config.interval_us
    }

    /// The instances requests may be routed to (ascending).
    pub fn routable(&self) -> &[usize] {
        &self.routable
    }

    /// Counts a request routed to `i` (which must be routable).
    pub fn on_routed(&mut self, i: usize) {
        if self.life[i] != Life::Active {
            self.report.misrouted += 1;
        }
    }

    fn refresh_routable(&mut self) {
        self.routable = (0..self.life.len()).filter(|&i| self.life[i] == Life::Active).collect();
    }

    fn event(&mut self, time_us: u64, action: &'static str, instance: usize) {
        let routable = self.routable.len();
        self.report.timeline.push(ScaleEvent { time_us, action, instance, routable });
    }

    /// One tick: decides, and acts now or after the scrape delay (`in_flight`: per instance).
    pub fn tick(&mut self, now_us: u64, read: impl Fn(usize) -> Reading, in_flight: &[u32]) -> Tick {
        self.report.ticks += 1;
        let c = &self.config;
        let (mut supply, mut demand, mut pending) = (0.0, 0.0, 0.0);
        let mut replicas = 0usize;
        for (i, life) in self.life.iter().enumerate() {
            match life {
                Life::Active => {
                    let r = read(i);
                    if r.kv_total_tokens == 0 {
                        continue;
                    }
                    supply += r.kv_total_tokens as f64 * c.kv_cache_threshold;
                    demand += r.kv_used_tokens as f64 + f64::from(r.queue_depth) * c.avg_input_tokens;
                    replicas += 1;
                }
                Life::Loading => pending += read(i).kv_total_tokens as f64 * c.kv_cache_threshold,
                _ => {}
            }
        }
        let mut delta: i64 = 0;
        if replicas > 0 {
            let per_replica = supply / replicas as f64;
            let required = demand / c.scale_up_threshold - (supply + pending);
            if required > 0.0 {
                delta = ((required / per_replica).ceil() as i64).max(1);
            } else if replicas > 1 {
                let spare = supply - demand / c.scale_down_boundary;
                if spare > 0.0 && supply - per_replica > demand / c.scale_down_boundary {
                    delta = -((spare / per_replica).floor() as i64).clamp(1, replicas as i64);
                }
            }
        }
        // Stabilization windows: a signal must hold for the window before it acts.
        let passes = |since: &mut Option<u64>, window: u64, signal: bool| -> bool {
            if !signal {
                *since = None;
                return false;
            }
            let first = *since.get_or_insert(now_us);
            if now_us - first >= window {
                *since = None;
                true
            } else {
                false
            }
        };
        let up = passes(&mut self.up_since, c.scale_up_window_us, delta > 0);
        let down = passes(&mut self.down_since, c.scale_down_window_us, delta < 0);
        if !(up || down) {
            return Tick::Nothing;
        }
        if self.config.scrape_delay == Delay::default() {
            return Tick::Placed(self.act(now_us, delta, in_flight));
        }
        // The decision acts after the metrics-scrape delay (sampled only for decisions that pass).
        let at = now_us.saturating_add(self.config.scrape_delay.sample(&mut self.rng));
        self.deferred.push_back(delta);
        Tick::Deferred(at)
    }

    /// A deferred decision acts now (deferred decisions act in the order they were taken).
    pub fn actuate(&mut self, now_us: u64, in_flight: &[u32]) -> Vec<(usize, u64)> {
        let delta = self.deferred.pop_front().expect("a deferred decision");
        self.act(now_us, delta, in_flight)
    }

    /// Places `delta` instances (> 0) or drains `-delta` (< 0).
    fn act(&mut self, now_us: u64, delta: i64, in_flight: &[u32]) -> Vec<(usize, u64)> {
        let (up, down) = (delta > 0, delta < 0);
        let mut placed = Vec::new();
        if up {
            for _ in 0..delta {
                let Some(i) = self.life.iter().position(|l| *l == Life::Off) else { break };
                let node = i / self.config.instances_per_node();
                // Loading starts once the node is ready (provisioned now if it is not up).
                let node_ready = match self.node_ready_at[node] {
                    Some(t) => t.max(now_us),
                    None => {
                        let t = now_us.saturating_add(self.config.provisioning_delay.sample(&mut self.rng));
                        self.node_ready_at[node] = Some(t);
                        t
                    }
                };
                let delay = node_ready - now_us + self.config.loading_delay.sample(&mut self.rng);
                self.life[i] = Life::Loading;
                self.held_since[i] = Some(now_us);
                self.added_seq[i] = Some(self.next_seq);
                self.next_seq += 1;
                self.report.instances_added += 1;
                self.event(now_us, "scale-up", i);
                placed.push((i, now_us.saturating_add(delay)));
            }
            if !placed.is_empty() {
                self.report.scale_up_decisions += 1;
            }
            let alive = self.life.iter().filter(|l| matches!(l, Life::Loading | Life::Active)).count();
            self.report.peak_instances = self.report.peak_instances.max(alive);
        }
        if down {
            self.report.scale_down_decisions += 1;
            for _ in 0..-delta {
                // Added instances first, oldest first; then the initial ones, lowest first.
                let pick = (0..self.life.len())
                    .filter(|&i| self.life[i] == Life::Active)
                    .min_by_key(|&i| (self.added_seq[i].is_none(), self.added_seq[i], i));
                let Some(i) = pick else { break };
                if self.routable.len() <= 1 {
                    break;
                }
                self.life[i] = Life::Draining;
                self.report.instances_removed += 1;
                self.refresh_routable();
                self.event(now_us, "scale-down", i);
                if in_flight[i] == 0 {
                    self.leave(now_us, i, 0);
                }
            }
        }
        placed
    }

    /// A placed instance finished provisioning and loading: it joins routing.
    pub fn ready(&mut self, now_us: u64, i: usize) {
        assert_eq!(self.life[i], Life::Loading, "only a loading instance becomes ready");
        self.life[i] = Life::Active;
        self.refresh_routable();
        self.event(now_us, "ready", i);
    }

    /// Requests left instance `i`, which now holds `in_flight` routed requests: a draining
    /// instance with none leaves.
    pub fn on_settled(&mut self, now_us: u64, i: usize, in_flight: u32) {
        if self.life[i] == Life::Draining && in_flight == 0 {
            self.leave(now_us, i, in_flight);
        }
    }

    fn leave(&mut self, now_us: u64, i: usize, in_flight: u32) {
        if in_flight != 0 {
            self.report.left_busy.push(i);
        }
        self.life[i] = Life::Off;
        if let Some(since) = self.held_since[i].take() {
            self.held_us[i] += now_us.saturating_sub(since);
        }
        self.added_seq[i] = None;
        self.report.left.push(i);
        self.event(now_us, "drained", i);
        // A provisioned node with no instance left is released.
        let per_node = self.config.instances_per_node();
        let node = i / per_node;
        if node >= self.config.initial_nodes
            && (node * per_node..(node + 1) * per_node).all(|k| self.life[k] == Life::Off)
        {
            self.node_ready_at[node] = None;
        }
    }

    /// The report, with GPU-hours integrated up to `end_us`.
    pub fn finish(mut self, end_us: u64) -> AutoscaleReport {
        for i in 0..self.life.len() {
            if let Some(since) = self.held_since[i].take() {
                self.held_us[i] += end_us.saturating_sub(since);
            }
        }
        let held: u64 = self.held_us.iter().sum();
        let gpus = f64::from(self.config.gpus_per_instance);
        let r = &mut self.report;
        r.end_us = end_us;
        r.gpu_hours = held as f64 / 3.6e9 * gpus;
        r.cost = r.gpu_hours * self.config.cost_per_node_hour / f64::from(self.config.gpus_per_node.max(1));
        r.final_instances = self.life.iter().filter(|l| matches!(l, Life::Active | Life::Draining)).count();
        r.loading_at_end = self.life.iter().filter(|l| **l == Life::Loading).count();
        r.draining_at_end = self.life.iter().filter(|l| **l == Life::Draining).count();
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    fn config() -> AutoscaleConfig {
        AutoscaleConfig {
            interval_us: 1_000_000,
            scale_up_window_us: 0,
            scale_down_window_us: 0,
            kv_cache_threshold: 0.8,
            scale_up_threshold: 0.8,
            scale_down_boundary: 0.4,
            avg_input_tokens: 100.0,
            loading_delay: Delay { mean_us: 5_000_000.0, stddev_us: 0.0 },
            scrape_delay: Delay::default(),
            pool_name: "p".into(),
            gpus_per_node: 2,
            gpus_per_instance: 1,
            initial_nodes: 1,
            max_nodes: 3,
            provisioning_delay: Delay { mean_us: 1_000_000.0, stddev_us: 0.0 },
            cost_per_node_hour: 2.0,
        }
    }

    impl Autoscaler {
        fn tick_placed(
            &mut self,
            now_us: u64,
            read: impl Fn(usize) -> Reading,
            in_flight: &[u32],
        ) -> Vec<(usize, u64)> {
            self.tick(now_us, read, in_flight).placed()
        }
    }

    #[test]
    fn a_scrape_delay_defers_the_decision() {
        let mut c = config();
        c.scrape_delay = Delay { mean_us: 3_000_000.0, stddev_us: 0.0 };
        let mut a = Autoscaler::new(c, 1, Pcg64Mcg::seed_from_u64(1));
        assert_eq!(a.tick(0, |_| reading(800, 1), &[0; 6]), Tick::Deferred(3_000_000));
        assert_eq!(a.actuate(3_000_000, &[0; 6]), vec![(1, 8_000_000)]);
    }

    fn reading(used: u64, queue: u32) -> Reading {
        Reading { kv_total_tokens: 1000, kv_used_tokens: used, queue_depth: queue }
    }

    #[test]
    fn scales_out_by_the_shortfall_and_in_by_draining() {
        let mut a = Autoscaler::new(config(), 1, Pcg64Mcg::seed_from_u64(1));
        // Demand 800 + 10 × 100 = 1800 tokens; supply 800; needs 1800/0.8 = 2250 → 2 more.
        let placed = a.tick_placed(0, |_| reading(800, 10), &[0; 6]);
        assert_eq!(placed, vec![(1, 5_000_000), (2, 6_000_000)], "instance 2 needs a new node");
        assert_eq!(a.routable(), &[0]);
        a.ready(5_000_000, 1);
        a.ready(6_000_000, 2);
        assert_eq!(a.routable(), &[0, 1, 2]);
        // Idle: scale in as far as one instance; the added ones drain first.
        let placed = a.tick_placed(7_000_000, |_| reading(0, 0), &[0, 0, 3, 0, 0, 0]);
        assert!(placed.is_empty());
        assert_eq!(a.routable(), &[0]);
        a.on_settled(8_000_000, 2, 0);
        let r = a.finish(10_000_000);
        assert_eq!(
            (r.instances_added, r.instances_removed, r.peak_instances, r.final_instances),
            (2, 2, 3, 1)
        );
        // 10 s + (7 - 0) s + (8 - 0) s of one GPU each.
        assert!((r.gpu_hours - 25.0 / 3600.0).abs() < 1e-12, "{}", r.gpu_hours);
        assert!((r.cost - r.gpu_hours).abs() < 1e-12);
        r.check(|_| 0).unwrap();
        let actions: Vec<_> = r.timeline.iter().map(|e| (e.action, e.instance)).collect();
        assert_eq!(
            actions,
            [
                ("scale-up", 1),
                ("scale-up", 2),
                ("ready", 1),
                ("ready", 2),
                ("scale-down", 1),
                ("drained", 1),
                ("scale-down", 2),
                ("drained", 2)
            ]
        );
    }

    #[test]
    fn the_pool_bounds_growth_and_pending_supply_holds_it_back() {
        let mut a = Autoscaler::new(config(), 1, Pcg64Mcg::seed_from_u64(1));
        assert_eq!(a.tick_placed(0, |_| reading(1000, 1000), &[0; 6]).len(), 5, "capacity 3 nodes × 2");
        assert!(a.tick_placed(1, |_| reading(1000, 1000), &[0; 6]).is_empty());
        let mut b = Autoscaler::new(config(), 1, Pcg64Mcg::seed_from_u64(1));
        assert_eq!(b.tick_placed(0, |_| reading(800, 2), &[0; 6]).len(), 1);
        assert!(b.tick_placed(1, |_| reading(800, 2), &[0; 6]).is_empty(), "the loading instance covers it");
    }

    #[test]
    fn an_instance_on_a_node_being_provisioned_waits_for_it() {
        let mut a = Autoscaler::new(config(), 2, Pcg64Mcg::seed_from_u64(1));
        // Node 1 is provisioned for instance 2 at t = 0 (ready at 1 s, loaded at 6 s).
        assert_eq!(a.tick_placed(0, |_| reading(800, 1), &[0; 6]), vec![(2, 6_000_000)]);
        // Instance 3 shares node 1, still being provisioned at 0.5 s: it loads from 1 s.
        assert_eq!(a.tick_placed(500_000, |_| reading(1000, 40), &[0; 6])[0], (3, 6_000_000));
    }

    #[test]
    fn stabilization_windows_delay_decisions() {
        let mut c = config();
        c.scale_up_window_us = 2_000_000;
        let mut a = Autoscaler::new(c, 1, Pcg64Mcg::seed_from_u64(1));
        assert!(a.tick_placed(0, |_| reading(800, 10), &[0; 6]).is_empty());
        assert!(a.tick_placed(1_000_000, |_| reading(800, 10), &[0; 6]).is_empty());
        assert!(!a.tick_placed(2_000_000, |_| reading(800, 10), &[0; 6]).is_empty());
        // A lost signal restarts the window.
        let mut c = config();
        c.scale_up_window_us = 2_000_000;
        let mut a = Autoscaler::new(c, 1, Pcg64Mcg::seed_from_u64(1));
        a.tick_placed(0, |_| reading(800, 10), &[0; 6]);
        a.tick_placed(1_000_000, |_| reading(100, 0), &[0; 6]);
        assert!(a.tick_placed(2_000_000, |_| reading(800, 10), &[0; 6]).is_empty());
    }

    #[test]
    fn delays_are_sampled_non_negative() {
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        let d = Delay { mean_us: 10.0, stddev_us: 100.0 };
        let xs: Vec<u64> = (0..1000).map(|_| d.sample(&mut rng)).collect();
        assert!(xs.contains(&0) && xs.iter().any(|&x| x > 50));
    }
}
