//! What the sandbox needs of each vendor's simulator, so that serving one more vendor is one line
//! in `lib.rs` (the `simulators!` table) and a trait impl next to the simulator.

use axum::Router;

use crate::seed::Person;

/// One vendor's simulated API: its state handle (cheap to clone, clones share state) plus what
/// the sandbox does with it.
pub trait Simulator: Clone + Default + Send + Sync + 'static {
    /// The vendor's name in stats and fault injection, and its path prefix (`/{NAME}`).
    const NAME: &'static str;

    /// The vendor's routes, relative to its prefix.
    fn router(&self) -> Router;

    /// Clears every piece of state and setting back to a fresh simulator.
    fn reset(&self);

    /// Seeds the demo data (`people` are the deterministic demo people; targets may ignore them).
    fn seed(&self, people: &[Person]);

    /// Layers that sit outside fault injection but inside the request counters (Mailchimp's
    /// connection limit must hold a slot during injected latency). None by default.
    fn outer_layers(&self, router: Router) -> Router {
        router
    }
}
