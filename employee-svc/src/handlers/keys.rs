//! API keys: the secret is generated here, returned once, and stored only as its SHA-256 hex and
//! a hint. Revocation goes out as an event so every gateway replica drops its cached entry.

use chrono::{DateTime, Utc};
use clokio_bus::BusError;
use clokio_bus::events::{ApiKeyRevoked, Event, kind};
use clokio_bus::ids::{ApiKeyId, EventId, OrgId};
use clokio_bus::key::{ApiKey, KeyHash};
use clokio_bus::ops::{
    ApiKeyInfo, AuthInfo, CreatedApiKey, Empty, KeyCreate, KeyRevoke, KeyTouch, KeyVerify,
};
use clokio_bus::scope::{Scope, Scopes};
use clokio_bus::types::Plan;
use clokio_runtime::outbox;
use uuid::Uuid;

use crate::{State, db};

const KEY_COLUMNS: &str =
    "id, name, hint, scopes, expires_at, created_at, last_used_at, revoked_at";

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: Uuid,
    name: String,
    hint: String,
    scopes: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<KeyRow> for ApiKeyInfo {
    fn from(r: KeyRow) -> Self {
        ApiKeyInfo {
            id: ApiKeyId::from_uuid(r.id),
            name: r.name,
            hint: r.hint,
            scopes: stored_scopes(&r.scopes),
            expires_at: r.expires_at,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// Scopes as stored; a name this version does not know (written by a newer one) is left out.
fn stored_scopes(names: &[String]) -> Scopes {
    Scopes::parse(
        names
            .iter()
            .map(String::as_str)
            .filter(|n| Scope::parse(n).is_some()),
    )
    .unwrap_or(Scopes::of(&[]))
}

/// Keys an organization may hold at once (neither revoked nor expired). A key with the keys scope
/// can mint more; the cap bounds what a leaked one can leave behind (each key has its own rate
/// limit).
pub const MAX_LIVE_KEYS: i64 = 50;

pub async fn create(state: &State, req: KeyCreate) -> db::Result<CreatedApiKey> {
    let name = super::name_field("name", &req.name, 100)?;
    if req.scopes.is_empty() {
        return Err(BusError::invalid("The scopes field must name at least one scope").into());
    }
    if req.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(BusError::invalid("The expires_at field must be a time in the future").into());
    }
    let key = ApiKey::generate();
    let id = ApiKeyId::new_random();
    // The count and the insert under the org's lock, so two creations at once cannot both see
    // room for one.
    let mut tx = state.pool.begin().await?;
    clokio_runtime::db::lock_org(&mut tx, "clokio.api_keys", req.org_id.as_uuid()).await?;
    let (live,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM api_keys WHERE org_id = $1 AND revoked_at IS NULL \
           AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(req.org_id.as_uuid())
    .fetch_one(&mut *tx)
    .await?;
    if live >= MAX_LIVE_KEYS {
        return Err(BusError::invalid(format!(
            "An organization may have at most {MAX_LIVE_KEYS} active API keys; revoke one first"
        ))
        .into());
    }
    let inserted: Option<(DateTime<Utc>,)> = sqlx::query_as(
        "INSERT INTO api_keys (id, org_id, name, key_hash, hint, scopes, expires_at) \
         SELECT $1, id, $3, $4, $5, $6, $7 FROM organizations WHERE id = $2 RETURNING created_at",
    )
    .bind(id.as_uuid())
    .bind(req.org_id.as_uuid())
    .bind(&name)
    .bind(key.hash().as_str())
    .bind(key.hint())
    .bind(req.scopes.names())
    .bind(req.expires_at)
    .fetch_optional(&mut *tx)
    .await?;
    let (created_at,) = inserted.ok_or_else(|| BusError::not_found("Organization not found"))?;
    tx.commit().await?;
    Ok(CreatedApiKey {
        id,
        org_id: req.org_id,
        name,
        key: key.expose().to_owned(),
        hint: key.hint(),
        scopes: req.scopes,
        expires_at: req.expires_at,
        created_at,
    })
}

pub async fn list(state: &State, org_id: OrgId) -> db::Result<Vec<ApiKeyInfo>> {
    let rows: Vec<KeyRow> = sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY created_at, id"
    ))
    .bind(org_id.as_uuid())
    .fetch_all(&state.pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn revoke(state: &State, req: KeyRevoke) -> db::Result<ApiKeyInfo> {
    let mut tx = state.pool.begin().await?;
    let current: Option<(Option<DateTime<Utc>>, String)> = sqlx::query_as(
        "SELECT revoked_at, key_hash FROM api_keys WHERE id = $1 AND org_id = $2 FOR UPDATE",
    )
    .bind(req.key_id.as_uuid())
    .bind(req.org_id.as_uuid())
    .fetch_optional(&mut *tx)
    .await?;
    let (revoked_at, key_hash) = current.ok_or_else(|| BusError::not_found("API key not found"))?;
    if revoked_at.is_some() {
        return Err(BusError::conflict("API key is already revoked").into());
    }
    let row: KeyRow = sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 RETURNING {KEY_COLUMNS}"
    ))
    .bind(req.key_id.as_uuid())
    .fetch_one(&mut *tx)
    .await?;
    let key_hash = KeyHash::try_from(key_hash).map_err(|_| BusError::internal())?;
    let event = Event {
        id: EventId::new_random(),
        org_id: req.org_id,
        occurred_at: Utc::now(),
        kind: format!("{}.{}", kind::APIKEY, kind::REVOKED),
        data: ApiKeyRevoked {
            key_id: req.key_id,
            key_hash,
        },
    };
    let subject = state
        .subjects
        .event(kind::APIKEY, req.org_id, kind::REVOKED);
    outbox::enqueue(&mut tx, &subject, &event).await?;
    tx.commit().await?;
    state.kick.kick();
    Ok(row.into())
}

pub async fn verify(state: &State, req: KeyVerify) -> db::Result<AuthInfo> {
    #[allow(clippy::type_complexity)]
    let row: Option<(
        Uuid,
        Uuid,
        String,
        Option<i32>,
        Vec<String>,
        Option<DateTime<Utc>>,
        String,
    )> = sqlx::query_as(
        "SELECT k.id, k.org_id, o.plan, o.rate_limit_per_minute, k.scopes, k.expires_at, k.name \
             FROM api_keys k JOIN organizations o ON o.id = k.org_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL \
             AND (k.expires_at IS NULL OR k.expires_at > now())",
    )
    .bind(req.key_hash.as_str())
    .fetch_optional(&state.pool)
    .await?;
    let (key_id, org_id, plan, limit, scopes, expires_at, name) =
        row.ok_or_else(|| BusError::not_found("API key not found"))?;
    Ok(AuthInfo {
        key_id: ApiKeyId::from_uuid(key_id),
        org_id: OrgId::from_uuid(org_id),
        plan: plan.parse().unwrap_or(Plan::Basic),
        rate_limit_per_minute: limit.map(|n| n as u32),
        scopes: stored_scopes(&scopes),
        expires_at,
        name,
    })
}

/// Applies a batch of `last_used_at` updates in one statement; never moves a time backwards, and
/// writes a key's row at most once a minute however many gateways report its use.
pub async fn touch(state: &State, req: KeyTouch) -> db::Result<Empty> {
    if req.uses.is_empty() {
        return Ok(Empty {});
    }
    let ids: Vec<Uuid> = req.uses.iter().map(|u| u.key_id.as_uuid()).collect();
    let ats: Vec<DateTime<Utc>> = req.uses.iter().map(|u| u.at).collect();
    sqlx::query(
        "UPDATE api_keys k SET last_used_at = GREATEST(k.last_used_at, u.at) \
         FROM (SELECT id, max(at) AS at FROM unnest($1::uuid[], $2::timestamptz[]) AS t(id, at) GROUP BY id) u \
         WHERE k.id = u.id \
         AND (k.last_used_at IS NULL OR k.last_used_at <= u.at - interval '1 minute')",
    )
    .bind(ids)
    .bind(ats)
    .execute(&state.pool)
    .await?;
    Ok(Empty {})
}
