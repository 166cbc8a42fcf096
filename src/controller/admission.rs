//! How many runs go at once. A fixed permit count is wrong both ways: four permits leave a
//! thousand small shops queueing behind each other while every vendor key sits idle, and a
//! hundred permits let a hundred 100,000-customer runs hold their data in memory together. So a
//! run is admitted under two bounds:
//!
//! - a cap on runs at once (`--concurrency`, default [`DEFAULT_CONCURRENCY`]): many small runs
//!   at once, so the per-key vendor budgets (`audience_connectors::http::KeyBudget`), not this
//!   cap, are what limit each vendor account's traffic;
//! - a memory budget in records (`--run-records-budget`): each run takes a share sized by its
//!   last run's records (source or target, whichever is larger, at least [`MIN_RECORDS`]), so
//!   small runs go many at once and large ones few at once. A first run has no size yet and takes
//!   the minimum share; the cap bounds how many such runs there are.

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::crd::SyncStatus;

/// Runs at most at once by default.
pub const DEFAULT_CONCURRENCY: u16 = 128;

/// Records all runs at once may hold by default.
pub const DEFAULT_RECORDS_BUDGET: u64 = 1_000_000;

/// The smallest share of the budget a run takes (and the unit shares are counted in).
pub const MIN_RECORDS: u64 = 1_000;

/// The admission of runs: both bounds, shared by every controller.
pub struct Admission {
    runs: std::sync::Arc<Semaphore>,
    records: std::sync::Arc<Semaphore>,
    units: u32,
}

/// A run's admission; both shares are given back when it drops.
pub struct Admitted {
    _run: OwnedSemaphorePermit,
    _records: OwnedSemaphorePermit,
}

/// The share of the budget (in units of [`MIN_RECORDS`], at least 1, at most `units`) of a run of
/// a sync whose status is `status`.
pub fn share(status: Option<&SyncStatus>, units: u32) -> u32 {
    let records = status
        .and_then(|s| s.last_run.as_ref())
        .map_or(0, |r| r.counts.source.max(r.counts.target));
    let wanted = records.div_ceil(MIN_RECORDS).max(1);
    u32::try_from(wanted).unwrap_or(u32::MAX).min(units.max(1))
}

impl Admission {
    pub fn new(concurrency: u16, records_budget: u64) -> Admission {
        let units = u32::try_from(records_budget.div_ceil(MIN_RECORDS).max(1)).unwrap_or(u32::MAX);
        Admission {
            runs: std::sync::Arc::new(Semaphore::new(usize::from(concurrency.max(1)))),
            records: std::sync::Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    /// Waits until a run of a sync with this status fits under both bounds.
    pub async fn admit(&self, status: Option<&SyncStatus>) -> Admitted {
        let run = self
            .runs
            .clone()
            .acquire_owned()
            .await
            .expect("the run semaphore is never closed");
        let records = self
            .records
            .clone()
            .acquire_many_owned(share(status, self.units))
            .await
            .expect("the records semaphore is never closed");
        Admitted {
            _run: run,
            _records: records,
        }
    }

    /// Runs that could still be admitted right now (for tests).
    pub fn free_runs(&self) -> usize {
        self.runs.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{LastRun, RunCounts};

    fn status(source: u64, target: u64) -> SyncStatus {
        SyncStatus {
            last_run: Some(LastRun {
                counts: RunCounts {
                    source,
                    target,
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_share_follows_the_last_runs_size() {
        assert_eq!(share(None, 1000), 1, "a first run takes the minimum");
        assert_eq!(share(Some(&status(5, 0)), 1000), 1);
        assert_eq!(share(Some(&status(100_000, 20_000)), 1000), 100);
        assert_eq!(share(Some(&status(0, 250_001)), 1000), 251);
        assert_eq!(
            share(Some(&status(5_000_000, 0)), 1000),
            1000,
            "never more than the budget"
        );
    }

    #[tokio::test]
    async fn small_runs_go_many_at_once_and_large_ones_few() {
        let admission = Admission::new(128, 1_000_000);
        let small_status = status(5, 5);
        let small: Vec<Admitted> =
            futures::future::join_all((0..128).map(|_| admission.admit(Some(&small_status)))).await;
        assert_eq!(small.len(), 128);
        assert_eq!(
            admission.free_runs(),
            0,
            "the cap, not the budget, bounds small runs"
        );
        drop(small);

        let big = status(400_000, 0);
        let first = admission.admit(Some(&big)).await;
        let second = admission.admit(Some(&big)).await;
        let third = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            admission.admit(Some(&big)),
        )
        .await;
        assert!(
            third.is_err(),
            "a third 400,000-record run waits for the budget"
        );
        drop(first);
        let third = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            admission.admit(Some(&big)),
        )
        .await;
        assert!(third.is_ok(), "and goes once one finishes");
        drop(second);
    }
}
