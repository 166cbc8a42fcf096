//! audience-operator: keeps merchants' customers flowing from commerce systems into email platforms.

pub mod engine;
