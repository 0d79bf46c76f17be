//! Subject naming. Requests: `<prefix>.v1.<service>.<operation>`; events:
//! `<prefix>.events.<domain>.<org_id>.<event>`. The prefix is configuration so that environments
//! and test runs can share one NATS server without seeing each other.

use std::fmt;

use crate::ids::OrgId;

/// A validated subject prefix: 1–32 characters of `[A-Za-z0-9_-]` (no dots, no wildcards), so it
/// is one subject token and can also name a JetStream stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Prefix(String);

impl Prefix {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "subject prefix {s:?} must be 1-32 characters of A-Z, a-z, 0-9, '_' or '-'"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Prefix {
    fn default() -> Self {
        Self("clokio".to_owned())
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The services that answer on the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceName {
    Employee,
    Attendance,
    Webhook,
    Reporting,
}

impl ServiceName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Employee => "employee",
            Self::Attendance => "attendance",
            Self::Webhook => "webhook",
            Self::Reporting => "reporting",
        }
    }

    /// The NATS micro service name (`clokio-employee`), shared by every replica.
    pub fn micro_name(self) -> String {
        format!("clokio-{}", self.as_str())
    }
}

/// Builds every subject for one prefix.
#[derive(Clone, Debug, Default)]
pub struct Subjects {
    prefix: Prefix,
}

impl Subjects {
    pub fn new(prefix: Prefix) -> Self {
        Self { prefix }
    }

    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    /// `<prefix>.v1.<service>`: the micro service group all of a service's endpoints live under.
    pub fn service_group(&self, service: ServiceName) -> String {
        format!("{}.v1.{}", self.prefix, service.as_str())
    }

    /// `<prefix>.v1.<service>.<operation>`.
    pub fn request(&self, service: ServiceName, operation: &str) -> String {
        format!("{}.v1.{}.{}", self.prefix, service.as_str(), operation)
    }

    /// `<prefix>.v1.<service>._cache.invalidate`: where a service announces, per org, that
    /// cached reads of its data are stale (core NATS, payload: the org id).
    pub fn cache_invalidations(&self, service: ServiceName) -> String {
        format!("{}._cache.invalidate", self.service_group(service))
    }

    /// `<prefix>.events.<domain>.<org_id>.<event>`; [`event_org`] reads the org back.
    pub fn event(&self, domain: &str, org_id: impl fmt::Display, event: &str) -> String {
        format!("{}.events.{}.{}.{}", self.prefix, domain, org_id, event)
    }

    /// `<prefix>.events.<domain>.*.<event>`: one event kind across every org.
    pub fn event_all_orgs(&self, domain: &str, event: &str) -> String {
        format!("{}.events.{}.*.{}", self.prefix, domain, event)
    }

    /// `<prefix>.events.>`: the subjects of the events stream.
    pub fn events_wildcard(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    /// The JetStream stream that stores every event of this prefix.
    pub fn events_stream(&self) -> String {
        format!("{}-events", self.prefix).to_uppercase()
    }

    /// webhook-svc's work-queue stream of deliveries, and its one subject.
    pub fn webhook_queue(&self) -> (String, String) {
        (
            format!("{}-webhook-deliveries", self.prefix).to_uppercase(),
            format!("{}.webhook.deliveries", self.prefix),
        )
    }
}

/// The org of an event's subject (`<prefix>.events.<domain>.<org_id>.<event>`, as
/// [`Subjects::event`] makes it), read without decoding the event; `None` for any other subject.
pub fn event_org(subject: &str) -> Option<OrgId> {
    let mut tokens = subject.rsplit('.');
    let (_event, org, _domain, events) = (
        tokens.next()?,
        tokens.next()?,
        tokens.next()?,
        tokens.next()?,
    );
    if events != "events" {
        return None;
    }
    org.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rules() {
        assert!(Prefix::parse("clokio").is_ok());
        assert!(Prefix::parse("t_abc-123").is_ok());
        assert!(Prefix::parse("").is_err());
        assert!(Prefix::parse("a.b").is_err());
        assert!(Prefix::parse("a*").is_err());
        assert!(Prefix::parse(&"x".repeat(33)).is_err());
    }

    #[test]
    fn an_event_subject_gives_its_org_back() {
        let s = Subjects::new(Prefix::parse("clokio").unwrap());
        let org: OrgId = "3f0c8a52-5d3e-4b1e-9a57-0c2f3a4b5c6d".parse().unwrap();
        assert_eq!(
            event_org(&s.event("attendance", org, "clock-in")),
            Some(org)
        );
        assert_eq!(
            event_org("clokio.events.attendance.not-an-org.clock-in"),
            None
        );
        assert_eq!(
            event_org(&s.request(ServiceName::Attendance, "clock")),
            None
        );
        assert_eq!(event_org(&format!("clokio.v1.{org}.x")), None);
        assert_eq!(event_org(""), None);
    }

    #[test]
    fn subject_shapes() {
        let s = Subjects::new(Prefix::parse("clokio").unwrap());
        assert_eq!(
            s.request(ServiceName::Employee, "key_verify"),
            "clokio.v1.employee.key_verify"
        );
        assert_eq!(
            s.service_group(ServiceName::Attendance),
            "clokio.v1.attendance"
        );
        assert_eq!(
            s.event("apikey", "o1", "revoked"),
            "clokio.events.apikey.o1.revoked"
        );
        assert_eq!(
            s.event_all_orgs("apikey", "revoked"),
            "clokio.events.apikey.*.revoked"
        );
        assert_eq!(s.events_stream(), "CLOKIO-EVENTS");
    }
}
