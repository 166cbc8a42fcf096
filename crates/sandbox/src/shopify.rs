//! Simulator of the Shopify API (placeholder until written from its spec).

use std::sync::{Arc, Mutex};

use axum::Router;

use crate::seed::Person;

#[derive(Default)]
struct State {}

/// The simulated Shopify account(s), shared by every request.
#[derive(Clone, Default)]
pub struct Shopify {
    #[allow(dead_code)]
    state: Arc<Mutex<State>>,
}

impl Shopify {
    pub fn reset(&self) {
        *self.state.lock().expect("state lock") = State::default();
    }

    pub fn seed_demo(&self, _people: &[Person]) {}
}

pub fn router(_sim: Shopify) -> Router {
    Router::new()
}
