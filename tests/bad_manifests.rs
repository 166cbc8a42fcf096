//! A table of invalid AudienceSync and SegmentSync specs, each refused twice with the same
//! meaning: by the real API server (422, `fieldValidation=Strict`, a message naming the field) and
//! by `audience-operator sync -f FILE` (non-zero exit, a message naming the field, no vendor call),
//! with valid Secrets in the file so nothing but the spec is wrong. Two controls first show that
//! the unchanged base specs pass both, so each refusal is the mutation's doing.

use std::path::Path;
use std::process::Output;

use audience_operator::crd::{AudienceSync, OrderSync, SegmentSync};
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor};
use audience_testenv::TestEnv;
use kube::Client;
use kube::api::{ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_audience-operator");

#[derive(Clone, Copy, Debug, PartialEq)]
enum Base {
    /// AudienceSync: Shopify into a Mailchimp audience.
    Mailchimp,
    /// AudienceSync: Shopify into a Klaviyo list.
    Klaviyo,
    /// SegmentSync: a RetailCRM segment into a Mailchimp tag.
    Segment,
    /// SegmentSync: every Shopify customer into a Klaviyo segment list.
    KlaviyoSegment,
    /// OrderSync: Shopify orders into Klaviyo events.
    Orders,
}

impl Base {
    fn kind(self) -> &'static str {
        match self {
            Base::Mailchimp | Base::Klaviyo => "AudienceSync",
            Base::Segment | Base::KlaviyoSegment => "SegmentSync",
            Base::Orders => "OrderSync",
        }
    }

    fn spec(self) -> Value {
        let shopify = json!({"shopify": {"shopDomain": "demo.myshopify.com", "credentialsSecretRef": {"name": "shopify"}}});
        let mailchimp = json!({"mailchimp": {"audienceId": DEMO_LIST, "credentialsSecretRef": {"name": "mailchimp"}}});
        let klaviyo = json!({"klaviyo": {"listName": "Customers", "credentialsSecretRef": {"name": "klaviyo"}}});
        match self {
            Base::Mailchimp => json!({
                "source": shopify, "target": mailchimp, "schedule": {"interval": "15m"}
            }),
            Base::Klaviyo => json!({
                "source": shopify, "target": klaviyo, "schedule": {"interval": "15m"}
            }),
            Base::Segment => json!({
                "source": {"retailcrm": {"account": "demo", "credentialsSecretRef": {"name": "retailcrm"}}},
                "sourceSegment": {"retailcrmSegment": "vip"},
                "target": {"mailchimp": {"audienceId": DEMO_LIST, "segment": "VIP", "credentialsSecretRef": {"name": "mailchimp"}}},
                "schedule": {"cron": "0 * * * *", "timeZone": "Europe/Amsterdam"}
            }),
            Base::KlaviyoSegment => json!({
                "source": shopify,
                "sourceSegment": {"allCustomers": true},
                "target": {"klaviyo": {"listName": "Customers", "segmentList": "VIP", "credentialsSecretRef": {"name": "klaviyo"}}}
            }),
            Base::Orders => json!({
                "source": shopify,
                "target": {"klaviyo": {"credentialsSecretRef": {"name": "klaviyo"}}},
                "events": ["placedOrder", "orderedProduct"]
            }),
        }
    }
}

const DEMO_LIST: &str = audience_sandbox::mailchimp::DEMO_LIST_ID;

struct Case {
    name: &'static str,
    base: Base,
    mutate: fn(&mut Value),
    /// Each must appear in the API server's message.
    api: &'static [&'static str],
    /// Each must appear in what `sync -f` prints.
    cli: &'static [&'static str],
}

fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().unwrap().remove(key);
}

/// Two named sources (Lightspeed X-Series, Shopify) for `spec.sources`.
fn two_sources(first: &str, second: &str) -> Value {
    json!([
        {"name": first, "lightspeedXSeries": {"domainPrefix": "demo-store", "credentialsSecretRef": {"name": "lightspeed-x-credentials"}}},
        {"name": second, "shopify": {"shopDomain": "demo-shop.myshopify.com", "credentialsSecretRef": {"name": "shopify-credentials"}}},
    ])
}

fn long(n: usize) -> String {
    "a".repeat(n)
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "no-source",
            base: Base::Mailchimp,
            mutate: |s| remove(s, "source"),
            api: &["give exactly one of source or sources"],
            cli: &["give exactly one of source or sources"],
        },
        Case {
            name: "source-and-sources",
            base: Base::Mailchimp,
            mutate: |s| s["sources"] = two_sources("store", "web"),
            api: &["give exactly one of source or sources"],
            cli: &["give exactly one of source or sources"],
        },
        Case {
            name: "one-of-sources",
            base: Base::Mailchimp,
            mutate: |s| {
                let one = two_sources("store", "web")[0].clone();
                remove(s, "source");
                s["sources"] = json!([one]);
            },
            api: &["spec.sources", "should have at least 2 items"],
            cli: &["spec.sources", "should have at least 2 items"],
        },
        Case {
            name: "sources-with-one-name",
            base: Base::Mailchimp,
            mutate: |s| {
                remove(s, "source");
                s["sources"] = two_sources("shop", "shop");
            },
            api: &["spec.sources", "source names must be unique"],
            cli: &["spec.sources", "source names must be unique"],
        },
        Case {
            name: "source-name-not-a-label",
            base: Base::Mailchimp,
            mutate: |s| {
                remove(s, "source");
                s["sources"] = two_sources("Web Shop", "store");
            },
            api: &["spec.sources[0].name", "should match"],
            cli: &["spec.sources[0].name", "should match"],
        },
        Case {
            name: "precedence-names-an-unknown-source",
            base: Base::Mailchimp,
            mutate: |s| {
                remove(s, "source");
                s["sources"] = two_sources("store", "web");
                s["fieldPrecedence"] = json!({"FNAME": ["pos"]});
            },
            api: &["fieldPrecedence names a source that is not in sources"],
            cli: &["fieldPrecedence names a source that is not in sources"],
        },
        Case {
            name: "precedence-without-sources",
            base: Base::Mailchimp,
            mutate: |s| s["fieldPrecedence"] = json!({"FNAME": ["shopify"]}),
            api: &["fieldPrecedence needs sources"],
            cli: &["fieldPrecedence needs sources"],
        },
        Case {
            name: "no-target",
            base: Base::Mailchimp,
            mutate: |s| remove(s, "target"),
            api: &["spec.target: Required value"],
            cli: &["spec.target: Required value"],
        },
        Case {
            name: "empty-source",
            base: Base::Mailchimp,
            mutate: |s| s["source"] = json!({}),
            api: &["spec.source", "give exactly one source"],
            cli: &["spec.source", "give exactly one source"],
        },
        Case {
            name: "two-sources",
            base: Base::Mailchimp,
            mutate: |s| {
                s["source"]["retailcrm"] =
                    json!({"account": "demo", "credentialsSecretRef": {"name": "retailcrm"}})
            },
            api: &["spec.source", "give exactly one source"],
            cli: &["spec.source", "give exactly one source"],
        },
        Case {
            name: "two-targets",
            base: Base::Mailchimp,
            mutate: |s| {
                s["target"]["klaviyo"] =
                    json!({"listName": "Customers", "credentialsSecretRef": {"name": "klaviyo"}})
            },
            api: &["spec.target", "give exactly one target"],
            cli: &["spec.target", "give exactly one target"],
        },
        Case {
            name: "empty-target",
            base: Base::Mailchimp,
            mutate: |s| s["target"] = json!({}),
            api: &["spec.target", "give exactly one target"],
            cli: &["spec.target", "give exactly one target"],
        },
        Case {
            name: "bad-duration",
            base: Base::Mailchimp,
            mutate: |s| s["schedule"] = json!({"interval": "15 minutes"}),
            api: &["spec.schedule.interval", "should match"],
            cli: &["spec.schedule.interval", "should match"],
        },
        Case {
            name: "duration-without-unit",
            base: Base::Mailchimp,
            mutate: |s| s["schedule"] = json!({"interval": "90"}),
            api: &["spec.schedule.interval", "should match"],
            cli: &["spec.schedule.interval", "should match"],
        },
        Case {
            name: "interval-below-1m",
            base: Base::Mailchimp,
            mutate: |s| s["schedule"] = json!({"interval": "30s"}),
            api: &["spec.schedule.interval", "interval must be at least 1m"],
            cli: &["spec.schedule.interval", "interval must be at least 1m"],
        },
        Case {
            name: "fullresync-below-1m",
            base: Base::Mailchimp,
            mutate: |s| s["fullResync"] = json!("30s"),
            api: &["spec.fullResync", "fullResync must be at least 1m"],
            cli: &["spec.fullResync", "fullResync must be at least 1m"],
        },
        Case {
            name: "fullresync-in-days",
            base: Base::Mailchimp,
            mutate: |s| s["fullResync"] = json!("1d"),
            api: &["spec.fullResync", "should match"],
            cli: &["spec.fullResync", "should match"],
        },
        Case {
            name: "interval-and-cron",
            base: Base::Mailchimp,
            mutate: |s| s["schedule"] = json!({"interval": "15m", "cron": "0 * * * *"}),
            api: &["spec.schedule", "give exactly one of interval or cron"],
            cli: &["spec.schedule", "give exactly one of interval or cron"],
        },
        Case {
            name: "empty-schedule",
            base: Base::Mailchimp,
            mutate: |s| s["schedule"] = json!({}),
            api: &["spec.schedule", "give exactly one of interval or cron"],
            cli: &["spec.schedule", "give exactly one of interval or cron"],
        },
        Case {
            name: "bad-cron",
            base: Base::Mailchimp,
            mutate: |s| s["schedule"] = json!({"cron": "every hour"}),
            api: &["spec.schedule.cron", "should match"],
            cli: &["spec.schedule.cron", "should match"],
        },
        Case {
            name: "bad-time-zone",
            base: Base::Segment,
            mutate: |s| s["schedule"]["timeZone"] = json!("not a zone!"),
            api: &["spec.schedule.timeZone", "should match"],
            cli: &["spec.schedule.timeZone", "should match"],
        },
        Case {
            name: "time-zone-too-long",
            base: Base::Segment,
            mutate: |s| s["schedule"]["timeZone"] = json!(format!("Europe/{}", long(80))),
            api: &["spec.schedule.timeZone", "Too long"],
            cli: &["spec.schedule.timeZone", "Too long"],
        },
        Case {
            name: "time-zone-with-interval",
            base: Base::Mailchimp,
            mutate: |s| s["schedule"] = json!({"interval": "1h", "timeZone": "UTC"}),
            api: &["spec.schedule", "timeZone applies to cron schedules only"],
            cli: &["spec.schedule", "timeZone applies to cron schedules only"],
        },
        Case {
            name: "bad-audience-id",
            base: Base::Mailchimp,
            mutate: |s| s["target"]["mailchimp"]["audienceId"] = json!("abc-123"),
            api: &["spec.target.mailchimp.audienceId", "should match"],
            cli: &["spec.target.mailchimp.audienceId", "should match"],
        },
        Case {
            name: "empty-audience-id",
            base: Base::Mailchimp,
            mutate: |s| s["target"]["mailchimp"]["audienceId"] = json!(""),
            api: &["spec.target.mailchimp.audienceId", "at least 1 chars long"],
            cli: &["spec.target.mailchimp.audienceId", "at least 1 chars long"],
        },
        Case {
            name: "audience-id-too-long",
            base: Base::Mailchimp,
            mutate: |s| s["target"]["mailchimp"]["audienceId"] = json!(long(65)),
            api: &["spec.target.mailchimp.audienceId", "Too long"],
            cli: &["spec.target.mailchimp.audienceId", "Too long"],
        },
        Case {
            name: "bad-list-id",
            base: Base::Klaviyo,
            mutate: |s| {
                s["target"]["klaviyo"] =
                    json!({"listId": "a/b", "credentialsSecretRef": {"name": "klaviyo"}})
            },
            api: &["spec.target.klaviyo.listId", "should match"],
            cli: &["spec.target.klaviyo.listId", "should match"],
        },
        Case {
            name: "list-id-and-name",
            base: Base::Klaviyo,
            mutate: |s| s["target"]["klaviyo"]["listId"] = json!("Y6nRLr"),
            api: &[
                "spec.target.klaviyo",
                "give exactly one of listId or listName",
            ],
            cli: &[
                "spec.target.klaviyo",
                "give exactly one of listId or listName",
            ],
        },
        Case {
            name: "no-list",
            base: Base::Klaviyo,
            mutate: |s| remove(&mut s["target"]["klaviyo"], "listName"),
            api: &[
                "spec.target.klaviyo",
                "give exactly one of listId or listName",
            ],
            cli: &[
                "spec.target.klaviyo",
                "give exactly one of listId or listName",
            ],
        },
        Case {
            name: "klaviyo-pending",
            base: Base::Klaviyo,
            mutate: |s| s["consentPolicy"] = json!({"resubscribe": "pending"}),
            api: &["spec", "pending has no Klaviyo meaning"],
            cli: &["spec", "pending has no Klaviyo meaning"],
        },
        Case {
            name: "two-way-with-several-sources",
            base: Base::Mailchimp,
            mutate: |s| {
                remove(s, "source");
                s["sources"] = two_sources("store", "web");
                s["consentPolicy"] = json!({"twoWay": true});
            },
            api: &["spec", "consentPolicy.twoWay needs a single Shopify source"],
            cli: &["spec", "consentPolicy.twoWay needs a single Shopify source"],
        },
        Case {
            name: "two-way-into-klaviyo",
            base: Base::Klaviyo,
            mutate: |s| s["consentPolicy"] = json!({"twoWay": true}),
            api: &["spec", "consentPolicy.twoWay needs a single Shopify source"],
            cli: &["spec", "consentPolicy.twoWay needs a single Shopify source"],
        },
        Case {
            name: "two-way-from-retailcrm",
            base: Base::Mailchimp,
            mutate: |s| {
                s["source"] = json!({"retailcrm": {"account": "demo", "credentialsSecretRef": {"name": "retailcrm"}}});
                s["consentPolicy"] = json!({"twoWay": true});
            },
            api: &["spec", "consentPolicy.twoWay needs a single Shopify source"],
            cli: &["spec", "consentPolicy.twoWay needs a single Shopify source"],
        },
        Case {
            name: "two-way-without-unsubscribes",
            base: Base::Mailchimp,
            mutate: |s| {
                s["consentPolicy"] = json!({"twoWay": true, "propagateUnsubscribes": false})
            },
            api: &["spec", "propagateUnsubscribes cannot be false"],
            cli: &["spec", "propagateUnsubscribes cannot be false"],
        },
        Case {
            name: "sms-into-klaviyo",
            base: Base::Klaviyo,
            mutate: |s| s["sms"] = json!({"since": "2026-11-01"}),
            api: &["spec", "sms and writeBack need a single Shopify source"],
            cli: &["spec", "sms and writeBack need a single Shopify source"],
        },
        Case {
            name: "sms-with-several-sources",
            base: Base::Mailchimp,
            mutate: |s| {
                remove(s, "source");
                s["sources"] = two_sources("store", "web");
                s["sms"] = json!({"since": "2026-11-01"});
            },
            api: &["spec", "sms and writeBack need a single Shopify source"],
            cli: &["spec", "sms and writeBack need a single Shopify source"],
        },
        Case {
            name: "write-back-from-retailcrm",
            base: Base::Mailchimp,
            mutate: |s| {
                s["source"] = json!({"retailcrm": {"account": "demo", "credentialsSecretRef": {"name": "retailcrm"}}});
                s["writeBack"] = json!({"createCustomers": true});
            },
            api: &["spec", "sms and writeBack need a single Shopify source"],
            cli: &["spec", "sms and writeBack need a single Shopify source"],
        },
        Case {
            name: "sms-since-not-a-date",
            base: Base::Mailchimp,
            mutate: |s| s["sms"] = json!({"since": "1 November 2026"}),
            api: &["spec.sms.since", "should match"],
            cli: &["spec.sms.since", "should match"],
        },
        Case {
            name: "sms-without-since",
            base: Base::Mailchimp,
            mutate: |s| s["sms"] = json!({}),
            api: &["spec.sms.since: Required value"],
            cli: &["spec.sms.since: Required value"],
        },
        Case {
            name: "klaviyo-tags",
            base: Base::Klaviyo,
            mutate: |s| s["fieldMapping"] = json!({"tags": true}),
            api: &["spec", "Klaviyo profiles have no tags"],
            cli: &["spec", "Klaviyo profiles have no tags"],
        },
        Case {
            name: "not-a-merge-tag",
            base: Base::Mailchimp,
            mutate: |s| s["fieldMapping"] = json!({"firstName": "first name"}),
            api: &["fieldMapping: Mailchimp merge tags"],
            cli: &["fieldMapping: Mailchimp merge tags"],
        },
        Case {
            name: "merge-tag-too-long",
            base: Base::Mailchimp,
            mutate: |s| s["fieldMapping"] = json!({"phone": "TELEPHONE_NUMBER"}),
            api: &["fieldMapping: Mailchimp merge tags"],
            cli: &["fieldMapping: Mailchimp merge tags"],
        },
        Case {
            name: "unknown-spec-field",
            base: Base::Mailchimp,
            mutate: |s| s["replicas"] = json!(3),
            api: &["unknown field \"spec.replicas\""],
            cli: &["unknown field \"spec.replicas\""],
        },
        Case {
            name: "unknown-nested-field",
            base: Base::Mailchimp,
            mutate: |s| s["source"]["shopify"]["accessToken"] = json!("shpat_inline"),
            api: &["unknown field \"spec.source.shopify.accessToken\""],
            cli: &["unknown field \"spec.source.shopify.accessToken\""],
        },
        Case {
            name: "bad-mode",
            base: Base::Mailchimp,
            mutate: |s| s["mode"] = json!("replace"),
            api: &["spec.mode", "supported values"],
            cli: &["spec.mode", "supported values"],
        },
        Case {
            name: "removal-percent-150",
            base: Base::Mailchimp,
            mutate: |s| s["safety"] = json!({"maxRemovalPercent": 150}),
            api: &["spec.safety.maxRemovalPercent", "less than or equal to 100"],
            cli: &["spec.safety.maxRemovalPercent", "less than or equal to 100"],
        },
        Case {
            name: "removal-percent-text",
            base: Base::Mailchimp,
            mutate: |s| s["safety"] = json!({"maxRemovalPercent": "ten"}),
            api: &["spec.safety.maxRemovalPercent", "must be of type integer"],
            cli: &["spec.safety.maxRemovalPercent", "must be of type integer"],
        },
        Case {
            name: "always-allowed-negative",
            base: Base::Mailchimp,
            mutate: |s| s["safety"] = json!({"alwaysAllowed": -1}),
            api: &["spec.safety.alwaysAllowed", "greater than or equal to 0"],
            cli: &["spec.safety.alwaysAllowed", "greater than or equal to 0"],
        },
        Case {
            name: "suspend-text",
            base: Base::Mailchimp,
            mutate: |s| s["suspend"] = json!("yes"),
            api: &["spec.suspend", "must be of type boolean"],
            cli: &["spec.suspend", "must be of type boolean"],
        },
        Case {
            name: "source-as-list",
            base: Base::Mailchimp,
            mutate: |s| s["source"] = json!(["shopify"]),
            api: &["spec.source", "must be of type object"],
            cli: &["spec.source", "must be of type object"],
        },
        Case {
            name: "contact-limit-zero",
            base: Base::Mailchimp,
            mutate: |s| s["target"]["mailchimp"]["contactLimit"] = json!(0),
            api: &[
                "spec.target.mailchimp.contactLimit",
                "greater than or equal to 1",
            ],
            cli: &[
                "spec.target.mailchimp.contactLimit",
                "greater than or equal to 1",
            ],
        },
        Case {
            name: "bad-resubscribe",
            base: Base::Mailchimp,
            mutate: |s| s["consentPolicy"] = json!({"resubscribe": "always"}),
            api: &["spec.consentPolicy.resubscribe", "supported values"],
            cli: &["spec.consentPolicy.resubscribe", "supported values"],
        },
        Case {
            name: "bad-shop-domain",
            base: Base::Mailchimp,
            mutate: |s| s["source"]["shopify"]["shopDomain"] = json!("shop.example.com"),
            api: &["spec.source.shopify.shopDomain", "should match"],
            cli: &["spec.source.shopify.shopDomain", "should match"],
        },
        Case {
            name: "shop-domain-too-long",
            base: Base::Mailchimp,
            mutate: |s| {
                s["source"]["shopify"]["shopDomain"] = json!(format!("{}.myshopify.com", long(300)))
            },
            api: &["spec.source.shopify.shopDomain", "Too long"],
            cli: &["spec.source.shopify.shopDomain", "Too long"],
        },
        Case {
            name: "bad-api-version",
            base: Base::Mailchimp,
            mutate: |s| s["source"]["shopify"]["apiVersion"] = json!("2025-1"),
            api: &["spec.source.shopify.apiVersion", "should match"],
            cli: &["spec.source.shopify.apiVersion", "should match"],
        },
        Case {
            name: "no-credentials-ref",
            base: Base::Mailchimp,
            mutate: |s| remove(&mut s["source"]["shopify"], "credentialsSecretRef"),
            api: &["spec.source.shopify.credentialsSecretRef: Required value"],
            cli: &["spec.source.shopify.credentialsSecretRef: Required value"],
        },
        Case {
            name: "empty-secret-name",
            base: Base::Mailchimp,
            mutate: |s| s["target"]["mailchimp"]["credentialsSecretRef"]["name"] = json!(""),
            api: &[
                "spec.target.mailchimp.credentialsSecretRef.name",
                "at least 1 chars long",
            ],
            cli: &[
                "spec.target.mailchimp.credentialsSecretRef.name",
                "at least 1 chars long",
            ],
        },
        Case {
            name: "endpoint-not-http",
            base: Base::Mailchimp,
            mutate: |s| s["target"]["mailchimp"]["endpoint"] = json!("ftp://mail.example.com"),
            api: &["spec.target.mailchimp.endpoint", "should match"],
            cli: &["spec.target.mailchimp.endpoint", "should match"],
        },
        Case {
            name: "retailcrm-account-and-url",
            base: Base::Segment,
            mutate: |s| s["source"]["retailcrm"]["url"] = json!("https://crm.example.com"),
            api: &[
                "spec.source.retailcrm",
                "give exactly one of account or url",
            ],
            cli: &[
                "spec.source.retailcrm",
                "give exactly one of account or url",
            ],
        },
        Case {
            name: "retailcrm-neither",
            base: Base::Segment,
            mutate: |s| remove(&mut s["source"]["retailcrm"], "account"),
            api: &[
                "spec.source.retailcrm",
                "give exactly one of account or url",
            ],
            cli: &[
                "spec.source.retailcrm",
                "give exactly one of account or url",
            ],
        },
        Case {
            name: "r-series-account-not-numeric",
            base: Base::Mailchimp,
            mutate: |s| s["source"] = json!({"lightspeedRSeries": {"accountId": "acme", "credentialsSecretRef": {"name": "lsr"}}}),
            api: &["spec.source.lightspeedRSeries.accountId", "should match"],
            cli: &["spec.source.lightspeedRSeries.accountId", "should match"],
        },
        Case {
            name: "x-series-bad-prefix",
            base: Base::Mailchimp,
            mutate: |s| s["source"] = json!({"lightspeedXSeries": {"domainPrefix": "-acme", "credentialsSecretRef": {"name": "lsx"}}}),
            api: &["spec.source.lightspeedXSeries.domainPrefix", "should match"],
            cli: &["spec.source.lightspeedXSeries.domainPrefix", "should match"],
        },
        Case {
            name: "too-many-custom-fields",
            base: Base::Mailchimp,
            mutate: |s| {
                let fields: serde_json::Map<String, Value> = (0..31)
                    .map(|i| (format!("attr{i}"), json!(format!("F{i}"))))
                    .collect();
                s["fieldMapping"] = json!({"customFields": fields});
            },
            api: &["spec.fieldMapping.customFields", "must have at most 30"],
            cli: &["spec.fieldMapping.customFields", "must have at most 30"],
        },
        Case {
            name: "field-name-too-long",
            base: Base::Klaviyo,
            mutate: |s| s["fieldMapping"] = json!({"firstName": long(300)}),
            api: &["spec.fieldMapping.firstName", "Too long"],
            cli: &["spec.fieldMapping.firstName", "Too long"],
        },
        Case {
            name: "segment-of-another-source",
            base: Base::Segment,
            mutate: |s| s["source"] = json!({"shopify": {"shopDomain": "demo.myshopify.com", "credentialsSecretRef": {"name": "shopify"}}}),
            api: &["retailcrmSegment needs a retailcrm source"],
            cli: &["retailcrmSegment needs a retailcrm source"],
        },
        Case {
            name: "shopify-segment-of-retailcrm",
            base: Base::Segment,
            mutate: |s| s["sourceSegment"] = json!({"shopifySegment": "123"}),
            api: &["shopifySegment needs a shopify source"],
            cli: &["shopifySegment needs a shopify source"],
        },
        Case {
            name: "two-source-segments",
            base: Base::KlaviyoSegment,
            mutate: |s| s["sourceSegment"]["shopifySegment"] = json!("123"),
            api: &["spec.sourceSegment", "give exactly one of retailcrmSegment"],
            cli: &["spec.sourceSegment", "give exactly one of retailcrmSegment"],
        },
        Case {
            name: "all-customers-false",
            base: Base::KlaviyoSegment,
            mutate: |s| s["sourceSegment"] = json!({"allCustomers": false}),
            api: &["spec.sourceSegment", "give exactly one of retailcrmSegment"],
            cli: &["spec.sourceSegment", "give exactly one of retailcrmSegment"],
        },
        Case {
            name: "no-source-segment",
            base: Base::Segment,
            mutate: |s| remove(s, "sourceSegment"),
            api: &["spec.sourceSegment: Required value"],
            cli: &["spec.sourceSegment: Required value"],
        },
        Case {
            name: "segment-mode-mirror",
            base: Base::Segment,
            mutate: |s| s["mode"] = json!("mirror"),
            api: &["spec.mode", "supported values"],
            cli: &["spec.mode", "supported values"],
        },
        Case {
            name: "no-segment-name",
            base: Base::Segment,
            mutate: |s| remove(&mut s["target"]["mailchimp"], "segment"),
            api: &["spec.target.mailchimp.segment: Required value"],
            cli: &["spec.target.mailchimp.segment: Required value"],
        },
        Case {
            name: "segment-name-too-long",
            base: Base::Segment,
            mutate: |s| s["target"]["mailchimp"]["segment"] = json!(long(101)),
            api: &["spec.target.mailchimp.segment", "Too long"],
            cli: &["spec.target.mailchimp.segment", "Too long"],
        },
        Case {
            name: "segment-list-is-the-list",
            base: Base::KlaviyoSegment,
            mutate: |s| s["target"]["klaviyo"]["segmentList"] = json!(" Customers "),
            api: &[
                "spec.target.klaviyo",
                "segmentList must differ from listName",
            ],
            cli: &[
                "spec.target.klaviyo",
                "segmentList must differ from listName",
            ],
        },
        Case {
            name: "klaviyo-segment-tags",
            base: Base::KlaviyoSegment,
            mutate: |s| s["fieldMapping"] = json!({"tags": true}),
            api: &["Klaviyo profiles have no tags"],
            cli: &["Klaviyo profiles have no tags"],
        },
        Case {
            name: "retailcrm-time-zone-not-a-zone-name",
            base: Base::Orders,
            mutate: |s| s["source"] = json!({"retailcrm": {"account": "demo", "timeZone": "Moscow time", "credentialsSecretRef": {"name": "retailcrm"}}}),
            api: &["spec.source.retailcrm.timeZone", "should match"],
            cli: &["spec.source.retailcrm.timeZone", "should match"],
        },
        Case {
            name: "orders-unknown-event",
            base: Base::Orders,
            mutate: |s| s["events"] = json!(["placedOrder", "viewedProduct"]),
            api: &["spec.events[1]", "Unsupported value", "viewedProduct"],
            cli: &["spec.events[1]", "Unsupported value", "viewedProduct"],
        },
    ]
}

fn object(base: Base, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1",
        "kind": base.kind(),
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// Valid Secrets for every reference the table makes, in the sandbox's terms.
fn secrets(sandbox: &RunningSandbox) -> String {
    let s = &sandbox.sandbox;
    let secret = |name: &str, key: &str, value: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  {key}: {value:?}\n---\n"
        )
    };
    [
        secret("shopify", "accessToken", &s.shopify.access_token()),
        secret(
            "mailchimp",
            "apiKey",
            audience_sandbox::mailchimp::EXAMPLE_API_KEY,
        ),
        secret("klaviyo", "apiKey", "pk_0123456789abcdef0123456789abcdef"),
        secret("retailcrm", "apiKey", &s.retailcrm.api_key()),
        secret("lsx", "token", audience_sandbox::lightspeed_x::DEMO_TOKEN),
        secret("lsr", "token", "lsr-token-0123456789"),
    ]
    .concat()
}

fn total_calls(sandbox: &RunningSandbox) -> u64 {
    Vendor::ALL
        .iter()
        .map(|v| sandbox.sandbox.stats.total(*v))
        .sum()
}

/// `audience-operator sync -f FILE --sandbox URL` on the Secrets and `object` (as JSON, which is
/// YAML), with a clean environment.
async fn sync_f(dir: &Path, sandbox: &RunningSandbox, name: &str, object: &Value) -> Output {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "{}{}\n",
            secrets(sandbox),
            serde_json::to_string_pretty(object).unwrap()
        ),
    )
    .unwrap();
    tokio::process::Command::new(BIN)
        .arg("sync")
        .arg("-f")
        .arg(&file)
        .args(["--sandbox", &sandbox.url(), "--dry-run"])
        .env_clear()
        .output()
        .await
        .expect("the binary runs")
}

fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Creates `obj` (POST, as `kubectl create` does) with `fieldValidation=Strict`, which kube's
/// `PostParams` cannot say. (A server-side apply is no substitute: it fails unknown fields and
/// wrong types with a 500 "failed to create typed patch object" before validation runs.)
async fn create_strict(
    client: &Client,
    ns: &str,
    base: Base,
    obj: &Value,
) -> kube::Result<DynamicObject> {
    let resource = match base.kind() {
        "AudienceSync" => ApiResource::erase::<AudienceSync>(&()),
        "OrderSync" => ApiResource::erase::<OrderSync>(&()),
        _ => ApiResource::erase::<SegmentSync>(&()),
    };
    let url = format!(
        "/apis/{}/namespaces/{ns}/{}",
        resource.api_version, resource.plural
    );
    let mut request = kube::core::Request::new(url)
        .create(&PostParams::default(), serde_json::to_vec(obj).unwrap())
        .expect("a create request");
    let uri = request.uri().to_string();
    let joint = if uri.contains('?') { '&' } else { '?' };
    let uri = format!("{uri}{joint}fieldValidation=Strict");
    *request.uri_mut() = uri.parse().expect("a URI");
    client.request::<DynamicObject>(request).await
}

async fn setup(prefix: &str) -> (Client, String, RunningSandbox, tempdir::Dir) {
    let env = TestEnv::shared().await;
    env.apply_crds_from_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await
        .expect("applying crds/");
    let ns = env.namespace(prefix).await;
    let sandbox = Sandbox::new(SandboxOptions {
        customers: 3,
        ..SandboxOptions::default()
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .expect("serving the sandbox");
    (env.client(), ns, sandbox, tempdir::Dir::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unchanged_bases_pass_both_checks() {
    let (client, ns, sandbox, dir) = setup("bad-control").await;
    for base in [
        Base::Mailchimp,
        Base::Klaviyo,
        Base::Segment,
        Base::KlaviyoSegment,
        Base::Orders,
    ] {
        let name = format!("control-{}", format!("{base:?}").to_lowercase());
        let obj = object(base, &name, base.spec());
        create_strict(&client, &ns, base, &obj)
            .await
            .unwrap_or_else(|e| panic!("the API server refused the base {base:?}: {e}"));
        // Past validation, the run reaches the sandbox: proof the file itself is fine.
        let before = total_calls(&sandbox);
        let out = sync_f(dir.path(), &sandbox, &name, &obj).await;
        let text = printed(&out);
        assert!(
            !text.contains("document") && !text.contains("InvalidSpec"),
            "sync -f refused the base {base:?}:\n{text}"
        );
        assert!(
            total_calls(&sandbox) > before,
            "sync -f of the base {base:?} made no vendor call:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_manifest_is_refused_by_the_api_server_and_by_sync_f() {
    let (client, ns, sandbox, dir) = setup("bad-manifests").await;
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let mut spec = case.base.spec();
        (case.mutate)(&mut spec);
        let obj = object(case.base, case.name, spec);

        match create_strict(&client, &ns, case.base, &obj).await {
            Ok(_) => failures.push(format!("{}: the API server accepted it", case.name)),
            Err(kube::Error::Api(s)) => {
                // Strict decoding refuses unknown fields as a bad request, before validation.
                let code = if case.api.iter().any(|n| n.contains("unknown field")) {
                    400
                } else {
                    422
                };
                if s.code != code {
                    failures.push(format!(
                        "{}: API server code {} ({})",
                        case.name, s.code, s.message
                    ));
                }
                for needle in case.api {
                    if !s.message.contains(needle) {
                        failures.push(format!(
                            "{}: the API server's message lacks {needle:?}: {}",
                            case.name, s.message
                        ));
                    }
                }
            }
            Err(e) => failures.push(format!("{}: unexpected error {e}", case.name)),
        }

        let before = total_calls(&sandbox);
        let out = sync_f(dir.path(), &sandbox, case.name, &obj).await;
        let text = printed(&out);
        if out.status.success() {
            failures.push(format!("{}: sync -f succeeded:\n{text}", case.name));
        }
        for needle in case.cli {
            if !text.contains(needle) {
                failures.push(format!(
                    "{}: sync -f does not say {needle:?}:\n{text}",
                    case.name
                ));
            }
        }
        if total_calls(&sandbox) != before {
            failures.push(format!("{}: sync -f called a vendor", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

mod tempdir {
    use std::path::{Path, PathBuf};

    /// A directory under the target dir, removed on drop.
    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
                "bad-manifests-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
