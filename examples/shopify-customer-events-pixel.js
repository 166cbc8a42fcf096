// Shopify custom web pixel: sends the shopper events Mailchimp for Shopify syncs to
// audience-operator, which records them on the Mailchimp contact (AudienceSync
// `spec.customerEvents`). Paste into Shopify admin → Settings → Customer events → Add custom
// pixel, set the three constants, save and connect.
//
// OPERATOR_URL: the operator's receiver (`--webhook-addr`, Helm `webhooks.enabled=true`) as the
//   shopper's browser reaches it, ending in /events/shopify/{namespace}/{sync name}.
// PIXEL_SECRET: key `pixelSecret` of the sync's Shopify credentials Secret. It is readable by
//   anyone viewing the shop (a pixel runs in the browser): it is a publishable token that keeps
//   other sites and strangers without it out; the operator also checks the page's Origin,
//   limits size and rate, and only ever adds events to contacts the audience already has.
const OPERATOR_URL = "https://audience-operator.example.com/events/shopify/shop/shopify-to-mailchimp";
const PIXEL_SECRET = "replace-with-the-pixelSecret-value";

// The shopper events the operator takes (others are refused with 400).
const EVENTS = [
  "page_viewed",
  "product_viewed",
  "search_submitted",
  "product_added_to_cart",
  "payment_info_submitted",
  "checkout_started",
  "checkout_completed",
  "collection_viewed",
];

// Flat, small string properties (Mailchimp event properties are strings).
function propertiesOf(name, data) {
  const p = {};
  const variant = data.productVariant || (data.cartLine && data.cartLine.merchandise);
  if (variant) {
    if (variant.product) {
      p.productId = String(variant.product.id || "");
      p.productTitle = String(variant.product.title || "");
    }
    p.variantId = String(variant.id || "");
    if (variant.price) p.price = String(variant.price.amount);
  }
  if (data.collection) {
    p.collectionId = String(data.collection.id || "");
    p.collectionTitle = String(data.collection.title || "");
  }
  if (data.searchResult) p.query = String(data.searchResult.query || "");
  if (data.checkout) {
    p.checkoutToken = String(data.checkout.token || "");
    if (data.checkout.totalPrice) {
      p.total = String(data.checkout.totalPrice.amount);
      p.currency = String(data.checkout.totalPrice.currencyCode);
    }
    if (data.checkout.order) p.orderId = String(data.checkout.order.id || "");
  }
  return p;
}

function emailOf(event) {
  const checkout = event.data && event.data.checkout;
  if (checkout && checkout.email) return checkout.email;
  const customer = init.data && init.data.customer;
  return customer && customer.email ? customer.email : null;
}

function customerIdOf() {
  const customer = init.data && init.data.customer;
  return customer && customer.id ? String(customer.id) : null;
}

EVENTS.forEach(function (name) {
  analytics.subscribe(name, function (event) {
    const email = emailOf(event);
    const customerId = customerIdOf();
    // Anonymous shoppers cannot be matched to a contact: nothing to send.
    if (!email && !customerId) return;
    const body = {
      event: name,
      occurredAt: event.timestamp,
      properties: propertiesOf(name, event.data || {}),
    };
    if (email) body.email = email;
    else body.customerId = customerId;
    fetch(OPERATOR_URL, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "X-Audience-Pixel-Secret": PIXEL_SECRET,
      },
      body: JSON.stringify(body),
      keepalive: true,
    }).catch(function () {
      // Best effort: a lost event is not retried (the next one carries on).
    });
  });
});
