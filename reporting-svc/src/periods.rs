//! Closed months: once attendance-svc closes a month (`period.closed`), this service freezes the
//! month's summary (JSON rows and CSV, `closed_at` in every row) and serves that snapshot, byte
//! for byte, until the month is reopened, whatever changes afterwards (employees renamed, rules
//! changed).
//!
//! The snapshot is taken only when the projection holds what attendance-svc held at the close:
//! the event carries digests of the month's sessions (`id:revision`) and leave ids, and this
//! side computes the same over its projection. While they differ, events before the close are
//! still on their way (another replica's batch, a redelivery): the event is asked for again a
//! moment later, and never frozen on a projection that differs ([`wait`]).

use std::time::Duration;

use bytes::Bytes;
use chrono::{Datelike, NaiveDate};
use clokio_bus::ids::OrgId;
use clokio_bus::ops::{PeriodEvent, period_name};
use uuid::Uuid;

use crate::summary::{self, Month};
use crate::{State, db};

/// Deliveries of a close that waits at [`SHORT_WAIT`] (about a minute) before the waits grow.
const PATIENT: i64 = 240;
const SHORT_WAIT: Duration = Duration::from_millis(250);
const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// How long a close that waits for the projection is left before it is delivered again: a
/// quarter second for a minute, then longer and longer up to half a minute. It is never frozen
/// on a projection that differs: a snapshot is for ever, and a wrong one would be served byte
/// for byte until the month is reopened.
pub fn wait(delivered: i64) -> Duration {
    if delivered < PATIENT {
        return SHORT_WAIT;
    }
    let doublings = u32::try_from((delivered - PATIENT) / 10)
        .unwrap_or(u32::MAX)
        .min(7);
    (SHORT_WAIT * 2u32.pow(doublings)).min(LONGEST_WAIT)
}

/// The frozen summary of a closed month (`csv`: the CSV, else the JSON rows), if there is one.
pub async fn frozen(
    state: &State,
    org: OrgId,
    month: NaiveDate,
    csv: bool,
) -> db::Result<Option<Bytes>> {
    let sql = if csv {
        "SELECT csv FROM closed_months WHERE org_id = $1 AND month = $2 AND NOT reopened \
            AND csv IS NOT NULL"
    } else {
        "SELECT json FROM closed_months WHERE org_id = $1 AND month = $2 AND NOT reopened \
            AND json IS NOT NULL"
    };
    let bytes: Option<Vec<u8>> = sqlx::query_scalar(sql)
        .bind(org.as_uuid())
        .bind(month)
        .fetch_optional(&state.pool)
        .await?;
    Ok(bytes.map(Bytes::from))
}

/// Applies a period event; false when a close must wait for the projection to catch up.
pub async fn apply(
    state: &State,
    org: Uuid,
    closed: bool,
    event: &PeriodEvent,
    delivered: i64,
) -> db::Result<bool> {
    if !closed {
        sqlx::query(
            "INSERT INTO closed_months (org_id, month, generation, reopened, closed_at) \
             VALUES ($1, $2, $3, true, $4) \
             ON CONFLICT (org_id, month) DO UPDATE SET generation = EXCLUDED.generation, \
                reopened = true, json = NULL, csv = NULL \
             WHERE closed_months.generation <= EXCLUDED.generation",
        )
        .bind(org)
        .bind(event.month)
        .bind(event.generation)
        .bind(event.closed_at)
        .execute(&state.pool)
        .await?;
        return Ok(true);
    }
    let held: Option<i64> =
        sqlx::query_scalar("SELECT generation FROM closed_months WHERE org_id = $1 AND month = $2")
            .bind(org)
            .bind(event.month)
            .fetch_optional(&state.pool)
            .await?;
    if held.is_some_and(|g| g >= event.generation) {
        return Ok(true);
    }
    let month = Month::new(event.month.year(), event.month.month())?;
    let (sessions, leaves): (String, String) = sqlx::query_as(
        "SELECT \
            (SELECT md5(coalesce(string_agg(attendance_id || ':' || revision, ',' \
                ORDER BY attendance_id), '')) \
             FROM sessions WHERE org_id = $1 AND work_date BETWEEN $2 AND $3 AND NOT deleted), \
            (SELECT md5(coalesce(string_agg(id::text, ',' ORDER BY id), '')) \
             FROM leaves WHERE org_id = $1 AND NOT deleted AND start_date <= $3 \
                AND end_date >= $2)",
    )
    .bind(org)
    .bind(month.first)
    .bind(month.last)
    .fetch_one(&state.pool)
    .await?;
    if sessions != event.sessions_digest || leaves != event.leaves_digest {
        // Past a minute, something is lost or late beyond the usual: say so now and then.
        if delivered >= PATIENT && (delivered - PATIENT) % 100 == 0 {
            tracing::error!(%org, period = %period_name(event.month), delivered,
                "closed month not frozen yet: the projection still differs from attendance-svc");
        }
        return Ok(false);
    }
    let (json, csv) = summary::freeze(state, OrgId::from_uuid(org), month, event.closed_at).await?;
    sqlx::query(
        "INSERT INTO closed_months (org_id, month, generation, closed_at, json, csv) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (org_id, month) DO UPDATE SET generation = EXCLUDED.generation, \
            reopened = false, closed_at = EXCLUDED.closed_at, json = EXCLUDED.json, \
            csv = EXCLUDED.csv \
         WHERE closed_months.generation < EXCLUDED.generation",
    )
    .bind(org)
    .bind(event.month)
    .bind(event.generation)
    .bind(event.closed_at)
    .bind(json)
    .bind(csv)
    .execute(&state.pool)
    .await?;
    tracing::info!(%org, period = %period_name(event.month), "closed month frozen");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_after_a_minute_up_to_half_a_minute() {
        assert_eq!(wait(1), SHORT_WAIT);
        assert_eq!(wait(PATIENT - 1), SHORT_WAIT);
        assert_eq!(wait(PATIENT), SHORT_WAIT);
        assert_eq!(wait(PATIENT + 10), Duration::from_millis(500));
        assert_eq!(wait(PATIENT + 30), Duration::from_secs(2));
        assert_eq!(wait(PATIENT + 70), LONGEST_WAIT);
        assert_eq!(wait(i64::MAX), LONGEST_WAIT);
    }
}
