//! audience-operator: keeps merchants' customers flowing from commerce systems into email platforms.

pub mod cli;
pub mod connect;
pub mod crd;
pub mod engine;
