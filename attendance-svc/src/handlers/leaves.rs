//! Leave: per employee, a date range (org-local dates, inclusive) and a type. One employee's
//! leaves never overlap. Changes are published as `leave.created` / `leave.deleted` for the
//! reporting projection.

use bytes::Bytes;
use chrono::{DateTime, Months, NaiveDate, Utc};
use clokio_bus::BusError;
use clokio_bus::events::kind;
use clokio_bus::ids::{EmployeeId, LeaveId};
use clokio_bus::ops::{
    Employee, Leave, LeaveCreate, LeaveCreateOp, LeaveDelete, LeaveDeleteOp, LeaveList, LeaveType,
    MAX_LEAVE_DAYS, Operation,
};
use clokio_bus::server::to_bytes;

use crate::idempotency::Idempotency;
use crate::{State, db, events};
use clokio_runtime::directory::Staff;

#[derive(sqlx::FromRow)]
struct LeaveRow {
    id: i64,
    employee_id: i64,
    start_date: NaiveDate,
    end_date: NaiveDate,
    #[sqlx(rename = "type")]
    kind: String,
    created_at: DateTime<Utc>,
}

impl LeaveRow {
    fn into_leave(self, employee: &Employee) -> db::Result<Leave> {
        Ok(Leave {
            id: LeaveId::new(self.id),
            employee_id: EmployeeId::new(self.employee_id),
            employee_code: employee.employee_code.clone(),
            employee_name: employee.name.clone(),
            start_date: self.start_date,
            end_date: self.end_date,
            kind: self.kind.parse::<LeaveType>().map_err(|_| {
                tracing::error!(leave = self.id, "stored leave type does not parse");
                BusError::internal()
            })?,
            created_at: self.created_at,
        })
    }
}

const COLUMNS: &str = "id, employee_id, start_date, end_date, type, created_at";

pub async fn create(state: &State, req: LeaveCreate) -> db::Result<Bytes> {
    if req.end_date < req.start_date {
        return Err(BusError::invalid(
            "The end_date field must be a date after or equal to start_date",
        )
        .into());
    }
    if (req.end_date - req.start_date).num_days() + 1 > MAX_LEAVE_DAYS {
        return Err(BusError::invalid(format!(
            "A leave may not be longer than {MAX_LEAVE_DAYS} days"
        ))
        .into());
    }
    let same = (&req.employee_code, req.start_date, req.end_date, req.kind);
    let idem = Idempotency::new(
        req.org_id,
        req.idempotency_key.as_deref(),
        LeaveCreateOp::NAME,
        &same,
    );
    let employee = state
        .directory
        .employee(req.org_id, &req.employee_code)
        .await?;
    let mut tx = state.pool.begin().await?;
    if let Some(answer) = idem.claim(&mut tx).await? {
        return answer.map_err(Into::into);
    }
    let result: db::Result<_> = async {
        let id = employee.employee_id.get();
        crate::periods::share_lock(&mut tx, req.org_id).await?;
        sqlx::query(
            "INSERT INTO employee_state (org_id, employee_id) VALUES ($1, $2) \
             ON CONFLICT (org_id, employee_id) DO UPDATE SET org_id = EXCLUDED.org_id",
        )
        .bind(req.org_id.as_uuid())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        crate::periods::check_open(
            &mut tx,
            req.org_id,
            &crate::periods::months_between(req.start_date, req.end_date),
        )
        .await?;
        let overlap: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM leaves WHERE org_id = $1 AND employee_id = $2 \
             AND start_date <= $4 AND end_date >= $3 LIMIT 1",
        )
        .bind(req.org_id.as_uuid())
        .bind(id)
        .bind(req.start_date)
        .bind(req.end_date)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((other,)) = overlap {
            return Err(BusError::conflict(format!(
                "The employee already has leave on these dates (leave {other})"
            ))
            .into());
        }
        let row: LeaveRow = sqlx::query_as(&format!(
            "INSERT INTO leaves (org_id, employee_id, start_date, end_date, type) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        ))
        .bind(req.org_id.as_uuid())
        .bind(id)
        .bind(req.start_date)
        .bind(req.end_date)
        .bind(req.kind.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let leave = row.into_leave(&employee)?;
        events::enqueue(
            state,
            &mut tx,
            req.org_id,
            kind::LEAVE,
            kind::CREATED,
            leave.created_at,
            &leave,
        )
        .await?;
        Ok(to_bytes(&leave)?)
    }
    .await;
    let changed = result.is_ok();
    let answer = idem.settle(state, tx, result).await;
    if changed && answer.is_ok() {
        state.kick.kick();
    }
    answer
}

pub async fn list(state: &State, req: LeaveList) -> db::Result<Bytes> {
    let first = NaiveDate::from_ymd_opt(req.year, req.month, 1)
        .ok_or_else(|| BusError::invalid("The month field must be between 1 and 12"))?;
    let last = first
        .checked_add_months(Months::new(1))
        .and_then(|d| d.pred_opt())
        .ok_or_else(|| BusError::invalid("The year field is out of range"))?;
    let staff = state.directory.staff(req.org_id).await?;
    let rows: Vec<LeaveRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM leaves WHERE org_id = $1 AND start_date <= $3 AND end_date >= $2 \
         ORDER BY start_date, id"
    ))
    .bind(req.org_id.as_uuid())
    .bind(first)
    .bind(last)
    .fetch_all(&state.pool)
    .await?;
    let leaves = rows
        .into_iter()
        .filter_map(|r| {
            let employee = staff.by_id.get(&EmployeeId::new(r.employee_id))?.clone();
            Some(r.into_leave(&employee))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(to_bytes(&leaves)?)
}

pub async fn delete(state: &State, req: LeaveDelete) -> db::Result<Bytes> {
    let idem = Idempotency::new(
        req.org_id,
        req.idempotency_key.as_deref(),
        LeaveDeleteOp::NAME,
        &req.id,
    );
    let staff = state.directory.staff(req.org_id).await?;
    let mut tx = state.pool.begin().await?;
    if let Some(answer) = idem.claim(&mut tx).await? {
        return answer.map_err(Into::into);
    }
    let result: db::Result<_> = async {
        let row: Option<LeaveRow> = sqlx::query_as(&format!(
            "DELETE FROM leaves WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}"
        ))
        .bind(req.org_id.as_uuid())
        .bind(req.id.get())
        .fetch_optional(&mut *tx)
        .await?;
        let row = row.ok_or_else(|| BusError::not_found("Leave not found"))?;
        crate::handlers::corrections::lock_employee(&mut tx, req.org_id, row.employee_id).await?;
        crate::periods::check_open(
            &mut tx,
            req.org_id,
            &crate::periods::months_between(row.start_date, row.end_date),
        )
        .await?;
        let employee = employee_of(&staff, row.employee_id)?;
        let leave = row.into_leave(&employee)?;
        events::enqueue(
            state,
            &mut tx,
            req.org_id,
            kind::LEAVE,
            kind::DELETED,
            Utc::now(),
            &leave,
        )
        .await?;
        Ok(to_bytes(&leave)?)
    }
    .await;
    let changed = result.is_ok();
    let answer = idem.settle(state, tx, result).await;
    if changed && answer.is_ok() {
        state.kick.kick();
    }
    answer
}

fn employee_of(staff: &Staff, id: i64) -> db::Result<std::sync::Arc<Employee>> {
    staff
        .by_id
        .get(&EmployeeId::new(id))
        .cloned()
        .ok_or_else(|| {
            tracing::error!(employee_id = id, "leave of an unknown employee");
            BusError::internal()
        })
        .map_err(Into::into)
}
