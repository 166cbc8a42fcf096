//! Every operation of the Mailchimp Marketing API 3.0.55 (`paths` of
//! `shared/specs/mailchimp/mailchimp-marketing-3.0.55.openapi.yaml`, spec paths without the
//! `/3.0` prefix), so the simulator can tell a route it does not serve (501) from a method the
//! API does not have on a path (405) and from a path outside the API (404). The test
//! `mailchimp_spec::spec_operation_table_matches_the_spec` checks this table against the spec.

/// `(spec path template, methods)`, in the spec's order.
pub const SPEC_OPERATIONS: &[(&str, &[&str])] = &[
    ("/", &["GET"]),
    ("/activity-feed/chimp-chatter", &["GET"]),
    ("/account-exports", &["GET", "POST"]),
    ("/account-exports/{export_id}", &["GET"]),
    ("/authorized-apps", &["GET"]),
    ("/authorized-apps/{app_id}", &["GET"]),
    ("/automations", &["GET", "POST"]),
    ("/automations/{workflow_id}", &["GET"]),
    (
        "/automations/{workflow_id}/actions/pause-all-emails",
        &["POST"],
    ),
    (
        "/automations/{workflow_id}/actions/start-all-emails",
        &["POST"],
    ),
    ("/automations/{workflow_id}/actions/archive", &["POST"]),
    ("/automations/{workflow_id}/emails", &["GET"]),
    (
        "/automations/{workflow_id}/emails/{workflow_email_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    (
        "/automations/{workflow_id}/emails/{workflow_email_id}/queue",
        &["GET", "POST"],
    ),
    (
        "/automations/{workflow_id}/emails/{workflow_email_id}/queue/{subscriber_hash}",
        &["GET"],
    ),
    (
        "/automations/{workflow_id}/emails/{workflow_email_id}/actions/pause",
        &["POST"],
    ),
    (
        "/automations/{workflow_id}/emails/{workflow_email_id}/actions/start",
        &["POST"],
    ),
    (
        "/automations/{workflow_id}/removed-subscribers",
        &["GET", "POST"],
    ),
    (
        "/automations/{workflow_id}/removed-subscribers/{subscriber_hash}",
        &["GET"],
    ),
    ("/batches", &["GET", "POST"]),
    ("/batches/{batch_id}", &["GET", "DELETE"]),
    ("/batch-webhooks", &["GET", "POST"]),
    (
        "/batch-webhooks/{batch_webhook_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    ("/template-folders", &["GET", "POST"]),
    ("/template-folders/{folder_id}", &["GET", "PATCH", "DELETE"]),
    ("/campaign-folders", &["GET", "POST"]),
    ("/campaign-folders/{folder_id}", &["GET", "PATCH", "DELETE"]),
    ("/campaigns", &["GET", "POST"]),
    ("/campaigns/{campaign_id}", &["GET", "PATCH", "DELETE"]),
    ("/campaigns/{campaign_id}/actions/cancel-send", &["POST"]),
    ("/campaigns/{campaign_id}/actions/replicate", &["POST"]),
    ("/campaigns/{campaign_id}/actions/send", &["POST"]),
    ("/campaigns/{campaign_id}/actions/schedule", &["POST"]),
    ("/campaigns/{campaign_id}/actions/unschedule", &["POST"]),
    ("/campaigns/{campaign_id}/actions/test", &["POST"]),
    ("/campaigns/{campaign_id}/actions/pause", &["POST"]),
    ("/campaigns/{campaign_id}/actions/resume", &["POST"]),
    ("/campaigns/{campaign_id}/actions/create-resend", &["POST"]),
    ("/campaigns/{campaign_id}/content", &["GET", "PUT"]),
    ("/campaigns/{campaign_id}/feedback", &["GET", "POST"]),
    (
        "/campaigns/{campaign_id}/feedback/{feedback_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    ("/campaigns/{campaign_id}/send-checklist", &["GET"]),
    ("/connected-sites", &["GET", "POST"]),
    ("/connected-sites/{connected_site_id}", &["GET", "DELETE"]),
    (
        "/connected-sites/{connected_site_id}/actions/verify-script-installation",
        &["POST"],
    ),
    ("/conversations", &["GET"]),
    ("/conversations/{conversation_id}", &["GET"]),
    ("/conversations/{conversation_id}/messages", &["GET"]),
    (
        "/conversations/{conversation_id}/messages/{message_id}",
        &["GET"],
    ),
    (
        "/customer-journeys/journeys/{journey_id}/steps/{step_id}/actions/trigger",
        &["POST"],
    ),
    ("/file-manager/files", &["GET", "POST"]),
    ("/file-manager/files/{file_id}", &["GET", "PATCH", "DELETE"]),
    ("/file-manager/folders", &["GET", "POST"]),
    (
        "/file-manager/folders/{folder_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    ("/file-manager/folders/{folder_id}/files", &["GET"]),
    ("/lists", &["GET", "POST"]),
    ("/lists/{list_id}", &["GET", "POST", "PATCH", "DELETE"]),
    ("/lists/{list_id}/abuse-reports", &["GET"]),
    ("/lists/{list_id}/abuse-reports/{report_id}", &["GET"]),
    ("/lists/{list_id}/activity", &["GET"]),
    ("/lists/{list_id}/clients", &["GET"]),
    ("/lists/{list_id}/growth-history", &["GET"]),
    ("/lists/{list_id}/growth-history/{month}", &["GET"]),
    ("/lists/{list_id}/interest-categories", &["GET", "POST"]),
    (
        "/lists/{list_id}/interest-categories/{interest_category_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    (
        "/lists/{list_id}/interest-categories/{interest_category_id}/interests",
        &["GET", "POST"],
    ),
    (
        "/lists/{list_id}/interest-categories/{interest_category_id}/interests/{interest_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    ("/lists/{list_id}/segments", &["GET", "POST"]),
    (
        "/lists/{list_id}/segments/{segment_id}",
        &["GET", "POST", "PATCH", "DELETE"],
    ),
    (
        "/lists/{list_id}/segments/{segment_id}/members",
        &["GET", "POST"],
    ),
    (
        "/lists/{list_id}/segments/{segment_id}/members/{subscriber_hash}",
        &["DELETE"],
    ),
    ("/lists/{list_id}/tag-search", &["GET"]),
    ("/lists/{list_id}/members", &["GET", "POST"]),
    (
        "/lists/{list_id}/members/{subscriber_hash}",
        &["GET", "PUT", "PATCH", "DELETE"],
    ),
    (
        "/lists/{list_id}/members/{subscriber_hash}/activity",
        &["GET"],
    ),
    (
        "/lists/{list_id}/members/{subscriber_hash}/activity-feed",
        &["GET"],
    ),
    (
        "/lists/{list_id}/members/{subscriber_hash}/tags",
        &["GET", "POST"],
    ),
    (
        "/lists/{list_id}/members/{subscriber_hash}/events",
        &["GET", "POST"],
    ),
    ("/lists/{list_id}/members/{subscriber_hash}/goals", &["GET"]),
    (
        "/lists/{list_id}/members/{subscriber_hash}/notes",
        &["GET", "POST"],
    ),
    (
        "/lists/{list_id}/members/{subscriber_hash}/notes/{note_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    (
        "/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent",
        &["POST"],
    ),
    ("/lists/{list_id}/merge-fields", &["GET", "POST"]),
    (
        "/lists/{list_id}/merge-fields/{merge_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    ("/lists/{list_id}/webhooks", &["GET", "POST"]),
    (
        "/lists/{list_id}/webhooks/{webhook_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    ("/lists/{list_id}/signup-forms", &["GET", "POST"]),
    ("/lists/{list_id}/locations", &["GET"]),
    ("/lists/{list_id}/surveys", &["GET"]),
    ("/lists/{list_id}/surveys/{survey_id}", &["GET"]),
    (
        "/lists/{list_id}/surveys/{survey_id}/actions/publish",
        &["POST"],
    ),
    (
        "/lists/{list_id}/surveys/{survey_id}/actions/unpublish",
        &["POST"],
    ),
    (
        "/lists/{list_id}/surveys/{survey_id}/actions/create-email",
        &["POST"],
    ),
    ("/landing-pages", &["GET", "POST"]),
    ("/landing-pages/{page_id}", &["GET", "PATCH", "DELETE"]),
    ("/landing-pages/{page_id}/actions/publish", &["POST"]),
    ("/landing-pages/{page_id}/actions/unpublish", &["POST"]),
    ("/landing-pages/{page_id}/content", &["GET"]),
    ("/reports", &["GET"]),
    ("/reports/{campaign_id}", &["GET"]),
    ("/reports/{campaign_id}/abuse-reports", &["GET"]),
    ("/reports/{campaign_id}/abuse-reports/{report_id}", &["GET"]),
    ("/reports/{campaign_id}/advice", &["GET"]),
    ("/reports/{campaign_id}/click-details", &["GET"]),
    ("/reports/{campaign_id}/click-details/{link_id}", &["GET"]),
    (
        "/reports/{campaign_id}/click-details/{link_id}/members",
        &["GET"],
    ),
    (
        "/reports/{campaign_id}/click-details/{link_id}/members/{subscriber_hash}",
        &["GET"],
    ),
    ("/reports/{campaign_id}/open-details", &["GET"]),
    (
        "/reports/{campaign_id}/open-details/{subscriber_hash}",
        &["GET"],
    ),
    ("/reports/{campaign_id}/domain-performance", &["GET"]),
    ("/reports/{campaign_id}/eepurl", &["GET"]),
    ("/reports/{campaign_id}/email-activity", &["GET"]),
    (
        "/reports/{campaign_id}/email-activity/{subscriber_hash}",
        &["GET"],
    ),
    ("/reports/{campaign_id}/locations", &["GET"]),
    ("/reports/{campaign_id}/sent-to", &["GET"]),
    ("/reports/{campaign_id}/sent-to/{subscriber_hash}", &["GET"]),
    ("/reports/{campaign_id}/sub-reports", &["GET"]),
    ("/reports/{campaign_id}/unsubscribed", &["GET"]),
    (
        "/reports/{campaign_id}/unsubscribed/{subscriber_hash}",
        &["GET"],
    ),
    (
        "/reports/{campaign_id}/ecommerce-product-activity",
        &["GET"],
    ),
    ("/templates", &["GET", "POST"]),
    ("/templates/{template_id}", &["GET", "PATCH", "DELETE"]),
    ("/templates/{template_id}/default-content", &["GET"]),
    ("/ecommerce/orders", &["GET"]),
    ("/ecommerce/stores", &["GET", "POST"]),
    ("/ecommerce/stores/{store_id}", &["GET", "PATCH", "DELETE"]),
    ("/ecommerce/stores/{store_id}/carts", &["GET", "POST"]),
    (
        "/ecommerce/stores/{store_id}/carts/{cart_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    (
        "/ecommerce/stores/{store_id}/carts/{cart_id}/lines",
        &["GET", "POST"],
    ),
    (
        "/ecommerce/stores/{store_id}/carts/{cart_id}/lines/{line_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    ("/ecommerce/stores/{store_id}/customers", &["GET", "POST"]),
    (
        "/ecommerce/stores/{store_id}/customers/{customer_id}",
        &["GET", "PUT", "PATCH", "DELETE"],
    ),
    ("/ecommerce/stores/{store_id}/promo-rules", &["GET", "POST"]),
    (
        "/ecommerce/stores/{store_id}/promo-rules/{promo_rule_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    (
        "/ecommerce/stores/{store_id}/promo-rules/{promo_rule_id}/promo-codes",
        &["GET", "POST"],
    ),
    (
        "/ecommerce/stores/{store_id}/promo-rules/{promo_rule_id}/promo-codes/{promo_code_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    ("/ecommerce/stores/{store_id}/orders", &["GET", "POST"]),
    (
        "/ecommerce/stores/{store_id}/orders/{order_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    (
        "/ecommerce/stores/{store_id}/orders/{order_id}/lines",
        &["GET", "POST"],
    ),
    (
        "/ecommerce/stores/{store_id}/orders/{order_id}/lines/{line_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    ("/ecommerce/stores/{store_id}/products", &["GET", "POST"]),
    (
        "/ecommerce/stores/{store_id}/products/{product_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    (
        "/ecommerce/stores/{store_id}/products/{product_id}/variants",
        &["GET", "POST"],
    ),
    (
        "/ecommerce/stores/{store_id}/products/{product_id}/variants/{variant_id}",
        &["GET", "PUT", "PATCH", "DELETE"],
    ),
    (
        "/ecommerce/stores/{store_id}/products/{product_id}/images",
        &["GET", "POST"],
    ),
    (
        "/ecommerce/stores/{store_id}/products/{product_id}/images/{image_id}",
        &["GET", "PATCH", "DELETE"],
    ),
    ("/search-campaigns", &["GET"]),
    ("/search-members", &["GET"]),
    ("/ping", &["GET"]),
    ("/reporting/landing-pages/{outreach_id}", &["GET"]),
    ("/reporting/landing-pages", &["GET"]),
    ("/reporting/surveys", &["GET"]),
    ("/reporting/surveys/{survey_id}", &["GET"]),
    ("/reporting/surveys/{survey_id}/questions", &["GET"]),
    (
        "/reporting/surveys/{survey_id}/questions/{question_id}",
        &["GET"],
    ),
    (
        "/reporting/surveys/{survey_id}/questions/{question_id}/answers",
        &["GET"],
    ),
    ("/reporting/surveys/{survey_id}/responses", &["GET"]),
    (
        "/reporting/surveys/{survey_id}/responses/{response_id}",
        &["GET"],
    ),
    ("/verified-domains/{domain_name}", &["GET", "DELETE"]),
    ("/verified-domains/{domain_name}/actions/verify", &["POST"]),
    ("/verified-domains", &["GET", "POST"]),
];

/// Whether a concrete path (below `/3.0`, e.g. `/lists/abc/members`) fits a template: same
/// number of segments, literal segments equal, `{param}` segments non-empty.
fn fits(template: &str, path: &str) -> bool {
    let mut want = template.split('/');
    let mut have = path.split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return true,
            (Some(w), Some(h)) => {
                let ok = if w.starts_with('{') && w.ends_with('}') {
                    !h.is_empty()
                } else {
                    w == h
                };
                if !ok {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// What the API has at a path the simulator does not route: `Ok(template)` when the spec defines
/// this method there, `Err(true)` when the spec has the path but not the method, `Err(false)`
/// when the path is not the API's at all. A trailing `/` is ignored.
pub fn lookup(method: &str, path: &str) -> Result<&'static str, bool> {
    let path = match path.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => path,
    };
    let path = if path.is_empty() { "/" } else { path };
    let mut path_known = false;
    for (template, methods) in SPEC_OPERATIONS {
        if fits(template, path) {
            if methods.contains(&method) {
                return Ok(template);
            }
            path_known = true;
        }
    }
    Err(path_known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_templates() {
        assert_eq!(
            lookup("GET", "/lists/abc/interest-categories"),
            Ok("/lists/{list_id}/interest-categories")
        );
        assert_eq!(lookup("DELETE", "/lists/abc"), Ok("/lists/{list_id}"));
        assert_eq!(lookup("GET", "/"), Ok("/"));
        assert_eq!(lookup("DELETE", "/lists"), Err(true));
        assert_eq!(lookup("GET", "/no/such/path"), Err(false));
        assert_eq!(lookup("GET", "/lists//members"), Err(false));
    }
}
