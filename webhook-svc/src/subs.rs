//! Subscriptions: create, read, update, delete, rotate the secret. Every write announces the org
//! on the invalidation subject, so every replica's cache of active subscriptions drops it.

use chrono::{DateTime, Duration, Utc};
use clokio_bus::BusError;
use clokio_bus::ids::OrgId;
use clokio_bus::ops::{
    CreatedWebhook, Empty, Filters, Platform, WEBHOOK_EVENTS, Webhook, WebhookFields,
    WebhookListQuery, WebhookPreview, WebhookPreviewed, WebhookRef, WebhookWrite,
};
use uuid::Uuid;

use crate::render::{check_template, hint, new_secret};
use crate::seal::Secret;
use crate::{State, db};

/// What a subscription would send for a sample clock-in (the console's live preview).
pub async fn preview(state: &State, r: WebhookPreview) -> Result<WebhookPreviewed, BusError> {
    let tz = state.directory.org(r.org_id).await?.org.timezone;
    let event = crate::render::sample_event(r.org_id, tz, Utc::now());
    crate::render::preview(r.platform, r.template.as_deref(), &event, tz).map_err(BusError::invalid)
}

/// The most subscriptions one org may have.
pub const MAX_PER_ORG: i64 = 100;
/// The hint of a secret whose stored value does not open with `CLOKIO_WEBHOOK_SECRET_KEY`.
pub const UNREADABLE_HINT: &str = "unreadable: rotate the secret";
/// How long the previous secret still signs after a rotation.
pub const ROTATION_OVERLAP: Duration = Duration::hours(24);

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct SubRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub url: String,
    pub platform: String,
    pub events: Vec<String>,
    pub filters: sqlx::types::Json<Filters>,
    pub template: Option<String>,
    pub active: bool,
    pub secret: Secret,
    pub previous_secret: Option<Secret>,
    pub previous_until: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const COLUMNS: &str = "id, org_id, url, platform, events, filters, template, active, secret, \
    previous_secret, previous_until, disabled_reason, failing_since, created_at, updated_at";

/// The subscription's columns qualified by `s.`, for joins.
pub fn sub_columns() -> String {
    COLUMNS
        .split(',')
        .map(|c| format!("s.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl SubRow {
    pub fn platform(&self) -> Platform {
        self.platform.parse().unwrap_or(Platform::Generic)
    }

    /// The secrets that sign now: the current one, and the previous one during the overlap (if it
    /// opens); `None` when the current one does not open.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Option<Vec<&str>> {
        let mut secrets = vec![self.secret.plain()?];
        if let (Some(prev), Some(until)) = (&self.previous_secret, self.previous_until)
            && now < until
            && let Some(prev) = prev.plain()
        {
            secrets.push(prev);
        }
        Some(secrets)
    }

    pub fn view(&self) -> Webhook {
        Webhook {
            id: self.id,
            url: self.url.clone(),
            platform: self.platform(),
            events: self.events.clone(),
            filters: self.filters.0.clone(),
            template: self.template.clone(),
            active: self.active,
            secret_hint: self
                .secret
                .plain()
                .map_or_else(|| UNREADABLE_HINT.to_owned(), hint),
            disabled_reason: self.disabled_reason.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Checks fields against the rules; `create` requires url and events.
async fn check(state: &State, f: &WebhookFields, create: bool) -> Result<(), BusError> {
    if create && f.url.is_none() {
        return Err(BusError::invalid("The url field is required"));
    }
    if let Some(url) = &f.url {
        if url.len() > 2048 {
            return Err(BusError::invalid(
                "The url field must not be greater than 2048 characters",
            ));
        }
        state.policy.check_url(url).map_err(BusError::invalid)?;
    }
    match &f.events {
        None if create => return Err(BusError::invalid("The events field is required")),
        Some(events) if events.is_empty() => {
            return Err(BusError::invalid(
                "The events field must contain at least one event",
            ));
        }
        Some(events) => {
            if let Some(bad) = events
                .iter()
                .find(|e| !WEBHOOK_EVENTS.contains(&e.as_str()))
            {
                return Err(BusError::invalid(format!(
                    "The events field contains an unknown event {bad} ({})",
                    WEBHOOK_EVENTS.join(", ")
                )));
            }
        }
        None => {}
    }
    if let Some(template) = &f.template {
        if template.chars().count() > 2000 {
            return Err(BusError::invalid(
                "The template field must not be greater than 2000 characters",
            ));
        }
        check_template(template).map_err(BusError::invalid)?;
    }
    // Last, as it is the one check that asks DNS.
    if let Some(url) = &f.url {
        let parsed = state.policy.check_url(url).map_err(BusError::invalid)?;
        state
            .policy
            .check_target(&parsed)
            .await
            .map_err(BusError::invalid)?;
    }
    Ok(())
}

fn dedup(mut events: Vec<String>) -> Vec<String> {
    events.sort_unstable_by_key(|e| WEBHOOK_EVENTS.iter().position(|k| k == e));
    events.dedup();
    events
}

pub async fn create(state: &State, req: WebhookWrite) -> db::Result<CreatedWebhook> {
    let f = req.fields;
    check(state, &f, true).await?;
    // The count and the insert under the org's lock, so two creations at once cannot both see
    // room for one.
    let mut tx = state.pool.begin().await?;
    clokio_runtime::db::lock_org(&mut tx, "clokio.webhooks", req.org_id.as_uuid()).await?;
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM subscriptions WHERE org_id = $1")
        .bind(req.org_id.as_uuid())
        .fetch_one(&mut *tx)
        .await?;
    if count >= MAX_PER_ORG {
        return Err(BusError::invalid(format!(
            "An organization may have at most {MAX_PER_ORG} webhooks"
        ))
        .into());
    }
    let secret = new_secret();
    let row: SubRow = sqlx::query_as(&format!(
        "INSERT INTO subscriptions (id, org_id, url, platform, events, filters, template, active, secret) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(req.org_id.as_uuid())
    .bind(f.url.unwrap_or_default())
    .bind(f.platform.unwrap_or(Platform::Generic).as_str())
    .bind(dedup(f.events.unwrap_or_default()))
    .bind(sqlx::types::Json(f.filters.unwrap_or_default()))
    .bind(f.template)
    .bind(f.active.unwrap_or(true))
    .bind(Secret::new(secret.clone()))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    state.changed(req.org_id).await;
    Ok(CreatedWebhook {
        webhook: row.view(),
        secret,
    })
}

pub async fn fetch(state: &State, org: OrgId, id: Uuid) -> db::Result<SubRow> {
    let row = sqlx::query_as::<_, SubRow>(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE org_id = $1 AND id = $2"
    ))
    .bind(org.as_uuid())
    .bind(id)
    .fetch_optional(&state.pool)
    .await?;
    Ok(row.ok_or_else(|| BusError::not_found("Webhook not found"))?)
}

pub async fn get(state: &State, r: WebhookRef) -> db::Result<Webhook> {
    Ok(fetch(state, r.org_id, r.id).await?.view())
}

pub async fn list(state: &State, q: WebhookListQuery) -> db::Result<Vec<Webhook>> {
    let rows: Vec<SubRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE org_id = $1 ORDER BY created_at, id"
    ))
    .bind(q.org_id.as_uuid())
    .fetch_all(&state.pool)
    .await?;
    Ok(rows.iter().map(SubRow::view).collect())
}

pub async fn update(state: &State, req: WebhookWrite) -> db::Result<Webhook> {
    let id = req
        .id
        .ok_or_else(|| BusError::not_found("Webhook not found"))?;
    let f = req.fields;
    check(state, &f, false).await?;
    // Switching a subscription back on clears the reason it was switched off.
    let row: Option<SubRow> = sqlx::query_as(&format!(
        "UPDATE subscriptions SET \
            url = COALESCE($3, url), platform = COALESCE($4, platform), \
            events = COALESCE($5, events), filters = COALESCE($6, filters), \
            template = CASE WHEN $7 THEN $8 ELSE template END, \
            active = COALESCE($9, active), \
            disabled_reason = CASE WHEN $9 IS TRUE THEN NULL ELSE disabled_reason END, \
            failing_since = CASE WHEN $9 IS TRUE THEN NULL ELSE failing_since END, \
            updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(req.org_id.as_uuid())
    .bind(id)
    .bind(f.url)
    .bind(f.platform.map(Platform::as_str))
    .bind(f.events.map(dedup))
    .bind(f.filters.map(sqlx::types::Json))
    .bind(f.template.is_some() || f.clear_template)
    .bind(f.template)
    .bind(f.active)
    .fetch_optional(&state.pool)
    .await?;
    let row = row.ok_or_else(|| BusError::not_found("Webhook not found"))?;
    state.changed(req.org_id).await;
    Ok(row.view())
}

pub async fn delete(state: &State, r: WebhookRef) -> db::Result<Empty> {
    let done = sqlx::query("DELETE FROM subscriptions WHERE org_id = $1 AND id = $2")
        .bind(r.org_id.as_uuid())
        .bind(r.id)
        .execute(&state.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(BusError::not_found("Webhook not found").into());
    }
    state.changed(r.org_id).await;
    Ok(Empty {})
}

/// A new secret; the old one keeps signing (beside the new) for 24 hours.
pub async fn rotate(state: &State, r: WebhookRef) -> db::Result<CreatedWebhook> {
    let secret = new_secret();
    let row: Option<SubRow> = sqlx::query_as(&format!(
        "UPDATE subscriptions SET previous_secret = secret, previous_until = $4, \
            secret = $3, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(r.org_id.as_uuid())
    .bind(r.id)
    .bind(Secret::new(secret.clone()))
    .bind(Utc::now() + ROTATION_OVERLAP)
    .fetch_optional(&state.pool)
    .await?;
    let row = row.ok_or_else(|| BusError::not_found("Webhook not found"))?;
    state.changed(r.org_id).await;
    Ok(CreatedWebhook {
        webhook: row.view(),
        secret,
    })
}
