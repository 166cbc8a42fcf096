//! How `MailchimpTarget` behaves when Mailchimp is slow, limits, fails or answers garbage: it
//! retries what is transient within the key's 10 connections, and fails clearly (never with the
//! key in the message) on what is not.

mod mailchimp_support;

use std::time::Duration;

use audience_connectors::mailchimp::{MailchimpConfig, MailchimpTarget};
use audience_core::{ApplyControl, ConnectorError, ErrorKind, FieldMapping, SegmentPlan, Target};
use audience_sandbox::mailchimp::MemberStatus as SimStatus;
use audience_sandbox::{Fault, FaultKind, Vendor};
use mailchimp_support::*;

fn assert_no_secret(err: &ConnectorError, key: &str) {
    let secret = key.split('-').next().unwrap();
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(key), "key leaked: {text}");
        assert!(!text.contains(secret), "key leaked: {text}");
    }
}

#[tokio::test]
async fn a_429_storm_is_retried_within_ten_connections_shared_by_two_syncs() {
    let env = Env::start().await;
    env.sandbox
        .sandbox
        .faults
        .set_latency(Vendor::Mailchimp, Duration::from_millis(20));
    env.sandbox.sandbox.faults.push(
        Vendor::Mailchimp,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 0,
            },
            count: 25,
            path_contains: Some("/lists/".into()),
        },
    );
    // Two syncs of one account (same key) into two audiences, at the same time.
    env.sim().create_list("second-audience", "Second");
    let first = env.target();
    let mut second_config = env.config();
    second_config.list_id = "second-audience".into();
    let second = MailchimpTarget::new(second_config).unwrap();
    let plan_a = plan((0..6000).map(create).collect(), vec![], vec![]);
    let plan_b = plan((6000..12000).map(create).collect(), vec![], vec![]);
    let control = ApplyControl::default();
    let (a, b) = tokio::join!(
        first.apply(&plan_a, &control),
        second.apply(&plan_b, &control)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.created + b.created, 12_000);
    assert_eq!(env.sim().member_count(LIST), 6000);
    assert_eq!(env.sim().member_count("second-audience"), 6000);
    // 12 batches each; the 25 injected 429s were retried.
    assert_eq!(a.write_calls + b.write_calls, 24);
    assert_eq!(env.calls_with_status(429), 25);
    assert_eq!(env.calls("POST", BATCH_ROUTE), 24 + 25);
    let connections = env.sim().connections(&env.key);
    assert!(
        connections.max_seen <= 10,
        "at most 10 at once per key, saw {}",
        connections.max_seen
    );
    assert!(
        connections.max_seen >= 5,
        "batches run concurrently: {connections:?}"
    );
    assert_eq!(connections.refused, 0, "never over Mailchimp's own limit");
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried() {
    let env = Env::start().await;
    let mut config = env.config();
    config.retry.timeout = Duration::from_millis(300);
    let target = MailchimpTarget::new(config).unwrap();
    let faults = &env.sandbox.sandbox.faults;
    faults.push(
        Vendor::Mailchimp,
        Fault {
            kind: FaultKind::ServerError,
            count: 2,
            path_contains: None,
        },
    );
    faults.push(
        Vendor::Mailchimp,
        Fault {
            kind: FaultKind::Timeout,
            count: 1,
            path_contains: None,
        },
    );
    let report = target
        .apply(
            &plan((0..10).map(create).collect(), vec![], vec![]),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.created, 10);
    assert_eq!(report.write_calls, 1);
    assert_eq!(env.calls_with_status(500), 2);
}

#[tokio::test]
async fn rate_limits_past_the_retries_are_reported_as_rate_limited() {
    let env = Env::start().await;
    let mut config = env.config();
    config.retry.max_retries = 2;
    let target = MailchimpTarget::new(config).unwrap();
    env.sandbox.sandbox.faults.push(
        Vendor::Mailchimp,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 0,
            },
            count: 50,
            path_contains: None,
        },
    );
    let err = target.info().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert!(err.kind.is_transient());
}

#[tokio::test]
async fn a_refused_key_is_an_auth_error_that_never_shows_the_key() {
    let env = Env::start().await;
    env.sim()
        .set_valid_keys(["00000000000000000000000000000000-us6"]);
    let target = env.target();
    env.sim()
        .insert_member(LIST, email(1).as_str(), SimStatus::Subscribed);

    let mut errors = vec![
        target.info().await.unwrap_err(),
        read_all(&target).await.unwrap_err(),
        target
            .apply(
                &plan(vec![create(1)], vec![], vec![email(2)]),
                &ApplyControl::default(),
            )
            .await
            .unwrap_err(),
        target
            .ensure_fields(&FieldMapping::default())
            .await
            .unwrap_err(),
        target.segment_members("x").await.unwrap_err(),
        target
            .apply_segment(
                "x",
                &SegmentPlan {
                    add: vec![email(1)],
                    ..SegmentPlan::default()
                },
                &ApplyControl::default(),
            )
            .await
            .unwrap_err(),
    ];
    // Archives and tag calls are per member: a 401 there still fails the whole apply.
    errors.push(
        target
            .apply(
                &plan(vec![], vec![], vec![email(1)]),
                &ApplyControl::default(),
            )
            .await
            .unwrap_err(),
    );
    for err in &errors {
        assert_eq!(err.kind, ErrorKind::Auth, "{err}");
        assert_eq!(err.vendor, "mailchimp");
        assert!(err.message.contains("authentication failed"), "{err}");
        assert_no_secret(err, &env.key);
    }
    // Auth errors are not retried: one 401 per failed operation (info asks for the list and its
    // size at once, so it may see two).
    let refused = env.calls_with_status(401);
    let operations = errors.len() as u64;
    assert!(
        (operations..=operations + 1).contains(&refused),
        "{refused} 401s for {operations} operations"
    );
}

#[tokio::test]
async fn a_malformed_key_is_refused_before_any_call() {
    let secret = "f00dfeedf00dfeedf00dfeedf00dfeed";
    for key in [
        secret.to_string(),
        format!("{secret}-"),
        format!("{secret}-us 6"),
    ] {
        let err = MailchimpTarget::new(MailchimpConfig::new(&key, LIST)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidCredentials);
        assert_no_secret(&err, &key);
        assert!(!err.to_string().contains(secret));
    }
}

#[tokio::test]
async fn a_malformed_body_is_an_invalid_response_naming_the_endpoint() {
    let env = Env::start().await;
    let target = env.target();
    let malformed = |path: &str| Fault {
        kind: FaultKind::Malformed,
        count: 1,
        path_contains: Some(path.into()),
    };
    env.sandbox
        .sandbox
        .faults
        .push(Vendor::Mailchimp, malformed("/members"));
    let err = read_all(&target).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidResponse);
    assert_eq!(err.vendor, "mailchimp");
    assert_eq!(err.endpoint, "GET /lists/{list_id}/members");
    assert!(
        err.to_string()
            .starts_with("mailchimp GET /lists/{list_id}/members: unexpected response"),
        "{err}"
    );
    assert_no_secret(&err, &env.key);

    env.sandbox
        .sandbox
        .faults
        .push(Vendor::Mailchimp, malformed(LIST));
    let err = target
        .apply(
            &plan(vec![create(1)], vec![], vec![]),
            &ApplyControl::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidResponse);
    assert_eq!(err.endpoint, "POST /lists/{list_id}");

    env.sandbox
        .sandbox
        .faults
        .push(Vendor::Mailchimp, malformed("/segments"));
    let err = target.segment_members("anything").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidResponse);
    assert_eq!(err.endpoint, "GET /lists/{list_id}/segments");
}
