//! Reject everything (for testing the rejection path).

use super::{AdmissionPolicy, Verdict};
use crate::cluster::{RouterView, RoutingRequest};

pub struct RejectAll;

impl AdmissionPolicy for RejectAll {
    fn decide(&mut self, _request: &RoutingRequest, _view: &RouterView) -> Verdict {
        Verdict::Reject("reject-all")
    }

    fn reads_instance_state(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    #[test]
    fn rejects() {
        let r = spec(0, 32, SloClass::Critical);
        let s = [sig(0, 0, 0, 0.0); 2];
        let v = RejectAll.decide(&RoutingRequest::of(&r, &[]), &view(0, &s, &SetOracle::default()));
        assert_eq!(v, Verdict::Reject("reject-all"));
    }
}
