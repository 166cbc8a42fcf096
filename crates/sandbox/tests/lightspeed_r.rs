//! The R-Series simulator keeps the vendor's rules: string values, object-or-list children, cursor
//! paging through `@attributes.next`, query operators, archived records, bearer auth and the
//! leaky bucket with its headers and 429 format.

use audience_sandbox::lightspeed_r::{
    Contact, ContactEmail, Customer, DEMO_ACCOUNT_ID, DEMO_TOKEN, MAX_LIMIT,
};
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor};
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use serde_json::Value;

async fn start(customers: usize) -> RunningSandbox {
    Sandbox::new(SandboxOptions {
        customers,
        seed: 11,
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .expect("sandbox serves")
}

fn customers_url(running: &RunningSandbox) -> String {
    format!(
        "{}/API/V3/Account/{DEMO_ACCOUNT_ID}/Customer.json",
        running.vendor_url(Vendor::LightspeedR)
    )
}

async fn get_url(url: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent")
}

async fn get(running: &RunningSandbox, query: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::new()
        .get(customers_url(running))
        .query(query)
        .bearer_auth(DEMO_TOKEN)
        .send()
        .await
        .expect("request sent")
}

async fn get_json(running: &RunningSandbox, query: &[(&str, &str)]) -> Value {
    let response = get(running, query).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    response.json().await.unwrap()
}

/// The `Customer` value as a list, whichever shape it came in.
fn customers(body: &Value) -> Vec<Value> {
    match &body["Customer"] {
        Value::Null => Vec::new(),
        Value::Array(list) => list.clone(),
        one => vec![one.clone()],
    }
}

const CONTACT: (&str, &str) = ("load_relations", "[\"Contact\"]");

#[tokio::test]
async fn follows_next_until_it_is_empty() {
    let running = start(250).await;
    let first = get_json(
        &running,
        &[CONTACT, ("limit", "100"), ("sort", "timeStamp")],
    )
    .await;
    let mut pages = vec![first];
    loop {
        let next = pages.last().unwrap()["@attributes"]["next"]
            .as_str()
            .unwrap()
            .to_string();
        if next.is_empty() {
            break;
        }
        assert!(
            next.starts_with(&customers_url(&running)),
            "full URL: {next}"
        );
        assert!(next.contains("after="));
        let response = get_url(&next, DEMO_TOKEN).await;
        assert_eq!(response.status(), 200);
        pages.push(response.json().await.unwrap());
    }
    assert_eq!(pages.len(), 3, "100 + 100 + 50");
    let all: Vec<Value> = pages.iter().flat_map(customers).collect();
    assert_eq!(all.len(), 250);
    assert_eq!(pages[0]["@attributes"]["limit"], "100");
    assert_eq!(pages[0]["@attributes"]["previous"], "");
    // Sorted by timeStamp, and the next URL kept the relations.
    let times: Vec<DateTime<FixedOffset>> = all
        .iter()
        .map(|c| DateTime::parse_from_rfc3339(c["timeStamp"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert!(all.iter().all(|c| c.get("Contact").is_some()));
    let mut ids: Vec<&str> = all
        .iter()
        .map(|c| c["customerID"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 250, "no customer twice");
}

#[tokio::test]
async fn every_value_is_a_string_and_single_children_are_objects() {
    let running = start(0).await;
    let sim = &running.sandbox.lightspeed_r;
    let id = sim.add_customer(Customer {
        first_name: "Solo".into(),
        last_name: "Person".into(),
        contact: Contact {
            emails: vec![ContactEmail {
                address: "solo@example.com".into(),
                use_type: "Primary".into(),
            }],
            no_email: true,
            ..Contact::default()
        },
        ..Customer::default()
    });
    let body = get_json(&running, &[CONTACT]).await;
    let customer = &body["Customer"];
    assert!(customer.is_object(), "one customer is an object: {body}");
    assert_eq!(customer["customerID"], id.to_string());
    assert_eq!(customer["archived"], "false");
    assert_eq!(customer["Contact"]["noEmail"], "true");
    let email = &customer["Contact"]["Emails"]["ContactEmail"];
    assert!(email.is_object(), "one email is an object");
    assert_eq!(email["address"], "solo@example.com");
    assert_eq!(
        customer["Contact"]["Phones"], "",
        "an empty relation is an empty string"
    );
    assert_eq!(body["@attributes"]["next"], "");

    fn all_strings(v: &Value) -> bool {
        match v {
            Value::String(_) => true,
            Value::Object(map) => map.values().all(all_strings),
            Value::Array(list) => list.iter().all(all_strings),
            _ => false,
        }
    }
    assert!(all_strings(&body), "every value is a string: {body}");

    sim.edit_customer(id, |c| {
        c.contact.emails.push(ContactEmail {
            address: "second@example.com".into(),
            use_type: "Secondary".into(),
        })
    });
    let body = get_json(&running, &[CONTACT]).await;
    assert!(body["Customer"]["Contact"]["Emails"]["ContactEmail"].is_array());

    // Without the relation there is no Contact.
    let body = get_json(&running, &[]).await;
    assert!(body["Customer"].get("Contact").is_none());
}

#[tokio::test]
async fn an_empty_page_has_no_customer_key_and_limit_is_capped() {
    let running = start(MAX_LIMIT + 5).await;
    let body = get_json(&running, &[("limit", "500")]).await;
    assert_eq!(customers(&body).len(), MAX_LIMIT);
    assert_eq!(body["@attributes"]["limit"], "100");
    let body = get_json(&running, &[("timeStamp", ">,2999-01-01T00:00:00+00:00")]).await;
    assert!(body.get("Customer").is_none());
    assert_eq!(body["@attributes"]["next"], "");
}

#[tokio::test]
async fn the_timestamp_operators_compare_instants_across_zones() {
    let running = start(0).await;
    let sim = &running.sandbox.lightspeed_r;
    let at = |h| Utc.with_ymd_and_hms(2025, 3, 1, h, 0, 0).unwrap();
    for hour in [8, 10, 12] {
        sim.add_customer(Customer {
            first_name: format!("H{hour}"),
            create_time: at(hour),
            time_stamp: at(hour),
            ..Customer::default()
        });
    }
    sim.set_utc_offset(FixedOffset::west_opt(5 * 3600).unwrap());
    let names = |body: &Value| -> Vec<String> {
        customers(body)
            .iter()
            .map(|c| c["firstName"].as_str().unwrap().to_string())
            .collect()
    };
    // 10:00 UTC is 05:00-05:00: the same instant in another zone.
    let body = get_json(
        &running,
        &[
            ("timeStamp", ">,2025-03-01T05:00:00-05:00"),
            ("sort", "timeStamp"),
        ],
    )
    .await;
    assert_eq!(names(&body), ["H12"]);
    let body = get_json(
        &running,
        &[
            ("timeStamp", ">=,2025-03-01T10:00:00+00:00"),
            ("sort", "timeStamp"),
        ],
    )
    .await;
    assert_eq!(names(&body), ["H10", "H12"]);
    let body = get_json(&running, &[("timeStamp", "<,2025-03-01T10:00:00Z")]).await;
    assert_eq!(names(&body), ["H8"]);
    let body = get_json(
        &running,
        &[(
            "timeStamp",
            "><,2025-03-01T09:00:00+00:00,2025-03-01T11:00:00+00:00",
        )],
    )
    .await;
    assert_eq!(names(&body), ["H10"]);
    // Rendered in the shop's zone.
    let ts = customers(&body)[0]["timeStamp"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ts, "2025-03-01T05:00:00-05:00");

    // An unencoded '+' arrives as a space: the server cannot read the time.
    let url = format!(
        "{}?timeStamp=%3E%2C2025-03-01T10:00:00+00:00",
        customers_url(&running)
    );
    let response = get_url(&url, DEMO_TOKEN).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["httpCode"], "400");
}

#[tokio::test]
async fn archived_customers_are_hidden_unless_asked_for() {
    let running = start(4).await;
    let sim = &running.sandbox.lightspeed_r;
    assert!(sim.archive_customer(2));
    let ids = |body: &Value| -> Vec<String> {
        customers(body)
            .iter()
            .map(|c| c["customerID"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&get_json(&running, &[]).await), ["1", "3", "4"]);
    assert_eq!(
        ids(&get_json(&running, &[("archived", "true")]).await),
        ["1", "2", "3", "4"]
    );
    let only = get_json(&running, &[("archived", "only")]).await;
    assert_eq!(ids(&only), ["2"]);
    assert_eq!(only["Customer"]["archived"], "true");
    // Archiving is a change: it moved the timeStamp to now.
    let ts = DateTime::parse_from_rfc3339(only["Customer"]["timeStamp"].as_str().unwrap()).unwrap();
    assert!(Utc::now().signed_duration_since(ts).num_seconds() < 60);
}

#[tokio::test]
async fn auth_and_account_are_checked() {
    let running = start(1).await;
    let response = get_url(&customers_url(&running), "wrong").await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["httpCode"], "401");
    assert!(!body.to_string().contains("wrong"));
    let other = customers_url(&running).replace(DEMO_ACCOUNT_ID, "999");
    assert_eq!(get_url(&other, DEMO_TOKEN).await.status(), 404);
}

#[tokio::test]
async fn the_leaky_bucket_reports_its_level_and_refuses_an_overflow() {
    let running = start(1).await;
    let sim = &running.sandbox.lightspeed_r;
    // A bucket that practically does not drain, so the levels are exact.
    sim.set_bucket(3.0, 0.001);
    let mut levels = Vec::new();
    for _ in 0..3 {
        let response = get(&running, &[]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ls-api-drip-rate"], "0.001");
        let level = response.headers()["x-ls-api-bucket-level"]
            .to_str()
            .unwrap()
            .to_string();
        let (used, size) = level.split_once('/').unwrap();
        assert_eq!(size, "3");
        levels.push(used.parse::<f64>().unwrap().round());
    }
    assert_eq!(levels, [1.0, 2.0, 3.0]);
    let refused = get(&running, &[]).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.headers()["x-ls-api-ratelimit-type"],
        "api-leaky-bucket"
    );
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "seconds until one drip fits");
    assert_eq!(sim.refused(), 1);
    assert!(sim.max_level() <= 3.0);
    // count=1 costs 10: more than this bucket can ever hold.
    sim.set_bucket(5.0, 1000.0);
    assert_eq!(get(&running, &[("count", "1")]).await.status(), 429);
    let counted = get(&running, &[]).await;
    assert_eq!(counted.status(), 200);
}

#[tokio::test]
async fn count_is_reported_when_asked_for() {
    let running = start(7).await;
    running.sandbox.lightspeed_r.set_bucket(90.0, 1.0);
    let body = get_json(&running, &[("count", "1"), ("limit", "2")]).await;
    assert_eq!(body["@attributes"]["count"], "7");
    let body = get_json(&running, &[("limit", "2")]).await;
    assert!(body["@attributes"].get("count").is_none());
}
