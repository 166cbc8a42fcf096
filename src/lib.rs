//! audience-operator: keeps merchants' customers flowing from commerce systems into email platforms.
//!
//! - [`crd`]: the `AudienceSync` and `SegmentSync` custom resources;
//! - [`controller`]: the reconcile pipeline and the kube-rs controllers;
//! - [`operator`]: `audience-operator run` (leader election, controllers, HTTP endpoints);
//! - [`sync`]: the one path from a sync object to a finished run (credentials, connectors, run),
//!   shared by the controller and `sync -f`;
//! - [`engine`]: one sync run end to end (read → plan → check → apply);
//! - [`shard`]: which replica reconciles which syncs (shards, one Lease each);
//! - [`schedule`]: when a sync runs next (pure).

pub mod activity;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod engine;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod operator;
pub mod owned_configmap;
pub mod schedule;
pub mod sent_events;
pub mod server;
pub mod shard;
pub mod status;
pub mod sync;
pub mod webhooks;
