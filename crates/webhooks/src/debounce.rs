//! Coalesces hints into triggers: the first hint for an account opens a window, every hint for
//! the same account within it joins, and when the window closes one [`Trigger`] goes out. The
//! window is fixed from the first hint (not restarted by each new one), so a steady stream of
//! deliveries still triggers a run every `window`, never starves it.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::hint::{Hint, Scope, Vendor};

/// The most addresses one trigger keeps; past it, `emails_truncated` says the list is partial.
pub const MAX_EMAILS_PER_TRIGGER: usize = 1000;

/// "Run the syncs of `account` at `vendor` now." What the operator acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub vendor: Vendor,
    pub account: String,
    /// Every topic seen in the window.
    pub topics: BTreeSet<String>,
    pub scopes: BTreeSet<Scope>,
    /// Every address named in the window (at most [`MAX_EMAILS_PER_TRIGGER`]).
    pub emails: BTreeSet<String>,
    /// True when more addresses were named than kept.
    pub emails_truncated: bool,
    /// How many hints were coalesced.
    pub hints: usize,
}

struct Pending {
    deadline: Instant,
    trigger: Trigger,
}

impl Pending {
    fn absorb(&mut self, hint: Hint) {
        let t = &mut self.trigger;
        t.hints += 1;
        t.topics.insert(hint.topic);
        t.scopes.insert(hint.scope);
        for email in hint.emails {
            if t.emails.len() < MAX_EMAILS_PER_TRIGGER {
                t.emails.insert(email);
            } else if !t.emails.contains(&email) {
                t.emails_truncated = true;
            }
        }
    }
}

/// Spawns the debouncer on the current Tokio runtime: hints in, triggers out. It ends when
/// `hints` closes (after flushing what is pending) or when the returned receiver is dropped.
/// A slow consumer of triggers back-pressures the hint channel, which the receiver answers 503.
pub fn debounce(window: Duration, hints: mpsc::Receiver<Hint>) -> mpsc::Receiver<Trigger> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(run(window, hints, tx));
    rx
}

async fn run(window: Duration, mut hints: mpsc::Receiver<Hint>, out: mpsc::Sender<Trigger>) {
    let mut pending: HashMap<(Vendor, String), Pending> = HashMap::new();
    loop {
        let next = pending.values().map(|p| p.deadline).min();
        tokio::select! {
            hint = hints.recv() => {
                let Some(hint) = hint else { break };
                let key = (hint.vendor, hint.account.clone());
                let entry = pending.entry(key).or_insert_with(|| Pending {
                    deadline: Instant::now() + window,
                    trigger: Trigger {
                        vendor: hint.vendor,
                        account: hint.account.clone(),
                        topics: BTreeSet::new(),
                        scopes: BTreeSet::new(),
                        emails: BTreeSet::new(),
                        emails_truncated: false,
                        hints: 0,
                    },
                });
                entry.absorb(hint);
            }
            () = async {
                match next {
                    Some(at) => sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = Instant::now();
                let due: Vec<_> = pending
                    .iter()
                    .filter(|(_, p)| p.deadline <= now)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in due {
                    if let Some(p) = pending.remove(&key)
                        && out.send(p.trigger).await.is_err()
                    {
                        return;
                    }
                }
            }
        }
    }
    for (_, p) in pending {
        if out.send(p.trigger).await.is_err() {
            return;
        }
    }
}
