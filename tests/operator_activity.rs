//! The activity log on a real API server: a ConfigMap owned by the sync, one entry per changed
//! record, no write on a run that changed nothing, hashed addresses on request, and the
//! `activity --email` answer.

mod operator_support;

use audience_core::activity::{Action, hash_email, parse_lines};
use audience_operator::activity::{DATA_KEY, FOR_LABEL, KIND_LABEL};
use audience_operator::cli::OutputFormat;
use audience_operator::cli::activity::{ActivityArgs, SyncKindArg, answer};
use audience_operator::crd::AudienceSync;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, ResourceExt};
use operator_support::*;
use serde_json::json;

fn data(cm: &ConfigMap) -> String {
    cm.data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .cloned()
        .unwrap_or_default()
}

fn args(email: &str) -> ActivityArgs {
    ActivityArgs {
        sync: "shop".into(),
        namespace: None,
        kind: SyncKindArg::Audience,
        email: Some(email.into()),
        limit: 10,
        output: OutputFormat::Json,
    }
}

#[tokio::test]
async fn the_activity_log_records_each_change_once_and_answers_for_an_address() {
    let h = harness("op-activity", true).await;
    h.default_secrets().await;
    h.add_shopify("ann@gmail.com", "Ann", "Lee");
    let bob = h.add_shopify("bob@gmail.com", "Bob", "Stone");
    h.add_shopify("cat@gmail.com", "Cat", "Moss");
    let api = h.api::<AudienceSync>();
    let cms: Api<ConfigMap> = h.api();
    h.create::<AudienceSync>(audience_sync("shop", json!({})))
        .await;
    let synced = wait_reason(&api, "shop", "Synced").await;

    // The first run logs the three created members, in a ConfigMap the sync owns.
    let cm = cms
        .get("shop-activity")
        .await
        .expect("the activity ConfigMap");
    let owner = &cm.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("AudienceSync", "shop", Some(true))
    );
    assert_eq!(Some(&owner.uid), synced.metadata.uid.as_ref());
    assert_eq!(cm.labels().get(FOR_LABEL).map(String::as_str), Some("shop"));
    assert_eq!(
        cm.labels().get(KIND_LABEL).map(String::as_str),
        Some("AudienceSync")
    );
    let first = parse_lines(&data(&cm));
    let mut created: Vec<&str> = first
        .iter()
        .filter(|e| e.action == Action::Created)
        .map(|e| e.email.as_str())
        .collect();
    created.sort();
    assert_eq!(
        created,
        ["ann@gmail.com", "bob@gmail.com", "cat@gmail.com"],
        "{first:#?}"
    );
    assert_eq!(first.len(), 3, "{first:#?}");
    assert!(
        first
            .iter()
            .all(|e| e.side == "mailchimp" && !e.run.is_empty())
    );

    // An edit of one customer logs exactly that update.
    h.shopify()
        .edit_customer(bob, |c| c.first_name = Some("Robert".into()));
    h.sync_now::<AudienceSync>("shop", "1").await;
    let cm = cms.get("shop-activity").await.unwrap();
    let second = parse_lines(&data(&cm));
    assert_eq!(second.len(), 4, "{second:#?} {cm:#?}");
    assert_eq!(&second[..3], &first[..], "older entries kept, in order");
    let update = &second[3];
    assert_eq!(
        (update.email.as_str(), update.action, update.fields.clone()),
        ("bob@gmail.com", Action::Updated, vec!["FNAME".to_string()])
    );

    // A run that changes nothing writes nothing.
    let version = cm.resource_version();
    h.sync_now::<AudienceSync>("shop", "2").await;
    let cm = cms.get("shop-activity").await.unwrap();
    assert_eq!(
        cm.resource_version(),
        version,
        "no-change run rewrote the log"
    );

    // `activity --email` answers for an address, typed in any case.
    let out = answer(&h.client, &h.ns, &args("BOB@gmail.com"))
        .await
        .unwrap();
    let lines = parse_lines(&out);
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0].action, Action::Updated, "newest first: {out}");
    assert_eq!(lines[1].action, Action::Created);
    let none = answer(&h.client, &h.ns, &args("zoe@gmail.com"))
        .await
        .unwrap();
    assert!(none.is_empty(), "{none}");

    // Hashed: the log holds no plain address, and the lookup still finds the customer.
    // The edit comes first: the spec change starts the run that must see it.
    h.shopify()
        .edit_customer(bob, |c| c.last_name = Some("Stones".into()));
    h.patch_spec::<AudienceSync>("shop", json!({"activityLog": {"hashEmails": true}}))
        .await;
    wait_for(&api, "shop", "the new spec synced", |o: &AudienceSync| {
        o.status.as_ref().is_some_and(|s| {
            s.observed_generation == o.metadata.generation
                && s.last_run.as_ref().is_some_and(|r| r.counts.updated == 1)
        }) && reason(o).as_deref() == Some("Synced")
    })
    .await;
    let cm = cms.get("shop-activity").await.unwrap();
    let text = data(&cm);
    assert!(!text.is_empty());
    assert!(
        !text.contains('@'),
        "a plain address in a hashed log: {text}"
    );
    assert!(text.contains(&hash_email("bob@gmail.com")));
    let out = answer(&h.client, &h.ns, &args("Bob@Gmail.com"))
        .await
        .unwrap();
    let found = parse_lines(&out);
    assert_eq!(found.len(), 1, "{out}");
    assert_eq!(found[0].fields, vec!["LNAME".to_string()]);

    // Turned off: the ConfigMap goes.
    h.patch_spec::<AudienceSync>("shop", json!({"activityLog": {"enabled": false}}))
        .await;
    h.sync_now::<AudienceSync>("shop", "3").await;
    assert!(cms.get_opt("shop-activity").await.unwrap().is_none());
}
