//! History import: up to 5,000 closed sessions with their breaks, all or nothing. Every record is
//! checked (known employee and location, order, breaks inside the session and apart, no overlap
//! with another record or with a stored session) and a refusal names the record by its index.
//! Imported sessions emit the same events as live ones, marked `imported: true`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use clokio_bus::BusError;
use clokio_bus::events::kind;
use clokio_bus::ids::{AttendanceId, LocationId, OrgId};
use clokio_bus::ops::{
    AttendanceEvent, Employee, ImportOp, ImportRecord, ImportRequest, Imported, MAX_IMPORT_BREAKS,
    MAX_IMPORT_BREAKS_TOTAL, MAX_IMPORT_RECORDS, Operation,
};
use clokio_bus::server::to_bytes;
use sqlx::{Postgres, Transaction};

use crate::events::{self, Clocked};
use crate::idempotency::Idempotency;
use crate::{State, db};
use clokio_bus::calendar::{hours, minutes, whole_seconds};
use clokio_runtime::directory::OrgInfo;

/// Events written to the outbox per statement: an import of 5,000 records makes 20,000 or more,
/// and one statement for all of them held their payloads twice more while encoding.
const OUTBOX_CHUNK: usize = 1000;

/// The longest session an import may carry.
const MAX_SESSION: Duration = Duration::hours(48);

/// A record that passed its own checks.
pub(crate) struct Checked<'a> {
    pub employee: Arc<Employee>,
    pub location_id: LocationId,
    pub location: String,
    pub clock_in: DateTime<Utc>,
    pub clock_out: DateTime<Utc>,
    pub breaks: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    pub record: &'a ImportRecord,
}

pub async fn import(state: &State, req: ImportRequest) -> db::Result<Bytes> {
    if req.records.is_empty() {
        return Err(BusError::invalid("The records field must contain at least 1 record").into());
    }
    if req.records.len() > MAX_IMPORT_RECORDS {
        return Err(BusError::invalid(format!(
            "The records field must not have more than {MAX_IMPORT_RECORDS} records"
        ))
        .into());
    }
    let breaks: usize = req.records.iter().map(|r| r.breaks.len()).sum();
    if breaks > MAX_IMPORT_BREAKS_TOTAL {
        return Err(BusError::invalid(format!(
            "An import may not carry more than {MAX_IMPORT_BREAKS_TOTAL} breaks in all"
        ))
        .into());
    }
    let idem = Idempotency::new(
        req.org_id,
        req.idempotency_key.as_deref(),
        ImportOp::NAME,
        &req.records,
    );
    // employee-svc's data first: no connection or key lock is held while NATS answers.
    let (info, staff) = tokio::try_join!(
        state.directory.org(req.org_id),
        state.directory.staff(req.org_id)
    )?;
    // An import's statements carry megabytes of parameters, and a connection keeps the buffer of
    // its largest message for as long as it lives: this one is closed after the import instead of
    // going back to the pool with it.
    let mut conn = state.pool.acquire().await?;
    conn.close_on_drop();
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    if let Some(answer) = idem.claim(&mut tx).await? {
        return answer.map_err(Into::into);
    }
    let result = apply(state, &mut tx, req.org_id, &req.records, &info, &staff).await;
    let changed = result.is_ok();
    let answer = idem.settle(state, tx, result).await;
    if changed && answer.is_ok() {
        state.kick.kick();
    }
    answer
}

pub(crate) fn check<'a>(
    info: &OrgInfo,
    staff: &clokio_runtime::directory::Staff,
    i: usize,
    r: &'a ImportRecord,
    now: DateTime<Utc>,
) -> Result<Checked<'a>, BusError> {
    let bad = |what: String| BusError::invalid(format!("records.{i}: {what}"));
    let employee = staff
        .by_code
        .get(&r.employee_code)
        .cloned()
        .ok_or_else(|| bad(format!("Employee {} not found", r.employee_code)))?;
    let (clock_in, clock_out) = (whole_seconds(r.clock_in), whole_seconds(r.clock_out));
    if clock_out <= clock_in {
        return Err(bad("clock_out must be after clock_in".to_owned()));
    }
    if clock_out - clock_in > MAX_SESSION {
        return Err(bad("a session may not be longer than 48 hours".to_owned()));
    }
    if clock_out > now {
        return Err(bad("clock_out must not be in the future".to_owned()));
    }
    if r.breaks.len() > MAX_IMPORT_BREAKS {
        return Err(bad(format!(
            "a session may not have more than {MAX_IMPORT_BREAKS} breaks"
        )));
    }
    let mut breaks: Vec<(DateTime<Utc>, DateTime<Utc>)> = r
        .breaks
        .iter()
        .map(|b| (whole_seconds(b.start), whole_seconds(b.end)))
        .collect();
    for (j, (start, end)) in breaks.iter().enumerate() {
        if end <= start {
            return Err(bad(format!("breaks.{j}: end must be after start")));
        }
        if *start < clock_in || *end > clock_out {
            return Err(bad(format!(
                "breaks.{j}: a break must lie inside its session"
            )));
        }
    }
    breaks.sort_unstable();
    if breaks.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err(bad("breaks must not overlap".to_owned()));
    }
    let (location_id, location) = match &r.location {
        None => (employee.location_id, employee.location.clone()),
        Some(name) => {
            let l = info
                .locations
                .iter()
                .find(|l| l.name == *name)
                .ok_or_else(|| {
                    bad(format!(
                        "location {name} is not a location of the organization"
                    ))
                })?;
            (l.id, l.name.clone())
        }
    };
    Ok(Checked {
        employee,
        location_id,
        location,
        clock_in,
        clock_out,
        breaks,
        record: r,
    })
}

async fn apply(
    state: &State,
    tx: &mut Transaction<'_, Postgres>,
    org: OrgId,
    records: &[ImportRecord],
    info: &OrgInfo,
    staff: &clokio_runtime::directory::Staff,
) -> db::Result<Bytes> {
    let now = whole_seconds(Utc::now());
    let checked = records
        .iter()
        .enumerate()
        .map(|(i, r)| check(info, staff, i, r, now))
        .collect::<Result<Vec<_>, _>>()?;

    // Records of one employee may not overlap each other.
    let mut by_employee: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, c) in checked.iter().enumerate() {
        by_employee
            .entry(c.employee.employee_id.get())
            .or_default()
            .push(i);
    }
    for indexes in by_employee.values_mut() {
        indexes.sort_by_key(|&i| checked[i].clock_in);
        for w in indexes.windows(2) {
            let (a, b) = (&checked[w[0]], &checked[w[1]]);
            if b.clock_in < a.clock_out {
                let (first, second) = (w[0].min(w[1]), w[0].max(w[1]));
                return Err(BusError::invalid(format!(
                    "records.{second}: overlaps records.{first} of the same employee"
                ))
                .into());
            }
        }
    }

    // Lock the employees' state (in id order, so concurrent imports cannot deadlock), then check
    // against what is stored.
    let mut employee_ids: Vec<i64> = by_employee.keys().copied().collect();
    employee_ids.sort_unstable();
    crate::periods::share_lock(tx, org).await?;
    sqlx::query(
        "INSERT INTO employee_state (org_id, employee_id) \
         SELECT $1, e FROM unnest($2::bigint[]) AS e ORDER BY e \
         ON CONFLICT (org_id, employee_id) DO UPDATE SET org_id = EXCLUDED.org_id",
    )
    .bind(org.as_uuid())
    .bind(&employee_ids)
    .execute(&mut **tx)
    .await?;
    let closing_dates: Vec<chrono::NaiveDate> = checked
        .iter()
        .map(|c| info.org.timezone.date_of(c.clock_in))
        .collect();
    crate::periods::check_open(tx, org, &closing_dates).await?;
    let emp: Vec<i64> = checked
        .iter()
        .map(|c| c.employee.employee_id.get())
        .collect();
    let ins: Vec<DateTime<Utc>> = checked.iter().map(|c| c.clock_in).collect();
    let outs: Vec<DateTime<Utc>> = checked.iter().map(|c| c.clock_out).collect();
    let clash: Option<(i64, i64)> = sqlx::query_as(
        "SELECT r.ord, s.id FROM unnest($2::bigint[], $3::timestamptz[], $4::timestamptz[]) \
            WITH ORDINALITY AS r(emp, cin, cout, ord) \
         JOIN sessions s ON s.org_id = $1 AND s.employee_id = r.emp \
            AND s.clock_in < r.cout AND coalesce(s.clock_out, 'infinity') > r.cin \
         ORDER BY r.ord LIMIT 1",
    )
    .bind(org.as_uuid())
    .bind(&emp)
    .bind(&ins)
    .bind(&outs)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some((ord, session)) = clash {
        return Err(BusError::conflict(format!(
            "records.{}: overlaps the recorded session {session} of employee {}",
            ord - 1,
            checked[(ord - 1) as usize].record.employee_code
        ))
        .into());
    }

    // Ids first, so sessions, breaks and events are written in bulk and in record order.
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT nextval(pg_get_serial_sequence('sessions', 'id')) FROM generate_series(1, $1)",
    )
    .bind(checked.len() as i64)
    .fetch_all(&mut **tx)
    .await?;
    let tz = info.org.timezone;
    let work_dates: Vec<chrono::NaiveDate> =
        checked.iter().map(|c| tz.date_of(c.clock_in)).collect();
    let break_seconds: Vec<i64> = checked
        .iter()
        .map(|c| c.breaks.iter().map(|(s, e)| (*e - *s).num_seconds()).sum())
        .collect();
    let location_ids: Vec<i64> = checked.iter().map(|c| c.location_id.get()).collect();
    let locations: Vec<&str> = checked.iter().map(|c| c.location.as_str()).collect();
    sqlx::query(
        "INSERT INTO sessions (id, org_id, employee_id, work_date, clock_in, clock_out, location_id, \
            location, out_location_id, out_location, break_seconds, imported) \
         SELECT id, $1, emp, wd, cin, cout, lid, loc, lid, loc, bs, true \
         FROM unnest($2::bigint[], $3::bigint[], $4::date[], $5::timestamptz[], $6::timestamptz[], \
            $7::bigint[], $8::text[], $9::bigint[]) AS r(id, emp, wd, cin, cout, lid, loc, bs)",
    )
    .bind(org.as_uuid())
    .bind(&ids)
    .bind(&emp)
    .bind(&work_dates)
    .bind(&ins)
    .bind(&outs)
    .bind(&location_ids)
    .bind(&locations)
    .bind(&break_seconds)
    .execute(&mut **tx)
    .await?;
    let (mut b_session, mut b_start, mut b_end) = (Vec::new(), Vec::new(), Vec::new());
    for (c, id) in checked.iter().zip(&ids) {
        for (s, e) in &c.breaks {
            b_session.push(*id);
            b_start.push(*s);
            b_end.push(*e);
        }
    }
    if !b_session.is_empty() {
        sqlx::query(
            "INSERT INTO breaks (session_id, started_at, ended_at) \
             SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[])",
        )
        .bind(&b_session)
        .bind(&b_start)
        .bind(&b_end)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "UPDATE employee_state st SET last_event_at = greatest(st.last_event_at, r.last) \
         FROM (SELECT emp, max(cout) AS last FROM unnest($2::bigint[], $3::timestamptz[]) AS u(emp, cout) \
               GROUP BY emp) r \
         WHERE st.org_id = $1 AND st.employee_id = r.emp",
    )
    .bind(org.as_uuid())
    .bind(&emp)
    .bind(&outs)
    .execute(&mut **tx)
    .await?;

    let mut rows = clokio_runtime::outbox::Rows::default();
    for ((c, id), (work_date, breaks)) in checked
        .iter()
        .zip(&ids)
        .zip(work_dates.iter().zip(&break_seconds))
    {
        let clocked = Clocked {
            attendance_id: AttendanceId::new(*id),
            employee: &c.employee,
            location_id: c.location_id,
            location: &c.location,
            work_date: *work_date,
            clock_in: c.clock_in,
            revision: 1,
        };
        let mut push = |name: &str, at: DateTime<Utc>, mut data: AttendanceEvent| {
            data.imported = true;
            events::emit(state, &mut rows, org, name, at, data)
        };
        push(
            kind::CLOCK_IN,
            c.clock_in,
            clocked.event(kind::CLOCK_IN, c.clock_in),
        )?;
        for (s, e) in &c.breaks {
            push(kind::BREAK_START, *s, clocked.event(kind::BREAK_START, *s))?;
            push(kind::BREAK_END, *e, clocked.event(kind::BREAK_END, *e))?;
        }
        let mut out = clocked.event(kind::CLOCK_OUT, c.clock_out);
        out.clock_out = Some(c.clock_out);
        out.total_hours = Some(hours((c.clock_out - c.clock_in).num_seconds() - breaks));
        out.break_minutes = Some(minutes(*breaks));
        out.break_seconds = Some(*breaks);
        push(kind::CLOCK_OUT, c.clock_out, out)?;
        if rows.len() >= OUTBOX_CHUNK {
            rows.flush(tx).await?;
        }
    }
    rows.flush(tx).await?;
    metrics::counter!("clokio_imported_sessions_total").increment(ids.len() as u64);
    to_bytes(&Imported {
        imported: ids.len(),
        attendance_ids: ids.into_iter().map(AttendanceId::new).collect(),
    })
    .map_err(Into::into)
}
