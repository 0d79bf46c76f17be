//! Settings: the organization's time zone, work week, schedule, holidays and offline back-dating
//! window (as `PATCH /api/v1/organization`), and its work locations (as `/api/v1/locations`). The
//! plan and its rate limit are the operator's and are only shown.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use chrono::NaiveDate;
use clokio_bus::ops::{
    Location, LocationCreate, LocationCreateOp, LocationListOp, OrgGetOp, OrgPatch, OrgRef,
    OrgUpdate, OrgUpdateOp, Organization,
};
use clokio_bus::payroll::{BreakRule, Rounding, RoundingMode, check_break_rules};
use clokio_bus::types::{LocalTime, Timezone, Weekday};
use serde::Deserialize;

use super::{Chrome, opt, render_status};
use crate::App;
use crate::error::{Errors, PageError, refusal};
use crate::session::Session;

pub fn pages() -> Router<App> {
    Router::new().route("/settings", get(show))
}

pub fn actions() -> Router<App> {
    Router::new()
        .route("/settings", post(update))
        .route("/settings/locations", post(add_location))
}

/// The settings form, as typed.
#[derive(Clone, Debug, Default)]
pub struct SettingsForm {
    timezone: String,
    work_days: Vec<String>,
    schedule_start: String,
    hours_per_day: String,
    late_grace_minutes: String,
    holidays: String,
    offline_backdate_hours: String,
    max_shift_hours: String,
    /// `""` for no rounding; None when the form did not carry the field (nothing changes).
    rounding_minutes: Option<String>,
    rounding_mode: String,
    /// Break rules as typed, (after hours, minimum minutes), one pair per row of the form;
    /// None when the form did not carry them.
    break_rules: Option<Vec<(String, String)>>,
}

/// Rows of the break rule table.
pub const RULE_ROWS: usize = 3;

impl SettingsForm {
    fn of(org: &Organization) -> Self {
        let s = &org.settings;
        Self {
            timezone: org.timezone.to_string(),
            work_days: s.work_days.iter().map(|d| d.as_str().to_owned()).collect(),
            schedule_start: s.schedule.start.to_string(),
            hours_per_day: s.schedule.hours_per_day.to_string(),
            late_grace_minutes: s.schedule.late_grace_minutes.to_string(),
            holidays: s
                .holidays
                .iter()
                .map(NaiveDate::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            offline_backdate_hours: s.offline_backdate_hours.to_string(),
            max_shift_hours: s.max_shift_hours.to_string(),
            rounding_minutes: Some(
                s.rounding
                    .map(|r| r.minutes.to_string())
                    .unwrap_or_default(),
            ),
            rounding_mode: s.rounding.map_or("nearest", |r| r.mode.as_str()).to_owned(),
            break_rules: Some(
                (0..RULE_ROWS)
                    .map(|i| {
                        s.break_rules.get(i).map_or_else(Default::default, |r| {
                            (
                                r.after_hours.to_string(),
                                r.minimum_break_minutes.to_string(),
                            )
                        })
                    })
                    .collect(),
            ),
        }
    }

    /// The typed value of break rule row `i`: (after hours, minimum minutes).
    pub fn rule(&self, i: &usize) -> (String, String) {
        self.break_rules
            .as_ref()
            .and_then(|r| r.get(*i).cloned())
            .unwrap_or_default()
    }

    pub fn rounds(&self, minutes: &str) -> bool {
        self.rounding_minutes.as_deref().unwrap_or("") == minutes
    }

    /// From the posted pairs (`work_days` repeats, once per ticked day).
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut f = Self::default();
        for (k, v) in pairs {
            match k.as_str() {
                "timezone" => f.timezone = v,
                "work_days" => f.work_days.push(v),
                "schedule_start" => f.schedule_start = v,
                "hours_per_day" => f.hours_per_day = v,
                "late_grace_minutes" => f.late_grace_minutes = v,
                "holidays" => f.holidays = v,
                "offline_backdate_hours" => f.offline_backdate_hours = v,
                "max_shift_hours" => f.max_shift_hours = v,
                "rounding_minutes" => f.rounding_minutes = Some(v),
                "rounding_mode" => f.rounding_mode = v,
                k => {
                    // rule_after_0 … rule_minutes_2
                    let slot = |prefix: &str| {
                        k.strip_prefix(prefix)
                            .and_then(|i| i.parse::<usize>().ok())
                            .filter(|i| *i < RULE_ROWS)
                    };
                    if let Some(i) = slot("rule_after_") {
                        f.break_rules
                            .get_or_insert_with(|| vec![Default::default(); RULE_ROWS])[i]
                            .0 = v;
                    } else if let Some(i) = slot("rule_minutes_") {
                        f.break_rules
                            .get_or_insert_with(|| vec![Default::default(); RULE_ROWS])[i]
                            .1 = v;
                    }
                }
            }
        }
        f
    }

    pub fn works(&self, day: &str) -> bool {
        self.work_days.iter().any(|d| d == day)
    }

    fn patch(&self) -> Result<OrgPatch, Errors> {
        let e = |field: &'static str, m: &str| Errors::none().field(field, m.to_owned());
        let timezone = Timezone::parse(self.timezone.trim()).map_err(|m| e("timezone", &m))?;
        let work_days = self
            .work_days
            .iter()
            .map(|d| {
                Weekday::parse(d).ok_or_else(|| {
                    e(
                        "work_days",
                        "The work_days field must only contain days of the week (monday … sunday)",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let schedule_start = LocalTime::parse(self.schedule_start.trim()).map_err(|_| {
            e(
                "schedule_start",
                "The schedule.start field must be a time in HH:MM format",
            )
        })?;
        let hours_per_day = self
            .hours_per_day
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|h| h.is_finite())
            .ok_or_else(|| e("hours_per_day", "The hours_per_day field must be a number"))?;
        let whole = |field: &'static str, v: &str, max: u32| {
            v.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| {
                    e(
                        field,
                        &format!("The {field} field must be between 0 and {max}"),
                    )
                })
        };
        let late_grace_minutes = whole("late_grace_minutes", &self.late_grace_minutes, 1440)?;
        let offline_backdate_hours =
            whole("offline_backdate_hours", &self.offline_backdate_hours, 720)?;
        let holidays = self
            .holidays
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|d| !d.is_empty())
            .map(|d| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .ok()
                    .filter(|_| d.len() == 10)
                    .ok_or_else(|| {
                        e(
                            "holidays",
                            &format!("The holidays field must only contain dates in YYYY-MM-DD format ({d} is not one)"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let max_shift_hours = match opt(&self.max_shift_hours) {
            None => None,
            Some(v) => Some(
                v.parse::<u32>()
                    .ok()
                    .filter(|h| (1..=72).contains(h))
                    .ok_or_else(|| {
                        e(
                            "max_shift_hours",
                            "The max_shift_hours field must be between 1 and 72",
                        )
                    })?,
            ),
        };
        let (rounding, rounding_off) = match self.rounding_minutes.as_deref().map(str::trim) {
            None => (None, false),
            Some("") => (None, true),
            Some(minutes) => {
                let minutes = minutes.parse::<u32>().unwrap_or(0);
                let mode = RoundingMode::parse(self.rounding_mode.trim()).ok_or_else(|| {
                    e(
                        "rounding_mode",
                        "The rounding.mode field must be one of: nearest, up, down",
                    )
                })?;
                let r = Rounding::new(minutes, mode).map_err(|m| e("rounding_minutes", &m))?;
                (Some(r), false)
            }
        };
        let break_rules = match &self.break_rules {
            None => None,
            Some(rows) => {
                let mut rules = Vec::new();
                for (after, minutes) in rows {
                    if after.trim().is_empty() && minutes.trim().is_empty() {
                        continue;
                    }
                    let bad = || {
                        e(
                            "break_rules",
                            "Each break rule needs a number of hours (greater than 0, at most 24) and of minutes (1-240)",
                        )
                    };
                    let after_hours = after.trim().parse::<f64>().map_err(|_| bad())?;
                    let minimum_break_minutes = minutes.trim().parse::<u32>().map_err(|_| bad())?;
                    rules.push(BreakRule {
                        after_hours,
                        minimum_break_minutes,
                    });
                }
                Some(check_break_rules(rules).map_err(|m| e("break_rules", &m))?)
            }
        };
        Ok(OrgPatch {
            timezone: Some(timezone),
            work_days: Some(work_days),
            schedule_start: Some(schedule_start),
            hours_per_day: Some(hours_per_day),
            late_grace_minutes: Some(late_grace_minutes),
            holidays: Some(holidays),
            offline_backdate_hours: Some(offline_backdate_hours),
            max_shift_hours,
            rounding,
            rounding_off,
            break_rules,
        })
    }
}

const SETTINGS_FIELDS: &[&str] = &[
    "timezone",
    "work_days",
    "schedule_start",
    "hours_per_day",
    "late_grace_minutes",
    "holidays",
    "offline_backdate_hours",
    "max_shift_hours",
    "rounding_minutes",
    "rounding_mode",
    "break_rules",
];

#[derive(Clone, Debug, Default, Deserialize)]
pub struct LocationForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    latitude: String,
    #[serde(default)]
    longitude: String,
    #[serde(default)]
    radius_meters: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    org: Organization,
    form: SettingsForm,
    errors: Errors,
    days: Vec<(&'static str, &'static str)>,
    zones: Vec<&'static str>,
    steps: [u32; 6],
    rule_rows: Vec<usize>,
    locations: Vec<Location>,
    location: LocationForm,
    location_errors: Errors,
}

fn zones() -> Vec<&'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect()
}

const DAY_LABELS: [(&str, &str); 7] = [
    ("monday", "Monday"),
    ("tuesday", "Tuesday"),
    ("wednesday", "Wednesday"),
    ("thursday", "Thursday"),
    ("friday", "Friday"),
    ("saturday", "Saturday"),
    ("sunday", "Sunday"),
];

struct Shown {
    form: Option<SettingsForm>,
    errors: Errors,
    location: LocationForm,
    location_errors: Errors,
    status: StatusCode,
}

async fn page(app: &App, s: &Session, shown: Shown) -> Result<Response, PageError> {
    let org_ref = OrgRef { org_id: s.org_id };
    let (org, locations) = tokio::try_join!(
        app.bus.call::<OrgGetOp>(&org_ref),
        app.bus.call::<LocationListOp>(&org_ref)
    )?;
    render_status(
        shown.status,
        &SettingsPage {
            chrome: Chrome::new(s, "settings"),
            form: shown.form.unwrap_or_else(|| SettingsForm::of(&org)),
            org,
            errors: shown.errors,
            days: DAY_LABELS.to_vec(),
            zones: zones(),
            steps: Rounding::STEPS,
            rule_rows: (0..RULE_ROWS).collect(),
            locations,
            location: shown.location,
            location_errors: shown.location_errors,
        },
    )
}

/// `GET /settings`.
async fn show(
    State(app): State<App>,
    Extension(s): Extension<Session>,
) -> Result<Response, PageError> {
    page(
        &app,
        &s,
        Shown {
            form: None,
            errors: Errors::none(),
            location: LocationForm::default(),
            location_errors: Errors::none(),
            status: StatusCode::OK,
        },
    )
    .await
}

/// `POST /settings`: every setting at once, as the form shows them.
async fn update(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let form = SettingsForm::from_pairs(pairs);
    let again = |form: SettingsForm, errors: Errors, status: StatusCode| Shown {
        form: Some(form),
        errors,
        location: LocationForm::default(),
        location_errors: Errors::none(),
        status,
    };
    let patch = match form.patch() {
        Ok(patch) => patch,
        Err(errors) => {
            return page(
                &app,
                &s,
                again(form, errors, StatusCode::UNPROCESSABLE_ENTITY),
            )
            .await;
        }
    };
    match app
        .bus
        .call::<OrgUpdateOp>(&OrgUpdate {
            org_id: s.org_id,
            patch,
        })
        .await
    {
        Ok(_) => Ok(super::done_with(&app, &s, "/settings", "Settings saved.").await),
        Err(err) => {
            let (status, errors) = refusal(err, SETTINGS_FIELDS)?;
            page(&app, &s, again(form, errors, status)).await
        }
    }
}

/// `POST /settings/locations`.
async fn add_location(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Form(f): Form<LocationForm>,
) -> Result<Response, PageError> {
    let again = |f: LocationForm, errors: Errors, status: StatusCode| Shown {
        form: None,
        errors: Errors::none(),
        location: f,
        location_errors: errors,
        status,
    };
    let number = |field: &'static str, v: &str| {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| {
                Errors::none().field(field, format!("The {field} field must be a number"))
            })
    };
    let parsed = (|| {
        let name = opt(&f.name)
            .ok_or_else(|| Errors::none().field("name", "The name field is required"))?;
        Ok::<_, Errors>(LocationCreate {
            org_id: s.org_id,
            name,
            latitude: number("latitude", &f.latitude)?,
            longitude: number("longitude", &f.longitude)?,
            radius_meters: number("radius_meters", &f.radius_meters)?,
        })
    })();
    let req = match parsed {
        Ok(req) => req,
        Err(errors) => {
            return page(&app, &s, again(f, errors, StatusCode::UNPROCESSABLE_ENTITY)).await;
        }
    };
    match app.bus.call::<LocationCreateOp>(&req).await {
        Ok(l) => {
            let message = format!("Location “{}” added.", l.name);
            Ok(super::done_with(&app, &s, "/settings#locations", &message).await)
        }
        Err(err) => {
            let (status, errors) =
                refusal(err, &["name", "latitude", "longitude", "radius_meters"])?;
            page(&app, &s, again(f, errors, status)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> SettingsForm {
        SettingsForm {
            timezone: "Europe/Berlin".into(),
            work_days: vec!["monday".into(), "friday".into()],
            schedule_start: "08:30".into(),
            hours_per_day: "7.5".into(),
            late_grace_minutes: "5".into(),
            holidays: "2026-12-25\n2026-12-26, 2027-01-01".into(),
            offline_backdate_hours: "48".into(),
            max_shift_hours: "12".into(),
            rounding_minutes: Some("15".into()),
            rounding_mode: "up".into(),
            break_rules: Some(vec![
                ("6".into(), "30".into()),
                ("9".into(), "45".into()),
                (String::new(), String::new()),
            ]),
        }
    }

    #[test]
    fn the_form_becomes_a_whole_patch() {
        let p = form().patch().unwrap();
        assert_eq!(p.timezone, Some(Timezone::parse("Europe/Berlin").unwrap()));
        assert_eq!(p.work_days, Some(vec![Weekday::Monday, Weekday::Friday]));
        assert_eq!(p.hours_per_day, Some(7.5));
        assert_eq!(p.holidays.unwrap().len(), 3);
        assert_eq!(p.offline_backdate_hours, Some(48));
        assert_eq!(p.max_shift_hours, Some(12));
        assert_eq!(
            p.rounding,
            Some(Rounding::new(15, RoundingMode::Up).unwrap())
        );
        assert_eq!(p.break_rules.unwrap().len(), 2);
        let off = SettingsForm {
            rounding_minutes: Some(String::new()),
            break_rules: Some(vec![Default::default(); RULE_ROWS]),
            ..form()
        }
        .patch()
        .unwrap();
        assert!(off.rounding_off);
        assert_eq!(off.break_rules, Some(vec![]));
        // A form without the payroll fields changes none of them.
        let old = SettingsForm {
            max_shift_hours: String::new(),
            rounding_minutes: None,
            break_rules: None,
            ..form()
        }
        .patch()
        .unwrap();
        assert_eq!(
            (
                old.max_shift_hours,
                old.rounding,
                old.rounding_off,
                old.break_rules
            ),
            (None, None, false, None)
        );
    }

    #[test]
    fn each_mistake_names_its_field() {
        for (change, field) in [
            (
                SettingsForm {
                    timezone: "Mars/Olympus".into(),
                    ..form()
                },
                "timezone",
            ),
            (
                SettingsForm {
                    schedule_start: "25:00".into(),
                    ..form()
                },
                "schedule_start",
            ),
            (
                SettingsForm {
                    hours_per_day: "eight".into(),
                    ..form()
                },
                "hours_per_day",
            ),
            (
                SettingsForm {
                    late_grace_minutes: "-1".into(),
                    ..form()
                },
                "late_grace_minutes",
            ),
            (
                SettingsForm {
                    holidays: "2026-02-30".into(),
                    ..form()
                },
                "holidays",
            ),
            (
                SettingsForm {
                    offline_backdate_hours: "721".into(),
                    ..form()
                },
                "offline_backdate_hours",
            ),
            (
                SettingsForm {
                    work_days: vec!["funday".into()],
                    ..form()
                },
                "work_days",
            ),
            (
                SettingsForm {
                    max_shift_hours: "0".into(),
                    ..form()
                },
                "max_shift_hours",
            ),
            (
                SettingsForm {
                    rounding_minutes: Some("7".into()),
                    ..form()
                },
                "rounding_minutes",
            ),
            (
                SettingsForm {
                    break_rules: Some(vec![("six".into(), "30".into())]),
                    ..form()
                },
                "break_rules",
            ),
        ] {
            let errors = change.patch().unwrap_err();
            assert!(errors.has(field), "{field}");
        }
    }
}
