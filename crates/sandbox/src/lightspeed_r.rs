//! Simulator of the LightspeedR API (placeholder until written from its spec).

use std::sync::{Arc, Mutex};

use axum::Router;

use crate::seed::Person;

#[derive(Default)]
struct State {}

/// The simulated LightspeedR account(s), shared by every request.
#[derive(Clone, Default)]
pub struct LightspeedR {
    #[allow(dead_code)]
    state: Arc<Mutex<State>>,
}

impl LightspeedR {
    pub fn reset(&self) {
        *self.state.lock().expect("state lock") = State::default();
    }

    pub fn seed_demo(&self, _people: &[Person]) {}
}

pub fn router(_sim: LightspeedR) -> Router {
    Router::new()
}
