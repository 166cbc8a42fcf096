//! The audience diff (being written).

/// Compact index of a target audience.
pub struct TargetIndex;

/// Streaming planner.
pub struct AudiencePlanner;
