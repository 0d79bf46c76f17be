//! The monthly summary (SPEC §3): per employee of the org who was employed that month, days
//! present, late arrivals, net hours, overtime, leave days and absences. Sessions and leave come
//! from this service's projection; employees and the org's settings from employee-svc (cached).
//!
//! - Work days: the org's work week minus its holidays; a session counts on the org-local date of
//!   its clock-in (attendance-svc records it), so a night shift belongs to the day it began.
//! - `late_count`: work days whose first clock-in is after schedule start + grace, by the local
//!   wall clock of that date (DST-aware), as in the daily report.
//! - `total_hours`: net hours of closed sessions; `overtime_hours`: beyond `hours_per_day` on a
//!   work day, all hours on other days.
//! - `leave_days`: work days covered by a leave. `absence_count`: past work days (org-local), on
//!   or after the hire date, while the employee was active, with neither a session nor a leave.
//! - Left out: employees hired after the month, and inactive ones whose deactivation came before
//!   the month began and who have no session or leave in it.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Months, NaiveDate, Utc};
use clokio_bus::calendar::{self, hours};
use clokio_bus::ids::OrgId;
use clokio_bus::ops::{DayStatus, Employee, SUMMARY_CSV_HEADER, SummaryRow};
use clokio_bus::payroll::Rules;
use clokio_bus::types::EmployeeStatus;
use clokio_bus::{BusError, stream};
use clokio_runtime::directory::OrgInfo;
use futures::TryStreamExt;

use sqlx::postgres::PgPoolCopyExt;

use crate::{State, copy, db};

/// Employees per query: what bounds the memory of a summary's reads.
const BATCH: usize = 1000;

/// A CSV chunk is sent once it holds this many bytes. One row is at most a few KiB (names of 255
/// characters, quoted), so a chunk stays far below NATS's 1 MiB payload limit whatever the names.
const CSV_CHUNK: usize = 256 * 1024;

/// The calendar month asked for.
#[derive(Clone, Copy, Debug)]
pub struct Month {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl Month {
    pub fn new(year: i32, month: u32) -> Result<Self, BusError> {
        let first = NaiveDate::from_ymd_opt(year, month, 1)
            .ok_or_else(|| BusError::invalid("The month field must be between 1 and 12"))?;
        let last = first
            .checked_add_months(Months::new(1))
            .and_then(|d| d.pred_opt())
            .ok_or_else(|| BusError::invalid("The year field is out of range"))?;
        Ok(Self { first, last })
    }

    fn days(&self) -> impl Iterator<Item = NaiveDate> {
        self.first.iter_days().take_while(|d| *d <= self.last)
    }
}

/// One date of an employee's month, folded from its sessions.
#[derive(Clone, Debug)]
struct Day {
    date: NaiveDate,
    /// The first clock-in (open sessions included): lateness.
    first_in: DateTime<Utc>,
    /// First clock-in and last clock-out of the closed sessions: the day's span, whose part
    /// not worked counts as break taken.
    span: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Worked seconds of the closed sessions, as punched and rounded per session.
    raw: i64,
    rounded: i64,
    auto_closed: u32,
}

/// One employee's days of the month, in date order.
type Days = Vec<Day>;

/// Each employee's leaves overlapping the month, as first and last dates.
type Leaves = HashMap<i64, Vec<(NaiveDate, NaiveDate)>>;

/// The month's data of the employees whose ids lie in `low..=high` (a batch of the staff list).
///
/// The sessions come from `employee_months`, a value per employee holding the month's sessions
/// in date order (kept by triggers on `sessions`), and are folded into days here. Read row by row
/// from `sessions`, 220,000 rows (10,000 employees × 22 days) cost Postgres about 150 ms of
/// output; 10,000 values cost about 10 ms. They are read as binary COPY data (`copy.rs`), not
/// through sqlx's rows, whose per-row decoding was most of this service's time.
///
/// Both statements are planned for their values at each run (COPY is never prepared; the leaves'
/// statement is not kept prepared): after five runs
/// Postgres would switch to a generic plan, which guesses a month of one org at 1,100 rows (it is
/// 220,000) and sorts them on disk instead of reading the index in order (50 ms became 190 ms,
/// and the summary 750 ms).
async fn load(
    state: &State,
    org: OrgId,
    month: Month,
    rules: Rules<'_>,
    (low, high): (i64, i64),
) -> db::Result<(HashMap<i64, Days>, Leaves)> {
    let leaves_query = sqlx::query_as::<_, (i64, NaiveDate, NaiveDate)>(
        "SELECT employee_id, start_date, end_date FROM leaves \
         WHERE org_id = $1 AND NOT deleted AND start_date <= $3 AND end_date >= $2 \
           AND employee_id BETWEEN $4 AND $5",
    )
    .bind(org.as_uuid())
    .bind(month.first)
    .bind(month.last)
    .bind(low)
    .bind(high)
    .persistent(false);
    // COPY takes no parameters: the values are typed (a uuid, dates, integers), so their text
    // is exactly their literal.
    let sql = format!(
        "COPY (SELECT employee_id, sessions FROM employee_months \
         WHERE org_id = '{}' AND month = '{}' AND employee_id BETWEEN {low} AND {high} \
         ORDER BY employee_id) TO STDOUT (FORMAT binary)",
        org.as_uuid(),
        month.first,
    );
    // The month's dates by day number, made once rather than per session.
    let first_day = copy::day_of_date(month.first);
    let dates: Vec<NaiveDate> = month.days().collect();
    let date_of = |day: i32| {
        usize::try_from(day - first_day)
            .ok()
            .and_then(|i| dates.get(i).copied())
            .ok_or(copy::Malformed("a session outside its month"))
    };
    let mut days: HashMap<i64, Days> = HashMap::new();
    let mut fold = |[id, value]: copy::Fields<'_, 2>| {
        let id = copy::int8(id)?.ok_or(copy::Malformed("employee_id is null"))?;
        let mut employee: Days = Vec::new();
        for session in copy::month_sessions(value.unwrap_or_default()) {
            let copy::MonthSession {
                day,
                clock_in,
                clock_out,
                net_seconds,
                auto_closed,
            } = session?;
            let date = date_of(day)?;
            let net = net_seconds.max(0);
            let rounded = rules.round(net);
            let span = clock_out.map(|out| (clock_in, out));
            match employee.last_mut() {
                // A second session on the same date: the first clock-in, the hours added up.
                Some(day) if day.date == date => {
                    day.first_in = day.first_in.min(clock_in);
                    day.span = match (day.span, span) {
                        (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
                        (held, new) => held.or(new),
                    };
                    day.raw += net;
                    day.rounded += rounded;
                    day.auto_closed += u32::from(auto_closed);
                }
                _ => employee.push(Day {
                    date,
                    first_in: clock_in,
                    span,
                    raw: net,
                    rounded,
                    auto_closed: u32::from(auto_closed),
                }),
            }
        }
        if !employee.is_empty() {
            days.insert(id, employee);
        }
        Ok(())
    };
    let malformed = |err: copy::Malformed| {
        tracing::error!(reason = err.0, "unreadable COPY data of the summary");
        BusError::internal()
    };
    let mut reader = copy::Reader::<2>::default();
    let mut chunks = state.pool.copy_out_raw(&sql).await?;
    while let Some(chunk) = chunks.try_next().await? {
        reader.push(&chunk);
        reader.each(&mut fold).map_err(malformed)?;
    }
    drop(chunks);
    if !reader.is_done() {
        return Err(malformed(copy::Malformed("the data ended early")).into());
    }
    let leave_rows = leaves_query.fetch_all(&state.pool).await?;
    let mut leaves: Leaves = HashMap::new();
    for (id, start, end) in leave_rows {
        leaves.entry(id).or_default().push((start, end));
    }
    Ok((days, leaves))
}

/// What the month looks like for the org: each date and whether it is a work day.
struct Calendar<'a> {
    info: &'a OrgInfo,
    month: Month,
    work: Vec<(NaiveDate, bool)>,
    today: NaiveDate,
}

impl<'a> Calendar<'a> {
    fn new(info: &'a OrgInfo, month: Month) -> Self {
        let settings = &info.org.settings;
        Self {
            info,
            month,
            work: month
                .days()
                .map(|d| (d, calendar::is_work_day(settings, d)))
                .collect(),
            today: info.org.timezone.today(),
        }
    }

    fn is_work_day(&self, date: NaiveDate) -> bool {
        self.work
            .iter()
            .find(|(d, _)| *d == date)
            .is_some_and(|(_, w)| *w)
    }

    /// The employee's row, or None when they are left out of this month.
    fn row(
        &self,
        e: &Employee,
        days: &[Day],
        leaves: &[(NaiveDate, NaiveDate)],
    ) -> Option<SummaryRow> {
        let tz = self.info.org.timezone;
        let settings = &self.info.org.settings;
        if e.hire_date > self.month.last {
            return None;
        }
        // Deactivated before the month began (and not changed since): inactive all month.
        let inactive_since =
            (e.status == EmployeeStatus::Inactive).then(|| tz.date_of(e.updated_at));
        if inactive_since.is_some_and(|d| d < self.month.first)
            && days.is_empty()
            && leaves.is_empty()
        {
            return None;
        }
        let per_day = settings.schedule.hours_per_day * 3600.0;
        let rules = settings.pay_rules();
        let (mut late, mut total, mut overtime) = (0u32, 0i64, 0f64);
        let (mut raw, mut auto_break, mut auto_closed) = (0i64, 0i64, 0u32);
        for day in days {
            let work = self.is_work_day(day.date);
            if work && calendar::day_status(settings, tz, day.date, day.first_in) == DayStatus::Late
            {
                late += 1;
            }
            let span = day.span.map_or(0, |(a, b)| (b - a).num_seconds());
            let totals = rules.day(day.raw, day.rounded, span - day.raw);
            let net = totals.payable;
            total += net;
            raw += totals.raw;
            auto_break += totals.auto_break;
            auto_closed += day.auto_closed;
            overtime += if work {
                (net as f64 - per_day).max(0.0)
            } else {
                net as f64
            };
        }
        let on_leave = |d: NaiveDate| leaves.iter().any(|(s, e)| *s <= d && d <= *e);
        let present = |d: NaiveDate| days.iter().any(|day| day.date == d);
        let (mut leave_days, mut absences) = (0u32, 0u32);
        for (d, work) in &self.work {
            if !work {
                continue;
            }
            if on_leave(*d) {
                leave_days += 1;
            } else if *d < self.today
                && *d >= e.hire_date
                && inactive_since.is_none_or(|since| *d < since)
                && !present(*d)
            {
                absences += 1;
            }
        }
        Some(SummaryRow {
            employee_id: e.employee_id,
            employee_name: e.name.clone(),
            employee_code: e.employee_code.clone(),
            department: e.department.clone(),
            days_present: days.len() as u32,
            late_count: late,
            total_hours: hours(total),
            overtime_hours: (overtime / 36.0).round() / 100.0,
            leave_days,
            absence_count: absences,
            raw_total_hours: hours(raw),
            auto_break_minutes: calendar::minutes(auto_break),
            auto_closed_count: auto_closed,
            closed_at: None,
        })
    }
}

fn rows_of(
    cal: &Calendar<'_>,
    employees: &[Arc<Employee>],
    days: &HashMap<i64, Days>,
    leaves: &Leaves,
) -> Vec<SummaryRow> {
    employees
        .iter()
        .filter_map(|e| {
            let id = e.employee_id.get();
            cal.row(
                e,
                days.get(&id).map_or(&[][..], Vec::as_slice),
                leaves.get(&id).map_or(&[][..], Vec::as_slice),
            )
        })
        .collect()
}

/// The summary as JSON: a closed month's snapshot as it was frozen, else computed a batch of
/// employees at a time like the CSV.
pub async fn json(state: &State, org: OrgId, month: Month) -> Result<Bytes, BusError> {
    if let Some(frozen) = crate::periods::frozen(state, org, month.first, false).await? {
        return Ok(frozen);
    }
    let rows = compute(state, org, month).await?;
    clokio_bus::server::to_bytes(&rows)
}

/// Every employee's row of the month.
///
/// The work runs in a task of its own, outside the request's span: sqlx polls a row stream
/// inside the span that is current, once per row, and entering and leaving the request's span
/// 220,000 times doubled the time (measured: 490 ms in the span, 260 ms outside).
pub async fn compute(state: &State, org: OrgId, month: Month) -> Result<Vec<SummaryRow>, BusError> {
    let state = state.clone();
    tokio::spawn(async move {
        let (info, staff) = tokio::try_join!(state.directory.org(org), state.directory.staff(org))?;
        let cal = Calendar::new(&info, month);
        let rules = info.org.settings.pay_rules();
        let mut rows = Vec::with_capacity(staff.all.len());
        let mut loaded = std::pin::pin!(loads(&state, org, month, rules, &staff.all));
        while let Some((batch, days, leaves)) = loaded.try_next().await? {
            rows.extend(rows_of(&cal, batch, &days, &leaves));
        }
        Ok(rows)
    })
    .await
    .map_err(|err| {
        tracing::error!(%err, "summary task failed");
        BusError::internal()
    })?
}

/// A batch of the staff list with its employees' days and leaves.
type Batch<'a> = (&'a [Arc<Employee>], HashMap<i64, Days>, Leaves);

/// Batches of the staff list with their month's data, one after another, in order.
fn loads<'a>(
    state: &'a State,
    org: OrgId,
    month: Month,
    rules: Rules<'a>,
    staff: &'a [Arc<Employee>],
) -> impl futures::Stream<Item = Result<Batch<'a>, BusError>> + 'a {
    use futures::StreamExt;
    futures::stream::iter(staff.chunks(BATCH)).then(move |batch| async move {
        let (days, leaves) = load(state, org, month, rules, id_range(batch)).await?;
        Ok((batch, days, leaves))
    })
}

/// The lowest and highest id of a batch of the staff list (which is in id order).
fn id_range(batch: &[Arc<Employee>]) -> (i64, i64) {
    batch
        .iter()
        .map(|e| e.employee_id.get())
        .fold((i64::MAX, i64::MIN), |(lo, hi), id| {
            (lo.min(id), hi.max(id))
        })
}

/// Checks the request and starts streaming the CSV to `inbox`; the stream runs on after the
/// answer, a batch of employees at a time, each batch waiting for the requester to take the last.
pub async fn csv(
    state: &State,
    org: OrgId,
    month: Month,
    inbox: String,
) -> Result<Bytes, BusError> {
    let frozen = crate::periods::frozen(state, org, month.first, true).await?;
    let (info, staff) = tokio::try_join!(state.directory.org(org), state.directory.staff(org))?;
    let sink = stream::Sink::new(state.nats.clone(), inbox, state.stream_timeout);
    let state = state.clone();
    tokio::spawn(async move {
        let cal = Calendar::new(&info, month);
        let rules = info.org.settings.pay_rules();
        let result = async {
            if let Some(frozen) = frozen {
                for chunk in frozen.chunks(CSV_CHUNK) {
                    sink.send(frozen.slice_ref(chunk)).await?;
                }
                return Ok(());
            }
            // Chunks of CSV_CHUNK bytes whatever the batches: each send waits for the requester
            // to take it, so fewer sends are fewer round trips.
            let mut out = Vec::with_capacity(CSV_CHUNK + 4096);
            out.extend_from_slice(SUMMARY_CSV_HEADER.as_bytes());
            let mut loaded = std::pin::pin!(loads(&state, org, month, rules, &staff.all));
            while let Some((batch, days, leaves)) = loaded.try_next().await? {
                for row in rows_of(&cal, batch, &days, &leaves) {
                    write_csv_row(&mut out, &row);
                    if out.len() >= CSV_CHUNK {
                        let chunk =
                            std::mem::replace(&mut out, Vec::with_capacity(CSV_CHUNK + 4096));
                        sink.send(Bytes::from(chunk)).await?;
                    }
                }
            }
            sink.send(Bytes::from(out)).await?;
            Ok::<(), BusError>(())
        }
        .await;
        match result {
            Ok(()) => {
                if let Err(err) = sink.end().await {
                    tracing::warn!(%err, "CSV stream not ended");
                }
            }
            Err(err) => {
                tracing::warn!(%err, "CSV stream failed");
                sink.fail(&err).await;
            }
        }
    });
    clokio_bus::server::to_bytes(&clokio_bus::ops::Empty {})
}

/// One CSV line (RFC 4180): the same numbers as the JSON. Text that a spreadsheet would run as a
/// formula (`=`, `+`, `-`, `@` first) is prefixed with `'`.
pub fn write_csv_row(out: &mut Vec<u8>, r: &SummaryRow) {
    use std::io::Write;
    let _ = write!(out, "{},", r.employee_id);
    write_text(out, &r.employee_name);
    out.push(b',');
    write_text(out, r.employee_code.as_str());
    out.push(b',');
    write_text(out, r.department.as_deref().unwrap_or(""));
    let _ = write!(
        out,
        ",{},{},{},{},{},{}",
        r.days_present,
        r.late_count,
        number(r.total_hours),
        number(r.overtime_hours),
        r.leave_days,
        r.absence_count
    );
    let _ = writeln!(
        out,
        ",{},{},{},{}",
        number(r.raw_total_hours),
        r.auto_break_minutes,
        r.auto_closed_count,
        r.closed_at
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    );
}

/// The month frozen at its close: the JSON rows and the CSV, with `closed_at` in every row.
pub async fn freeze(
    state: &State,
    org: OrgId,
    month: Month,
    closed_at: DateTime<Utc>,
) -> Result<(Vec<u8>, Vec<u8>), BusError> {
    let mut rows = compute(state, org, month).await?;
    let mut csv = SUMMARY_CSV_HEADER.as_bytes().to_vec();
    for row in &mut rows {
        row.closed_at = Some(closed_at);
        write_csv_row(&mut csv, row);
    }
    let json = serde_json::to_vec(&rows).map_err(|err| {
        tracing::error!(%err, "summary not serializable");
        BusError::internal()
    })?;
    Ok((json, csv))
}

/// A number exactly as the JSON shows it.
fn number(v: f64) -> String {
    serde_json::to_string(&v).unwrap_or_else(|_| "0".to_owned())
}

fn write_text(out: &mut Vec<u8>, s: &str) {
    let formula = s.starts_with(['=', '+', '-', '@']);
    let quote = formula || s.contains([',', '"', '\n', '\r']);
    if quote {
        out.push(b'"');
    }
    if formula {
        out.push(b'\'');
    }
    for b in s.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    if quote {
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clokio_bus::ids::EmployeeId;
    use clokio_bus::types::EmployeeCode;

    fn row(name: &str, department: Option<&str>) -> SummaryRow {
        SummaryRow {
            employee_id: EmployeeId::new(7),
            employee_name: name.to_owned(),
            employee_code: EmployeeCode::parse("EMP-7").unwrap(),
            department: department.map(str::to_owned),
            days_present: 20,
            late_count: 2,
            total_hours: 160.5,
            overtime_hours: 8.0,
            leave_days: 1,
            absence_count: 0,
            raw_total_hours: 161.0,
            auto_break_minutes: 30,
            auto_closed_count: 1,
            closed_at: None,
        }
    }

    #[test]
    fn csv_rows_quote_escape_and_defuse_formulas() {
        let mut out = Vec::new();
        write_csv_row(&mut out, &row("Smith, \"Jo\"", None));
        write_csv_row(&mut out, &row("=HYPERLINK(1)", Some("R&D")));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "7,\"Smith, \"\"Jo\"\"\",EMP-7,,20,2,160.5,8.0,1,0,161.0,30,1,\n\
             7,\"'=HYPERLINK(1)\",EMP-7,R&D,20,2,160.5,8.0,1,0,161.0,30,1,\n"
        );
    }

    #[test]
    fn months_have_their_length() {
        let feb = Month::new(2028, 2).unwrap();
        assert_eq!(feb.days().count(), 29);
        assert_eq!(Month::new(2026, 12).unwrap().last.to_string(), "2026-12-31");
        assert!(Month::new(2026, 13).is_err());
    }
}
