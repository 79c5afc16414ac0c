//! Admit everything (the default).

use super::{AdmissionPolicy, Verdict};
use crate::cluster::{RouterView, RoutingRequest};

pub struct AlwaysAdmit;

impl AdmissionPolicy for AlwaysAdmit {
    fn decide(&mut self, _request: &RoutingRequest, _view: &RouterView) -> Verdict {
        Verdict::Admit
    }

    fn reads_instance_state(&self) -> bool {
        false
    }
}
