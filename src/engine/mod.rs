//! The sync runner: reads a source and a target through their connectors, plans with the pure core
//! and applies the plan. The only place where a sync's I/O is sequenced.

pub mod customer_events;
pub mod orders;
pub mod run;
pub mod two_way;
pub mod write_back;

pub use orders::{CheckpointFn, OrderJob, OrdersOutcome, PromoSync, StoreCounts, run_order_sync};
pub use run::{
    AudienceJob, NamedSource, Phase, ProgressFn, RunError, RunMode, RunOutcome, SegmentJob,
    SegmentOutcome, run_audience_sync, run_segment_sync,
};
pub use two_way::TwoWayReport;
pub use write_back::{AfterSync, AfterSyncReport};
