//! What an API key may do. Every public operation needs exactly one scope (the gateway's table
//! says which); a key holds a set of them, chosen one by one or through a preset.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! scopes {
    ($($variant:ident = $name:literal,)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Scope {
            $($variant,)*
        }

        impl Scope {
            /// Every scope, in the order lists show them.
            pub const ALL: &[Scope] = &[$(Scope::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Scope::$variant => $name,)*
                }
            }

            pub fn parse(s: &str) -> Option<Scope> {
                match s {
                    $($name => Some(Scope::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

scopes! {
    AttendanceRead = "attendance:read",
    AttendanceWrite = "attendance:write",
    EmployeesRead = "employees:read",
    EmployeesWrite = "employees:write",
    ReportsRead = "reports:read",
    LeaveWrite = "leave:write",
    WebhooksManage = "webhooks:manage",
    KeysManage = "keys:manage",
    SettingsManage = "settings:manage",
    EventsRead = "events:read",
}

impl Scope {
    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    fn is_read(self) -> bool {
        self.as_str().ends_with(":read")
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The named sets a key can be created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Every scope: what a key without scopes has always been.
    Full,
    /// Clocking only: a device in a lobby that must not read anyone's data.
    Kiosk,
    /// Every `:read` scope: payroll scripts and dashboards.
    ReadOnly,
}

impl Preset {
    pub const ALL: &[Preset] = &[Preset::Full, Preset::Kiosk, Preset::ReadOnly];

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Full => "full",
            Preset::Kiosk => "kiosk",
            Preset::ReadOnly => "read-only",
        }
    }

    pub fn parse(s: &str) -> Option<Preset> {
        Preset::ALL.iter().copied().find(|p| p.as_str() == s)
    }

    pub fn scopes(self) -> Scopes {
        match self {
            Preset::Full => Scopes::FULL,
            Preset::Kiosk => Scopes::of(&[Scope::AttendanceWrite]),
            Preset::ReadOnly => Scopes::of(
                &Scope::ALL
                    .iter()
                    .copied()
                    .filter(|s| s.is_read())
                    .collect::<Vec<_>>(),
            ),
        }
    }
}

/// A set of scopes; on the wire a list of their names.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scopes(u16);

impl Scopes {
    pub const FULL: Scopes = Scopes((1 << Scope::ALL.len()) - 1);

    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().fold(0, |bits, s| bits | s.bit()))
    }

    /// Names, refusing an unknown one (returned as the error).
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Scopes, &'a str> {
        let mut bits = 0;
        for name in names {
            bits |= Scope::parse(name).ok_or(name)?.bit();
        }
        Ok(Scopes(bits))
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The first scope of `self` that `held` lacks.
    pub fn first_missing_from(self, held: Scopes) -> Option<Scope> {
        self.iter().find(|s| !held.contains(*s))
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .iter()
            .copied()
            .filter(move |s| self.contains(*s))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }

    /// The preset these scopes are exactly, if any.
    pub fn preset(self) -> Option<Preset> {
        Preset::ALL.iter().copied().find(|p| p.scopes() == self)
    }
}

impl Default for Scopes {
    fn default() -> Self {
        Scopes::FULL
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        Scopes::parse(names.iter().map(String::as_str))
            .map_err(|name| serde::de::Error::custom(format!("unknown scope {name}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_names() {
        assert_eq!(Preset::Full.scopes(), Scopes::FULL);
        assert_eq!(Scopes::FULL.names().len(), 10);
        assert_eq!(Preset::Kiosk.scopes().names(), ["attendance:write"]);
        assert_eq!(
            Preset::ReadOnly.scopes().names(),
            [
                "attendance:read",
                "employees:read",
                "reports:read",
                "events:read"
            ]
        );
        assert_eq!(
            Scopes::parse(["events:read", "attendance:write"]).map(Scopes::names),
            Ok(vec!["attendance:write", "events:read"])
        );
        assert_eq!(Scopes::parse(["attendance:write", "nope"]), Err("nope"));
        assert_eq!(
            Preset::Kiosk.scopes().preset(),
            Some(Preset::Kiosk),
            "a set equal to a preset is named by it"
        );
        assert_eq!(
            Preset::Kiosk
                .scopes()
                .first_missing_from(Preset::ReadOnly.scopes()),
            Some(Scope::AttendanceWrite)
        );
        let json = serde_json::to_string(&Preset::Kiosk.scopes()).unwrap();
        assert_eq!(json, r#"["attendance:write"]"#);
        assert_eq!(
            serde_json::from_str::<Scopes>(&json).unwrap(),
            Preset::Kiosk.scopes()
        );
        assert!(serde_json::from_str::<Scopes>(r#"["root"]"#).is_err());
    }
}
