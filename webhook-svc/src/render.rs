//! What a subscriber receives: which events match its filters, the body per platform (Standard
//! Webhooks JSON for generic endpoints, the rendered template in each chat platform's native
//! shape) and the signature headers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use clokio_bus::events::Event;
use clokio_bus::ids::{AttendanceId, EmployeeId, EventId, LocationId, OrgId};
use clokio_bus::ops::{AttendanceEvent, Platform, WebhookPreviewed};
use clokio_bus::types::{EmployeeCode, Timezone};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The template chat platforms get when none is set.
pub const DEFAULT_TEMPLATE: &str = "{employee_name} {event_type} at {location_name} ({timestamp})";
/// The placeholders of a template. What each renders as is documented with the webhook body
/// (gateway/src/routes/webhooks.rs) and in the README.
const PLACEHOLDERS: &[&str] = &[
    "employee_name",
    "employee_code",
    "department",
    "event",
    "event_type",
    "timestamp",
    "location_name",
];

/// Checks a template: placeholders are known ones, braces balance.
pub fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| "The template has a { without a closing }".to_owned())?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "The template contains an unknown placeholder {{{name}}} (known: {})",
                PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// The event as people read it: "clocked in".
fn phrase(event: &str) -> &str {
    match event {
        "clock-in" => "clocked in",
        "clock-out" => "clocked out",
        "break-start" => "started a break",
        "break-end" => "ended a break",
        "correction" => "had a session corrected",
        other => other,
    }
}

/// The org-local time of an instant, readable: `2026-02-12 10:55 IST`.
pub fn local_time(at: DateTime<Utc>, tz: Timezone) -> String {
    at.with_timezone(&tz.tz())
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

pub fn render(template: &str, e: &AttendanceEvent, tz: Timezone) -> String {
    let mut out = template.to_owned();
    for (name, value) in [
        ("{employee_name}", e.employee_name.clone()),
        ("{employee_code}", e.employee_code.to_string()),
        ("{department}", e.department.clone().unwrap_or_default()),
        ("{event}", e.event.clone()),
        ("{event_type}", phrase(&e.event).to_owned()),
        ("{timestamp}", local_time(e.timestamp, tz)),
        ("{location_name}", e.location_name.clone()),
    ] {
        out = out.replace(name, &value);
    }
    out
}

/// The clock-in a test delivery and a preview show: a made-up employee at a made-up location,
/// now.
pub fn sample_event(org_id: OrgId, tz: Timezone, now: DateTime<Utc>) -> Event<AttendanceEvent> {
    let now = clokio_bus::calendar::whole_seconds(now);
    Event {
        id: EventId::new_random(),
        org_id,
        occurred_at: now,
        kind: "attendance.clock-in".to_owned(),
        data: AttendanceEvent {
            event: "clock-in".to_owned(),
            attendance_id: AttendanceId::new(0),
            employee_id: EmployeeId::new(0),
            employee_code: EmployeeCode::parse("TEST-0001").expect("a valid code"),
            employee_name: "Test Employee".to_owned(),
            department: Some("Test".to_owned()),
            location_id: LocationId::new(0),
            location_name: "Test Location".to_owned(),
            timestamp: now,
            work_date: tz.date_of(now),
            clock_in: now,
            clock_out: None,
            total_hours: None,
            break_minutes: None,
            break_seconds: None,
            imported: false,
            revision: None,
            auto_closed: false,
            deleted: false,
            correction: None,
        },
    }
}

/// What a subscription with `platform` and `template` would send for the sample clock-in: the
/// rendered text (chat platforms) and the body, pretty-printed.
pub fn preview(
    platform: Platform,
    template: Option<&str>,
    event: &Event<AttendanceEvent>,
    tz: Timezone,
) -> Result<WebhookPreviewed, String> {
    if let Some(template) = template {
        if template.chars().count() > 2000 {
            return Err("The template field must not be greater than 2000 characters".to_owned());
        }
        check_template(template)?;
    }
    let body = body(platform, template, event, tz);
    let body = serde_json::from_slice::<serde_json::Value>(&body)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_default();
    let text = (platform != Platform::Generic)
        .then(|| render(template.unwrap_or(DEFAULT_TEMPLATE), &event.data, tz));
    Ok(WebhookPreviewed { text, body })
}

/// The body a platform receives for an event.
pub fn body(
    platform: Platform,
    template: Option<&str>,
    event: &Event<AttendanceEvent>,
    tz: Timezone,
) -> Vec<u8> {
    let text = || render(template.unwrap_or(DEFAULT_TEMPLATE), &event.data, tz);
    let value = match platform {
        Platform::Generic => event.data.generic_body(event.occurred_at),
        Platform::Slack | Platform::GoogleChat => serde_json::json!({ "text": text() }),
        Platform::Discord => serde_json::json!({ "content": text() }),
        // A Workflows ("When a Teams webhook request is received") message with an Adaptive Card.
        Platform::Teams => serde_json::json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [{"type": "TextBlock", "text": text(), "wrap": true}]
                }
            }]
        }),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Standard Webhooks signature headers' value: `v1,<base64 HMAC-SHA256 of "{id}.{ts}.{body}">`
/// for each secret (space-separated during a rotation's overlap).
pub fn signature(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|secret| {
            let key = B64.decode(secret.strip_prefix("whsec_")?).ok()?;
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A new secret: `whsec_` + base64 of 24 random bytes.
pub fn new_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("whsec_{}", B64.encode(bytes))
}

/// `whsec_…` + the last 4 characters.
pub fn hint(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("whsec_…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clokio_bus::ids::{AttendanceId, EmployeeId, LocationId};
    use clokio_bus::ops::{Filters, TimeRange};
    use clokio_bus::types::{EmployeeCode, LocalTime};

    fn event(at: &str) -> AttendanceEvent {
        let at: DateTime<Utc> = at.parse().unwrap();
        AttendanceEvent {
            event: "clock-in".to_owned(),
            attendance_id: AttendanceId::new(1),
            employee_id: EmployeeId::new(42),
            employee_code: EmployeeCode::parse("EMP-1042").unwrap(),
            employee_name: "Sarah Johnson".to_owned(),
            department: Some("Engineering".to_owned()),
            location_id: LocationId::new(3),
            location_name: "Main Office".to_owned(),
            timestamp: at,
            work_date: at.date_naive(),
            clock_in: at,
            clock_out: None,
            total_hours: None,
            break_minutes: None,
            break_seconds: None,
            imported: false,
            revision: None,
            auto_closed: false,
            deleted: false,
            correction: None,
        }
    }

    #[test]
    fn templates_render_and_unknown_placeholders_are_refused() {
        let tz = Timezone::parse("Asia/Jerusalem").unwrap();
        let e = event("2026-02-12T08:55:12Z");
        assert_eq!(
            render(DEFAULT_TEMPLATE, &e, tz),
            "Sarah Johnson clocked in at Main Office (2026-02-12 10:55 IST)"
        );
        assert!(check_template("{employee_code} in {department}").is_ok());
        assert_eq!(
            check_template("Hi {name}").unwrap_err(),
            "The template contains an unknown placeholder {name} (known: {employee_name}, {employee_code}, {department}, {event}, {event_type}, {timestamp}, {location_name})"
        );
        assert_eq!(
            render(
                "{event}: {event_type} ({employee_code}, {department})",
                &e,
                tz
            ),
            "clock-in: clocked in (EMP-1042, Engineering)"
        );
        assert!(check_template("oops {employee_name").is_err());
    }

    #[test]
    fn time_ranges_may_wrap_midnight() {
        let tz = Timezone::default();
        let range = |s: &str, e: &str| Filters {
            time_range: Some(TimeRange {
                start: LocalTime::parse(s).unwrap(),
                end: LocalTime::parse(e).unwrap(),
            }),
            ..Filters::default()
        };
        let night = range("22:00", "06:00");
        assert!(night.matches(&event("2026-02-12T23:30:00Z"), tz));
        assert!(night.matches(&event("2026-02-12T05:59:00Z"), tz));
        assert!(!night.matches(&event("2026-02-12T06:00:00Z"), tz));
        assert!(!night.matches(&event("2026-02-12T12:00:00Z"), tz));
        let morning = range("06:00", "10:00");
        assert!(morning.matches(&event("2026-02-12T06:00:00Z"), tz));
        assert!(!morning.matches(&event("2026-02-12T10:00:00Z"), tz));
    }

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = signature(
            &[secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let two = signature(&[secret, secret], "id", 1, b"{}");
        assert_eq!(two.split(' ').count(), 2);
    }

    #[test]
    fn previews_render_the_sample_clock_in_per_platform() {
        let tz = Timezone::parse("Europe/Berlin").unwrap();
        let at = "2026-02-12T08:55:00Z".parse().unwrap();
        let event = sample_event(OrgId::new_random(), tz, at);
        let slack = preview(
            Platform::Slack,
            Some("{employee_name} {event_type} ({timestamp})"),
            &event,
            tz,
        )
        .unwrap();
        assert_eq!(
            slack.text.as_deref(),
            Some("Test Employee clocked in (2026-02-12 09:55 CET)")
        );
        let body: serde_json::Value = serde_json::from_str(&slack.body).unwrap();
        assert_eq!(
            body["text"],
            "Test Employee clocked in (2026-02-12 09:55 CET)"
        );
        let generic = preview(Platform::Generic, None, &event, tz).unwrap();
        assert_eq!(generic.text, None);
        let body: serde_json::Value = serde_json::from_str(&generic.body).unwrap();
        assert_eq!(body["type"], "clock-in");
        assert_eq!(body["data"]["employee_name"], "Test Employee");
        assert_eq!(
            preview(Platform::Discord, Some("Hi {name}"), &event, tz).unwrap_err(),
            check_template("Hi {name}").unwrap_err()
        );
    }
}
