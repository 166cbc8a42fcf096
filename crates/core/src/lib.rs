//! The pure core of audience-operator: the model, the diff and the plan. No I/O happens here, so
//! every decision the operator makes about whom to create, update, archive or leave alone can be
//! tested without HTTP or Kubernetes.
//!
//! - [`email`]: normalised, syntax-checked email addresses.
//! - [`contact`]: what sources produce ([`SourceContact`]) and its consent.
//! - [`member`]: what targets hold ([`TargetMember`]).
//! - [`mapping`]: which contact attributes land in which target fields.
//! - [`prepare`]: validation and deduplication of a source snapshot (last edited wins).
//! - [`merge`]: many sources into one audience (strictest consent, one owner per field).
//! - [`diff`]: the compact target index and the audience planner, and which members a sync
//!   manages (its owner tag: mirror archives only those).
//! - [`plan`]: the plan and its counts, and the safety check.
//! - [`segment`]: segment membership plans (exact, union, subtract).
//! - [`connector`]: the `Source` and `Target` traits and their errors.
//! - [`cursor`]: saved checkpoints made safe (never in the future; one per source).
//! - [`order`]: orders as sources read them (money in decimals).
//! - [`event`]: the append-only order-event stream (for targets that take events).
//! - [`order_events`]: orders into events (seed 003's metrics, skips, rejections, unique ids).
//! - [`two_way`]: two-way consent between a shop and a Mailchimp audience (later change wins).
//! - [`activity`]: the bounded log of what each run changed, record by record.
//! - [`event_batches`]: events cut into target-sized batches on order boundaries.
//! - [`sms`]: SMS subscribers from a shop into Mailchimp's SMS fields (from a date, E.164).
//! - [`new_customers`]: Mailchimp members not in the shop become shop customers (write-back).

pub mod activity;
pub mod connector;
pub mod contact;
pub mod cursor;
pub mod customer_events;
pub mod diff;
pub mod email;
pub mod event;
pub mod event_batches;
pub mod fingerprint;
pub mod mapping;
pub mod member;
pub mod merge;
pub mod new_customers;
pub mod order;
pub mod order_events;
pub mod plan;
pub mod prepare;
pub mod rejections;
pub mod segment;
pub mod sms;
pub mod two_way;
pub mod webhook_subscriptions;

pub use connector::{
    ApplyControl, ApplyReport, Checkpoint, ConnectorError, ConsentWriteReport, ConsentWriter,
    CustomerCreator, ErrorKind, EventRejection, EventReport, EventSink, OrderDestination,
    OrderPage, OrderReport, OrderScope, OrderSendOptions, OrderSink, OrderSource, PromotionReport,
    ReadScope, RecordRejection, SegmentInfo, Source, SourcePage, Target, TargetInfo,
};
pub use contact::{Address, Consent, SourceContact};
pub use cursor::{SourceCheckpoints, cap_checkpoint};
pub use diff::{AudiencePlanner, PlanOptions, TargetIndex, plan_audience};
pub use email::{Email, InvalidEmail};
pub use event::{EventPerson, OrderEvent, OrderEventKind};
pub use event_batches::{BatchLimits, BatchSizer, KLAVIYO_BULK, plan_batches};
pub use mapping::{FieldMapping, FieldValue};
pub use member::{MemberStatus, TargetMember};
pub use merge::{Attribute, FieldPrecedence, Merged, SourceMerger};
pub use new_customers::{AudienceMember, CustomerCreate, plan_customer_creates};
pub use order_events::{
    EventKinds, EventOptions, OrderEvents, OrderOutcome, OrderRejection, SentLedger,
    SkipReason as OrderSkipReason, Unsendable, events_of_orders, order_events, sendable,
};
pub use plan::{
    CapacityExceeded, ConsentPolicy, MemberWrite, Mode, NoOptInPolicy, OWNER_TAG_MAX, Plan,
    PlanCounts, ResubscribePolicy, SafetyLimit, SafetyStop, Skip, SkipReason, default_owner_tag,
};
pub use rejections::{RejectionPolicy, RememberedRejection};
pub use segment::{SegmentMode, SegmentPlan, SourceSegment, plan_segment};
pub use sms::{
    MemberSms, MemberSmsStatus, ShopCustomer, SmsChange, SmsConsent, SmsCounts, SmsDecision,
    SmsSkip, SmsState, SmsWrite, decide_sms, e164,
};
pub use two_way::{
    ConsentWrite, MemberConsent, OptInLevel, Reconciled, TwoWayCounts, TwoWayOutcome, reconcile,
};
