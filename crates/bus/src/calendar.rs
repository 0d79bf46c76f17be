//! Time arithmetic of attendance, in one place for every service that computes it (attendance
//! reads, the monthly summary): rounding for presentation, work days and lateness. Instants are
//! UTC; dates and wall-clock times are the org's, via its time zone (so a DST day is 23 or 25
//! hours long and a night shift belongs to the date it began).

use crate::ops::{DayStatus, OrgSettings};
use crate::types::Timezone;
use chrono::{DateTime, Datelike, NaiveDate, Utc};

/// Seconds as hours, rounded to 2 decimals (472 minutes → 7.87).
pub fn hours(seconds: i64) -> f64 {
    (seconds.max(0) as f64 / 36.0).round() / 100.0
}

/// Seconds as whole minutes, rounded half up.
pub fn minutes(seconds: i64) -> i64 {
    (seconds.max(0) + 30) / 60
}

/// An instant in whole seconds: what the API shows is what is stored and summed.
pub fn whole_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// Whether `date` is a work day: a day of the work week that is not a holiday.
pub fn is_work_day(settings: &OrgSettings, date: NaiveDate) -> bool {
    let iso = date.weekday().number_from_monday() as i16;
    settings.work_days.iter().any(|d| d.iso() == iso) && !settings.holidays.contains(&date)
}

/// `late` when the first clock-in of a work day is after schedule start + grace, in the org's
/// wall-clock time on that date; `present` otherwise (non-work days have no schedule).
pub fn day_status(
    settings: &OrgSettings,
    tz: Timezone,
    date: NaiveDate,
    first_clock_in: DateTime<Utc>,
) -> DayStatus {
    if !is_work_day(settings, date) {
        return DayStatus::Present;
    }
    let local = first_clock_in.with_timezone(&tz.tz());
    if local.date_naive() != date {
        return DayStatus::Present;
    }
    let start = settings.schedule.start.time();
    let (deadline, overflow) = start.overflowing_add_signed(chrono::Duration::minutes(i64::from(
        settings.schedule.late_grace_minutes,
    )));
    if overflow != 0 {
        return DayStatus::Present;
    }
    if local.time() > deadline {
        DayStatus::Late
    } else {
        DayStatus::Present
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Schedule;
    use crate::types::{LocalTime, Weekday};

    fn settings() -> OrgSettings {
        OrgSettings {
            work_days: vec![
                Weekday::Monday,
                Weekday::Tuesday,
                Weekday::Wednesday,
                Weekday::Thursday,
                Weekday::Friday,
            ],
            schedule: Schedule {
                start: LocalTime::from_hm(9, 0).unwrap(),
                hours_per_day: 8.0,
                late_grace_minutes: 10,
            },
            holidays: vec![NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()],
            offline_backdate_hours: 72,
            max_shift_hours: 16,
            rounding: None,
            break_rules: Vec::new(),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn rounds_like_the_product_document() {
        // 08:55 → 17:32 with 45 minutes of break.
        assert_eq!(hours((17 * 60 + 32 - 8 * 60 - 55 - 45) * 60), 7.87);
        assert_eq!(hours(0), 0.0);
        assert_eq!(hours(-5), 0.0);
        assert_eq!(hours(30), 0.01);
        assert_eq!(minutes(89), 1);
        assert_eq!(minutes(90), 2);
        assert_eq!(minutes(29), 0);
    }

    #[test]
    fn lateness_follows_local_wall_clock_through_dst() {
        let s = settings();
        let berlin = Timezone::parse("Europe/Berlin").unwrap();
        // Summer (UTC+2): 09:10 local is 07:10Z, on time; 09:11 local is late.
        assert_eq!(
            day_status(&s, berlin, date("2026-10-23"), utc("2026-10-23T07:10:00Z")),
            DayStatus::Present
        );
        assert_eq!(
            day_status(&s, berlin, date("2026-10-23"), utc("2026-10-23T07:11:00Z")),
            DayStatus::Late
        );
        // Winter (UTC+1) after the October change: 07:30Z is 08:30 local, on time.
        assert_eq!(
            day_status(&s, berlin, date("2026-10-26"), utc("2026-10-26T07:30:00Z")),
            DayStatus::Present
        );
        assert_eq!(
            day_status(&s, berlin, date("2026-10-26"), utc("2026-10-26T08:11:00Z")),
            DayStatus::Late
        );
    }

    #[test]
    fn weekends_and_holidays_are_never_late() {
        let s = settings();
        let utc_tz = Timezone::default();
        assert_eq!(
            day_status(&s, utc_tz, date("2026-11-28"), utc("2026-11-28T12:00:00Z")),
            DayStatus::Present
        );
        assert_eq!(
            day_status(&s, utc_tz, date("2026-12-25"), utc("2026-12-25T12:00:00Z")),
            DayStatus::Present
        );
        assert!(is_work_day(&s, date("2026-12-24")));
        assert!(!is_work_day(&s, date("2026-12-25")));
    }

    #[test]
    fn business_date_is_the_local_date_of_clock_in() {
        let ny = Timezone::parse("America/New_York").unwrap();
        // 2026-03-08 02:00 EST → 03:00 EDT. 22:00 local on the 7th is 03:00Z on the 8th.
        assert_eq!(ny.date_of(utc("2026-03-08T03:00:00Z")), date("2026-03-07"));
        assert_eq!(ny.date_of(utc("2026-03-08T05:00:00Z")), date("2026-03-08"));
    }

    #[test]
    fn whole_seconds_truncates() {
        let at = utc("2026-02-12T08:55:12.987Z");
        assert_eq!(whole_seconds(at), utc("2026-02-12T08:55:12Z"));
    }
}
