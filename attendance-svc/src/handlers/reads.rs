//! Attendance reads: daily records (one per employee and date, aggregated in Postgres) and the
//! detailed daily activity (sessions, breaks, timeline, summary). A session belongs to the
//! org-local date of its clock-in; open sessions and breaks count until now.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use clokio_bus::BusError;
use clokio_bus::ids::{AttendanceId, EmployeeId, OrgId};
use clokio_bus::ops::{
    ActivityQuery, ActivitySummary, BreakSession, CurrentStatus, DailyActivity, DailyQuery,
    DailyRecord, Employee, EmployeeRangeQuery, MAX_RANGE_DAYS, RangeQuery, TimelineEntry,
    WorkSession,
};
use clokio_bus::server::to_bytes;
use clokio_bus::types::EmployeeStatus;

use crate::{State, db};
use clokio_bus::calendar::{day_status, hours, minutes, whole_seconds};
use clokio_runtime::directory::{OrgInfo, Staff};

/// The longest span of one employee's records in one read.
pub const MAX_EMPLOYEE_RANGE_DAYS: i64 = 366;

#[derive(sqlx::FromRow)]
struct DayRow {
    work_date: NaiveDate,
    employee_id: i64,
    first_in: DateTime<Utc>,
    last_out: Option<DateTime<Utc>>,
    open: bool,
    work_seconds: i64,
    break_seconds: i64,
    auto_closed: bool,
    /// Each session's worked seconds, read only when the org rounds them.
    nets: Option<Vec<i64>>,
}

/// Daily records of `[start, end]`, of one employee or all, ordered by date then employee.
async fn days(
    state: &State,
    info: &OrgInfo,
    start: NaiveDate,
    end: NaiveDate,
    employee: Option<EmployeeId>,
) -> db::Result<Vec<DayRow>> {
    let org = info.org.id;
    let nets = if info.org.settings.rounding.is_some() {
        "array_agg(greatest(extract(epoch FROM coalesce(clock_out, $4) - clock_in), 0)::bigint \
            - break_seconds - greatest(coalesce(extract(epoch FROM $4 - break_open_since), 0), 0)::bigint)"
    } else {
        "NULL::bigint[]"
    };
    let sql = one_employee(
        "SELECT work_date, employee_id, min(clock_in) AS first_in, max(clock_out) AS last_out, \
            bool_or(clock_out IS NULL) AS open, \
            sum(greatest(extract(epoch FROM coalesce(clock_out, $4) - clock_in), 0))::bigint \
                AS work_seconds, \
            sum(break_seconds + greatest(coalesce(extract(epoch FROM $4 - break_open_since), 0), 0))::bigint \
                AS break_seconds, \
            bool_or(auto_closed) AS auto_closed, {NETS} AS nets \
         FROM sessions \
         WHERE org_id = $1 AND work_date BETWEEN $2 AND $3 {EMPLOYEE} \
         GROUP BY work_date, employee_id ORDER BY work_date, employee_id",
        employee.is_some(),
        5,
    )
    .replace("{NETS}", nets);
    let mut query = sqlx::query_as(&sql)
        .bind(org.as_uuid())
        .bind(start)
        .bind(end)
        .bind(whole_seconds(Utc::now()));
    if let Some(e) = employee {
        query = query.bind(e.get());
    }
    Ok(query.fetch_all(&state.pool).await?)
}

/// `sql` with `{EMPLOYEE}` replaced by a filter on parameter `$n` when reading one employee,
/// else by nothing. Two statements, not one with an optional filter: Postgres caches a generic
/// plan for a prepared statement after five runs, and the generic plan of "one employee or all"
/// scans every employee's rows (measured: one employee's month went from under 2 ms to 27–51 ms
/// once the org's daily reports had run).
fn one_employee(sql: &str, one: bool, n: u8) -> String {
    let filter = if one {
        format!("AND employee_id = ${n}")
    } else {
        String::new()
    };
    sql.replace("{EMPLOYEE}", &filter)
}

fn records(info: &OrgInfo, staff: &Staff, rows: Vec<DayRow>, with_date: bool) -> Vec<DailyRecord> {
    let tz = info.org.timezone;
    let rules = info.org.settings.pay_rules();
    let now = whole_seconds(Utc::now());
    rows.into_iter()
        .filter_map(|r| {
            let Some(employee) = staff.by_id.get(&EmployeeId::new(r.employee_id)) else {
                tracing::warn!(
                    employee_id = r.employee_id,
                    "attendance of an unknown employee"
                );
                return None;
            };
            let raw = (r.work_seconds - r.break_seconds).max(0);
            let rounded = match &r.nets {
                Some(nets) => nets.iter().map(|n| rules.round(*n)).sum(),
                None => raw,
            };
            let end = if r.open {
                now
            } else {
                r.last_out.unwrap_or(now)
            };
            let taken = (end - r.first_in).num_seconds() - raw;
            let day = rules.day(raw, rounded, taken);
            Some(DailyRecord {
                date: with_date.then_some(r.work_date),
                employee_id: employee.employee_id,
                employee_name: employee.name.clone(),
                employee_code: employee.employee_code.clone(),
                clock_in: r.first_in,
                clock_out: if r.open { None } else { r.last_out },
                total_hours: hours(day.payable),
                break_minutes: minutes(r.break_seconds),
                status: day_status(&info.org.settings, tz, r.work_date, r.first_in),
                raw_total_hours: hours(raw),
                auto_break_minutes: minutes(day.auto_break),
                auto_closed: r.auto_closed,
            })
        })
        .collect()
}

pub async fn daily(state: &State, q: DailyQuery) -> db::Result<Bytes> {
    let (info, staff) = tokio::try_join!(
        state.directory.org(q.org_id),
        state.directory.staff(q.org_id)
    )?;
    let rows = days(state, &info, q.date, q.date, None).await?;
    Ok(to_bytes(&records(&info, &staff, rows, false))?)
}

/// Checks an inclusive date range against a limit in days.
pub fn check_range(start: NaiveDate, end: NaiveDate, max_days: i64) -> db::Result<()> {
    if end < start {
        return Err(
            BusError::invalid("The end field must be a date after or equal to start").into(),
        );
    }
    if (end - start).num_days() + 1 > max_days {
        return Err(
            BusError::invalid(format!("The date range may not exceed {max_days} days")).into(),
        );
    }
    Ok(())
}

pub async fn range(state: &State, q: RangeQuery) -> db::Result<Bytes> {
    check_range(q.start, q.end, MAX_RANGE_DAYS)?;
    let (info, staff) = tokio::try_join!(
        state.directory.org(q.org_id),
        state.directory.staff(q.org_id)
    )?;
    let rows = days(state, &info, q.start, q.end, None).await?;
    Ok(to_bytes(&records(&info, &staff, rows, true))?)
}

pub async fn employee_range(state: &State, q: EmployeeRangeQuery) -> db::Result<Bytes> {
    let (info, employee) = tokio::try_join!(
        state.directory.org(q.org_id),
        state.directory.employee(q.org_id, &q.employee_code)
    )?;
    let end = q.end.unwrap_or_else(|| info.org.timezone.today());
    let start = q
        .start
        .unwrap_or_else(|| end - Duration::days(MAX_RANGE_DAYS - 1));
    check_range(start, end, MAX_EMPLOYEE_RANGE_DAYS)?;
    let rows = days(state, &info, start, end, Some(employee.employee_id)).await?;
    let staff = Staff::of_one(employee);
    Ok(to_bytes(&records(&info, &staff, rows, true))?)
}

// ---------------------------------------------------------------- detailed activity

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: i64,
    employee_id: i64,
    work_date: NaiveDate,
    clock_in: DateTime<Utc>,
    clock_out: Option<DateTime<Utc>>,
    location: String,
    out_location: Option<String>,
    break_seconds: i64,
    break_open_since: Option<DateTime<Utc>>,
    auto_closed: bool,
}

#[derive(sqlx::FromRow)]
struct BreakRow {
    session_id: i64,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
}

pub async fn employee_activity(state: &State, q: ActivityQuery) -> db::Result<Bytes> {
    let code = q
        .employee_code
        .as_ref()
        .ok_or_else(|| BusError::invalid("The employee_code field is required"))?;
    let (info, employee) = tokio::try_join!(
        state.directory.org(q.org_id),
        state.directory.employee(q.org_id, code)
    )?;
    let mut days = activity(state, &info, &[employee], q.org_id, q.date).await?;
    Ok(to_bytes(&days.pop().ok_or_else(BusError::internal)?)?)
}

pub async fn org_activity(state: &State, q: ActivityQuery) -> db::Result<Bytes> {
    let (info, staff) = tokio::try_join!(
        state.directory.org(q.org_id),
        state.directory.staff(q.org_id)
    )?;
    let active: Vec<Arc<Employee>> = staff
        .all
        .iter()
        .filter(|e| e.status == EmployeeStatus::Active)
        .cloned()
        .collect();
    Ok(to_bytes(
        &activity(state, &info, &active, q.org_id, q.date).await?,
    )?)
}

/// The detailed day of each of `employees` (in that order): of `date`, or without one, of the
/// employee's current shift (the date of an open session, else today).
async fn activity(
    state: &State,
    info: &OrgInfo,
    employees: &[Arc<Employee>],
    org: OrgId,
    date: Option<NaiveDate>,
) -> db::Result<Vec<DailyActivity>> {
    let one = match employees {
        [e] => Some(e.employee_id.get()),
        _ => None,
    };
    let today = info.org.timezone.today();
    // One snapshot for the three reads, so a clock-out between them cannot mix two states.
    let mut tx = state.pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    // Without a date, an employee still clocked in from an earlier date is shown on that date.
    let mut shift_date: HashMap<i64, NaiveDate> = HashMap::new();
    if date.is_none() {
        let sql = one_employee(
            "SELECT employee_id, work_date FROM sessions \
             WHERE org_id = $1 AND clock_out IS NULL {EMPLOYEE}",
            one.is_some(),
            2,
        );
        let mut query = sqlx::query_as::<_, (i64, NaiveDate)>(&sql).bind(org.as_uuid());
        if let Some(e) = one {
            query = query.bind(e);
        }
        let open = query.fetch_all(&mut *tx).await?;
        shift_date.extend(open);
    }
    let mut dates: Vec<NaiveDate> = vec![date.unwrap_or(today)];
    dates.extend(shift_date.values().copied());
    dates.sort_unstable();
    dates.dedup();
    let sql = one_employee(
        "SELECT id, employee_id, work_date, clock_in, clock_out, location, out_location, \
            break_seconds, break_open_since, auto_closed \
         FROM sessions \
         WHERE org_id = $1 AND work_date = ANY($2) {EMPLOYEE} \
         ORDER BY employee_id, clock_in",
        one.is_some(),
        3,
    );
    let mut query = sqlx::query_as::<_, SessionRow>(&sql)
        .bind(org.as_uuid())
        .bind(&dates);
    if let Some(e) = one {
        query = query.bind(e);
    }
    let sessions = query.fetch_all(&mut *tx).await?;
    let ids: Vec<i64> = sessions.iter().map(|s| s.id).collect();
    let breaks: Vec<BreakRow> = if ids.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(
            "SELECT session_id, started_at, ended_at FROM breaks \
             WHERE session_id = ANY($1) ORDER BY session_id, started_at",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
    };
    tx.commit().await?;
    let mut breaks_of: HashMap<i64, Vec<BreakRow>> = HashMap::new();
    for b in breaks {
        breaks_of.entry(b.session_id).or_default().push(b);
    }
    let mut sessions_of: HashMap<i64, Vec<SessionRow>> = HashMap::new();
    for s in sessions {
        sessions_of.entry(s.employee_id).or_default().push(s);
    }
    let now = whole_seconds(Utc::now());
    Ok(employees
        .iter()
        .map(|e| {
            let id = e.employee_id.get();
            let day = date.unwrap_or_else(|| shift_date.get(&id).copied().unwrap_or(today));
            let mine: Vec<SessionRow> = sessions_of
                .remove(&id)
                .unwrap_or_default()
                .into_iter()
                .filter(|s| s.work_date == day)
                .collect();
            build_day(info, e, day, mine, &mut breaks_of, now)
        })
        .collect())
}

fn build_day(
    info: &OrgInfo,
    employee: &Employee,
    date: NaiveDate,
    sessions: Vec<SessionRow>,
    breaks_of: &mut HashMap<i64, Vec<BreakRow>>,
    now: DateTime<Utc>,
) -> DailyActivity {
    let mut work_sessions = Vec::with_capacity(sessions.len());
    let mut break_sessions = Vec::new();
    let mut timeline = Vec::new();
    let (mut work_seconds, mut break_seconds) = (0i64, 0i64);
    let mut current = if sessions.is_empty() {
        CurrentStatus::NotClockedIn
    } else {
        CurrentStatus::ClockedOut
    };
    let rules = info.org.settings.pay_rules();
    let mut rounded_seconds = 0i64;
    for s in &sessions {
        let attendance_id = AttendanceId::new(s.id);
        let end = s.clock_out.unwrap_or(now).max(s.clock_in);
        let gross = (end - s.clock_in).num_seconds();
        let breaks = s.break_seconds
            + s.break_open_since
                .map_or(0, |since| (now - since).num_seconds().max(0));
        work_seconds += gross;
        break_seconds += breaks;
        let worked = (gross - breaks).max(0);
        let rounded = rules.round(worked);
        rounded_seconds += rounded;
        if s.clock_out.is_none() {
            current = if s.break_open_since.is_some() {
                CurrentStatus::OnBreak
            } else {
                CurrentStatus::Working
            };
        }
        work_sessions.push(WorkSession {
            attendance_id,
            clock_in: s.clock_in,
            clock_out: s.clock_out,
            duration_minutes: minutes(gross),
            location: s.location.clone(),
            worked_minutes: minutes(worked),
            rounded_minutes: minutes(rounded),
            auto_closed: s.auto_closed,
        });
        timeline.push(TimelineEntry {
            event: "clock-in".to_owned(),
            timestamp: s.clock_in,
            location: s.location.clone(),
        });
        for b in breaks_of.remove(&s.id).unwrap_or_default() {
            let b_end = b.ended_at.unwrap_or(now).max(b.started_at);
            break_sessions.push(BreakSession {
                attendance_id,
                start: b.started_at,
                end: b.ended_at,
                duration_minutes: minutes((b_end - b.started_at).num_seconds()),
            });
            timeline.push(TimelineEntry {
                event: "break-start".to_owned(),
                timestamp: b.started_at,
                location: s.location.clone(),
            });
            if let Some(ended) = b.ended_at {
                timeline.push(TimelineEntry {
                    event: "break-end".to_owned(),
                    timestamp: ended,
                    location: s.location.clone(),
                });
            }
        }
        if let Some(out) = s.clock_out {
            timeline.push(TimelineEntry {
                event: "clock-out".to_owned(),
                timestamp: out,
                location: s.out_location.clone().unwrap_or_else(|| s.location.clone()),
            });
        }
    }
    // Already in order within a session; sessions never overlap. A stable sort keeps a break
    // that ends at the clock-out's instant before it.
    timeline.sort_by_key(|t| t.timestamp);
    let open = sessions.iter().any(|s| s.clock_out.is_none());
    let raw = (work_seconds - break_seconds).max(0);
    let span = match (
        sessions.first(),
        sessions.iter().map(|s| s.clock_out.unwrap_or(now)).max(),
    ) {
        (Some(first), Some(last)) => (last - first.clock_in).num_seconds(),
        _ => 0,
    };
    let day = rules.day(raw, rounded_seconds, span - raw);
    DailyActivity {
        employee_id: employee.employee_id,
        employee_name: employee.name.clone(),
        employee_code: employee.employee_code.clone(),
        date,
        current_status: current,
        summary: ActivitySummary {
            first_clock_in: sessions.first().map(|s| s.clock_in),
            last_clock_out: if open {
                None
            } else {
                sessions.iter().filter_map(|s| s.clock_out).max()
            },
            total_work_minutes: minutes(work_seconds),
            total_break_minutes: minutes(break_seconds),
            net_work_hours: hours(day.payable),
            raw_net_work_hours: hours(raw),
            auto_break_minutes: minutes(day.auto_break),
        },
        work_sessions,
        break_sessions,
        timeline,
    }
}
