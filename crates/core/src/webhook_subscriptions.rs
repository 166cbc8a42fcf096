//! Webhook registration at a vendor (`webhooks.register`): the operator keeps one subscription
//! per topic the vendor offers pointing at its public receiver URL, and removes them when the
//! sync goes or registration is turned off. Connectors do the calls; the decision of what to
//! create and what to delete is here, pure, so it is the same for every vendor.
//!
//! Topics come in [`Interest`]s: customer syncs subscribe to the customer topics, order syncs to
//! the order topics, at the same URL. Removing one interest's subscriptions never touches the
//! other's.

use async_trait::async_trait;

use crate::connector::ConnectorError;

/// One subscription as the vendor lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSubscription {
    /// The vendor's id (a Shopify `gid://shopify/WebhookSubscription/…`, a Mailchimp webhook id).
    pub id: String,
    /// The vendor's topic name (`CUSTOMERS_UPDATE`); vendors with one subscription for all
    /// events (Mailchimp) use [`WebhookRegistry::topics`]' single entry.
    pub topic: String,
    pub url: String,
}

/// What a sync wants to hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Customers / audience members (AudienceSync).
    Customers,
    /// Orders, refunds and fulfilments (OrderSync).
    Orders,
}

/// A vendor account that can list, create and delete webhook subscriptions.
#[async_trait]
pub trait WebhookRegistry: Send + Sync {
    /// The topics the operator subscribes to at this vendor for `interest` (none: the vendor
    /// sends nothing of that interest).
    fn topics(&self, interest: Interest) -> Vec<String>;

    /// Every subscription of the account (not only the operator's).
    async fn webhook_subscriptions(&self) -> Result<Vec<WebhookSubscription>, ConnectorError>;

    async fn create_webhook_subscription(
        &self,
        topic: &str,
        url: &str,
    ) -> Result<WebhookSubscription, ConnectorError>;

    async fn delete_webhook_subscription(&self, id: &str) -> Result<(), ConnectorError>;
}

/// What [`ensure`] or [`remove`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrationReport {
    pub created: u64,
    /// Subscriptions already in place (not created again).
    pub kept: u64,
    pub deleted: u64,
}

/// The topics of `wanted` that no subscription in `existing` covers for `url`.
pub fn missing_topics(
    wanted: &[String],
    existing: &[WebhookSubscription],
    url: &str,
) -> Vec<String> {
    wanted
        .iter()
        .filter(|t| !existing.iter().any(|s| &s.topic == *t && s.url == url))
        .cloned()
        .collect()
}

/// Creates the subscriptions of `interest` for `url` that are not there yet: one list call, then
/// one create per missing topic. Never duplicates a subscription that exists.
pub async fn ensure(
    registry: &dyn WebhookRegistry,
    interest: Interest,
    url: &str,
) -> Result<RegistrationReport, ConnectorError> {
    let wanted = registry.topics(interest);
    if wanted.is_empty() {
        return Ok(RegistrationReport::default());
    }
    let existing = registry.webhook_subscriptions().await?;
    let missing = missing_topics(&wanted, &existing, url);
    let mut report = RegistrationReport {
        kept: (wanted.len() - missing.len()) as u64,
        ..RegistrationReport::default()
    };
    for topic in missing {
        registry.create_webhook_subscription(&topic, url).await?;
        report.created += 1;
    }
    Ok(report)
}

/// The subscriptions of `existing` to delete: those whose URL is the operator's (`ours`) and
/// whose topic is one of `topics` (the interest being removed), and only those. A subscription
/// someone else made for another URL stays, and so does one of the other interest.
pub fn to_delete<'a>(
    topics: &[String],
    existing: &'a [WebhookSubscription],
    ours: &(dyn Fn(&str) -> bool + Sync),
) -> Vec<&'a WebhookSubscription> {
    existing
        .iter()
        .filter(|s| ours(&s.url) && topics.contains(&s.topic))
        .collect()
}

/// Deletes the subscriptions of `interest` whose URL is the operator's (`ours`); see
/// [`to_delete`]. No list call when the vendor has no topic of that interest.
pub async fn remove(
    registry: &dyn WebhookRegistry,
    interest: Interest,
    ours: &(dyn Fn(&str) -> bool + Sync),
) -> Result<RegistrationReport, ConnectorError> {
    let topics = registry.topics(interest);
    let mut report = RegistrationReport::default();
    if topics.is_empty() {
        return Ok(report);
    }
    let existing = registry.webhook_subscriptions().await?;
    for s in to_delete(&topics, &existing, ours) {
        registry.delete_webhook_subscription(&s.id).await?;
        report.deleted += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: &str, topic: &str, url: &str) -> WebhookSubscription {
        WebhookSubscription {
            id: id.into(),
            topic: topic.into(),
            url: url.into(),
        }
    }

    #[test]
    fn only_topics_without_a_subscription_for_this_url_are_missing() {
        let wanted = vec!["A".to_string(), "B".to_string(), "C".to_string()];
        let existing = [
            sub("1", "A", "https://op/hooks"),
            sub("2", "B", "https://elsewhere/hooks"),
        ];
        assert_eq!(
            missing_topics(&wanted, &existing, "https://op/hooks"),
            ["B", "C"]
        );
    }

    #[test]
    fn only_our_urls_of_the_interest_removed_are_deleted() {
        let customers = vec!["CUSTOMERS_UPDATE".to_string()];
        let existing = [
            sub("1", "CUSTOMERS_UPDATE", "https://op/webhooks/shopify"),
            sub("2", "ORDERS_CREATE", "https://op/webhooks/shopify"),
            sub(
                "3",
                "CUSTOMERS_UPDATE",
                "https://elsewhere/webhooks/shopify",
            ),
        ];
        let ours = |u: &str| u.starts_with("https://op/");
        let ids: Vec<&str> = to_delete(&customers, &existing, &ours)
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(ids, ["1"]);
    }
}
