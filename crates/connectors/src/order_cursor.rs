//! The position an order reader hands out as its checkpoint, shared by the order sources whose
//! change feed is "records sorted by a last-change time with one-second precision" (Lightspeed
//! R-Series `timeStamp`, Shopify `updatedAt`).
//!
//! A position is `{"since": <UTC time>, "seen": {id: <unix seconds of the change handed out>}}`.
//! The next read asks for changes at or after `since` and drops the (id, time) pairs in `seen`, so
//! a record saved in the same second as the last one read, but after the read, is still read, and
//! nothing is handed out twice. While the last change read is within [`SETTLE`] of the clock,
//! `since` stays that far behind it (a server may still hand out times in that window, e.g. a slow
//! transaction committing late); afterwards it is exactly the last change. It never passes the
//! clock (a record stamped in the future is read again until the clock catches up, and dropped as
//! seen) and never moves back past the previous position.

use std::collections::BTreeMap;

use audience_core::ConnectorError;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::config::invalid_config;

/// How long after its second a change time may still appear on the server.
pub const SETTLE: TimeDelta = TimeDelta::seconds(60);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPosition {
    pub since: DateTime<Utc>,
    /// Record id → unix seconds of the change handed out, for changes at or after `since`.
    pub seen: BTreeMap<String, i64>,
}

impl OrderPosition {
    /// A position from which everything at or after `since` is new.
    pub fn starting(since: DateTime<Utc>) -> Self {
        OrderPosition {
            since,
            seen: BTreeMap::new(),
        }
    }

    /// A checkpoint this module wrote, or a bare RFC 3339 time (nothing seen yet).
    pub fn parse(vendor: &'static str, checkpoint: &str) -> Result<Self, ConnectorError> {
        let checkpoint = checkpoint.trim();
        if let Ok(position) = serde_json::from_str::<OrderPosition>(checkpoint) {
            return Ok(position);
        }
        DateTime::parse_from_rfc3339(checkpoint)
            .map(|since| OrderPosition::starting(since.with_timezone(&Utc)))
            .map_err(|_| {
                invalid_config(
                    vendor,
                    format!(
                        "order checkpoint {checkpoint:?} is neither an order position nor an RFC 3339 time"
                    ),
                )
            })
    }

    /// True (and remembered) when the change of `id` at `at` was not handed out before.
    pub fn take(&mut self, id: &str, at: DateTime<Utc>) -> bool {
        let at = at.timestamp();
        if self.seen.get(id).is_some_and(|seen| *seen >= at) {
            return false;
        }
        self.seen.insert(id.to_string(), at);
        true
    }

    /// The position after everything taken so far, whose latest change is `max_seen`.
    pub fn advanced(&self, max_seen: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        let top = max_seen.min(now);
        let since = if top + SETTLE < now {
            top
        } else {
            top - SETTLE
        }
        .max(self.since);
        let floor = since.timestamp();
        OrderPosition {
            since,
            seen: self
                .seen
                .iter()
                .filter(|(_, at)| **at >= floor)
                .map(|(id, at)| (id.clone(), *at))
                .collect(),
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a position serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_settled_position_is_exact_and_keeps_only_its_second() {
        let mut start = OrderPosition::starting(at("2025-03-01T00:00:00Z"));
        assert!(start.take("1", at("2025-03-01T09:00:00Z")));
        assert!(start.take("2", at("2025-03-01T10:00:00Z")));
        assert!(!start.take("2", at("2025-03-01T10:00:00Z")), "seen");
        let next = start.advanced(at("2025-03-01T10:00:00Z"), at("2025-03-02T00:00:00Z"));
        assert_eq!(next.since, at("2025-03-01T10:00:00Z"));
        assert_eq!(next.seen.keys().collect::<Vec<_>>(), vec!["2"]);
    }

    #[test]
    fn a_recent_position_keeps_a_minute_and_never_passes_the_clock() {
        let next = OrderPosition::default()
            .advanced(at("2025-03-01T10:00:50Z"), at("2025-03-01T10:00:30Z"));
        assert_eq!(next.since, at("2025-03-01T09:59:30Z"));
        assert_eq!(OrderPosition::parse("x", &next.encode()).unwrap(), next);
    }

    #[test]
    fn a_position_never_moves_back() {
        let start = OrderPosition::starting(at("2025-03-01T10:00:40Z"));
        let next = start.advanced(at("2025-03-01T10:00:45Z"), at("2025-03-01T10:00:50Z"));
        assert_eq!(next.since, at("2025-03-01T10:00:40Z"));
    }

    #[test]
    fn checkpoints_parse_as_positions_or_times_and_refuse_nonsense() {
        assert_eq!(
            OrderPosition::parse("x", "2025-03-01T05:00:00-05:00")
                .unwrap()
                .since,
            at("2025-03-01T10:00:00Z")
        );
        assert!(OrderPosition::parse("x", "yesterday").is_err());
    }
}
