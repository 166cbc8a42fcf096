//! Incremental AudienceSync runs at the engine level, against the Shopify and Mailchimp
//! simulators: after a full run, a run from its checkpoint reads only the changes and the members
//! they concern, writes only what changed, never archives, and never saves a cursor in the future.
//! Calls are counted by the simulators (`audience_sandbox::Stats`).

use std::time::{Duration, Instant};

use audience_connectors::http::RetryPolicy;
use audience_connectors::mailchimp::{self, MailchimpConfig, MailchimpTarget};
use audience_connectors::shopify::{ShopifyConfig, ShopifySource};
use audience_core::{
    ApplyControl, Checkpoint, ConsentPolicy, FieldPrecedence, Mode, SafetyLimit, Source, Target,
};
use audience_operator::engine::{AudienceJob, NamedSource, RunMode, RunOutcome, run_audience_sync};
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor, seed};

/// The shop size of the acceptance test; the first full run takes a few seconds in debug.
const CUSTOMERS: usize = 20_000;
const LIST: &str = "incremental";
const KEY: &str = "0123456789abcdef0123456789abcdef-us6";
const OWNER: &str = "audience-operator:test/incremental";

struct Rig {
    sandbox: RunningSandbox,
    source: ShopifySource,
    target: MailchimpTarget,
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        timeout: Duration::from_secs(30),
    }
}

async fn rig(customers: usize) -> Rig {
    let sandbox = Sandbox::new(SandboxOptions::default())
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let shop = &sandbox.sandbox.shopify;
    shop.seed_demo(&seed::people(customers, 42));
    shop.set_access_token("shpat_incremental");
    // A bucket that never makes the test wait: the limits are tested elsewhere.
    shop.set_bucket(1e9, 1e9);
    sandbox.sandbox.mailchimp.create_list(LIST, "Incremental");
    let mut config =
        ShopifyConfig::with_base_url(sandbox.vendor_url(Vendor::Shopify), "shpat_incremental");
    config.retry = retry();
    let source = ShopifySource::new(config).unwrap();
    let mut config = MailchimpConfig::new(KEY, LIST)
        .with_base_url(mailchimp::api_base(&sandbox.vendor_url(Vendor::Mailchimp)));
    config.retry = retry();
    let target = MailchimpTarget::new(config).unwrap();
    Rig {
        sandbox,
        source,
        target,
    }
}

impl Rig {
    async fn run(&self, since: Option<Checkpoint>, mode: Mode) -> RunOutcome {
        self.run_with(since, mode, ApplyControl::default()).await
    }

    async fn run_with(
        &self,
        since: Option<Checkpoint>,
        mode: Mode,
        control: ApplyControl,
    ) -> RunOutcome {
        let sources: Vec<NamedSource<'_>> = vec![NamedSource {
            name: "shopify",
            source: &self.source as &dyn Source,
        }];
        run_audience_sync(AudienceJob {
            since,
            sources,
            precedence: FieldPrecedence::default(),
            drift_since: None,
            target: &self.target as &dyn Target,
            mode,
            mapping: mailchimp::default_mapping(),
            consent: ConsentPolicy::default(),
            safety: Some(SafetyLimit {
                max_removal_share: 0.1,
                always_allowed: 100,
            }),
            approved_plan: None,
            contact_limit: None,
            dry_run: false,
            history_import: false,
            remembered: Vec::new(),
            owner_tag: Some(OWNER.into()),
            adopt_all: false,
            two_way: false,
            customer_events: None,
            after_sync: Default::default(),
            control,
            progress: None,
        })
        .await
        .expect("the run succeeds")
    }

    fn calls(&self, vendor: Vendor) -> u64 {
        self.sandbox
            .sandbox
            .stats
            .snapshot()
            .into_iter()
            .filter(|(k, _)| k.vendor == vendor)
            .map(|(_, n)| n)
            .sum()
    }

    fn mailchimp_writes(&self) -> u64 {
        self.sandbox.sandbox.stats.writes(Vendor::Mailchimp)
    }

    fn clear(&self) {
        self.sandbox.sandbox.stats.clear();
    }

    fn shop(&self) -> &audience_sandbox::shopify::Shopify {
        &self.sandbox.sandbox.shopify
    }

    fn member(&self, email: &str) -> audience_sandbox::mailchimp::MemberSnapshot {
        self.sandbox
            .sandbox
            .mailchimp
            .member(LIST, email)
            .unwrap_or_else(|| panic!("{email} is a member"))
    }
}

fn written(outcome: &RunOutcome) -> (u64, u64, u64) {
    let a = outcome.applied.as_ref().expect("applied");
    (a.created, a.updated, a.archived)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_full_run_a_no_change_run_reads_little_and_an_edit_touches_one_member() {
    let rig = rig(CUSTOMERS).await;
    let started = Instant::now();
    let first = rig.run(None, Mode::Mirror).await;
    eprintln!("first full run of {CUSTOMERS}: {:?}", started.elapsed());
    assert_eq!(first.mode, RunMode::Full);
    let created = written(&first).0;
    assert!(created as usize > CUSTOMERS * 9 / 10, "created {created}");
    let checkpoint = first
        .checkpoint
        .clone()
        .expect("a full run gives a checkpoint");

    // Nothing changed: a few reads, no write, nothing planned.
    rig.clear();
    let quiet = rig.run(Some(checkpoint.clone()), Mode::Mirror).await;
    assert_eq!(quiet.mode, RunMode::Incremental);
    assert_eq!(written(&quiet), (0, 0, 0));
    assert_eq!(quiet.counts.source, 0);
    assert_eq!(quiet.counts.target, created, "the audience's real size");
    let (shopify, mailchimp) = (rig.calls(Vendor::Shopify), rig.calls(Vendor::Mailchimp));
    assert!(shopify <= 3, "{shopify} Shopify calls");
    assert!(mailchimp <= 3, "{mailchimp} Mailchimp calls");
    assert_eq!(rig.mailchimp_writes(), 0);
    let checkpoint = quiet.checkpoint.clone().expect("the position is kept");

    // One customer edited: the next incremental run reads it and updates that one member.
    let id = rig.shop().customer_ids()[17];
    let email = rig.shop().customer(id).unwrap().email.unwrap();
    assert!(
        rig.shop()
            .edit_customer(id, |c| c.first_name = Some("Edited".into()))
    );
    rig.clear();
    let edit = rig.run(Some(checkpoint), Mode::Mirror).await;
    assert_eq!(edit.mode, RunMode::Incremental);
    assert_eq!(written(&edit), (0, 1, 0));
    assert_eq!(edit.counts.source, 1);
    assert_eq!(rig.member(&email).merge_fields["FNAME"], "Edited");
    let mailchimp = rig.calls(Vendor::Mailchimp);
    let writes = rig.mailchimp_writes();
    // The audience's facts (2), the one member's look-up (1), the merge fields checked before
    // writing (1).
    assert!(
        mailchimp - writes <= 4,
        "{} Mailchimp reads",
        mailchimp - writes
    );
    assert_eq!(
        rig.sandbox.sandbox.stats.count(
            Vendor::Mailchimp,
            Some("GET"),
            "/members/{subscriber_hash}"
        ),
        1,
        "one look-up by email"
    );
    assert_eq!(writes, 1, "one batch call carrying the one member");
    assert!(rig.calls(Vendor::Shopify) <= 3);
    let checkpoint = edit.checkpoint.clone().unwrap();

    // A deletion at the source: invisible to incremental runs, found by the full reconcile.
    let gone = rig.shop().customer_ids()[3];
    let gone_email = rig.shop().customer(gone).unwrap().email.unwrap();
    assert!(rig.shop().delete_customer(gone));
    let incremental = rig.run(Some(checkpoint), Mode::Mirror).await;
    assert_eq!(written(&incremental), (0, 0, 0));
    assert_ne!(rig.member(&gone_email).status.as_str(), "archived");
    rig.clear();
    let full = rig.run(None, Mode::Mirror).await;
    assert_eq!(full.mode, RunMode::Full);
    assert_eq!(written(&full), (0, 0, 1));
    assert_eq!(rig.member(&gone_email).status.as_str(), "archived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_never_moves_into_the_future() {
    let rig = rig(50).await;
    // One record stamped an hour ahead (a vendor clock running fast): the full read ends there.
    rig.shop()
        .add_customer(audience_sandbox::shopify::Customer {
            email: Some("ahead@example.com".into()),
            first_name: Some("Ahead".into()),
            marketing_state: "SUBSCRIBED".into(),
            updated_at: chrono::Utc::now() + chrono::Duration::hours(1),
            ..Default::default()
        });
    let first = rig.run(None, Mode::Upsert).await;
    let checkpoint = first.checkpoint.unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(checkpoint.split('|').next().unwrap()).unwrap();
    assert!(
        at <= chrono::Utc::now(),
        "checkpoint {checkpoint} is in the future"
    );

    // An edit made now is after the capped cursor, so the next run still sees it.
    let id = rig.shop().customer_ids()[5];
    let email = rig.shop().customer(id).unwrap().email.unwrap();
    rig.shop()
        .edit_customer(id, |c| c.last_name = Some("Now".into()));
    let next = rig.run(Some(checkpoint), Mode::Upsert).await;
    assert_eq!(next.mode, RunMode::Incremental);
    assert_eq!(rig.member(&email).merge_fields["LNAME"], "Now");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_before_the_end_saves_no_checkpoint() {
    let rig = rig(50).await;
    let control = ApplyControl::default();
    control
        .stop
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let stopped = rig.run_with(None, Mode::Upsert, control).await;
    assert!(stopped.applied.as_ref().unwrap().stopped_early);
    assert_eq!(stopped.checkpoint, None, "its changes are not all applied");
    let finished = rig.run(None, Mode::Upsert).await;
    assert!(finished.checkpoint.is_some());
}
