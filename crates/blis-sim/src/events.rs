//! The event queue: one binary heap ordered by (time, level, instance, priority, sequence).
//!
//! This single ordering reproduces the two-level engine of the spec exactly: at equal time,
//! cluster events (level 0) run before instance events (level 1); among instances the lowest
//! index goes first; within one heap, lower priority values first, then push order (FIFO).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::slab::ReqId;

/// Index of a request travelling through the cluster pipeline.
pub type PendingId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A request reaches the cluster.
    Arrival(PendingId),
    /// The admission decision for a request, after `--admission-latency`.
    Admission(PendingId),
    /// The routing decision for a request, after `--routing-latency`.
    Routing(PendingId),
    /// A routed request enters an instance's wait queue (after the server's queueing delay).
    Queued { instance: u32, pending: PendingId },
    /// An instance runs one step.
    Step { instance: u32 },
    /// A request's deadline; ignored if the request already left.
    Timeout { instance: u32, req: ReqId, request_id: u64 },
    /// An idle instance's CPU-tier load has arrived: it steps unless a step is pending.
    KvLoaded { instance: u32 },
    /// A request's gateway-queue TTL (`--request-ttl`); ignored if it was dispatched.
    GatewayExpiry { pending: PendingId, seq: u64 },
    /// A periodic dispatch attempt of the gateway queue (`--dispatch-tick-interval`).
    GatewayTick,
    /// A disaggregated request's prompt is computed: its KV transfer starts.
    TransferStart(PendingId),
    /// A disaggregated request's KV reached its decode instance.
    TransferDone(PendingId),
    /// The shared KV link's next transfer may have finished (stale unless `generation` is
    /// the link's current one).
    LinkTick { generation: u64 },
    /// A periodic autoscaler tick (`--model-autoscaler-interval-us`).
    AutoscaleTick,
    /// An autoscaler decision acts, after the metrics-scrape delay.
    AutoscaleActuate,
    /// An instance the autoscaler placed finished provisioning and loading: it joins routing.
    InstanceReady { instance: u32 },
}

impl Event {
    /// (level, instance, priority) of the ordering key.
    fn rank(&self) -> (u8, u32, u8) {
        match *self {
            Event::Arrival(_) => (0, 0, 0),
            Event::Admission(_) => (0, 0, 1),
            Event::Routing(_) => (0, 0, 2),
            Event::TransferStart(_) => (0, 0, 3),
            Event::LinkTick { .. } => (0, 0, 4),
            Event::TransferDone(_) => (0, 0, 5),
            Event::Queued { instance, .. } => (1, instance, 1),
            Event::Step { instance } => (1, instance, 3),
            Event::Timeout { instance, .. } => (1, instance, 6),
            Event::KvLoaded { instance } => (1, instance, 2),
            Event::GatewayExpiry { .. } => (0, 0, 6),
            Event::GatewayTick => (0, 0, 7),
            Event::InstanceReady { .. } => (0, 0, 8),
            Event::AutoscaleTick => (0, 0, 9),
            Event::AutoscaleActuate => (0, 0, 10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    time_us: u64,
    level: u8,
    instance: u32,
    priority: u8,
    seq: u64,
}

#[derive(Debug)]
struct Entry {
    key: Key,
    event: Event,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

#[derive(Debug, Default)]
pub struct EventQueue {
    heap: BinaryHeap<Reverse<Entry>>,
    next_seq: u64,
}

impl EventQueue {
    pub fn push(&mut self, time_us: u64, event: Event) {
        let (level, instance, priority) = event.rank();
        let key = Key { time_us, level, instance, priority, seq: self.next_seq };
        self.next_seq += 1;
        self.heap.push(Reverse(Entry { key, event }));
    }

    pub fn pop(&mut self) -> Option<(u64, Event)> {
        self.heap.pop().map(|Reverse(e)| (e.key.time_us, e.event))
    }

    pub fn peek_time(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(e)| e.key.time_us)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_before_instance_lowest_index_first_then_fifo() {
        let mut q = EventQueue::default();
        q.push(10, Event::Step { instance: 2 });
        q.push(10, Event::Step { instance: 0 });
        q.push(10, Event::Routing(7));
        q.push(10, Event::Queued { instance: 0, pending: 1 });
        q.push(5, Event::Step { instance: 3 });
        q.push(10, Event::Arrival(1));
        q.push(10, Event::Arrival(2));
        let order: Vec<Event> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(
            order,
            vec![
                Event::Step { instance: 3 },
                Event::Arrival(1),
                Event::Arrival(2),
                Event::Routing(7),
                Event::Queued { instance: 0, pending: 1 },
                Event::Step { instance: 0 },
                Event::Step { instance: 2 },
            ]
        );
    }
}
