//! Bounded memory of delivery ids already accepted (Shopify retries and sends duplicates).
//!
//! An LRU of at most `capacity` ids, each remembered for `ttl`: the oldest are forgotten first
//! when full, so memory stays bounded under any load; a duplicate arriving after it was forgotten
//! only costs one more (debounced) run, since hints are idempotent.

use std::num::NonZeroUsize;
use std::time::Duration;

use lru::LruCache;
use tokio::time::Instant;

pub(crate) struct Dedupe {
    seen: LruCache<String, Instant>,
    ttl: Duration,
}

impl Dedupe {
    pub(crate) fn new(capacity: NonZeroUsize, ttl: Duration) -> Dedupe {
        Dedupe {
            seen: LruCache::new(capacity),
            ttl,
        }
    }

    /// True when `key` was seen within the ttl; otherwise records it and returns false.
    pub(crate) fn seen_before(&mut self, key: String) -> bool {
        let now = Instant::now();
        if let Some(at) = self.seen.get(&key)
            && now.duration_since(*at) < self.ttl
        {
            return true;
        }
        self.seen.put(key, now);
        false
    }

    pub(crate) fn forget(&mut self, key: &str) {
        self.seen.pop(key);
    }

    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn remembers_within_ttl_and_stays_bounded() {
        let mut d = Dedupe::new(NonZeroUsize::new(3).unwrap(), Duration::from_secs(60));
        assert!(!d.seen_before("a".into()));
        assert!(d.seen_before("a".into()));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(!d.seen_before("a".into()), "forgotten after the ttl");
        for k in ["b", "c", "d"] {
            assert!(!d.seen_before(k.into()));
        }
        assert_eq!(d.len(), 3);
        assert!(!d.seen_before("a".into()), "evicted as least recently used");
    }
}
