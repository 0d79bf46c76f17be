//! The events attendance-svc publishes, written to its outbox in the transaction of the change:
//! `<prefix>.events.attendance.<org>.<clock-in|clock-out|break-start|break-end>` and
//! `<prefix>.events.leave.<org>.<created|deleted>`.

use chrono::{DateTime, NaiveDate, Utc};
use clokio_bus::events::{Event, kind};
use clokio_bus::ids::{AttendanceId, EventId, LocationId, OrgId};
use clokio_bus::ops::{AttendanceEvent, Employee};
use clokio_runtime::outbox;
use serde::Serialize;
use sqlx::{Postgres, Transaction};

use crate::{State, db};

/// What every event of one session says.
pub struct Clocked<'a> {
    pub attendance_id: AttendanceId,
    pub employee: &'a Employee,
    pub location_id: LocationId,
    pub location: &'a str,
    pub work_date: NaiveDate,
    pub clock_in: DateTime<Utc>,
    /// The session's revision after the change the event tells.
    pub revision: i64,
}

impl Clocked<'_> {
    pub fn event(&self, event: &str, at: DateTime<Utc>) -> AttendanceEvent {
        AttendanceEvent {
            event: event.to_owned(),
            attendance_id: self.attendance_id,
            employee_id: self.employee.employee_id,
            employee_code: self.employee.employee_code.clone(),
            employee_name: self.employee.name.clone(),
            department: self.employee.department.clone(),
            location_id: self.location_id,
            location_name: self.location.to_owned(),
            timestamp: at,
            work_date: self.work_date,
            clock_in: self.clock_in,
            clock_out: None,
            total_hours: None,
            break_minutes: None,
            break_seconds: None,
            imported: false,
            revision: Some(self.revision),
            auto_closed: false,
            deleted: false,
            correction: None,
        }
    }
}

impl Clocked<'_> {
    /// Adds the session's `event` (e.g. `clock-in`) at `at` to `rows`.
    pub fn emit(
        &self,
        state: &State,
        rows: &mut outbox::Rows,
        org: OrgId,
        event: &str,
        at: DateTime<Utc>,
    ) -> db::Result<()> {
        emit(state, rows, org, event, at, self.event(event, at))
    }
}

/// Adds an attendance event (`event` is its kind, e.g. `clock-in`) to `rows`, for the outbox.
pub fn emit(
    state: &State,
    rows: &mut outbox::Rows,
    org: OrgId,
    event: &str,
    at: DateTime<Utc>,
    data: AttendanceEvent,
) -> db::Result<()> {
    let (subject, e) = wrap(state, org, kind::ATTENDANCE, event, at, &data);
    Ok(rows.push(subject, &e)?)
}

/// The subject and envelope of an event of this service.
fn wrap<'a, T>(
    state: &State,
    org: OrgId,
    domain: &str,
    event: &str,
    at: DateTime<Utc>,
    data: &'a T,
) -> (String, Event<&'a T>) {
    let e = Event {
        id: EventId::new_random(),
        org_id: org,
        occurred_at: at,
        kind: format!("{domain}.{event}"),
        data,
    };
    (state.subjects.event(domain, org, event), e)
}

/// Writes any event of this service to the outbox.
pub async fn enqueue<T: Serialize>(
    state: &State,
    tx: &mut Transaction<'_, Postgres>,
    org: OrgId,
    domain: &str,
    event: &str,
    at: DateTime<Utc>,
    data: &T,
) -> db::Result<()> {
    let (subject, e) = wrap(state, org, domain, event, at, data);
    Ok(outbox::enqueue(tx, &subject, &e).await?)
}
