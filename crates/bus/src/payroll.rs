//! Payroll rules of an organization (SPEC §8): rounding of each session's worked time and the
//! automatic deduction of breaks that were not taken. Both apply to computed durations, never to
//! the stored punches; every service that computes totals (attendance reads, the monthly summary)
//! uses these functions, so the figures agree everywhere.

use serde::{Deserialize, Serialize};

/// How worked time is rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoundingMode {
    /// To the nearest step; exactly half a step goes up.
    Nearest,
    /// To the next step, unless already on one.
    Up,
    /// To the step below, unless already on one.
    Down,
}

impl RoundingMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "nearest" => Some(Self::Nearest),
            "up" => Some(Self::Up),
            "down" => Some(Self::Down),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nearest => "nearest",
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// Rounding of each session's worked duration to a step of minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rounding {
    /// 1, 5, 6, 10, 15 or 30.
    pub minutes: u32,
    pub mode: RoundingMode,
}

impl Rounding {
    /// The steps an organization may choose.
    pub const STEPS: [u32; 6] = [1, 5, 6, 10, 15, 30];

    pub fn new(minutes: u32, mode: RoundingMode) -> Result<Self, String> {
        if !Self::STEPS.contains(&minutes) {
            return Err(
                "The rounding.minutes field must be one of: 1, 5, 6, 10, 15, 30".to_owned(),
            );
        }
        Ok(Self { minutes, mode })
    }

    /// `seconds` of work rounded to the step. A duration already on a step stays as it is, in
    /// every mode (12:00–13:45 rounded up to 15 minutes is still 1:45).
    pub fn apply(&self, seconds: i64) -> i64 {
        let seconds = seconds.max(0);
        let step = i64::from(self.minutes) * 60;
        let below = seconds / step * step;
        let rest = seconds - below;
        if rest == 0 {
            return seconds;
        }
        match self.mode {
            RoundingMode::Down => below,
            RoundingMode::Up => below + step,
            RoundingMode::Nearest if rest * 2 >= step => below + step,
            RoundingMode::Nearest => below,
        }
    }
}

/// A break rule: a day with more than `after_hours` of work needs at least
/// `minimum_break_minutes` of break.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BreakRule {
    pub after_hours: f64,
    pub minimum_break_minutes: u32,
}

/// The most break rules an organization may have.
pub const MAX_BREAK_RULES: usize = 5;

/// Checks a list of break rules; sorted by threshold.
pub fn check_break_rules(mut rules: Vec<BreakRule>) -> Result<Vec<BreakRule>, String> {
    if rules.len() > MAX_BREAK_RULES {
        return Err(format!(
            "The break_rules field must not have more than {MAX_BREAK_RULES} rules"
        ));
    }
    for (i, r) in rules.iter().enumerate() {
        if !(r.after_hours.is_finite() && r.after_hours > 0.0 && r.after_hours <= 24.0) {
            return Err(format!(
                "The break_rules.{i}.after_hours field must be greater than 0 and at most 24"
            ));
        }
        if !(1..=240).contains(&r.minimum_break_minutes) {
            return Err(format!(
                "The break_rules.{i}.minimum_break_minutes field must be between 1 and 240"
            ));
        }
    }
    rules.sort_by(|a, b| a.after_hours.total_cmp(&b.after_hours));
    if rules
        .windows(2)
        .any(|w| w[0].after_hours == w[1].after_hours)
    {
        return Err(
            "The break_rules field must not have two rules with the same after_hours".to_owned(),
        );
    }
    Ok(rules)
}

/// The break a day of `worked` seconds (breaks already taken excluded) requires, in seconds: the
/// largest minimum among the rules whose threshold it exceeds.
pub fn required_break(rules: &[BreakRule], worked: i64) -> i64 {
    rules
        .iter()
        .filter(|r| worked as f64 > r.after_hours * 3600.0)
        .map(|r| i64::from(r.minimum_break_minutes) * 60)
        .max()
        .unwrap_or(0)
}

/// The payroll rules of an organization, as its settings hold them.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    pub rounding: Option<Rounding>,
    pub break_rules: &'a [BreakRule],
}

impl Rules<'_> {
    /// Rounds one session's worked seconds (unchanged without rounding).
    pub fn round(&self, seconds: i64) -> i64 {
        self.rounding.map_or(seconds.max(0), |r| r.apply(seconds))
    }

    /// The totals of one business date from its sessions' raw and rounded worked seconds and
    /// the breaks taken. A break is taken both when punched and as a gap between two sessions:
    /// `taken` is the day's span minus its worked time.
    pub fn day(&self, raw: i64, rounded: i64, taken: i64) -> DayTotals {
        let required = required_break(self.break_rules, raw);
        let auto_break = (required - taken.max(0)).max(0);
        DayTotals {
            raw,
            auto_break,
            payable: (rounded - auto_break).max(0),
        }
    }
}

/// One date's worked time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayTotals {
    /// Worked seconds as punched (breaks excluded).
    pub raw: i64,
    /// Break seconds deducted because the rules required more than was taken.
    pub auto_break: i64,
    /// What payroll counts: the rounded sessions minus the deducted break.
    pub payable: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(h: i64, m: i64) -> i64 {
        h * 3600 + m * 60
    }

    fn r(minutes: u32, mode: RoundingMode) -> Rounding {
        Rounding::new(minutes, mode).unwrap()
    }

    #[test]
    fn rounding_modes_known_answers() {
        use RoundingMode::*;
        // solidtime#994: up to 15 minutes must not add time to an entry already on a step.
        assert_eq!(r(15, Up).apply(hm(1, 30)), hm(1, 30));
        assert_eq!(r(15, Up).apply(hm(1, 45)), hm(1, 45));
        assert_eq!(r(15, Up).apply(hm(1, 48)), hm(2, 0));
        // solidtime#444: 13:00–14:00 is 1:00, in every mode (punches are whole seconds).
        for mode in [Nearest, Up, Down] {
            for step in Rounding::STEPS {
                assert_eq!(r(step, mode).apply(hm(1, 0)), hm(1, 0), "{step} {mode:?}");
            }
        }
        // Nearest: half a step goes up, less goes down.
        assert_eq!(r(15, Nearest).apply(hm(7, 52) + 30), hm(8, 0));
        assert_eq!(r(15, Nearest).apply(hm(7, 52) + 29), hm(7, 45));
        assert_eq!(r(6, Nearest).apply(hm(0, 9)), hm(0, 12));
        assert_eq!(r(6, Nearest).apply(hm(0, 8)), hm(0, 6));
        assert_eq!(r(10, Down).apply(hm(7, 59) + 59), hm(7, 50));
        assert_eq!(r(30, Up).apply(1), hm(0, 30));
        assert_eq!(r(5, Up).apply(hm(0, 7)), hm(0, 10));
        assert_eq!(r(1, Nearest).apply(hm(7, 52) + 30), hm(7, 53));
        assert_eq!(r(1, Down).apply(hm(7, 52) + 59), hm(7, 52));
        // Nothing worked stays nothing.
        assert_eq!(r(30, Up).apply(0), 0);
        assert_eq!(r(30, Up).apply(-5), 0);
        assert!(Rounding::new(7, Up).is_err());
        assert!(Rounding::new(0, Up).is_err());
    }

    fn arbzg() -> Vec<BreakRule> {
        check_break_rules(vec![
            BreakRule {
                after_hours: 9.0,
                minimum_break_minutes: 45,
            },
            BreakRule {
                after_hours: 6.0,
                minimum_break_minutes: 30,
            },
        ])
        .unwrap()
    }

    #[test]
    fn break_deduction_known_answers() {
        let rules = arbzg();
        let rules = Rules {
            rounding: None,
            break_rules: &rules,
        };
        // Exactly 6 h: no rule applies (more than six hours).
        assert_eq!(rules.day(hm(6, 0), hm(6, 0), 0).auto_break, 0);
        // 6 h 10 without a break: 30 minutes deducted.
        let d = rules.day(hm(6, 10), hm(6, 10), 0);
        assert_eq!((d.auto_break, d.payable), (hm(0, 30), hm(5, 40)));
        // 8 h with 20 minutes taken: the 10 missing minutes only.
        let d = rules.day(hm(8, 0), hm(8, 0), hm(0, 20));
        assert_eq!((d.auto_break, d.payable), (hm(0, 10), hm(7, 50)));
        // cpcMomentum/worktime#403: 07:43–16:44 with a 30-minute break is 8 h 31 of work, which
        // needs 30 minutes, not 45: nothing deducted, 8.52 h paid.
        let d = rules.day(hm(8, 31), hm(8, 31), hm(0, 30));
        assert_eq!((d.auto_break, d.payable), (0, hm(8, 31)));
        // 9 h 30 with 30 taken: 15 more.
        let d = rules.day(hm(9, 30), hm(9, 30), hm(0, 30));
        assert_eq!(d.auto_break, hm(0, 15));
        // 10 h with an hour between two sessions (a gap is a break): nothing.
        assert_eq!(rules.day(hm(10, 0), hm(10, 0), hm(1, 0)).auto_break, 0);
        // Rounding first, then the deduction.
        let rounding = Some(r(15, RoundingMode::Nearest));
        let with = Rules {
            rounding,
            break_rules: rules.break_rules,
        };
        let d = with.day(hm(6, 10), with.round(hm(6, 10)), 0);
        assert_eq!(
            (d.raw, d.auto_break, d.payable),
            (hm(6, 10), hm(0, 30), hm(5, 45))
        );
    }

    #[test]
    fn break_rules_are_checked_and_sorted() {
        assert_eq!(arbzg()[0].after_hours, 6.0);
        let bad = |after_hours, minimum_break_minutes| {
            check_break_rules(vec![BreakRule {
                after_hours,
                minimum_break_minutes,
            }])
            .is_err()
        };
        assert!(bad(0.0, 30));
        assert!(bad(25.0, 30));
        assert!(bad(f64::NAN, 30));
        assert!(bad(6.0, 0));
        assert!(bad(6.0, 241));
        let twice = BreakRule {
            after_hours: 6.0,
            minimum_break_minutes: 30,
        };
        assert!(check_break_rules(vec![twice, twice]).is_err());
        assert!(check_break_rules(vec![twice; 6]).is_err());
    }
}
