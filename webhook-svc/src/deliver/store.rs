//! The statements of the common path, batched across concurrent attempts: the delivery to attempt
//! and the record of a success.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use clokio_bus::BusError;
use clokio_bus::ids::OrgId;
use clokio_runtime::cache::OrgCache;
use sqlx::PgPool;
use uuid::Uuid;

use crate::ActiveSubs;
use crate::batch::Batcher;
use crate::subs::{SubRow, sub_columns};

/// A delivery as an attempt needs it, with its subscription.
#[derive(sqlx::FromRow)]
pub(super) struct Due {
    pub(super) body: Vec<u8>,
    pub(super) status: String,
    /// Attempts made on the schedule (manual retries do not move it).
    pub(super) scheduled_attempts: i32,
    /// Times the overdue sweep queued it again: the only scheduled copy attempted is the last.
    pub(super) requeues: i32,
    /// When its next scheduled attempt is due (none before the first).
    pub(super) next_attempt_at: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    pub(super) sub: SubRow,
    /// Set when the delivery is attempted before it is stored: it is stored with its attempt.
    #[sqlx(skip)]
    pub(super) unstored: Option<Unstored>,
}

/// What storing a delivery needs beyond its subscription and body: a first attempt made at intake
/// is sent first and stored with its record, so a success is one insert rather than an insert
/// and an update (which touches every index of `deliveries`: `status` is in a partial index's
/// predicate). Its event is acknowledged only once that record is written, so a replica killed
/// meanwhile leaves the event to be taken again; it is then stored before it is attempted.
#[derive(Clone)]
pub(super) struct Unstored {
    pub(super) event_id: Uuid,
    pub(super) event_type: String,
}

impl Due {
    /// A delivery of `sub` whose first attempt is made before it is stored.
    pub(super) fn unstored(sub: SubRow, body: Vec<u8>, event_id: Uuid, event_type: String) -> Self {
        Self {
            body,
            status: "pending".to_owned(),
            scheduled_attempts: 0,
            requeues: 0,
            next_attempt_at: None,
            sub,
            unstored: Some(Unstored {
                event_id,
                event_type,
            }),
        }
    }

    /// Stores the delivery `id` as waiting, if it was attempted before it was stored (the pending
    /// row the intake would have stored), in a transaction or on its own. Nothing happens to a
    /// row stored already.
    pub(super) async fn store(
        &self,
        db: impl sqlx::PgExecutor<'_>,
        id: Uuid,
    ) -> Result<(), sqlx::Error> {
        let Some(unstored) = &self.unstored else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO deliveries (id, org_id, subscription_id, event_id, event_type, body) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (subscription_id, event_id) DO NOTHING",
        )
        .bind(id)
        .bind(self.sub.org_id)
        .bind(self.sub.id)
        .bind(unstored.event_id)
        .bind(&unstored.event_type)
        .bind(&self.body)
        .execute(db)
        .await?;
        Ok(())
    }

    /// The row a success stores, if the delivery was attempted before it was stored.
    pub(super) fn new_delivery(&self) -> Option<NewDelivery> {
        let unstored = self.unstored.as_ref()?;
        Some(NewDelivery {
            org_id: self.sub.org_id,
            subscription_id: self.sub.id,
            event_id: unstored.event_id,
            event_type: unstored.event_type.clone(),
            body: self.body.clone(),
        })
    }
}

/// A delivery's id, from its subscription and its event: the same each time the event is taken,
/// so one attempted before it was stored is stored under the id its request carried
/// (`webhook-id`).
pub(super) fn delivery_id(subscription: Uuid, event: Uuid) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(subscription.as_bytes())
        .chain_update(event.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// A successful attempt of a healthy subscription: the common case, recorded in batches.
pub(crate) struct Success {
    pub(super) delivery: Uuid,
    pub(super) at: chrono::DateTime<Utc>,
    pub(super) manual: bool,
    pub(super) status: i32,
    pub(super) latency_ms: i32,
    pub(super) body: String,
    /// The delivery's row, when it was attempted before it was stored: inserted as succeeded.
    pub(super) unstored: Option<NewDelivery>,
}

/// A delivery stored with its first attempt's success.
pub(crate) struct NewDelivery {
    pub(super) org_id: Uuid,
    pub(super) subscription_id: Uuid,
    pub(super) event_id: Uuid,
    pub(super) event_type: String,
    pub(super) body: Vec<u8>,
}

/// The statements of the common path, batched across concurrent attempts ([`Batcher`]): the
/// delivery to attempt, and the record of a success (each attempt's message is acknowledged only
/// after its batch committed).
#[derive(Clone)]
pub(crate) struct Batched {
    due: Batcher<Uuid, Result<Option<Arc<Due>>, BusError>>,
    success: Batcher<Success, Result<(), BusError>>,
}

/// The most rows one batched statement reads or writes.
const STATEMENT_BATCH: usize = 512;

impl Batched {
    /// `subs`: the cache of active subscriptions, told when a success clears a subscription's
    /// failure.
    pub(crate) fn start(pool: PgPool, subs: Arc<OrgCache<(), ActiveSubs>>) -> Self {
        let reads = pool.clone();
        Self {
            due: Batcher::start(STATEMENT_BATCH, move |ids| {
                let pool = reads.clone();
                async move {
                    match load_due(&pool, &ids).await {
                        Ok(found) => hand_out(&ids, found)
                            .into_iter()
                            .map(Option::transpose)
                            .collect(),
                        Err(err) => {
                            let err = clokio_runtime::db::bus_error(err);
                            ids.iter().map(|_| Err(err.clone())).collect()
                        }
                    }
                }
            }),
            success: Batcher::start(STATEMENT_BATCH, move |batch: Vec<Success>| {
                let (pool, subs) = (pool.clone(), subs.clone());
                async move {
                    let n = batch.len();
                    let written = write_successes(&pool, batch).await;
                    if let Ok(recovered) = &written {
                        for org in recovered {
                            subs.invalidate(OrgId::from_uuid(*org)).await;
                        }
                    }
                    vec![written.map(drop).map_err(clokio_runtime::db::bus_error); n]
                }
            }),
        }
    }

    pub(super) async fn due(&self, id: Uuid) -> Result<Option<Arc<Due>>, BusError> {
        self.due
            .call(id)
            .await
            .unwrap_or(Err(BusError::unavailable()))
    }

    pub(super) async fn record(&self, success: Success) -> Result<(), BusError> {
        self.success
            .call(success)
            .await
            .unwrap_or(Err(BusError::unavailable()))
    }
}

static DUE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT d.id AS delivery_id, d.body, d.status, d.scheduled_attempts, d.requeues, \
            d.next_attempt_at, {} \
         FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id \
         WHERE d.id = ANY($1)",
        sub_columns()
    )
});

/// The batch's rows by delivery id. A row that does not decode (its webhook's sealed secret does
/// not open with the key, say) is an error for that delivery alone: the rest of the batch, of
/// every org, goes on.
async fn load_due(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Result<Arc<Due>, BusError>>, sqlx::Error> {
    use sqlx::{FromRow, Row};
    let rows = sqlx::query(&DUE).bind(ids).fetch_all(pool).await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        let id: Uuid = row.try_get("delivery_id")?;
        let due = Due::from_row(row).map(Arc::new).map_err(|err| {
            tracing::error!(%err, delivery = %id, "a delivery cannot be read; it waits");
            BusError::internal()
        });
        found.insert(id, due);
    }
    Ok(found)
}

/// Each asker's row, in the order asked: an id asked twice in one batch gets its row twice (not
/// `None`, which reads as "deleted with its subscription").
fn hand_out<V: Clone>(ids: &[Uuid], found: HashMap<Uuid, V>) -> Vec<Option<V>> {
    ids.iter().map(|id| found.get(id).cloned()).collect()
}

/// Records the batch's successes: the orgs of the subscriptions whose failure they ended.
async fn write_successes(pool: &PgPool, batch: Vec<Success>) -> Result<Vec<Uuid>, sqlx::Error> {
    let n = batch.len();
    let (mut ids, mut ats, mut triggers) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut codes, mut latencies, mut bodies) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut new = NewDeliveries::default();
    for s in batch {
        if let Some(d) = s.unstored {
            new.ids.push(s.delivery);
            new.orgs.push(d.org_id);
            new.subs.push(d.subscription_id);
            new.events.push(d.event_id);
            new.types.push(d.event_type);
            new.bodies.push(d.body);
        }
        ids.push(s.delivery);
        ats.push(s.at);
        triggers.push(if s.manual { "manual" } else { "scheduled" });
        codes.push(s.status);
        latencies.push(s.latency_ms);
        bodies.push(s.body);
    }
    // A delivery attempted before it was stored (`n`) is inserted as succeeded, unless its
    // webhook was deleted during the attempt: its subscription is locked against a delete first,
    // and one deleted already is skipped (its row would break the foreign key and fail every
    // other delivery recorded with it). One stored meanwhile (its event taken twice) is updated
    // as any other.
    //
    // A stored delivery deleted meanwhile (its webhook was, during the attempt) is updated nowhere
    // and gets no attempt row, for the same reason. The update locks the rows it writes first, so
    // a delete either came before it (the row is skipped) or waits for it. The update cannot see
    // the rows this statement inserts.
    //
    // A success ends its subscription's failure. The attempt was sent as to a healthy one, but
    // one attempted at intake was judged so on the cache, which may not have heard yet of a
    // failure that began a moment earlier. A subscription locked by another transaction is left
    // to it: a delete would wait for these deliveries while this waited for it.
    let recovered: Vec<(Uuid,)> = sqlx::query_as(
        "WITH r AS ( \
            SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::int[], $5::int[], $6::text[]) \
                AS r(id, at, trigger, status_code, latency_ms, body)), \
         n AS ( \
            SELECT * FROM unnest($7::uuid[], $8::uuid[], $9::uuid[], $10::uuid[], $11::text[], $12::bytea[]) \
                AS n(id, org_id, sub, event_id, event_type, body)), \
         live AS (SELECT id FROM subscriptions WHERE id IN (SELECT sub FROM n) FOR KEY SHARE), \
         i AS ( \
            INSERT INTO deliveries (id, org_id, subscription_id, event_id, event_type, body, status, \
                attempt_count, scheduled_attempts) \
            SELECT n.id, n.org_id, n.sub, n.event_id, n.event_type, n.body, 'succeeded', 1, \
                (r.trigger = 'scheduled')::int \
            FROM n JOIN r ON r.id = n.id WHERE n.sub IN (SELECT id FROM live) \
            ON CONFLICT (subscription_id, event_id) DO NOTHING \
            RETURNING id, subscription_id), \
         u AS ( \
            UPDATE deliveries d SET attempt_count = d.attempt_count + 1, \
                scheduled_attempts = d.scheduled_attempts + (r.trigger = 'scheduled')::int, \
                status = 'succeeded', next_attempt_at = NULL \
            FROM r WHERE d.id = r.id \
            RETURNING d.id, d.subscription_id), \
         w AS (SELECT id, subscription_id FROM u UNION ALL SELECT id, subscription_id FROM i), \
         a AS ( \
            INSERT INTO attempts (delivery_id, at, trigger, status_code, latency_ms, response_body) \
            SELECT r.id, r.at, r.trigger, r.status_code, r.latency_ms, r.body \
            FROM r WHERE r.id IN (SELECT id FROM w)) \
         UPDATE subscriptions s SET failing_since = NULL \
         WHERE s.id IN (SELECT id FROM subscriptions \
            WHERE id IN (SELECT subscription_id FROM w) AND failing_since IS NOT NULL \
            FOR UPDATE SKIP LOCKED) \
         RETURNING s.org_id",
    )
    .bind(ids)
    .bind(ats)
    .bind(triggers)
    .bind(codes)
    .bind(latencies)
    .bind(bodies)
    .bind(new.ids)
    .bind(new.orgs)
    .bind(new.subs)
    .bind(new.events)
    .bind(new.types)
    .bind(new.bodies)
    .fetch_all(pool)
    .await?;
    let mut orgs: Vec<Uuid> = recovered.into_iter().map(|(org,)| org).collect();
    orgs.sort_unstable();
    orgs.dedup();
    Ok(orgs)
}

/// The columns of the deliveries a batch of successes stores.
#[derive(Default)]
struct NewDeliveries {
    ids: Vec<Uuid>,
    orgs: Vec<Uuid>,
    subs: Vec<Uuid>,
    events: Vec<Uuid>,
    types: Vec<String>,
    bodies: Vec<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_asked_twice_in_one_batch_gets_its_row_twice() {
        let (a, b, gone) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let found = HashMap::from([(a, "a"), (b, "b")]);
        assert_eq!(
            hand_out(&[a, gone, a, b], found),
            [Some("a"), None, Some("a"), Some("b")]
        );
    }
}
