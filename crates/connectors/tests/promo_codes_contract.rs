//! Contract tests of promo codes from Shopify to Mailchimp e-commerce, against both simulators:
//! the shop's code discounts are read paged (discounts and their codes), each code becomes a
//! Mailchimp promo rule with the discount's real amount (a percentage as a fraction, a fixed
//! amount per item or on the total, free shipping), a re-run writes nothing, and a changed
//! discount is updated; a code seen on an order carries the rule the order applied.

mod mailchimp_support;

use std::time::Duration as StdDuration;

use audience_connectors::http::RetryPolicy;
use audience_connectors::mailchimp::{MailchimpOrderConfig, MailchimpOrderSink};
use audience_connectors::shopify::{
    CODES_PER_DISCOUNT, DISCOUNTS_PER_PAGE, ShopifyConfig, ShopifySource,
};
use audience_core::order::{
    Decimal, DiscountCode, DiscountTarget, DiscountValue, Order, Promotion,
};
use audience_core::{
    ApplyControl, ErrorKind, EventKinds, OrderPage, OrderScope, OrderSendOptions, OrderSink,
    OrderSource,
};
use audience_sandbox::Vendor;
use audience_sandbox::shopify::{
    AppliedValue, CodeDiscount, DiscountApplication, DiscountValue as ShopValue,
    Order as ShopOrder, OrderLine as ShopLine, Product,
};
use chrono::{Duration, TimeZone, Utc};
use futures::TryStreamExt;
use mailchimp_support::*;
use serde_json::{Value, json};

const STORE: &str = "promo-store";
const TOKEN: &str = "shpat_promo_contract";

fn shop(env: &Env) -> ShopifySource {
    let shop = &env.sandbox.sandbox.shopify;
    shop.reset();
    shop.set_access_token(TOKEN);
    let mut config = ShopifyConfig::with_base_url(env.sandbox.vendor_url(Vendor::Shopify), TOKEN);
    config.retry = RetryPolicy {
        max_retries: 2,
        min_delay: StdDuration::from_millis(10),
        max_delay: StdDuration::from_millis(100),
        timeout: StdDuration::from_secs(10),
    };
    ShopifySource::new(config).unwrap()
}

fn sink(env: &Env) -> MailchimpOrderSink {
    let mut config = MailchimpOrderConfig::new(&env.key, STORE, LIST).with_base_url(env.base_url());
    config.retry = fast_retry();
    config.domain = Some("shop.fjordmail.se".into());
    MailchimpOrderSink::new(config).unwrap()
}

fn root_calls(env: &Env, field: &str) -> u64 {
    let counters = env.sandbox.sandbox.shopify.counters();
    counters.root_fields.get(field).copied().unwrap_or(0)
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn rule(env: &Env, id: &str) -> Value {
    env.sim()
        .ecommerce_promo_rule(STORE, id)
        .unwrap_or_else(|| panic!("no promo rule {id}"))
}

/// The store, made by the first order (as in a real run).
async fn with_store(sink: &MailchimpOrderSink) {
    let order = Order {
        source: "shopify".into(),
        order_id: "gid://shopify/Order/1".into(),
        customer: audience_core::order::OrderCustomer {
            email: "first.buyer@fjordmail.se".into(),
            ..Default::default()
        },
        currency: "USD".into(),
        total: Some(dec("10")),
        lines: vec![audience_core::order::OrderLine {
            line_id: "1".into(),
            product_id: "7".into(),
            name: "Mug".into(),
            quantity: Decimal::ONE,
            unit_price: dec("10"),
            ..Default::default()
        }],
        placed_at: Utc::now(),
        updated_at: Utc::now(),
        ..Order::default()
    };
    let options = OrderSendOptions {
        kinds: EventKinds::all(),
        live_from: None,
    };
    let report = sink
        .send_orders(&[order], &options, &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.orders_created, 1);
}

fn the_shops_discounts(env: &Env) -> (u64, u64) {
    let shop = &env.sandbox.sandbox.shopify;
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let mut welcome = CodeDiscount::new("WELCOME10", ShopValue::Percentage(0.1));
    welcome.title = "Welcome 10 % off".into();
    welcome.starts_at = start;
    let welcome = shop.add_code_discount(welcome);
    let mut take5 = CodeDiscount::new(
        "TAKE5",
        ShopValue::Amount {
            cents: 500,
            each_item: true,
        },
    );
    take5.starts_at = start;
    shop.add_code_discount(take5);
    let mut save15 = CodeDiscount::new(
        "SAVE15",
        ShopValue::Amount {
            cents: 1500,
            each_item: false,
        },
    );
    save15.starts_at = start;
    save15.ends_at = Some(Utc.with_ymd_and_hms(2099, 12, 31, 0, 0, 0).unwrap());
    let save15 = shop.add_code_discount(save15);
    shop.add_code_discount(CodeDiscount::new("SHIPFREE", ShopValue::FreeShipping));
    let mut spring = CodeDiscount::new("SPRING20", ShopValue::Percentage(0.2));
    spring.starts_at = start;
    spring.ends_at = Some(Utc.with_ymd_and_hms(2025, 5, 31, 0, 0, 0).unwrap());
    shop.add_code_discount(spring);
    (welcome, save15)
}

#[tokio::test]
async fn the_shops_discounts_are_read_paged_with_their_rules() {
    let env = Env::start().await;
    let source = shop(&env);
    the_shops_discounts(&env);
    // Enough discounts for three pages, and one with more codes than come with it.
    let shop = &env.sandbox.sandbox.shopify;
    for n in 0..(DISCOUNTS_PER_PAGE as usize * 2) {
        shop.add_code_discount(CodeDiscount::new(
            &format!("BULK{n:03}"),
            ShopValue::Percentage(0.05),
        ));
    }
    let mut many = CodeDiscount::new("VIP000", ShopValue::Percentage(0.25));
    many.codes = (0..CODES_PER_DISCOUNT + 5)
        .map(|n| format!("VIP{n:03}"))
        .collect();
    shop.add_code_discount(many);

    let promotions = source.promotions().await.unwrap().unwrap();
    assert_eq!(promotions.len(), 5 + DISCOUNTS_PER_PAGE as usize * 2 + 1);
    assert_eq!(root_calls(&env, "codeDiscountNodes"), 3, "paged by 40");
    assert_eq!(root_calls(&env, "codeDiscountNode"), 1, "the extra codes");
    let by_code = |code: &str| -> &Promotion {
        promotions
            .iter()
            .find(|p| p.codes.iter().any(|c| c == code))
            .unwrap()
    };
    let welcome = by_code("WELCOME10");
    assert_eq!(welcome.title, "Welcome 10 % off");
    assert_eq!(welcome.value, DiscountValue::Percentage(dec("10")));
    assert_eq!(welcome.target, DiscountTarget::Order);
    assert!(welcome.enabled);
    assert!(welcome.id.starts_with("gid://shopify/DiscountCodeNode/"));
    assert_eq!(by_code("TAKE5").value, DiscountValue::Amount(dec("5.0")));
    assert_eq!(by_code("TAKE5").target, DiscountTarget::Items);
    assert_eq!(by_code("SAVE15").target, DiscountTarget::Order);
    assert!(by_code("SAVE15").ends_at.is_some());
    assert_eq!(by_code("SHIPFREE").target, DiscountTarget::Shipping);
    assert!(!by_code("SPRING20").enabled, "expired");
    let vip = by_code("VIP000");
    assert_eq!(vip.codes.len(), CODES_PER_DISCOUNT as usize + 5);
    assert_eq!(
        vip.codes.last().unwrap(),
        &format!("VIP{:03}", CODES_PER_DISCOUNT + 4)
    );
}

#[tokio::test]
async fn the_shops_codes_become_promo_rules_with_their_amounts_and_a_rerun_writes_nothing() {
    let env = Env::start().await;
    let source = shop(&env);
    let (welcome, _) = the_shops_discounts(&env);
    let first = sink(&env);
    let promotions = source.promotions().await.unwrap().unwrap();
    // Without a store there is nowhere to put them yet.
    let err = first.sync_promotions(&promotions).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    with_store(&first).await;
    let before = env.sim().ecommerce_writes();
    let report = first.sync_promotions(&promotions).await.unwrap();
    assert_eq!((report.codes, report.created), (5, 5), "{report:?}");
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(report.write_calls, 10, "a rule and a code each");
    assert_eq!(env.sim().ecommerce_writes() - before, 10);

    let welcome_rule = rule(&env, "WELCOME10");
    assert_eq!(welcome_rule["type"], json!("percentage"));
    assert_eq!(welcome_rule["amount"], json!(0.1));
    assert_eq!(welcome_rule["target"], json!("total"));
    assert_eq!(welcome_rule["title"], json!("Welcome 10 % off"));
    assert_eq!(welcome_rule["enabled"], json!(true));
    assert_eq!(
        welcome_rule["starts_at"],
        json!("2025-01-01T00:00:00+00:00")
    );
    assert_eq!(
        welcome_rule["codes"][0]["redemption_url"],
        json!("https://shop.fjordmail.se/discount/WELCOME10")
    );
    let take5 = rule(&env, "TAKE5");
    assert_eq!(
        (&take5["type"], &take5["amount"], &take5["target"]),
        (&json!("fixed"), &json!(5), &json!("per_item"))
    );
    let save15 = rule(&env, "SAVE15");
    assert_eq!(
        (&save15["type"], &save15["amount"], &save15["target"]),
        (&json!("fixed"), &json!(15), &json!("total"))
    );
    assert!(save15.get("ends_at").is_some());
    let ship = rule(&env, "SHIPFREE");
    assert_eq!(
        (&ship["type"], &ship["target"]),
        (&json!("fixed"), &json!("shipping"))
    );
    let spring = rule(&env, "SPRING20");
    assert_eq!(spring["enabled"], json!(false));
    assert_eq!(spring["codes"][0]["enabled"], json!(false));

    // The next run (a new sink) reads them and writes nothing.
    let writes = env.sim().ecommerce_writes();
    let report = sink(&env).sync_promotions(&promotions).await.unwrap();
    assert_eq!((report.unchanged, report.write_calls), (5, 0), "{report:?}");
    assert_eq!(env.sim().ecommerce_writes(), writes);

    // The merchant raises WELCOME10 to 15 %: one PATCH of that rule, nothing else.
    env.sandbox
        .sandbox
        .shopify
        .edit_code_discount(welcome, |d| d.value = ShopValue::Percentage(0.15));
    let promotions = source.promotions().await.unwrap().unwrap();
    let report = sink(&env).sync_promotions(&promotions).await.unwrap();
    assert_eq!((report.updated, report.unchanged), (1, 4), "{report:?}");
    assert_eq!(report.write_calls, 1);
    assert_eq!(env.sim().ecommerce_writes(), writes + 1);
    assert_eq!(rule(&env, "WELCOME10")["amount"], json!(0.15));
}

async fn read_orders(source: &ShopifySource) -> Vec<Order> {
    let since = OrderScope::Since(Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap());
    let pages: Vec<OrderPage> = source.orders(since).try_collect().await.unwrap();
    pages.into_iter().flat_map(|p| p.orders).collect()
}

fn shop_order(code: &str, applications: Vec<DiscountApplication>) -> ShopOrder {
    let created = Utc::now() - Duration::days(2);
    ShopOrder {
        email: Some(format!("{}@fjordmail.se", code.to_lowercase())),
        created_at: created,
        discount_codes: vec![code.to_string()],
        discount_applications: applications,
        lines: vec![ShopLine {
            product_id: 8_000_001,
            quantity: 2,
            original_unit_cents: 2000,
            discounted_unit_cents: 1800,
            ..ShopLine::default()
        }],
        ..ShopOrder::default()
    }
}

#[tokio::test]
async fn an_orders_code_carries_the_rule_the_order_applied() {
    let env = Env::start().await;
    let source = shop(&env);
    let shop = &env.sandbox.sandbox.shopify;
    let (welcome, _) = the_shops_discounts(&env);
    shop.add_product(Product {
        id: 8_000_001,
        title: "Harbour Hoodie".into(),
        product_type: "Hoodies".into(),
        collections: vec![],
        variant_id: 9_000_001,
        variant_title: "Default Title".into(),
        sku: "SBX-001".into(),
        price_cents: 2000,
    });
    // WELCOME10's application follows the shop's discount (10 %); TAKE5's is given: $2 off each
    // line, as the order applied it.
    shop.add_order(shop_order("WELCOME10", vec![]));
    shop.add_order(shop_order(
        "TAKE5",
        vec![DiscountApplication {
            allocation_method: "EACH".into(),
            ..DiscountApplication::code("TAKE5", AppliedValue::Amount(200))
        }],
    ));
    let orders = read_orders(&source).await;
    assert_eq!(orders.len(), 2);
    let discounts: Vec<&DiscountCode> = orders.iter().flat_map(|o| &o.discounts).collect();
    assert_eq!(
        discounts,
        [
            &DiscountCode {
                code: "WELCOME10".into(),
                value: DiscountValue::Percentage(dec("10")),
                target: DiscountTarget::Order,
            },
            &DiscountCode {
                code: "TAKE5".into(),
                value: DiscountValue::Amount(dec("2.0")),
                target: DiscountTarget::Items,
            },
        ]
    );
    let options = OrderSendOptions {
        kinds: EventKinds::all(),
        live_from: None,
    };
    let control = ApplyControl::default();
    let report = sink(&env)
        .send_orders(&orders, &options, &control)
        .await
        .unwrap();
    assert_eq!((report.orders_created, report.promo_codes_written), (2, 2));
    let welcome_rule = rule(&env, "WELCOME10");
    assert_eq!(
        (&welcome_rule["type"], &welcome_rule["amount"]),
        (&json!("percentage"), &json!(0.1))
    );
    let take5 = rule(&env, "TAKE5");
    assert_eq!(
        (&take5["type"], &take5["amount"], &take5["target"]),
        (&json!("fixed"), &json!(2), &json!("per_item"))
    );

    // Again (a new sink, the same orders): nothing written.
    let writes = env.sim().ecommerce_writes();
    let report = sink(&env)
        .send_orders(&orders, &options, &control)
        .await
        .unwrap();
    assert_eq!(report.write_calls, 0, "{report:?}");
    assert_eq!(env.sim().ecommerce_writes(), writes);

    // The shop makes WELCOME10 20 % and a new order uses it: its rule is updated, once.
    shop.edit_code_discount(welcome, |d| d.value = ShopValue::Percentage(0.2));
    let id = shop.add_order(shop_order("WELCOME10", vec![]));
    let newest: Vec<Order> = read_orders(&source)
        .await
        .into_iter()
        .filter(|o| o.order_id == format!("gid://shopify/Order/{id}"))
        .collect();
    assert_eq!(newest.len(), 1);
    let report = sink(&env)
        .send_orders(&newest, &options, &control)
        .await
        .unwrap();
    assert_eq!(report.promo_codes_written, 1, "{report:?}");
    assert_eq!(rule(&env, "WELCOME10")["amount"], json!(0.2));
    // The order, and one PATCH of the rule.
    assert_eq!(env.sim().ecommerce_writes(), writes + 2);
}
