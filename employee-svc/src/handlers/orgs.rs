//! Organizations: created by the operator (`clokioctl`), read and tuned by the org itself.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use clokio_bus::BusError;
use clokio_bus::events::{Event, kind};
use clokio_bus::ids::{EventId, OrgId};
use clokio_bus::ops::{OrgCreate, OrgSettings, OrgUpdate, Organization, Schedule};
use clokio_bus::payroll::{self, BreakRule, Rounding, RoundingMode};
use clokio_bus::types::{LocalTime, Plan, Timezone, Weekday};
use clokio_runtime::outbox;
use uuid::Uuid;

use crate::{State, db};

pub(crate) const ORG_COLUMNS: &str = "id, name, plan, rate_limit_per_minute, timezone, work_days, \
     schedule_start, hours_per_day, late_grace_minutes, holidays, offline_backdate_hours, max_shift_hours, \
     rounding_minutes, rounding_mode, break_rules, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct OrgRow {
    id: Uuid,
    name: String,
    plan: String,
    rate_limit_per_minute: Option<i32>,
    timezone: String,
    work_days: Vec<i16>,
    schedule_start: NaiveTime,
    hours_per_day: f64,
    late_grace_minutes: i32,
    holidays: Vec<NaiveDate>,
    offline_backdate_hours: i32,
    max_shift_hours: i32,
    rounding_minutes: Option<i32>,
    rounding_mode: Option<String>,
    break_rules: sqlx::types::Json<Vec<BreakRule>>,
    created_at: DateTime<Utc>,
}

impl OrgRow {
    pub(crate) fn into_org(self) -> Organization {
        Organization {
            id: OrgId::from_uuid(self.id),
            name: self.name,
            plan: self.plan.parse().unwrap_or(Plan::Basic),
            rate_limit_per_minute: self.rate_limit_per_minute.map(|n| n as u32),
            timezone: Timezone::parse(&self.timezone).unwrap_or_default(),
            settings: OrgSettings {
                work_days: self
                    .work_days
                    .into_iter()
                    .filter_map(Weekday::from_iso)
                    .collect(),
                schedule: Schedule {
                    start: LocalTime::from_hm(
                        chrono::Timelike::hour(&self.schedule_start),
                        chrono::Timelike::minute(&self.schedule_start),
                    )
                    .unwrap_or_else(|| LocalTime::from_hm(9, 0).expect("09:00")),
                    hours_per_day: self.hours_per_day,
                    late_grace_minutes: self.late_grace_minutes as u32,
                },
                holidays: self.holidays,
                offline_backdate_hours: self.offline_backdate_hours as u32,
                max_shift_hours: self.max_shift_hours as u32,
                rounding: match (self.rounding_minutes, self.rounding_mode.as_deref()) {
                    (Some(minutes), Some(mode)) => RoundingMode::parse(mode).map(|mode| Rounding {
                        minutes: minutes as u32,
                        mode,
                    }),
                    _ => None,
                },
                break_rules: self.break_rules.0,
            },
            created_at: self.created_at,
        }
    }
}

pub async fn create(state: &State, req: OrgCreate) -> db::Result<Organization> {
    let name = super::name_field("name", &req.name, 255)?;
    let limit = match (req.plan, req.rate_limit_per_minute) {
        (Plan::Enterprise, None) => {
            return Err(BusError::invalid(
                "The rate_limit_per_minute field is required for the enterprise plan",
            )
            .into());
        }
        (Plan::Enterprise, Some(0)) => {
            return Err(
                BusError::invalid("The rate_limit_per_minute field must be at least 1").into(),
            );
        }
        (Plan::Enterprise, Some(n)) => Some(
            i32::try_from(n)
                .map_err(|_| BusError::invalid("The rate_limit_per_minute field is too large"))?,
        ),
        (_, Some(_)) => {
            return Err(BusError::invalid(
                "The rate_limit_per_minute field is only allowed for the enterprise plan",
            )
            .into());
        }
        (_, None) => None,
    };
    let row: OrgRow = sqlx::query_as(&format!(
        "INSERT INTO organizations (id, name, plan, rate_limit_per_minute, timezone) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {ORG_COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(name)
    .bind(req.plan.as_str())
    .bind(limit)
    .bind(req.timezone.to_string())
    .fetch_one(&state.pool)
    .await?;
    Ok(row.into_org())
}

pub async fn list(state: &State) -> db::Result<Vec<Organization>> {
    let rows: Vec<OrgRow> = sqlx::query_as(&format!(
        "SELECT {ORG_COLUMNS} FROM organizations ORDER BY created_at, id"
    ))
    .fetch_all(&state.pool)
    .await?;
    Ok(rows.into_iter().map(OrgRow::into_org).collect())
}

pub async fn get(state: &State, org_id: OrgId) -> db::Result<Organization> {
    let row: Option<OrgRow> = sqlx::query_as(&format!(
        "SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"
    ))
    .bind(org_id.as_uuid())
    .fetch_optional(&state.pool)
    .await?;
    Ok(row
        .map(OrgRow::into_org)
        .ok_or_else(|| BusError::not_found("Organization not found"))?)
}

pub async fn update(state: &State, req: OrgUpdate) -> db::Result<Organization> {
    let p = req.patch;
    if let Some(h) = p.hours_per_day
        && !(h.is_finite() && h > 0.0 && h <= 24.0)
    {
        return Err(BusError::invalid(
            "The hours_per_day field must be greater than 0 and at most 24",
        )
        .into());
    }
    if p.late_grace_minutes.is_some_and(|m| m > 1440) {
        return Err(
            BusError::invalid("The late_grace_minutes field must be between 0 and 1440").into(),
        );
    }
    if p.offline_backdate_hours.is_some_and(|h| h > 720) {
        return Err(BusError::invalid(
            "The offline_backdate_hours field must be between 0 and 720",
        )
        .into());
    }
    if p.max_shift_hours.is_some_and(|h| !(1..=72).contains(&h)) {
        return Err(BusError::invalid("The max_shift_hours field must be between 1 and 72").into());
    }
    if let Some(r) = p.rounding {
        Rounding::new(r.minutes, r.mode).map_err(BusError::invalid)?;
    }
    let break_rules = p
        .break_rules
        .map(payroll::check_break_rules)
        .transpose()
        .map_err(BusError::invalid)?;
    let work_days: Option<Vec<i16>> = p.work_days.map(|days| {
        let mut iso: Vec<i16> = days.into_iter().map(Weekday::iso).collect();
        iso.sort_unstable();
        iso.dedup();
        iso
    });
    let holidays: Option<Vec<NaiveDate>> = p.holidays.map(|mut days| {
        days.sort_unstable();
        days.dedup();
        days
    });
    if holidays.as_ref().is_some_and(|h| h.len() > 1000) {
        return Err(
            BusError::invalid("The holidays field must not have more than 1000 dates").into(),
        );
    }

    let mut tx = state.pool.begin().await?;
    let row: Option<OrgRow> = sqlx::query_as(&format!(
        "UPDATE organizations SET \
            timezone = COALESCE($2, timezone), \
            work_days = COALESCE($3, work_days), \
            schedule_start = COALESCE($4, schedule_start), \
            hours_per_day = COALESCE($5, hours_per_day), \
            late_grace_minutes = COALESCE($6, late_grace_minutes), \
            holidays = COALESCE($7, holidays), \
            offline_backdate_hours = COALESCE($8, offline_backdate_hours), \
            max_shift_hours = COALESCE($9, max_shift_hours), \
            rounding_minutes = CASE WHEN $10 THEN NULL ELSE COALESCE($11, rounding_minutes) END, \
            rounding_mode = CASE WHEN $10 THEN NULL ELSE COALESCE($12, rounding_mode) END, \
            break_rules = COALESCE($13, break_rules), \
            updated_at = now() \
         WHERE id = $1 RETURNING {ORG_COLUMNS}"
    ))
    .bind(req.org_id.as_uuid())
    .bind(p.timezone.map(|t| t.to_string()))
    .bind(work_days)
    .bind(p.schedule_start.map(|t| t.time()))
    .bind(p.hours_per_day)
    .bind(p.late_grace_minutes.map(|m| m as i32))
    .bind(holidays)
    .bind(p.offline_backdate_hours.map(|h| h as i32))
    .bind(p.max_shift_hours.map(|h| h as i32))
    .bind(p.rounding_off)
    .bind(p.rounding.map(|r| r.minutes as i32))
    .bind(p.rounding.map(|r| r.mode.as_str()))
    .bind(break_rules.map(sqlx::types::Json))
    .fetch_optional(&mut *tx)
    .await?;
    let org = row
        .map(OrgRow::into_org)
        .ok_or_else(|| BusError::not_found("Organization not found"))?;
    let event = Event {
        id: EventId::new_random(),
        org_id: org.id,
        occurred_at: Utc::now(),
        kind: format!("{}.{}", kind::ORGANIZATION, kind::UPDATED),
        data: org.clone(),
    };
    let subject = state
        .subjects
        .event(kind::ORGANIZATION, org.id, kind::UPDATED);
    outbox::enqueue(&mut tx, &subject, &event).await?;
    tx.commit().await?;
    state.kick.kick();
    // attendance-svc reads time zone and schedule from its cache.
    state.org_changed(org.id).await;
    Ok(org)
}
