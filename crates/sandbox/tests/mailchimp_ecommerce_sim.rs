//! Contract of the Mailchimp e-commerce simulator (`/ecommerce/stores…`): what the spec requires
//! is required, what a store holds must exist before an order names it, and a customer's
//! `opt_in_status` never resubscribes a member who unsubscribed or bounced.

mod mailchimp_support;

use mailchimp_support::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn with_store(mc: &Mc) {
    let r = mc
        .post(
            "/ecommerce/stores",
            json!({"id": "s1", "list_id": "list", "name": "Shop", "currency_code": "USD"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

async fn with_product(mc: &Mc, id: &str, variant: &str) {
    let r = mc
        .post(
            "/ecommerce/stores/s1/products",
            json!({"id": id, "title": "Mug", "variants": [{"id": variant, "title": "Blue", "price": 12.5}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

fn order(id: &str, customer: Value) -> Value {
    json!({
        "id": id,
        "customer": customer,
        "currency_code": "USD",
        "order_total": 25.0,
        "processed_at_foreign": "2024-05-01T10:00:00Z",
        "lines": [{"id": "l1", "product_id": "p1", "product_variant_id": "v1", "quantity": 2, "price": 12.5}],
    })
}

#[tokio::test]
async fn a_store_needs_its_required_fields_and_an_existing_audience() {
    let mc = Mc::start().await;
    let r = mc
        .post("/ecommerce/stores", json!({"id": "s1", "list_id": "list"}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.title(), "Invalid Resource");
    assert!(r.content_type.starts_with("application/problem+json"));
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "currency_code"]);
    let r = mc
        .post(
            "/ecommerce/stores",
            json!({"id": "s1", "list_id": "nope", "name": "Shop", "currency_code": "USD"}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    with_store(&mc).await;
    let again = mc
        .post(
            "/ecommerce/stores",
            json!({"id": "s1", "list_id": "list", "name": "Shop", "currency_code": "USD"}),
        )
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(mc.get("/ecommerce/stores/s1").await.body["list_id"], "list");
    assert_eq!(mc.get("/ecommerce/stores/zz").await.status, 404);
    let moved = mc
        .patch("/ecommerce/stores/s1", json!({"list_id": "other"}))
        .await;
    assert_eq!(moved.status, 400);
}

#[tokio::test]
async fn is_syncing_is_recorded_every_time_it_is_written() {
    let mc = Mc::start().await;
    with_store(&mc).await;
    for syncing in [true, false] {
        let r = mc
            .patch("/ecommerce/stores/s1", json!({"is_syncing": syncing}))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["is_syncing"], syncing);
    }
    assert_eq!(mc.sim().store_syncing_history("s1"), [false, true, false]);
    let bad = mc
        .patch("/ecommerce/stores/s1", json!({"is_syncing": "yes"}))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(mc.sim().store_syncing_history("s1").len(), 3);
}

#[tokio::test]
async fn an_order_needs_its_products_variants_and_a_known_or_described_customer() {
    let mc = Mc::start().await;
    with_store(&mc).await;
    let body = order(
        "o1",
        json!({"id": "c1", "email_address": "ann@fjordmail.se"}),
    );
    let r = mc.post("/ecommerce/stores/s1/orders", body.clone()).await;
    assert_eq!(r.status, 400, "unknown product: {:?}", r.body);
    assert!(r.detail().contains("p1"), "{}", r.detail());
    with_product(&mc, "p1", "v9").await;
    let r = mc.post("/ecommerce/stores/s1/orders", body.clone()).await;
    assert_eq!(r.status, 400, "unknown variant: {:?}", r.body);
    let r = mc
        .put(
            "/ecommerce/stores/s1/products/p1/variants/v1",
            json!({"id": "v1", "title": "Red"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let unknown_customer = order("o1", json!({"id": "c2"}));
    let r = mc
        .post("/ecommerce/stores/s1/orders", unknown_customer)
        .await;
    assert_eq!(r.status, 400, "a new customer needs an address");
    let r = mc.post("/ecommerce/stores/s1/orders", body.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["customer"]["email_address"], "ann@fjordmail.se");
    assert_eq!(r.body["processed_at_foreign"], "2024-05-01T10:00:00+00:00");
    assert_eq!(
        mc.post("/ecommerce/stores/s1/orders", body).await.status,
        400,
        "POST never overwrites"
    );
    // There is no PUT on orders in 3.0.55.
    let r = mc
        .send(
            Method::PUT,
            "/ecommerce/stores/s1/orders/o1",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 405);
    let r = mc
        .patch(
            "/ecommerce/stores/s1/orders/o1",
            json!({"financial_status": "refunded"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let orders = mc.sim().ecommerce_orders("s1");
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].financial_status, "refunded");
    assert_eq!(orders[0].lines[0].3, 2);
    assert_eq!(
        mc.patch("/ecommerce/stores/s1/orders/o9", json!({}))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn order_bodies_are_typed_as_the_spec_says() {
    let mc = Mc::start().await;
    with_store(&mc).await;
    with_product(&mc, "p1", "v1").await;
    let mut body = order(
        "o1",
        json!({"id": "c1", "email_address": "ann@fjordmail.se"}),
    );
    body["order_total"] = json!("25.00");
    body["lines"][0]["quantity"] = json!(1.5);
    body["promos"] = json!([{"code": "X", "amount_discounted": 1, "type": "bogus"}]);
    let r = mc.post("/ecommerce/stores/s1/orders", body).await;
    assert_eq!(r.status, 400);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"order_total"), "{fields:?}");
    assert!(fields.contains(&"lines.0.quantity"), "{fields:?}");
    assert!(fields.contains(&"promos.0.type"), "{fields:?}");
    assert!(mc.sim().ecommerce_orders("s1").is_empty());
    assert_eq!(mc.sim().ecommerce_writes(), 3, "refused writes count too");
}

#[tokio::test]
async fn opt_in_never_resubscribes_and_a_new_customer_without_it_is_transactional() {
    let mc = Mc::start().await;
    with_store(&mc).await;
    mc.sim()
        .insert_member("list", "gone@fjordmail.se", MemberStatus::Unsubscribed);
    mc.sim()
        .insert_member("list", "bounced@fjordmail.se", MemberStatus::Cleaned);
    mc.sim()
        .insert_member("list", "fan@fjordmail.se", MemberStatus::Subscribed);
    let put = |id: &str, email: &str, opt_in: bool| {
        let body = json!({"id": id, "email_address": email, "opt_in_status": opt_in});
        let path = format!("/ecommerce/stores/s1/customers/{id}");
        let mc = &mc;
        async move { mc.put(&path, body).await }
    };
    for (id, email) in [("c1", "gone@fjordmail.se"), ("c2", "bounced@fjordmail.se")] {
        assert_eq!(put(id, email, true).await.status, 200);
    }
    assert_eq!(put("c3", "fan@fjordmail.se", false).await.status, 200);
    assert_eq!(put("c4", "new@fjordmail.se", false).await.status, 200);
    let status = |email: &str| mc.sim().member("list", email).unwrap().status;
    assert_eq!(status("gone@fjordmail.se"), MemberStatus::Unsubscribed);
    assert_eq!(status("bounced@fjordmail.se"), MemberStatus::Cleaned);
    assert_eq!(status("fan@fjordmail.se"), MemberStatus::Subscribed);
    assert_eq!(status("new@fjordmail.se"), MemberStatus::Transactional);
    // The customer opts in later: the member the store added becomes subscribed.
    assert_eq!(put("c4", "new@fjordmail.se", true).await.status, 200);
    assert_eq!(status("new@fjordmail.se"), MemberStatus::Subscribed);
    // …but once they unsubscribe, a later opt-in at checkout does not bring them back by API.
    mc.sim()
        .set_member_status("list", "new@fjordmail.se", MemberStatus::Unsubscribed);
    assert_eq!(put("c4", "new@fjordmail.se", true).await.status, 200);
    assert_eq!(status("new@fjordmail.se"), MemberStatus::Unsubscribed);
    let missing = mc
        .put(
            "/ecommerce/stores/s1/customers/c5",
            json!({"id": "c5", "email_address": "x@fjordmail.se"}),
        )
        .await;
    assert_eq!(missing.status, 400, "opt_in_status is required");
    let r = mc
        .put(
            "/ecommerce/stores/s1/customers/c7",
            json!({"id": "c6", "email_address": "y@fjordmail.se", "opt_in_status": false}),
        )
        .await;
    assert_eq!(r.status, 400, "path and body ids differ");
    assert_eq!(
        mc.put(
            "/ecommerce/stores/zz/customers/c1",
            json!({"id": "c1", "email_address": "a@fjordmail.se", "opt_in_status": false})
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn promo_rules_and_codes() {
    let mc = Mc::start().await;
    with_store(&mc).await;
    let r = mc
        .post(
            "/ecommerce/stores/s1/promo-rules/r1/promo-codes",
            json!({"id": "k1", "code": "SAVE", "redemption_url": "https://shop.example/discount/SAVE"}),
        )
        .await;
    assert_eq!(r.status, 404, "the rule must exist");
    let r = mc
        .post(
            "/ecommerce/stores/s1/promo-rules",
            json!({"id": "r1", "description": "Save", "amount": 5, "type": "percentage", "target": "total"}),
        )
        .await;
    assert_eq!(r.status, 400, "a percentage is 0..1");
    let r = mc
        .post(
            "/ecommerce/stores/s1/promo-rules",
            json!({"id": "r1", "description": "Save", "amount": 5, "type": "fixed", "target": "total"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = mc
        .post(
            "/ecommerce/stores/s1/promo-rules/r1/promo-codes",
            json!({"id": "k1", "code": "SAVE"}),
        )
        .await;
    assert_eq!(r.status, 400, "redemption_url is required");
    let r = mc
        .post(
            "/ecommerce/stores/s1/promo-rules/r1/promo-codes",
            json!({"id": "k1", "code": "SAVE", "redemption_url": "https://shop.example/discount/SAVE"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        mc.sim().ecommerce_promo_codes("s1"),
        [("r1".to_string(), vec!["SAVE".to_string()])]
    );
    // A PATCH is checked on the rule as it would be: amount 5 cannot become a percentage.
    let r = mc
        .patch(
            "/ecommerce/stores/s1/promo-rules/r1",
            json!({"type": "percentage"}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let r = mc
        .patch(
            "/ecommerce/stores/s1/promo-rules/r1",
            json!({"type": "percentage", "amount": 0.25}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["amount"], json!(0.25));
    // ends_at must be after starts_at.
    let r = mc
        .post(
            "/ecommerce/stores/s1/promo-rules",
            json!({"id": "r2", "description": "Late", "amount": 1, "type": "fixed", "target": "total",
                   "starts_at": "2025-06-01T00:00:00Z", "ends_at": "2025-05-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
}

#[tokio::test]
async fn e_commerce_routes_need_the_api_key() {
    let mc = Mc::start().await;
    let r = mc
        .send_with_key(Method::GET, "/ecommerce/stores", None, None)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.title(), "API Key Missing");
    // A spec route not simulated is 501, never 404.
    let r = mc.get("/ecommerce/stores/s1/carts").await;
    assert_eq!(r.status, 501);
}
