//! What a person sees when something goes wrong: a page that says so in words, never a raw JSON
//! body, a stack trace or a blank page. A service's refusal of a form (422, 409) goes next to the
//! field that caused it instead (see [`Errors`]).

use std::collections::HashMap;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use clokio_bus::{BusError, ErrorCode};

/// A page-level failure.
#[derive(Debug)]
pub enum PageError {
    /// Unknown, or another organization's.
    NotFound,
    /// A form without this session's token or from another origin.
    Forbidden,
    /// A refusal with a message that belongs to no form (the last admin, a revoked key).
    Refused(StatusCode, String),
    TooLarge,
    /// A service (or Redis) does not answer.
    Unavailable,
    Timeout,
    Internal,
    /// A refusal of the HTTP layer (a form that does not parse, a method not allowed).
    Status(StatusCode),
}

impl From<BusError> for PageError {
    fn from(err: BusError) -> Self {
        match err.code {
            ErrorCode::NotFound => Self::NotFound,
            ErrorCode::Unavailable => Self::Unavailable,
            ErrorCode::Timeout => Self::Timeout,
            ErrorCode::Internal => Self::Internal,
            ErrorCode::PayloadTooLarge => Self::TooLarge,
            code => Self::Refused(
                StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST),
                err.message,
            ),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    css: &'static str,
    icon: &'static str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing here, or it belongs to another organization.",
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "Request refused",
                "This form did not come from this page of the console, or your session changed. Go back, reload the page and try again.",
            ),
            Self::Refused(status, message) => (*status, "That did not work", message.as_str()),
            Self::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too much at once",
                "The form was larger than the console accepts.",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                "A part of Clokio is not answering right now. Nothing was changed. Try again in a moment.",
            ),
            Self::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "Service did not answer in time",
                "A part of Clokio took too long to answer. Reload the page to see whether it was done.",
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Clokio could not do this. The error has been logged.",
            ),
            Self::Status(status) if *status == StatusCode::UNAUTHORIZED => (
                *status,
                "Signed out",
                "Your session has ended. Sign in again to go on.",
            ),
            Self::Status(status) => (
                *status,
                "Request refused",
                "The console could not read this request. Go back, reload the page and try again.",
            ),
        };
        let page = ErrorPage {
            title,
            message,
            css: crate::assets::css(),
            icon: crate::assets::icon(),
        };
        let html = page
            .render()
            .unwrap_or_else(|_| format!("<!doctype html><title>{status}</title><p>{status}"));
        let mut res = (status, Html(html)).into_response();
        crate::no_store(&mut res);
        res
    }
}

/// A form's messages: one per field, and one for the form as a whole.
#[derive(Clone, Debug, Default)]
pub struct Errors {
    fields: HashMap<&'static str, String>,
    pub general: Option<String>,
}

impl Errors {
    pub fn none() -> Self {
        Self::default()
    }

    /// The message of `field`, if any (for the template).
    /// A message for the form as a whole.
    pub fn general(message: impl Into<String>) -> Self {
        Self {
            general: Some(message.into()),
            ..Self::default()
        }
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    pub fn has(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_none()
    }

    pub fn field(mut self, field: &'static str, message: impl Into<String>) -> Self {
        self.fields.insert(field, message.into());
        self
    }

    /// Where a service's message goes: beside the field it names (`The name field is
    /// required`, `The email has already been taken`, `The selected location is invalid`), else
    /// above the form.
    pub fn from_message(message: &str, fields: &[&'static str]) -> Self {
        let named = |f: &str| {
            let spaced = f.replace('_', " ");
            [f.to_owned(), spaced].iter().any(|name| {
                [
                    format!("The {name} field"),
                    format!("The {name} "),
                    format!("The selected {name} "),
                    format!("The {name}."),
                ]
                .iter()
                .any(|p| message.starts_with(p.as_str()))
            })
        };
        // The longest name first: `time_range.start` before `time_range`.
        let mut candidates: Vec<&'static str> = fields.to_vec();
        candidates.sort_by_key(|f| std::cmp::Reverse(f.len()));
        match candidates.into_iter().find(|f| named(f)) {
            Some(f) => Self::none().field(f, message),
            None => Self::general(message),
        }
    }
}

/// A service's answer to a form: a refusal (422, 409) to show with the form, or a page error.
pub fn refusal(err: BusError, fields: &[&'static str]) -> Result<(StatusCode, Errors), PageError> {
    match err.code {
        ErrorCode::Unprocessable | ErrorCode::Conflict => {
            let status =
                StatusCode::from_u16(err.code.status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            Ok((status, Errors::from_message(&err.message, fields)))
        }
        _ => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_find_their_field() {
        let fields = &[
            "name",
            "email",
            "location",
            "employee_code",
            "time_range.start",
        ];
        for (message, field) in [
            ("The name field is required", "name"),
            ("The email has already been taken", "email"),
            ("The email field must be a valid email address", "email"),
            ("The selected location is invalid", "location"),
            ("The employee code has already been taken", "employee_code"),
            (
                "The time_range.start field must be a time in HH:MM format",
                "time_range.start",
            ),
        ] {
            let e = Errors::from_message(message, fields);
            assert_eq!(e.get(field), Some(message), "{message}");
            assert!(e.general.is_none());
        }
        let e = Errors::from_message("Employee is inactive", fields);
        assert_eq!(e.general.as_deref(), Some("Employee is inactive"));
        assert!(!e.has("name"));
    }
}
