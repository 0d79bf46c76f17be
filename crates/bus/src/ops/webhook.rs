//! webhook-svc's operations: subscriptions, their secrets, deliveries and the delivery log.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::AttendanceEvent;
use super::{Empty, Operation};
use crate::ids::OrgId;
use crate::types::{LocalTime, Timezone, Weekday};

/// Where and how a subscriber is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Generic,
    Slack,
    Teams,
    Discord,
    GoogleChat,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Slack => "slack",
            Self::Teams => "teams",
            Self::Discord => "discord",
            Self::GoogleChat => "google_chat",
        }
    }
}

impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "generic" => Ok(Self::Generic),
            "slack" => Ok(Self::Slack),
            "teams" => Ok(Self::Teams),
            "discord" => Ok(Self::Discord),
            "google_chat" => Ok(Self::GoogleChat),
            _ => Err(
                "The selected platform is invalid (generic, slack, teams, discord or google_chat)"
                    .to_owned(),
            ),
        }
    }
}

/// The attendance events a subscription can ask for.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "clock-in",
    "clock-out",
    "break-start",
    "break-end",
    "correction",
];

/// A local time window; `end` before `start` wraps midnight (22:00–06:00).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimeRange {
    pub start: LocalTime,
    pub end: LocalTime,
}

/// What a subscription lets through; an empty list means all.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Filters {
    /// Location names.
    #[serde(default)]
    pub locations: Vec<String>,
    /// Employee codes.
    #[serde(default)]
    pub employees: Vec<String>,
    #[serde(default)]
    pub departments: Vec<String>,
    #[serde(default)]
    pub days_of_week: Vec<Weekday>,
    /// In the org's time zone.
    #[serde(default)]
    pub time_range: Option<TimeRange>,
}

impl Filters {
    /// Whether an event passes these filters (days and times in the org's time zone `tz`).
    /// Webhook deliveries and the gateway's event stream both ask this.
    pub fn matches(&self, e: &AttendanceEvent, tz: Timezone) -> bool {
        if !self.locations.is_empty() && !self.locations.contains(&e.location_name) {
            return false;
        }
        if !self.employees.is_empty()
            && !self.employees.iter().any(|c| c == e.employee_code.as_str())
        {
            return false;
        }
        if !self.departments.is_empty()
            && !e
                .department
                .as_ref()
                .is_some_and(|d| self.departments.contains(d))
        {
            return false;
        }
        let local = e.timestamp.with_timezone(&tz.tz());
        if !self.days_of_week.is_empty() {
            let iso = local.weekday().number_from_monday() as i16;
            if !self.days_of_week.iter().any(|d| d.iso() == iso) {
                return false;
            }
        }
        if let Some(range) = &self.time_range {
            let t = local.time().with_second(0).unwrap_or(local.time());
            let (start, end) = (range.start.time(), range.end.time());
            let inside = if start <= end {
                start <= t && t < end
            } else {
                // Wraps midnight: 22:00–06:00.
                t >= start || t < end
            };
            if !inside {
                return false;
            }
        }
        true
    }
}

/// A subscription as the API shows it (the secret only as a hint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Webhook {
    pub id: uuid::Uuid,
    pub url: String,
    pub platform: Platform,
    pub events: Vec<String>,
    pub filters: Filters,
    /// Null: the default template (chat platforms only).
    pub template: Option<String>,
    pub active: bool,
    /// `whsec_…` + the last 4 characters; `unreadable: rotate the secret` when the stored secret
    /// no longer opens with the operator's key (its signed deliveries wait until it is rotated).
    pub secret_hint: String,
    /// Why the subscription was switched off by Clokio, if it was.
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The create (and rotate) reply: the only time the secret is shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` + base64 of 24 random bytes. Shown once; store it now.
    pub secret: String,
}

/// The fields of a create; on update, absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookFields {
    pub url: Option<String>,
    pub platform: Option<Platform>,
    pub events: Option<Vec<String>>,
    pub filters: Option<Filters>,
    pub template: Option<String>,
    /// On update: back to the default template (`"template": null`).
    #[serde(default)]
    pub clear_template: bool,
    pub active: Option<bool>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WebhookWrite {
    pub org_id: OrgId,
    /// None on create.
    pub id: Option<uuid::Uuid>,
    pub fields: WebhookFields,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WebhookRef {
    pub org_id: OrgId,
    pub id: uuid::Uuid,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WebhookListQuery {
    pub org_id: OrgId,
}

/// One attempt to deliver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// `scheduled` or `manual`.
    pub trigger: String,
    /// 0 when no HTTP answer came.
    pub status_code: u16,
    /// `timeout`, `connection`, `dns`, `blocked` or `http`; null on success.
    pub error: Option<String>,
    pub latency_ms: u64,
    /// The answer's body, cut at 4 KiB.
    pub response_body: String,
}

/// A delivery of one event to one subscription.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: uuid::Uuid,
    pub webhook_id: uuid::Uuid,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempt_count: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Only when one delivery is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<Attempt>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<Delivery>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeliveryListQuery {
    pub org_id: OrgId,
    pub webhook_id: uuid::Uuid,
    pub page: u32,
    pub per_page: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeliveryRef {
    pub org_id: OrgId,
    pub webhook_id: uuid::Uuid,
    pub delivery_id: uuid::Uuid,
}

/// What a subscription with this platform and template would send for a sample clock-in of
/// the organization (the console's live preview). Nothing is stored or sent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WebhookPreview {
    pub org_id: OrgId,
    pub platform: Platform,
    /// None: the default template.
    pub template: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookPreviewed {
    /// The rendered message a chat platform shows; null for generic endpoints (they get JSON).
    pub text: Option<String>,
    /// The request body, as sent (pretty-printed JSON).
    pub body: String,
}

operation!(WebhookCreateOp, Webhook, "webhook_create", WebhookWrite => CreatedWebhook);
operation!(WebhookUpdateOp, Webhook, "webhook_update", WebhookWrite => Webhook);
operation!(WebhookListOp, Webhook, "webhook_list", WebhookListQuery => Vec<Webhook>);
operation!(WebhookGetOp, Webhook, "webhook_get", WebhookRef => Webhook);
operation!(WebhookDeleteOp, Webhook, "webhook_delete", WebhookRef => Empty);
operation!(WebhookRotateOp, Webhook, "webhook_rotate", WebhookRef => CreatedWebhook);
operation!(WebhookTestOp, Webhook, "webhook_test", WebhookRef => Delivery);
operation!(DeliveryListOp, Webhook, "delivery_list", DeliveryListQuery => DeliveryPage);
operation!(DeliveryGetOp, Webhook, "delivery_get", DeliveryRef => Delivery);
operation!(DeliveryRetryOp, Webhook, "delivery_retry", DeliveryRef => Delivery);
operation!(WebhookPreviewOp, Webhook, "webhook_preview", WebhookPreview => WebhookPreviewed);
