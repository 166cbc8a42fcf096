//! `spec.customerEvents` of an AudienceSync (Shopify source, Mailchimp target): customer events
//! both ways, as Mailchimp for Shopify syncs them (seed 004).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The CEL rule: customer events only between one Shopify `source` and a Mailchimp target.
pub const CUSTOMER_EVENTS_RULE: &str = "!has(self.customerEvents) || (has(self.source) && has(self.source.shopify) && has(self.target.mailchimp))";
pub const CUSTOMER_EVENTS_MESSAGE: &str =
    "customerEvents needs a single Shopify source (source.shopify) and a Mailchimp target";

fn yes() -> bool {
    true
}

/// Customer events both ways. Writing `customerEvents: {}` turns both directions on.
///
/// - **Shopify → Mailchimp** (`shopperEvents`): the shopper events a Shopify custom web pixel
///   posts to the operator (`POST /events/shopify/{namespace}/{name}` on `--webhook-addr`, key
///   `pixelSecret` of the source's credentials Secret) become Mailchimp member events, for
///   contacts the audience already has; others are counted and dropped.
/// - **Mailchimp → Shopify** (`emailActivity`): each run, after the push, the contacts with
///   sends, opens or clicks since `status.emailActivityCursor` (found in the campaign reports
///   of the audience's campaigns of the last 90 days) get their totals written to the Shopify
///   customer as metafields in the namespace `audience_operator` (`email_received`,
///   `email_opens`, `email_clicks`, `last_email_received_at`, `last_email_opened_at`,
///   `last_email_clicked_at`). Quiet contacts cost nothing. Needs the Shopify scope
///   `write_customers`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CustomerEventsSpec {
    /// Both directions at once (default true, as in Mailchimp for Shopify); false turns both off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Shopify shopper events from the web pixel to Mailchimp member events.
    #[serde(default = "yes")]
    pub shopper_events: bool,
    /// Mailchimp email activity (received, opened, clicked) to Shopify customer metafields.
    #[serde(default = "yes")]
    pub email_activity: bool,
    /// The shop has Shopify's GDPR/CCPA restrictions on: shopper events are accepted from the
    /// pixel and dropped, never sent (email activity is not affected).
    #[serde(default)]
    pub privacy_restricted: bool,
    /// Origins the web pixel may post from besides `https://{shopDomain}`: the shop's own
    /// storefront domains, e.g. `https://www.example-shop.com` (a browser sends the page's
    /// origin; posts from other origins are refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 10),
        inner(length(max = 255), regex(pattern = r"^https://[^/\s]+$"))
    )]
    pub pixel_origins: Vec<String>,
}

impl Default for CustomerEventsSpec {
    fn default() -> Self {
        CustomerEventsSpec {
            enabled: true,
            shopper_events: true,
            email_activity: true,
            privacy_restricted: false,
            pixel_origins: Vec::new(),
        }
    }
}

impl CustomerEventsSpec {
    /// Shopper events are taken from the pixel and sent.
    pub fn sends_shopper_events(&self) -> bool {
        self.enabled && self.shopper_events && !self.privacy_restricted
    }

    /// Email activity is written back to the shop.
    pub fn writes_email_activity(&self) -> bool {
        self.enabled && self.email_activity
    }
}
