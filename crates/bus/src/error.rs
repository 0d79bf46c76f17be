//! The one error type that crosses the bus. A service answers an error with the NATS micro
//! headers `Nats-Service-Error-Code` (the HTTP status) and `Nats-Service-Error` (a message that
//! is safe to show to the client); the gateway maps it to the envelope unchanged.

use std::fmt;

/// What went wrong, as the HTTP status the gateway will answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    Unprocessable,
    RateLimited,
    Internal,
    Unavailable,
    Timeout,
}

impl ErrorCode {
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::Unprocessable => 422,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
            Self::Timeout => 504,
        }
    }

    /// The code for a status; statuses this contract does not know become `Internal`.
    pub fn from_status(status: u16) -> Self {
        match status {
            400 => Self::BadRequest,
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            409 => Self::Conflict,
            413 => Self::PayloadTooLarge,
            422 => Self::Unprocessable,
            429 => Self::RateLimited,
            503 => Self::Unavailable,
            504 => Self::Timeout,
            _ => Self::Internal,
        }
    }
}

/// An error with a client-safe message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct BusError {
    pub code: ErrorCode,
    pub message: String,
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code.status(), self.message)
    }
}

impl BusError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unprocessable, message)
    }

    /// An internal failure. The cause is for the log; the client only learns that it failed.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "Internal server error")
    }

    pub fn unavailable() -> Self {
        Self::new(ErrorCode::Unavailable, "Service temporarily unavailable")
    }

    pub fn timeout() -> Self {
        Self::new(ErrorCode::Timeout, "The service did not answer in time")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::PayloadTooLarge,
            ErrorCode::Unprocessable,
            ErrorCode::RateLimited,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
            ErrorCode::Timeout,
        ] {
            assert_eq!(ErrorCode::from_status(code.status()), code);
        }
        assert_eq!(ErrorCode::from_status(418), ErrorCode::Internal);
    }
}
