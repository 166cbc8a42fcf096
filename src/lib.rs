//! audience-operator: keeps merchants' customers flowing from commerce systems into email platforms.
//!
//! - [`crd`]: the `AudienceSync` and `SegmentSync` custom resources;
//! - [`controller`]: the reconcile pipeline and the kube-rs controllers;
//! - [`operator`]: `audience-operator run` (leader election, controllers, HTTP endpoints);
//! - [`engine`]: one sync run end to end; [`connect`]: building connectors from a spec.

pub mod cli;
pub mod connect;
pub mod controller;
pub mod crd;
pub mod engine;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod operator;
pub mod server;
pub mod status;
