//! Simulator of the RetailCrm API (placeholder until written from its spec).

use std::sync::{Arc, Mutex};

use axum::Router;

use crate::seed::Person;

#[derive(Default)]
struct State {}

/// The simulated RetailCrm account(s), shared by every request.
#[derive(Clone, Default)]
pub struct RetailCrm {
    #[allow(dead_code)]
    state: Arc<Mutex<State>>,
}

impl RetailCrm {
    pub fn reset(&self) {
        *self.state.lock().expect("state lock") = State::default();
    }

    pub fn seed_demo(&self, _people: &[Person]) {}
}

pub fn router(_sim: RetailCrm) -> Router {
    Router::new()
}
