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
}

/// A successful attempt of a healthy subscription: the common case, recorded in batches.
pub(crate) struct Success {
    pub(super) delivery: Uuid,
    pub(super) at: chrono::DateTime<Utc>,
    pub(super) manual: bool,
    pub(super) status: i32,
    pub(super) latency_ms: i32,
    pub(super) body: String,
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
    for s in batch {
        ids.push(s.delivery);
        ats.push(s.at);
        triggers.push(if s.manual { "manual" } else { "scheduled" });
        codes.push(s.status);
        latencies.push(s.latency_ms);
        bodies.push(s.body);
    }
    // A delivery deleted meanwhile (its webhook was, during the attempt) is updated nowhere and
    // gets no attempt row: an attempt row of it would break the batch's foreign key and fail
    // every other attempt recorded with it. The update locks the rows it writes first, so a
    // delete either came before it (the row is skipped) or waits for it.
    //
    // A success ends its subscription's failure. The attempt was sent as to a healthy one, but
    // one attempted at intake was judged so on the cache, which may not have heard yet of a
    // failure that began a moment earlier. A subscription locked by another transaction is left
    // to it: a delete would wait for these deliveries while this waited for it.
    let recovered: Vec<(Uuid,)> = sqlx::query_as(
        "WITH r AS ( \
            SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::int[], $5::int[], $6::text[]) \
                AS r(id, at, trigger, status_code, latency_ms, body)), \
         u AS ( \
            UPDATE deliveries d SET attempt_count = d.attempt_count + 1, \
                scheduled_attempts = d.scheduled_attempts + (r.trigger = 'scheduled')::int, \
                status = 'succeeded', next_attempt_at = NULL \
            FROM r WHERE d.id = r.id \
            RETURNING d.id, d.subscription_id), \
         a AS ( \
            INSERT INTO attempts (delivery_id, at, trigger, status_code, latency_ms, response_body) \
            SELECT r.id, r.at, r.trigger, r.status_code, r.latency_ms, r.body \
            FROM r WHERE r.id IN (SELECT id FROM u)) \
         UPDATE subscriptions s SET failing_since = NULL \
         WHERE s.id IN (SELECT id FROM subscriptions \
            WHERE id IN (SELECT subscription_id FROM u) AND failing_since IS NOT NULL \
            FOR UPDATE SKIP LOCKED) \
         RETURNING s.org_id",
    )
    .bind(ids)
    .bind(ats)
    .bind(triggers)
    .bind(codes)
    .bind(latencies)
    .bind(bodies)
    .fetch_all(pool)
    .await?;
    let mut orgs: Vec<Uuid> = recovered.into_iter().map(|(org,)| org).collect();
    orgs.sort_unstable();
    orgs.dedup();
    Ok(orgs)
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
