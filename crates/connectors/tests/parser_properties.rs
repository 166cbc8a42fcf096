//! Every connector's response parsing (for the targets, their member reads), fed arbitrary bytes and the vendor's own valid page mutated
//! (bytes flipped, cut short, values replaced by other JSON), through the real HTTP path: never a
//! panic, and a failure is an error with a message.
//!
//! `PARSER_CASES` sets the cases per strategy and vendor (default 24, a few seconds); the
//! `#[ignore]`d `long_` tests run 2000 each: `cargo test -p audience-connectors --test
//! parser_properties -- --ignored`.

mod vendor_faults_support;

use audience_sandbox::{FaultKind, Vendor};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use vendor_faults_support::Rig;

fn cases() -> u32 {
    std::env::var("PARSER_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

/// A valid first page as the simulator serves it to the connector's own request.
async fn valid_page(rig: &Rig) -> Vec<u8> {
    let client = reqwest::Client::new();
    let base = rig.sandbox.vendor_url(rig.vendor);
    let request = match rig.vendor {
        Vendor::Shopify => client
            .post(format!("{base}/admin/api/2025-01/graphql.json"))
            .header("X-Shopify-Access-Token", &rig.secret)
            .json(&serde_json::json!({"query":
                "{ customers(first: 5) { edges { cursor node { id email firstName lastName updatedAt \
                  emailMarketingConsent { marketingState } } } pageInfo { hasNextPage endCursor } } }"})),
        Vendor::LightspeedX => client
            .get(format!("{base}/api/2.0/customers?after=0&page_size=5"))
            .bearer_auth(&rig.secret),
        Vendor::LightspeedR => client
            .get(format!(
                "{base}/API/V3/Account/{}/Customer.json?limit=5&load_relations=%5B%22Contact%22%5D",
                audience_sandbox::lightspeed_r::DEMO_ACCOUNT_ID
            ))
            .bearer_auth(&rig.secret),
        Vendor::Retailcrm => client
            .get(format!("{base}/api/v5/customers?limit=20"))
            .header("X-API-KEY", &rig.secret),
        Vendor::Mailchimp => client
            .get(format!(
                "{base}/3.0/lists/{}/members?count=5",
                vendor_faults_support::MAILCHIMP_LIST
            ))
            .basic_auth("x", Some(&rig.secret)),
        Vendor::Klaviyo => client
            .get(format!(
                "{base}/api/lists/{}/profiles?page[size]=5&additional-fields[profile]=subscriptions",
                rig.klaviyo.list_id
            ))
            .header("Authorization", format!("Klaviyo-API-Key {}", rig.secret))
            .header("revision", audience_sandbox::klaviyo::REVISION)
            .header("accept", audience_sandbox::klaviyo::JSON_API),
    };
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{:?} seed page", rig.vendor);
    response.bytes().await.unwrap().to_vec()
}

/// Replaces the value at the `pick`-th node (depth first) with `replacement`.
fn replace_nth(value: &mut Value, pick: &mut usize, replacement: &Value) -> bool {
    if *pick == 0 {
        *value = replacement.clone();
        return true;
    }
    *pick -= 1;
    match value {
        Value::Array(items) => items.iter_mut().any(|v| replace_nth(v, pick, replacement)),
        Value::Object(map) => map.values_mut().any(|v| replace_nth(v, pick, replacement)),
        _ => false,
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(-1)),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String("1e400".into())),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// How a valid page is spoilt.
#[derive(Debug, Clone)]
enum Mutation {
    Cut(usize),
    Flip(usize, u8),
    Replace(usize, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Cut),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (0usize..200, json_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
    ]
}

fn mutate(valid: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    for m in mutations {
        match m {
            Mutation::Cut(at) => bytes.truncate(at % (bytes.len() + 1)),
            Mutation::Flip(at, byte) if !bytes.is_empty() => {
                let at = at % bytes.len();
                bytes[at] = *byte;
            }
            Mutation::Flip(..) => {}
            Mutation::Replace(pick, replacement) => {
                if let Ok(mut doc) = serde_json::from_slice::<Value>(&bytes) {
                    let mut pick = *pick;
                    replace_nth(&mut doc, &mut pick, replacement);
                    bytes = serde_json::to_vec(&doc).unwrap();
                }
            }
        }
    }
    bytes
}

/// Serves `body` as the vendor's next answer (HTTP 200, JSON) and reads: any outcome but a panic
/// or a message-less error is a failure.
async fn read_with_first_answer(rig: &Rig, body: Vec<u8>) -> Result<(), TestCaseError> {
    rig.sandbox().faults.clear();
    let content_type = match rig.vendor {
        Vendor::Klaviyo => audience_sandbox::klaviyo::JSON_API,
        _ => "application/json",
    };
    rig.fault(
        FaultKind::Raw {
            status: 200,
            retry_after: None,
            content_type: Some(content_type.into()),
            body: String::from_utf8_lossy(&body).into_owned(),
            headers: Vec::new(),
        },
        1,
    );
    if let Err(error) = rig.read_members().await {
        prop_assert!(
            !error.message.trim().is_empty(),
            "an error says what: {error:?}"
        );
        prop_assert!(!error.to_string().contains(&rig.secret));
    }
    Ok(())
}

fn run(vendor: Vendor, cases: u32) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rig = runtime.block_on(Rig::start(vendor, 30));
    if vendor == Vendor::Klaviyo {
        // The target starts empty: one push gives its member pages something to spoil.
        runtime
            .block_on(rig.read())
            .expect("seeding the Klaviyo list");
    }
    let valid = runtime.block_on(valid_page(&rig));
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };

    let mut runner = TestRunner::new(config.clone());
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..512), |bytes| {
            runtime.block_on(read_with_first_answer(&rig, bytes))
        })
        .unwrap_or_else(|e| panic!("{vendor:?} arbitrary bytes: {e}"));

    let mut runner = TestRunner::new(config);
    runner
        .run(&prop::collection::vec(mutation(), 1..4), |mutations| {
            runtime.block_on(read_with_first_answer(&rig, mutate(&valid, &mutations)))
        })
        .unwrap_or_else(|e| panic!("{vendor:?} mutated page: {e}"));
}

macro_rules! parser_tests {
    ($($name:ident, $long:ident => $vendor:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            run($vendor, cases());
        }

        #[test]
        #[ignore = "long fuzzing run: cargo test -p audience-connectors --test parser_properties -- --ignored"]
        fn $long() {
            run($vendor, 2000);
        }
    )*};
}

parser_tests! {
    shopify_answers_never_panic, long_shopify => Vendor::Shopify,
    lightspeed_x_answers_never_panic, long_lightspeed_x => Vendor::LightspeedX,
    lightspeed_r_answers_never_panic, long_lightspeed_r => Vendor::LightspeedR,
    retailcrm_answers_never_panic, long_retailcrm => Vendor::Retailcrm,
    mailchimp_answers_never_panic, long_mailchimp => Vendor::Mailchimp,
    klaviyo_answers_never_panic, long_klaviyo => Vendor::Klaviyo,
}
