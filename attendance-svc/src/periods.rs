//! Pay periods: an admin closes a month once payroll has been run; from then on, punches dated
//! in it, corrections, imports and leave changes touching it are refused (409 `The period
//! 2026-02 is closed`) until it is reopened.
//!
//! Every write that touches an employee's attendance locks the employee's state row first and
//! checks the closed months after. Closing locks every state row of the org (creating the
//! missing ones) before it records the close, so a write either committed before the close (and
//! the close sees it) or reads the closed month after it.
//!
//! The `period.closed` event carries digests of what the month held (sessions with their
//! revisions, leave ids): reporting-svc freezes the month's summary once its projection shows
//! the same, and serves that snapshot, byte for byte, until the month is reopened.

use bytes::Bytes;
use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use clokio_bus::BusError;
use clokio_bus::calendar::whole_seconds;
use clokio_bus::events::kind;
use clokio_bus::ops::{
    OrgRef, Period, PeriodChange, PeriodEvent, period_closed_message, period_name,
};
use clokio_bus::server::to_bytes;
use sqlx::PgConnection;

use crate::{State, db, events};

/// The first day of `date`'s month.
pub fn month_of(date: NaiveDate) -> NaiveDate {
    date.with_day(1).unwrap_or(date)
}

/// The first days of the months from `start`'s to `end`'s.
pub fn months_between(start: NaiveDate, end: NaiveDate) -> Vec<NaiveDate> {
    let mut months = Vec::new();
    let mut m = month_of(start);
    while m <= end && months.len() < 400 {
        months.push(m);
        match m.checked_add_months(Months::new(1)) {
            Some(next) => m = next,
            None => break,
        }
    }
    months
}

/// The org's period lock, an advisory lock on (a constant, a hash of the org id `$1`) taken
/// shared in the statement that creates an employee's state row (as a CTE the insert selects
/// from). Held until the transaction ends.
pub const SHARE_LOCK: &str =
    "SELECT pg_advisory_xact_lock_shared(1129270091, hashtext($1::text)) AS period_lock";
/// The same lock, exclusive: a close's.
const EXCLUSIVE_LOCK: &str = "SELECT pg_advisory_xact_lock(1129270091, hashtext($1::text))";

/// Takes the org's period lock shared, for the rest of the transaction: before a write's
/// transaction creates or locks state rows.
pub async fn share_lock(conn: &mut PgConnection, org: clokio_bus::ids::OrgId) -> db::Result<()> {
    sqlx::query(SHARE_LOCK)
        .bind(org.as_uuid())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Refuses a write touching any of `dates` when its month is closed.
pub async fn check_open(
    conn: &mut PgConnection,
    org: clokio_bus::ids::OrgId,
    dates: &[NaiveDate],
) -> db::Result<()> {
    let mut months: Vec<NaiveDate> = dates.iter().copied().map(month_of).collect();
    months.sort_unstable();
    months.dedup();
    let closed: Option<NaiveDate> = sqlx::query_scalar(
        "SELECT month FROM closed_periods WHERE org_id = $1 AND month = ANY($2) \
         ORDER BY month LIMIT 1",
    )
    .bind(org.as_uuid())
    .bind(&months)
    .fetch_optional(&mut *conn)
    .await?;
    match closed {
        Some(month) => Err(BusError::conflict(period_closed_message(month)).into()),
        None => Ok(()),
    }
}

fn first_day(year: i32, month: u32) -> db::Result<NaiveDate> {
    if !(1..=12).contains(&month) {
        return Err(BusError::invalid("The month field must be between 1 and 12").into());
    }
    NaiveDate::from_ymd_opt(year, month, 1)
        .ok_or_else(|| BusError::invalid("The year field is out of range"))
        .map_err(Into::into)
}

fn last_day(first: NaiveDate) -> NaiveDate {
    first
        .checked_add_months(Months::new(1))
        .and_then(|d| d.pred_opt())
        .unwrap_or(first)
}

pub async fn close(state: &State, req: PeriodChange) -> db::Result<Bytes> {
    let first = first_day(req.year, req.month)?;
    let last = last_day(first);
    let name = period_name(first);
    let (info, staff) = tokio::try_join!(
        state.directory.org(req.org_id),
        state.directory.staff(req.org_id)
    )?;
    if last >= info.org.timezone.today() {
        return Err(BusError::invalid(format!("The period {name} has not ended yet")).into());
    }
    let org = req.org_id;
    let mut ids: Vec<i64> = staff.all.iter().map(|e| e.employee_id.get()).collect();
    ids.sort_unstable();
    let mut tx = state.pool.begin().await?;
    // No state row is created until the close commits, and those being created are committed
    // first (and locked below).
    sqlx::query(EXCLUSIVE_LOCK)
        .bind(org.as_uuid())
        .execute(&mut *tx)
        .await?;
    // Every employee's state, in id order (as imports lock them), so no write of the org can
    // commit between our checks and the close.
    sqlx::query(
        "INSERT INTO employee_state (org_id, employee_id) \
         SELECT $1, e FROM unnest($2::bigint[]) AS e ORDER BY e \
         ON CONFLICT (org_id, employee_id) DO UPDATE SET org_id = EXCLUDED.org_id",
    )
    .bind(org.as_uuid())
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE employee_state SET org_id = org_id WHERE (org_id, employee_id) IN \
            (SELECT org_id, employee_id FROM employee_state WHERE org_id = $1 \
             ORDER BY employee_id FOR UPDATE)",
    )
    .bind(org.as_uuid())
    .execute(&mut *tx)
    .await?;
    let closed: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT closed_at FROM closed_periods WHERE org_id = $1 AND month = $2")
            .bind(org.as_uuid())
            .bind(first)
            .fetch_optional(&mut *tx)
            .await?;
    if closed.is_some() {
        return Err(BusError::conflict(format!("The period {name} is already closed")).into());
    }
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions WHERE org_id = $1 AND work_date BETWEEN $2 AND $3 \
            AND clock_out IS NULL",
    )
    .bind(org.as_uuid())
    .bind(first)
    .bind(last)
    .fetch_one(&mut *tx)
    .await?;
    if open > 0 {
        return Err(BusError::conflict(format!(
            "The period {name} has {open} open session{}; clock them out or correct them first",
            if open == 1 { "" } else { "s" }
        ))
        .into());
    }
    let generation: i64 = sqlx::query_scalar(
        "INSERT INTO period_generations (org_id, month, generation) VALUES ($1, $2, 1) \
         ON CONFLICT (org_id, month) DO UPDATE \
            SET generation = period_generations.generation + 1 \
         RETURNING generation",
    )
    .bind(org.as_uuid())
    .bind(first)
    .fetch_one(&mut *tx)
    .await?;
    let closed_at = whole_seconds(Utc::now());
    sqlx::query(
        "INSERT INTO closed_periods (org_id, month, generation, closed_at, closed_by) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(org.as_uuid())
    .bind(first)
    .bind(generation)
    .bind(closed_at)
    .bind(&req.actor.name)
    .execute(&mut *tx)
    .await?;
    let (sessions_digest, leaves_digest) = digests(&mut tx, org, first, last).await?;
    let event = PeriodEvent {
        month: first,
        generation,
        closed_at,
        sessions_digest,
        leaves_digest,
    };
    events::enqueue(
        state,
        &mut tx,
        org,
        kind::PERIOD,
        kind::CLOSED,
        closed_at,
        &event,
    )
    .await?;
    tx.commit().await?;
    state.kick.kick();
    tracing::info!(org = %org, period = %name, "period closed");
    to_bytes(&Period {
        period: name,
        closed: true,
        closed_at: Some(closed_at),
        closed_by: Some(req.actor.name),
    })
    .map_err(Into::into)
}

/// What the month holds: its sessions with their revisions, and the leaves overlapping it.
/// reporting-svc computes the same over its projection (`reporting-svc/src/periods.rs`).
async fn digests(
    conn: &mut PgConnection,
    org: clokio_bus::ids::OrgId,
    first: NaiveDate,
    last: NaiveDate,
) -> db::Result<(String, String)> {
    sqlx::query_as(
        "SELECT \
            (SELECT md5(coalesce(string_agg(id || ':' || revision, ',' ORDER BY id), '')) \
             FROM sessions WHERE org_id = $1 AND work_date BETWEEN $2 AND $3), \
            (SELECT md5(coalesce(string_agg(id::text, ',' ORDER BY id), '')) \
             FROM leaves WHERE org_id = $1 AND start_date <= $3 AND end_date >= $2)",
    )
    .bind(org.as_uuid())
    .bind(first)
    .bind(last)
    .fetch_one(&mut *conn)
    .await
    .map_err(Into::into)
}

pub async fn reopen(state: &State, req: PeriodChange) -> db::Result<Bytes> {
    let first = first_day(req.year, req.month)?;
    let name = period_name(first);
    let org = req.org_id;
    let mut tx = state.pool.begin().await?;
    let removed: Option<(i64, DateTime<Utc>)> = sqlx::query_as(
        "DELETE FROM closed_periods WHERE org_id = $1 AND month = $2 \
         RETURNING generation, closed_at",
    )
    .bind(org.as_uuid())
    .bind(first)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((generation, closed_at)) = removed else {
        return Err(BusError::conflict(format!("The period {name} is not closed")).into());
    };
    let event = PeriodEvent {
        month: first,
        generation,
        closed_at,
        sessions_digest: String::new(),
        leaves_digest: String::new(),
    };
    events::enqueue(
        state,
        &mut tx,
        org,
        kind::PERIOD,
        kind::REOPENED,
        Utc::now(),
        &event,
    )
    .await?;
    tx.commit().await?;
    state.kick.kick();
    tracing::info!(org = %org, period = %name, by = %req.actor.name, "period reopened");
    to_bytes(&Period {
        period: name,
        closed: false,
        closed_at: None,
        closed_by: None,
    })
    .map_err(Into::into)
}

pub async fn list(state: &State, req: OrgRef) -> db::Result<Bytes> {
    let rows: Vec<(NaiveDate, DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT month, closed_at, closed_by FROM closed_periods WHERE org_id = $1 \
         ORDER BY month DESC",
    )
    .bind(req.org_id.as_uuid())
    .fetch_all(&state.pool)
    .await?;
    let periods: Vec<Period> = rows
        .into_iter()
        .map(|(month, closed_at, closed_by)| Period {
            period: period_name(month),
            closed: true,
            closed_at: Some(closed_at),
            closed_by: Some(closed_by),
        })
        .collect();
    Ok(to_bytes(&periods)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn months() {
        assert_eq!(month_of(d("2026-02-17")), d("2026-02-01"));
        assert_eq!(
            months_between(d("2026-01-30"), d("2026-03-01")),
            vec![d("2026-01-01"), d("2026-02-01"), d("2026-03-01")]
        );
        assert_eq!(months_between(d("2026-02-03"), d("2026-02-04")).len(), 1);
        assert_eq!(last_day(d("2028-02-01")), d("2028-02-29"));
    }
}
