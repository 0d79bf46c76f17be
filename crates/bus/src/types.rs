//! Value types with rules, parsed once at the edge (gateway or service) and trusted after:
//! deserializing one runs the same checks, so a service never sees an invalid value.

use std::fmt;
use std::str::FromStr;

use chrono::{NaiveTime, Timelike};
use serde::{Deserialize, Serialize};

macro_rules! string_newtype {
    ($name:ident, $parse:path) => {
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.to_string()
            }
        }
    };
}

/// An organization's plan. Basic and Pro have the configured per-minute limits; Enterprise has
/// the one the operator set on the organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Basic,
    Pro,
    Enterprise,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::Pro => "pro",
            Self::Enterprise => "enterprise",
        }
    }
}

impl FromStr for Plan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "basic" => Ok(Self::Basic),
            "pro" => Ok(Self::Pro),
            "enterprise" => Ok(Self::Enterprise),
            _ => Err("The plan field must be one of: basic, pro, enterprise".to_owned()),
        }
    }
}

/// `active` | `inactive`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmployeeStatus {
    Active,
    Inactive,
}

impl EmployeeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
        }
    }
}

impl FromStr for EmployeeStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(Self::Active),
            "inactive" => Ok(Self::Inactive),
            _ => Err("The status field must be one of: active, inactive".to_owned()),
        }
    }
}

/// The employee code, which the API also calls NIP: 1–32 characters of `[A-Za-z0-9_-]`, so it is
/// safe as a path segment. Auto-generated codes are zero-padded 5-digit sequences (`00042`).
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "EMP-1042")]
pub struct EmployeeCode(String);

impl EmployeeCode {
    pub const MAX_LEN: usize = 32;

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(format!(
                "The employee code must be between 1 and {} characters",
                Self::MAX_LEN
            ));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(
                "The employee code may only contain letters, numbers, dashes and underscores"
                    .to_owned(),
            );
        }
        Ok(Self(s.to_owned()))
    }

    /// The `n`th auto-generated code: at least 5 digits, zero-padded.
    pub fn sequence(n: u64) -> Self {
        Self(format!("{n:05}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmployeeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_newtype!(EmployeeCode, EmployeeCode::parse);

/// An email address, syntactically valid (RFC 5322 addr-spec via `email_address`) and at most 254
/// characters. Kept as given; uniqueness is case-insensitive.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, format = Email)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, String> {
        let err = || "The email field must be a valid email address".to_owned();
        if s.len() > 254 || s.chars().any(char::is_whitespace) {
            return Err(err());
        }
        let parsed = email_address::EmailAddress::parse_with_options(
            s,
            email_address::Options::default()
                .without_display_text()
                .without_domain_literal(),
        )
        .map_err(|_| err())?;
        // A dotted domain: `jane@localhost` is valid RFC 5322 but not an address people use.
        if !parsed.domain().contains('.') || parsed.domain().ends_with('.') {
            return Err(err());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_newtype!(Email, Email::parse);

/// An IANA time zone name (`Europe/Berlin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "Europe/Berlin")]
pub struct Timezone(chrono_tz::Tz);

impl Timezone {
    pub fn parse(s: &str) -> Result<Self, String> {
        s.parse::<chrono_tz::Tz>()
            .map(Self)
            .map_err(|_| "The timezone field must be a valid IANA time zone".to_owned())
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.0
    }

    /// Today's calendar date in this zone.
    pub fn today(&self) -> chrono::NaiveDate {
        self.date_of(chrono::Utc::now())
    }

    /// The local calendar date of an instant: the business date of a session that begins then.
    pub fn date_of(&self, at: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
        at.with_timezone(&self.0).date_naive()
    }

    /// The local wall-clock time of an instant.
    pub fn time_of(&self, at: chrono::DateTime<chrono::Utc>) -> NaiveTime {
        at.with_timezone(&self.0).time()
    }

    /// The first instant of a local calendar date (where midnight does not exist, as on some
    /// daylight-saving days, the first local time that does).
    pub fn start_of(&self, day: chrono::NaiveDate) -> chrono::DateTime<chrono::Utc> {
        use chrono::TimeZone;
        let mut local = day.and_time(NaiveTime::MIN);
        for _ in 0..24 * 4 {
            if let Some(at) = self.0.from_local_datetime(&local).earliest() {
                return at.with_timezone(&chrono::Utc);
            }
            local += chrono::Duration::minutes(15);
        }
        local.and_utc()
    }
}

impl Default for Timezone {
    fn default() -> Self {
        Self(chrono_tz::UTC)
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}
string_newtype!(Timezone, Timezone::parse);

/// A day of the week, written in full and lowercase (`monday`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Self::Monday,
        Self::Tuesday,
        Self::Wednesday,
        Self::Thursday,
        Self::Friday,
        Self::Saturday,
        Self::Sunday,
    ];

    /// ISO number, Monday = 1.
    pub fn iso(self) -> i16 {
        self as i16 + 1
    }

    pub fn from_iso(n: i16) -> Option<Self> {
        Self::ALL.get(usize::try_from(n - 1).ok()?).copied()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monday => "monday",
            Self::Tuesday => "tuesday",
            Self::Wednesday => "wednesday",
            Self::Thursday => "thursday",
            Self::Friday => "friday",
            Self::Saturday => "saturday",
            Self::Sunday => "sunday",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// A wall-clock time `HH:MM` (24 h).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "09:00")]
pub struct LocalTime(NaiveTime);

impl LocalTime {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = s.len() == 5 && s.as_bytes()[2] == b':';
        ok.then(|| NaiveTime::parse_from_str(s, "%H:%M").ok())
            .flatten()
            .map(Self)
            .ok_or_else(|| format!("{s:?} is not a valid time in HH:MM format"))
    }

    pub fn from_hm(h: u32, m: u32) -> Option<Self> {
        NaiveTime::from_hms_opt(h, m, 0).map(Self)
    }

    pub fn time(&self) -> NaiveTime {
        self.0
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0.hour(), self.0.minute())
    }
}
string_newtype!(LocalTime, LocalTime::parse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn employee_codes() {
        assert_eq!(EmployeeCode::sequence(1).as_str(), "00001");
        assert_eq!(EmployeeCode::sequence(42).as_str(), "00042");
        assert_eq!(EmployeeCode::sequence(123_456).as_str(), "123456");
        assert!(EmployeeCode::parse("EMP-1042").is_ok());
        assert!(EmployeeCode::parse("a_b").is_ok());
        assert!(EmployeeCode::parse("").is_err());
        assert!(EmployeeCode::parse("a b").is_err());
        assert!(EmployeeCode::parse("a/b").is_err());
        assert!(EmployeeCode::parse(&"9".repeat(33)).is_err());
        // Deserializing runs the same rules.
        assert!(serde_json::from_str::<EmployeeCode>("\"../x\"").is_err());
    }

    #[test]
    fn emails() {
        assert!(Email::parse("jane@company.com").is_ok());
        assert!(Email::parse("j.smith+hr@mail.example.co.uk").is_ok());
        for bad in [
            "",
            "jane",
            "jane@",
            "@company.com",
            "jane@localhost",
            "ja ne@x.com",
            "a@b.",
            "Jane <j@x.com>",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn timezones_weekdays_times() {
        assert_eq!(
            Timezone::parse("Europe/Berlin").unwrap().to_string(),
            "Europe/Berlin"
        );
        assert!(Timezone::parse("Mars/Olympus").is_err());
        assert_eq!(Weekday::Monday.iso(), 1);
        assert_eq!(Weekday::from_iso(7), Some(Weekday::Sunday));
        assert_eq!(Weekday::from_iso(0), None);
        assert_eq!(Weekday::from_iso(8), None);
        assert_eq!(
            serde_json::to_string(&Weekday::Friday).unwrap(),
            "\"friday\""
        );
        assert_eq!(LocalTime::parse("09:00").unwrap().to_string(), "09:00");
        assert_eq!(LocalTime::parse("23:59").unwrap().to_string(), "23:59");
        for bad in ["9:00", "24:00", "09:60", "0900", "09:00:00", "ab:cd"] {
            assert!(LocalTime::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn plans_and_statuses() {
        assert_eq!("pro".parse::<Plan>(), Ok(Plan::Pro));
        assert!("gold".parse::<Plan>().is_err());
        assert_eq!(
            "inactive".parse::<EmployeeStatus>(),
            Ok(EmployeeStatus::Inactive)
        );
        assert!("Active".parse::<EmployeeStatus>().is_err());
    }
}
