//! Executing a formed step: tokens advance, first tokens and ITLs are stamped, and requests
//! that produced their last token leave with their metrics recorded.

use blis_workload::Outcome;

use super::{Finished, Instance};
use crate::metrics::{Latencies, RequestRecord};
use crate::pd::Leg;
use crate::request::LiveRequest;
use crate::slab::ReqId;

impl Instance {
    /// Advances every scheduled request by its tokens, stamps first tokens and ITLs, and retires
    /// requests that produced their last token (or hit the context limit). One pass.
    pub(super) fn execute_and_complete(&mut self, end_us: u64, step_us: u64, finished: &mut Vec<Finished>) {
        let otpt_us = self.latency.output_token_processing_time_us();
        let itl_us = step_us + otpt_us;
        let mml = self.config.max_model_len;
        let mut decoders = 0u64;
        let mut decoders_by_class = [0u64; 5];
        let mut kept = 0;
        for k in 0..self.running.len() {
            let id = self.running[k];
            let r = &mut self.requests[id];
            if r.new_tokens == 0 && r.progress_tokens == r.input_tokens && r.ttft_us.is_none() {
                // Admitted this step with its whole prompt cached (reference semantics).
                r.ttft_us = Some(end_us + otpt_us - r.spec.arrival_us);
            } else if r.new_tokens > 0 {
                if r.in_prefill() {
                    r.progress_tokens += r.new_tokens;
                    r.computed_prompt_tokens += u64::from(r.new_tokens);
                    self.metrics.prompt_tokens_computed += u64::from(r.new_tokens);
                    if r.progress_tokens == r.input_tokens && r.ttft_us.is_none() {
                        r.ttft_us = Some(end_us + otpt_us - r.spec.arrival_us);
                    }
                } else {
                    r.progress_tokens += 1;
                    r.itl_sum_us += itl_us;
                    r.itl_samples += 1;
                    if self.measure.measured(&r.spec) {
                        decoders += 1;
                        decoders_by_class[r.spec.slo_class as usize] += 1;
                    }
                }
            }
            let done = r.progress_tokens >= r.done_at_progress();
            let capped = !done && mml > 0 && r.progress_tokens >= mml - 1;
            if done || capped {
                if capped {
                    self.metrics.length_capped += 1;
                }
                let f = self.retire(id, end_us, Outcome::Completed);
                finished.push(f);
            } else {
                self.running[kept] = id;
                kept += 1;
            }
        }
        self.running.truncate(kept);
        self.record_itl(itl_us, decoders, &decoders_by_class);
    }

    /// Pools one step's ITL sample for its `decoders` (per SLO class too).
    pub(super) fn record_itl(&mut self, itl_us: u64, decoders: u64, decoders_by_class: &[u64; 5]) {
        self.metrics.all.itl.add(itl_us, decoders);
        if self.config.track_classes {
            for class in blis_workload::SloClass::ALL {
                let n = decoders_by_class[class as usize];
                if n > 0 {
                    let exact = self.config.exact_percentiles;
                    let lat = self.metrics.by_class.entry(class).or_insert_with(|| Latencies::new(exact));
                    lat.itl.add(itl_us, n);
                }
            }
        }
    }

    /// Removes a request, frees its blocks and records its metrics.
    pub(super) fn retire(&mut self, id: ReqId, at_us: u64, outcome: Outcome) -> Finished {
        let mut r = self.requests.remove(id);
        self.kv.release(&mut r.kv);
        if r.adapter_pinned {
            let lora = self.lora.as_mut().expect("a pinned adapter means LoRA is on");
            lora.resident.unpin(r.adapter.expect("pinned adapter"));
        }
        let completed = outcome == Outcome::Completed;
        if completed && r.leg == Leg::Prefill {
            // The prompt is computed: the request continues on a decode instance.
            self.metrics.pd_handoffs += 1;
            return Finished { spec: r.spec, outcome, at_us, handoff: true };
        }
        let generated = if r.in_prefill() { 0 } else { r.progress_tokens - r.input_tokens + 1 };
        let output_tokens = if completed { generated.min(r.output_tokens.max(1)) } else { 0 };
        let e2e_us = r.ttft_us.filter(|_| completed).map(|ttft| {
            let post = if r.output_tokens > 0 { self.latency.post_decode_overhead_us() } else { 0 };
            ttft + r.itl_sum_us + post
        });
        let measured = self.measure.measured(&r.spec);
        if let Some(e2e) = e2e_us {
            self.metrics.completions.push(r.spec.arrival_us, r.spec.arrival_us + e2e, measured);
            if !measured {
                self.metrics.warmup_completed += 1;
            } else if let Some(t) = &self.measure.goodput[self.measure.label(&r.spec)] {
                // Per-request ITL (TPOT): Σ ITL / max(N − 1, 1).
                let itl_mean = (r.itl_samples > 0).then(|| r.itl_sum_us as f64 / f64::from(r.itl_samples));
                self.metrics.good_by_label[self.measure.label(&r.spec)].count(t, r.ttft_us, itl_mean, e2e);
            }
        }
        let class_metrics = if self.config.track_classes {
            let exact = self.config.exact_percentiles;
            Some(self.metrics.by_class.entry(r.spec.slo_class).or_insert_with(|| Latencies::new(exact)))
        } else {
            None
        };
        for lat in std::iter::once(&mut self.metrics.all).chain(class_metrics) {
            if let Some(e2e) = e2e_us {
                lat.completed += 1;
                lat.output_tokens += u64::from(output_tokens);
                if measured {
                    lat.e2e.push(e2e);
                }
            }
            if !measured {
                continue;
            }
            if let Some(ttft) = r.ttft_us {
                lat.ttft.push(ttft);
            }
            if let Some(d) = r.scheduling_delay_us {
                lat.scheduling_delay.push(d);
            }
        }
        if let (Leg::Decode(st), Some(ttft), true, true) = (r.leg, r.ttft_us, completed, measured) {
            let arrival = r.spec.arrival_us;
            let pd = &mut self.metrics.pd;
            pd.prefill.push(st.prefill_done_us.saturating_sub(arrival));
            pd.transfer.push(st.transfer_done_us.saturating_sub(st.prefill_done_us));
            pd.first_decode.push(ttft.saturating_sub(st.transfer_done_us.saturating_sub(arrival)));
        }
        if completed && let Some(tenant) = &r.spec.tenant {
            let t = self.metrics.by_tenant.entry(tenant.clone()).or_default();
            t.completed += 1;
            t.output_tokens += u64::from(output_tokens);
        }
        if let (Some(a), Some(totals), Some(_)) = (r.adapter, &mut self.metrics.lora, e2e_us) {
            let t = &mut totals.adapters[a as usize];
            t.completed += 1;
            t.output_tokens += u64::from(output_tokens);
            if let (true, Some(ttft)) = (measured, r.ttft_us) {
                t.ttft.push(ttft);
            }
        }
        if outcome == Outcome::TimedOut {
            self.metrics.timed_out += 1;
        }
        let finished_at = match e2e_us {
            Some(e2e) => r.spec.arrival_us + e2e,
            None => at_us,
        };
        if self.config.record_requests {
            self.metrics.records.push(record(&r, self.index, e2e_us, outcome));
        }
        let at_us =
            if self.config.semantics.follow_up_from_step_end { at_us } else { finished_at.max(at_us) };
        Finished { spec: r.spec, outcome, at_us, handoff: false }
    }
}

fn record(r: &LiveRequest, instance: usize, e2e_us: Option<u64>, outcome: Outcome) -> RequestRecord {
    let ms = |us: u64| us as f64 / 1000.0;
    RequestRecord {
        request_id: r.spec.id,
        arrived_at_s: r.spec.arrival_us as f64 / 1e6,
        num_prefill_tokens: r.input_tokens,
        num_decode_tokens: r.output_tokens,
        cached_prompt_tokens: r.cached_prompt_tokens,
        ttft_ms: r.ttft_us.map(ms),
        itl_ms: if r.itl_samples == 0 { 0.0 } else { ms(r.itl_sum_us) / f64::from(r.itl_samples) },
        e2e_ms: e2e_us.map(ms),
        scheduling_delay_ms: r.scheduling_delay_us.map(ms),
        slo_class: r.spec.slo_class.as_str(),
        tenant_id: r.spec.tenant.as_deref().map(str::to_owned),
        handled_by: instance,
        outcome: match outcome {
            Outcome::Completed => "completed",
            Outcome::TimedOut => "timed_out",
            Outcome::Dropped => "dropped",
            Outcome::Rejected => "rejected",
        },
        preemptions: r.preemptions,
        gateway_queue_delay_ms: None,
    }
}
