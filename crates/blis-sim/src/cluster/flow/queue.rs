//! The gateway queue: requests admitted by flow control wait here, in priority bands (one per
//! admission priority, highest first) of per-tenant FIFO flows, until the saturation detector
//! lets the dispatcher hand one to the router.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use blis_workload::SloClass;

use super::{DispatchOrder, FairnessPolicy};

/// Flow key of requests without a tenant.
const DEFAULT_TENANT: &str = "default";

/// One waiting request.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<T> {
    pub item: T,
    pub request_id: u64,
    pub class: SloClass,
    pub tenant: Option<Arc<str>>,
    /// Admission priority of the class (the band it waits in).
    pub priority: i32,
    pub enqueued_us: u64,
    /// Arrival order at the gateway (FIFO and fairness tie-breaks).
    pub seq: u64,
    /// The request's own TTFT target (`slo-deadline`; before its class's target).
    pub slo_target_us: Option<u64>,
}

/// What enqueueing did.
#[derive(Debug, Clone, PartialEq)]
pub enum EnqueueOutcome<T> {
    Enqueued,
    /// Enqueued after pushing this lower-priority sheddable entry out (`--queue-shedding`).
    Shed(Entry<T>),
    /// The band or the queue was full; the request did not enter.
    Rejected,
}

/// Queue limits and orderings.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSettings {
    pub order: DispatchOrder,
    pub fairness: FairnessPolicy,
    /// Whole-queue limit (0 = unlimited).
    pub max_depth: usize,
    /// Limit of each band (0 = unlimited).
    pub per_band_capacity: usize,
    /// Saturation ceiling of the lowest band, in (0, 1]; 1 = no head-of-line gating.
    pub usage_limit_threshold: f64,
    /// A full queue pushes out a lower-priority sheddable entry instead of rejecting.
    pub shedding: bool,
    /// TTFT target of each SLO class (`slo-deadline` ordering), µs.
    pub slo_targets_us: [Option<u64>; 5],
}

#[derive(Debug)]
struct Band<T> {
    priority: i32,
    /// Tenant → FIFO flow, in tenant order (deterministic iteration). Empty flows are removed.
    flows: BTreeMap<Arc<str>, VecDeque<Entry<T>>>,
    len: usize,
    /// Round-robin fairness: the tenant last dispatched from.
    cursor: Option<Arc<str>>,
}

/// The gateway queue.
#[derive(Debug)]
pub struct GatewayQueue<T> {
    settings: QueueSettings,
    /// Descending priority. A band, once created, stays (its position sets its ceiling).
    bands: Vec<Band<T>>,
    len: usize,
    /// Sequence number → (band priority, tenant key), for removal on expiry.
    index: HashMap<u64, (i32, Arc<str>)>,
    default_tenant: Arc<str>,
}

impl<T: Clone> GatewayQueue<T> {
    pub fn new(settings: QueueSettings) -> Self {
        assert!(settings.usage_limit_threshold > 0.0 && settings.usage_limit_threshold <= 1.0);
        Self {
            settings,
            bands: Vec::new(),
            len: 0,
            index: HashMap::new(),
            default_tenant: Arc::from(DEFAULT_TENANT),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Requests waiting in the band of `priority`.
    pub fn band_len(&self, priority: i32) -> usize {
        self.bands.iter().find(|b| b.priority == priority).map_or(0, |b| b.len)
    }

    /// Whether a non-sheddable request (priority ≥ 0) is waiting.
    pub fn has_non_sheddable_waiting(&self) -> bool {
        self.bands.iter().any(|b| b.priority >= 0 && b.len > 0)
    }

    fn band_index(&mut self, priority: i32) -> usize {
        match self.bands.binary_search_by(|b| priority.cmp(&b.priority)) {
            Ok(i) => i,
            Err(i) => {
                self.bands.insert(i, Band { priority, flows: BTreeMap::new(), len: 0, cursor: None });
                i
            }
        }
    }

    fn tenant_key(&self, tenant: &Option<Arc<str>>) -> Arc<str> {
        tenant.clone().unwrap_or_else(|| self.default_tenant.clone())
    }

    /// Adds a request: rejected when its band is full; when the whole queue is full, rejected
    /// too unless shedding may push out a lower-priority sheddable entry.
    pub fn enqueue(&mut self, entry: Entry<T>) -> EnqueueOutcome<T> {
        let b = self.band_index(entry.priority);
        let cap = self.settings.per_band_capacity;
        if cap > 0 && self.bands[b].len >= cap {
            return EnqueueOutcome::Rejected;
        }
        let mut victim = None;
        if self.settings.max_depth > 0 && self.len >= self.settings.max_depth {
            if !self.settings.shedding {
                return EnqueueOutcome::Rejected;
            }
            match self.shed_victim(entry.priority, entry.seq) {
                Some(v) => victim = Some(v),
                None => return EnqueueOutcome::Rejected,
            }
        }
        let b = self.band_index(entry.priority);
        let key = self.tenant_key(&entry.tenant);
        self.index.insert(entry.seq, (entry.priority, key.clone()));
        let band = &mut self.bands[b];
        band.flows.entry(key).or_default().push_back(entry);
        band.len += 1;
        self.len += 1;
        match victim {
            Some(v) => EnqueueOutcome::Shed(v),
            None => EnqueueOutcome::Enqueued,
        }
    }

    /// Removes and returns the lowest-priority sheddable entry (the latest among equals) if the
    /// incoming request outranks it.
    fn shed_victim(&mut self, priority: i32, seq: u64) -> Option<Entry<T>> {
        // Candidates are flow tails (the latest arrival of each flow) of sheddable bands.
        let mut best: Option<(i32, u64, usize, Arc<str>)> = None;
        for (bi, band) in self.bands.iter().enumerate().filter(|(_, b)| b.priority < 0) {
            for (key, flow) in &band.flows {
                let Some(tail) = flow.back() else { continue };
                let better = match &best {
                    None => true,
                    Some((p, s, ..)) => band.priority < *p || (band.priority == *p && tail.seq > *s),
                };
                if better {
                    best = Some((band.priority, tail.seq, bi, key.clone()));
                }
            }
        }
        let (vp, vs, bi, key) = best?;
        if !(priority > vp || (priority == vp && seq < vs)) {
            return None;
        }
        let band = &mut self.bands[bi];
        let flow = band.flows.get_mut(&key).expect("candidate flow");
        let victim = flow.pop_back().expect("candidate tail");
        if flow.is_empty() {
            band.flows.remove(&key);
        }
        band.len -= 1;
        self.len -= 1;
        self.index.remove(&victim.seq);
        Some(victim)
    }

    /// The next request to dispatch at cluster saturation `saturation`, or `None` when the
    /// queue is empty or dispatch is held. Bands are visited highest first; band `i` of `n` may
    /// dispatch only while saturation is below its ceiling (1 for the highest band, falling
    /// linearly to `usage-limit-threshold` for the lowest), and a band over its ceiling halts
    /// the whole cycle (no lower band overtakes it). Under `fifo` without head-of-line gating,
    /// the globally earliest arrival goes first.
    pub fn dispatch(&mut self, saturation: f64) -> Option<Entry<T>> {
        if self.len == 0 {
            return None;
        }
        let threshold = self.settings.usage_limit_threshold;
        if self.settings.order == DispatchOrder::Fifo && threshold >= 1.0 {
            if saturation >= 1.0 {
                return None;
            }
            return self.take_earliest();
        }
        let n = self.bands.len();
        for i in 0..n {
            let ceiling = if n > 1 { 1.0 - i as f64 * (1.0 - threshold) / (n - 1) as f64 } else { 1.0 };
            if saturation >= ceiling {
                return None;
            }
            if self.bands[i].len > 0 {
                return Some(self.take_from_band(i));
            }
        }
        None
    }

    /// Every waiting request, in no particular order (for tests and end-of-run accounting).
    pub fn entries(&self) -> impl Iterator<Item = &Entry<T>> {
        self.bands.iter().flat_map(|b| b.flows.values().flatten())
    }

    /// Removes the entry enqueued with sequence number `seq` if it is still waiting (its TTL
    /// expired).
    pub fn remove(&mut self, seq: u64) -> Option<Entry<T>> {
        let (priority, key) = self.index.remove(&seq)?;
        let bi = self.bands.iter().position(|b| b.priority == priority).expect("indexed band");
        let band = &mut self.bands[bi];
        let flow = band.flows.get_mut(&key).expect("indexed flow");
        let pos = flow.iter().position(|e| e.seq == seq).expect("indexed entry");
        let entry = flow.remove(pos).expect("position in range");
        if flow.is_empty() {
            band.flows.remove(&key);
        }
        band.len -= 1;
        self.len -= 1;
        Some(entry)
    }

    /// `fifo`: the head with the lowest sequence number over every flow of every band.
    fn take_earliest(&mut self) -> Option<Entry<T>> {
        let mut best: Option<(u64, usize, Arc<str>)> = None;
        for (bi, band) in self.bands.iter().enumerate() {
            for (key, flow) in &band.flows {
                let head = flow.front().expect("flows are never empty");
                if best.as_ref().is_none_or(|(s, ..)| head.seq < *s) {
                    best = Some((head.seq, bi, key.clone()));
                }
            }
        }
        let (_, bi, key) = best?;
        Some(self.take_at(bi, &key, 0))
    }

    /// One request of band `bi`: the fairness policy picks the flow; its head goes, or under
    /// `slo-deadline` its entry with the earliest deadline (enqueue time + the request's own
    /// target, else its class's; none sorts last), as the reference's gateway queue.
    fn take_from_band(&mut self, bi: usize) -> Entry<T> {
        let key = self.pick_flow(bi);
        let pos = if self.settings.order == DispatchOrder::SloDeadline {
            let flow = &self.bands[bi].flows[&key];
            let targets = &self.settings.slo_targets_us;
            let deadline = |e: &Entry<T>| {
                e.slo_target_us
                    .or(targets[e.class as usize])
                    .map_or(u64::MAX, |t| e.enqueued_us.saturating_add(t))
            };
            (0..flow.len()).min_by_key(|&i| (deadline(&flow[i]), flow[i].seq)).expect("non-empty flow")
        } else {
            0
        };
        self.take_at(bi, &key, pos)
    }

    fn pick_flow(&mut self, bi: usize) -> Arc<str> {
        let band = &mut self.bands[bi];
        let key = match self.settings.fairness {
            FairnessPolicy::GlobalStrict => {
                band.flows.iter().min_by_key(|(_, f)| f[0].seq).map(|(k, _)| k.clone())
            }
            FairnessPolicy::RoundRobin => {
                // The tenant after the last one served, wrapping; from the first when that
                // tenant's flow has emptied since.
                let after = band.cursor.as_ref().filter(|c| band.flows.contains_key(*c)).and_then(|c| {
                    band.flows
                        .range::<Arc<str>, _>((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded))
                        .next()
                });
                after.or_else(|| band.flows.iter().next()).map(|(k, _)| k.clone())
            }
        }
        .expect("a non-empty band has a flow");
        band.cursor = Some(key.clone());
        key
    }

    fn take_at(&mut self, bi: usize, key: &Arc<str>, pos: usize) -> Entry<T> {
        let band = &mut self.bands[bi];
        let flow = band.flows.get_mut(key).expect("picked flow");
        let entry = flow.remove(pos).expect("position in range");
        if flow.is_empty() {
            band.flows.remove(key);
        }
        band.len -= 1;
        self.len -= 1;
        self.index.remove(&entry.seq);
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(order: DispatchOrder) -> QueueSettings {
        QueueSettings {
            order,
            fairness: FairnessPolicy::GlobalStrict,
            max_depth: 0,
            per_band_capacity: 0,
            usage_limit_threshold: 1.0,
            shedding: false,
            slo_targets_us: [None; 5],
        }
    }

    fn entry(seq: u64, class: SloClass, tenant: Option<&str>, at: u64) -> Entry<u64> {
        Entry {
            item: seq,
            request_id: seq,
            class,
            tenant: tenant.map(Arc::from),
            priority: crate::priority::SloPriorities::GAIE.admission(class),
            enqueued_us: at,
            seq,
            slo_target_us: None,
        }
    }

    fn drain(q: &mut GatewayQueue<u64>) -> Vec<u64> {
        std::iter::from_fn(|| q.dispatch(0.0).map(|e| e.item)).collect()
    }

    #[test]
    fn fifo_is_arrival_order_priority_is_band_order() {
        let classes = [SloClass::Batch, SloClass::Critical, SloClass::Standard, SloClass::Critical];
        let mut fifo = GatewayQueue::new(settings(DispatchOrder::Fifo));
        let mut prio = GatewayQueue::new(settings(DispatchOrder::Priority));
        for (i, &c) in classes.iter().enumerate() {
            assert_eq!(fifo.enqueue(entry(i as u64, c, None, 0)), EnqueueOutcome::Enqueued);
            prio.enqueue(entry(i as u64, c, None, 0));
        }
        assert_eq!(drain(&mut fifo), vec![0, 1, 2, 3]);
        assert_eq!(drain(&mut prio), vec![1, 3, 2, 0]);
        assert!(fifo.is_empty() && prio.is_empty());
    }

    #[test]
    fn saturation_holds_dispatch_and_lower_bands_gate_earlier() {
        let mut q = GatewayQueue::new(settings(DispatchOrder::Fifo));
        q.enqueue(entry(0, SloClass::Standard, None, 0));
        assert_eq!(q.dispatch(1.0), None);
        assert_eq!(q.dispatch(0.99).map(|e| e.item), Some(0));
        // Three bands, threshold 0.5: ceilings 1.0, 0.75, 0.5.
        let mut s = settings(DispatchOrder::Priority);
        s.usage_limit_threshold = 0.5;
        let mut q = GatewayQueue::new(s);
        q.enqueue(entry(0, SloClass::Critical, None, 0));
        q.enqueue(entry(1, SloClass::Standard, None, 0));
        q.enqueue(entry(2, SloClass::Batch, None, 0));
        assert_eq!(q.dispatch(0.8).map(|e| e.item), Some(0));
        // The critical band is empty now but still gates at 1.0; standard's ceiling is 0.75.
        assert_eq!(q.dispatch(0.8), None);
        assert_eq!(q.dispatch(0.6).map(|e| e.item), Some(1));
        assert_eq!(q.dispatch(0.6), None);
        assert_eq!(q.dispatch(0.4).map(|e| e.item), Some(2));
    }

    #[test]
    fn capacity_rejects_and_shedding_pushes_out_the_latest_lowest() {
        let mut s = settings(DispatchOrder::Priority);
        s.per_band_capacity = 2;
        let mut q = GatewayQueue::new(s.clone());
        q.enqueue(entry(0, SloClass::Standard, None, 0));
        q.enqueue(entry(1, SloClass::Standard, None, 0));
        assert_eq!(q.enqueue(entry(2, SloClass::Standard, None, 0)), EnqueueOutcome::Rejected);
        assert_eq!(q.enqueue(entry(3, SloClass::Critical, None, 0)), EnqueueOutcome::Enqueued);
        assert_eq!(q.len(), 3);

        s.per_band_capacity = 0;
        s.max_depth = 3;
        let mut q = GatewayQueue::new(s.clone());
        q.enqueue(entry(0, SloClass::Sheddable, None, 0));
        q.enqueue(entry(1, SloClass::Background, None, 0));
        q.enqueue(entry(2, SloClass::Background, None, 0));
        assert_eq!(q.enqueue(entry(3, SloClass::Critical, None, 0)), EnqueueOutcome::Rejected);
        s.shedding = true;
        let mut q = GatewayQueue::new(s);
        q.enqueue(entry(0, SloClass::Sheddable, None, 0));
        q.enqueue(entry(1, SloClass::Background, None, 0));
        q.enqueue(entry(2, SloClass::Background, None, 0));
        match q.enqueue(entry(3, SloClass::Critical, None, 0)) {
            EnqueueOutcome::Shed(v) => assert_eq!(v.item, 2),
            other => panic!("{other:?}"),
        }
        // A background arrival cannot push out an earlier background entry.
        assert_eq!(q.enqueue(entry(4, SloClass::Background, None, 0)), EnqueueOutcome::Rejected);
        assert_eq!(q.len(), 3);
        assert_eq!(drain(&mut q), vec![3, 0, 1]);
    }

    #[test]
    fn round_robin_alternates_tenants_global_strict_follows_arrivals() {
        let mut s = settings(DispatchOrder::Priority);
        let arrivals = [("a", 0), ("a", 1), ("a", 2), ("b", 3), ("b", 4)];
        let mut strict = GatewayQueue::new(s.clone());
        s.fairness = FairnessPolicy::RoundRobin;
        let mut rr = GatewayQueue::new(s);
        for (t, seq) in arrivals {
            strict.enqueue(entry(seq, SloClass::Standard, Some(t), 0));
            rr.enqueue(entry(seq, SloClass::Standard, Some(t), 0));
        }
        assert_eq!(drain(&mut strict), vec![0, 1, 2, 3, 4]);
        assert_eq!(drain(&mut rr), vec![0, 3, 1, 4, 2]);
    }

    #[test]
    fn slo_deadline_orders_by_enqueue_plus_target_and_removal_works() {
        let mut s = settings(DispatchOrder::SloDeadline);
        s.slo_targets_us[SloClass::Standard as usize] = Some(1_000);
        let mut q = GatewayQueue::new(s);
        // Within one flow, the earliest deadline goes first (enqueue times out of order here).
        q.enqueue(entry(0, SloClass::Standard, None, 5_000));
        q.enqueue(entry(1, SloClass::Standard, None, 100));
        q.enqueue(entry(2, SloClass::Standard, None, 3_000));
        assert_eq!(q.remove(2).map(|e| e.item), Some(2));
        assert_eq!(q.remove(2), None);
        assert_eq!(drain(&mut q), vec![1, 0]);
    }

    #[test]
    fn a_request_target_comes_before_its_class_target() {
        let mut s = settings(DispatchOrder::SloDeadline);
        s.slo_targets_us[SloClass::Standard as usize] = Some(10_000);
        let mut q = GatewayQueue::new(s);
        // Deadlines: 0 → 0 + 10 000 (class), 1 → 500 + 2 000 (own), 2 → 100 + none = last
        // (a Batch class without a target), 3 → 900 + 500 (own, even without a class target).
        q.enqueue(entry(0, SloClass::Standard, None, 0));
        q.enqueue(Entry { slo_target_us: Some(2_000), ..entry(1, SloClass::Standard, None, 500) });
        q.enqueue(entry(2, SloClass::Batch, None, 100));
        q.enqueue(Entry { slo_target_us: Some(500), ..entry(3, SloClass::Batch, None, 900) });
        let order = drain(&mut q);
        assert_eq!(order.iter().filter(|&&i| i < 2).copied().collect::<Vec<_>>(), vec![1, 0]);
        assert_eq!(order.iter().filter(|&&i| i >= 2).copied().collect::<Vec<_>>(), vec![3, 2]);
    }
}
