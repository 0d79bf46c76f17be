//! Request bodies: read with a size bound (413 beyond it), parsed as a JSON object (400 when it is
//! not JSON, 422 when it is not an object), then read field by field so validation messages follow
//! the product document (`The name field is required`). Unknown fields are ignored.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use crate::envelope::ApiError;

/// The fields of a JSON object body.
#[derive(Debug)]
pub struct Fields(Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(1024 * 1024, |l| l.0);
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The request body is too large",
                )
            })?;
        Fields::parse(&bytes)
    }
}

/// The body size bound, set by the router from configuration.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

impl Fields {
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Map::new()));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::invalid("The request body must be a JSON object")),
            Err(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "The request body is not valid JSON",
            )),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Moves the members of the object `name` (when present) up beside the others, so a body may
    /// give them in the nested shape a resource is read in or flat. A member given both ways is
    /// refused.
    pub fn hoist(&mut self, name: &str) -> Result<(), ApiError> {
        let Some(inner) = self.optional_object(name)? else {
            return Ok(());
        };
        for (member, value) in inner.0 {
            if self.0.contains_key(&member) {
                return Err(ApiError::invalid(format!(
                    "The {member} field must be given either under {name} or at the top level, not both"
                )));
            }
            self.0.insert(member, value);
        }
        Ok(())
    }

    /// A present, non-null value.
    fn take(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name).filter(|v| !v.is_null())
    }

    pub fn required_str(&mut self, name: &str, max: usize) -> Result<String, ApiError> {
        self.optional_str(name, max)?.ok_or_else(|| required(name))
    }

    /// A string; blank counts as absent. Trimmed; at most `max` characters.
    pub fn optional_str(&mut self, name: &str, max: usize) -> Result<Option<String>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => {
                let s = s.trim();
                if s.contains('\0') {
                    Err(nul(name))
                } else if s.is_empty() {
                    Ok(None)
                } else if s.chars().count() > max {
                    Err(ApiError::invalid(format!(
                        "The {name} field must not be greater than {max} characters"
                    )))
                } else {
                    Ok(Some(s.to_owned()))
                }
            }
            Some(_) => Err(ApiError::invalid(format!(
                "The {name} field must be a string"
            ))),
        }
    }

    /// A string taken exactly as sent (passwords: spaces are significant).
    pub fn optional_raw_str(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.contains('\0') => Err(nul(name)),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid(format!(
                "The {name} field must be a string"
            ))),
        }
    }

    pub fn required_f64(&mut self, name: &str) -> Result<f64, ApiError> {
        self.optional_f64(name)?.ok_or_else(|| required(name))
    }

    pub fn optional_f64(&mut self, name: &str) -> Result<Option<f64>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|f| f.is_finite())
                .map(Some)
                .ok_or_else(|| ApiError::invalid(format!("The {name} field must be a number"))),
            Some(_) => Err(ApiError::invalid(format!(
                "The {name} field must be a number"
            ))),
        }
    }

    /// A whole number in `0..=max`.
    pub fn optional_u32(&mut self, name: &str, max: u32) -> Result<Option<u32>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if v <= u64::from(max) => Ok(Some(v as u32)),
                _ if n.as_i64().is_some() || n.as_u64().is_some() => Err(ApiError::invalid(
                    format!("The {name} field must be between 0 and {max}"),
                )),
                _ => Err(ApiError::invalid(format!(
                    "The {name} field must be an integer"
                ))),
            },
            Some(_) => Err(ApiError::invalid(format!(
                "The {name} field must be an integer"
            ))),
        }
    }

    pub fn optional_date(&mut self, name: &str) -> Result<Option<NaiveDate>, ApiError> {
        match self.optional_str(name, 10)? {
            None => Ok(None),
            Some(s) => parse_date(name, &s).map(Some),
        }
    }

    /// An RFC 3339 instant (`2026-02-12T08:55:12Z`, any offset), as UTC. A blank string is not
    /// one; the field may be left out or null.
    pub fn optional_timestamp(&mut self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        let blank = matches!(self.0.get(name), Some(Value::String(s)) if s.trim().is_empty());
        match self.optional_str(name, 64)? {
            None if blank => parse_timestamp(name, "").map(Some),
            None => Ok(None),
            Some(s) => parse_timestamp(name, &s).map(Some),
        }
    }

    pub fn required_timestamp(&mut self, name: &str) -> Result<DateTime<Utc>, ApiError> {
        self.optional_timestamp(name)?.ok_or_else(|| required(name))
    }

    /// An array of objects, each returned as fields named `<name>.<index>.<field>`, so their
    /// errors say which element is wrong.
    pub fn optional_objects(
        &mut self,
        name: &str,
        max_len: usize,
    ) -> Result<Option<Vec<Fields>>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                if items.len() > max_len {
                    return Err(ApiError::invalid(format!(
                        "The {name} field must not have more than {max_len} items"
                    )));
                }
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| match item {
                        Value::Object(map) => Ok(Fields(
                            map.into_iter()
                                .map(|(k, v)| (format!("{name}.{i}.{k}"), v))
                                .collect(),
                        )),
                        _ => Err(ApiError::invalid(format!(
                            "The {name}.{i} field must be an object"
                        ))),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            }
            Some(_) => Err(ApiError::invalid(format!(
                "The {name} field must be an array"
            ))),
        }
    }

    /// An array of strings, each parsed with `parse` (its error names the bad element).
    pub fn optional_list<T>(
        &mut self,
        name: &str,
        max_len: usize,
        parse: impl Fn(&str) -> Result<T, ApiError>,
    ) -> Result<Option<Vec<T>>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                if items.len() > max_len {
                    return Err(ApiError::invalid(format!(
                        "The {name} field must not have more than {max_len} items"
                    )));
                }
                items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => parse(s),
                        _ => Err(ApiError::invalid(format!(
                            "The {name} field must be an array of strings"
                        ))),
                    })
                    .collect::<Result<Vec<T>, ApiError>>()
                    .map(Some)
            }
            Some(_) => Err(ApiError::invalid(format!(
                "The {name} field must be an array"
            ))),
        }
    }

    pub fn optional_bool(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(ApiError::invalid(format!(
                "The {name} field must be true or false"
            ))),
        }
    }

    /// Absent → None; null → Some(None) (clear it); a string → Some(Some(s)).
    pub fn nullable_str(
        &mut self,
        name: &str,
        max: usize,
    ) -> Result<Option<Option<String>>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Null) => {
                self.0.remove(name);
                Ok(Some(None))
            }
            Some(_) => Ok(Some(self.optional_str(name, max)?)),
        }
    }

    /// A nested object that may be null: absent or null → None, left out of the fields; an
    /// object stays in the fields for [`Self::optional_object`].
    pub fn nullable_object(&mut self, name: &str) -> Result<Option<()>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Null) => {
                self.0.remove(name);
                Ok(None)
            }
            Some(Value::Object(_)) => Ok(Some(())),
            Some(_) => Err(ApiError::invalid(format!(
                "The {name} field must be an object or null"
            ))),
        }
    }

    /// A nested object.
    pub fn optional_object(&mut self, name: &str) -> Result<Option<Fields>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Fields(map))),
            Some(_) => Err(ApiError::invalid(format!(
                "The {name} field must be an object"
            ))),
        }
    }
}

fn nul(name: &str) -> ApiError {
    ApiError::invalid(format!("The {name} field must not contain NUL characters"))
}

pub fn required(name: &str) -> ApiError {
    ApiError::invalid(format!("The {name} field is required"))
}

/// An RFC 3339 date-time with a time zone offset.
pub fn parse_timestamp(name: &str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::invalid(format!(
                "The {name} field must be a valid RFC 3339 date-time (e.g. 2026-02-12T08:55:12Z)"
            ))
        })
}

/// `YYYY-MM-DD`, a real calendar date.
pub fn parse_date(name: &str, s: &str) -> Result<NaiveDate, ApiError> {
    let shaped = s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-';
    shaped
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "The {name} field must be a valid date in YYYY-MM-DD format"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> Fields {
        Fields::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn body_shape_errors() {
        assert_eq!(
            Fields::parse(b"{").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            Fields::parse(b"[1]").unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert!(Fields::parse(b"  ").is_ok());
    }

    #[test]
    fn strings() {
        let mut f = fields(r#"{"name": "  Jane ", "blank": " ", "n": 5, "long": "abcdef"}"#);
        assert_eq!(f.required_str("name", 255).unwrap(), "Jane");
        assert_eq!(
            f.required_str("blank", 255).unwrap_err().message,
            "The blank field is required"
        );
        assert_eq!(
            f.required_str("missing", 255).unwrap_err().message,
            "The missing field is required"
        );
        assert_eq!(
            f.required_str("n", 255).unwrap_err().message,
            "The n field must be a string"
        );
        assert_eq!(
            f.required_str("long", 5).unwrap_err().message,
            "The long field must not be greater than 5 characters"
        );
    }

    #[test]
    fn nul_characters_are_refused() {
        let mut f = fields(r#"{"name": "a\u0000b", "pw": "x\u0000"}"#);
        assert_eq!(
            f.required_str("name", 255).unwrap_err().message,
            "The name field must not contain NUL characters"
        );
        assert_eq!(
            f.optional_raw_str("pw").unwrap_err().message,
            "The pw field must not contain NUL characters"
        );
    }

    #[test]
    fn numbers_and_dates() {
        let mut f = fields(
            r#"{"lat": 1.5, "s": "1", "h": 80, "neg": -1, "frac": 1.5, "d": "2026-02-30", "ok": "2026-02-28"}"#,
        );
        assert_eq!(f.required_f64("lat").unwrap(), 1.5);
        assert_eq!(
            f.required_f64("s").unwrap_err().message,
            "The s field must be a number"
        );
        assert_eq!(f.optional_u32("h", 720).unwrap(), Some(80));
        assert_eq!(
            f.optional_u32("neg", 720).unwrap_err().message,
            "The neg field must be between 0 and 720"
        );
        assert_eq!(
            f.optional_u32("frac", 720).unwrap_err().message,
            "The frac field must be an integer"
        );
        assert_eq!(
            f.optional_date("d").unwrap_err().message,
            "The d field must be a valid date in YYYY-MM-DD format"
        );
        assert_eq!(
            f.optional_date("ok").unwrap(),
            NaiveDate::from_ymd_opt(2026, 2, 28)
        );
        assert!(parse_date("date", "2026-2-1").is_err());
        assert_eq!(
            parse_timestamp("t", "2026-02-12T10:55:12+02:00").unwrap(),
            "2026-02-12T08:55:12Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(parse_timestamp("t", "2026-02-12 08:55").is_err());
        let mut f = fields(r#"{"records": [{"nip": "a"}, 5]}"#);
        assert_eq!(
            f.optional_objects("records", 10).unwrap_err().message,
            "The records.1 field must be an object"
        );
        let mut f = fields(r#"{"records": [{"nip": 7}]}"#);
        let mut records = f.optional_objects("records", 10).unwrap().unwrap();
        assert_eq!(
            records[0]
                .required_str("records.0.nip", 32)
                .unwrap_err()
                .message,
            "The records.0.nip field must be a string"
        );
        assert!(parse_date("date", "+2026-02-01").is_err());
    }
}
