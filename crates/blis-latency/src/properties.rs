//! Property tests shared by all backends: step times are ≥ 1, finite, and never shrink when the
//! batch gains a decode request or a prefill chunk gains tokens.

use proptest::prelude::*;

use crate::test_support::{h100, llama_8b, mixtral, scout_like};
use crate::{LatencyOverrides, PrefillChunk, StepShape, build};

fn shape() -> impl Strategy<Value = StepShape> {
    let chunk = (1u32..8192, 0u32..32_768, 0u32..4096).prop_map(|(t, pi, extra)| PrefillChunk {
        new_tokens: t,
        context_tokens: pi,
        input_tokens: pi + t + extra,
    });
    (prop::collection::vec(chunk, 0..4), 0u32..1024, 0u64..65_536).prop_map(|(prefills, n, avg)| StepShape {
        prefills,
        decode_requests: n,
        decode_context_tokens: u64::from(n) * avg,
    })
}

proptest! {
    #[test]
    fn steps_are_positive_and_monotone(
        s in shape(),
        extra_ctx in 0u64..65_536,
        extra_tokens in 1u32..4096,
        which in 0usize..3,
        tp_pow in 0u32..3,
    ) {
        let model = [llama_8b(), mixtral(), scout_like()][which].clone();
        let tp = 1 << tp_pow;
        let blackbox = LatencyOverrides { beta: Some(vec![6472.01, 19.797, 304.40]), ..Default::default() };
        for (name, o) in [("trained-physics", LatencyOverrides::default()), ("roofline", LatencyOverrides::default()), ("blackbox", blackbox)] {
            let m = build(name, &model, &h100(), tp, &o).unwrap();
            let base = m.step_time_us(&s);
            prop_assert!(base >= 1);

            let mut more_decodes = s.clone();
            more_decodes.decode_requests += 1;
            more_decodes.decode_context_tokens += extra_ctx;
            prop_assert!(m.step_time_us(&more_decodes) >= base, "{name}: decode count");

            if let Some(first) = s.prefills.first() {
                let mut longer = s.clone();
                longer.prefills[0].new_tokens = first.new_tokens + extra_tokens;
                longer.prefills[0].input_tokens = first.input_tokens + extra_tokens;
                prop_assert!(m.step_time_us(&longer) >= base, "{name}: prefill tokens");
            }
        }
    }
}
