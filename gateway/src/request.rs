//! Request bodies as types. A body is a `Deserialize + ToSchema` struct read by [`Body`]: the
//! struct is both what the handler gets and what the OpenAPI document shows. Its fields are the
//! types below, each of which checks its own value and says what is wrong in the product
//! document's words; [`Body`] puts the field's path in front (`The records.3.nip field must be a
//! string`). A field absent, `null` or blank is missing: required fields are plain, optional ones
//! `Option<_>` with `#[serde(default, deserialize_with = "optional")]`. Unknown fields are ignored.
//! Query parameters are read the same way by [`Params`], each a string field.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, NaiveDate, Utc};
use serde::de::{DeserializeOwned, Error as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use utoipa::openapi::KnownFormat;
use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};

use crate::body::Fields;
use crate::envelope::ApiError;

/// A JSON object body read into `T` (413 when too large, 400 when not JSON, 422 when not an
/// object or a field is wrong).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Fields::from_request(req, state)
            .await?
            .into_body()
            .map(Body)
    }
}

/// The query parameters read into `T` (the last of a parameter given twice counts).
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or_default()).map_err(|_| {
                ApiError::new(StatusCode::BAD_REQUEST, "The query string is malformed")
            })?;
        Fields::from_pairs(pairs).into_body().map(Params)
    }
}

impl Fields {
    /// The object read into `T`.
    pub fn into_body<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        serde_path_to_error::deserialize(self.into_value()).map_err(refusal)
    }

    /// The object read into `T`, kept for another read.
    pub fn read<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.clone().into_body()
    }
}

/// What went wrong, as "The <path> field <what>".
fn refusal(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    use serde_path_to_error::Segment;
    let mut path: Vec<String> = err
        .path()
        .iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    let inner = err.inner().to_string();
    let what = if let Some(name) = inner
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        path.push(name.to_owned());
        "is required".to_owned()
    } else if inner.contains("expected an object") {
        "must be an object".to_owned()
    } else if inner.starts_with("invalid type: null") {
        "is required".to_owned()
    } else if inner.contains("expected an array") {
        "must be an array".to_owned()
    } else if inner.starts_with(char::is_uppercase) {
        // A whole sentence of a field's own.
        return ApiError::invalid(inner);
    } else {
        inner
    };
    ApiError::invalid(format!("The {} field {what}", path.join(".")))
}

/// A field's value: `Ok(None)` when it is blank (which counts as absent), `Err` the end of "The x
/// field …" (or a whole sentence).
pub trait Field: Sized {
    /// What a blank value is where it is not taken as absent (see [`given`]).
    const BLANK: &'static str = "is required";

    fn read(value: Value) -> Result<Option<Self>, String>;
}

/// For optional fields: absent, `null` or blank is `None`.
pub fn optional<'de, D: Deserializer<'de>, T: Field>(d: D) -> Result<Option<T>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(value) => T::read(value).map_err(D::Error::custom),
    }
}

/// For optional query parameters where only leaving one out asks for the default: a blank value
/// is read as a value, and refused.
pub fn given<'de, D: Deserializer<'de>, T: Field>(d: D) -> Result<Option<T>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(value) => T::read(value)
            .map_err(D::Error::custom)?
            .map(Some)
            .ok_or_else(|| D::Error::custom(T::BLANK)),
    }
}

/// A required field: `null` and blank are missing.
pub(crate) fn required<'de, D: Deserializer<'de>, T: Field>(d: D) -> Result<T, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Err(D::Error::custom("is required")),
        value => T::read(value)
            .map_err(D::Error::custom)?
            .ok_or_else(|| D::Error::custom("is required")),
    }
}

/// `Deserialize` (as a required field) and `ToSchema` for field types.
macro_rules! field {
    ($name:ident $(<const $c:ident: $ct:ty>)?, $schema:expr) => {
        impl<'de $(, const $c: $ct)?> ::serde::Deserialize<'de> for $name $(<$c>)? {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::request::required(d)
            }
        }
        impl $(<const $c: $ct>)? ::utoipa::PartialSchema for $name $(<$c>)? {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                $schema.into()
            }
        }
        impl $(<const $c: $ct>)? ::utoipa::ToSchema for $name $(<$c>)? {}
    };
}

pub(crate) use field;

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A string that is one of `names`.
pub fn one_of<'a>(names: impl IntoIterator<Item = &'a str>) -> ObjectBuilder {
    string().enum_values(Some(names))
}

/// Text, trimmed, of at most `MAX` characters, without NUL.
#[derive(Debug, Clone)]
pub struct Text<const MAX: usize>(pub String);

impl<const MAX: usize> Field for Text<MAX> {
    fn read(value: Value) -> Result<Option<Self>, String> {
        let Value::String(s) = value else {
            return Err("must be a string".to_owned());
        };
        let s = s.trim();
        if s.contains('\0') {
            Err("must not contain NUL characters".to_owned())
        } else if s.is_empty() {
            Ok(None)
        } else if s.chars().count() > MAX {
            Err(format!("must not be greater than {MAX} characters"))
        } else {
            Ok(Some(Self(s.to_owned())))
        }
    }
}
field!(Text<const MAX: usize>, string().max_length(Some(MAX)).pattern(Some(r"\S")));

/// A password, exactly as sent (spaces are significant), without NUL.
#[derive(Debug, Clone)]
pub struct Password(pub String);

impl Field for Password {
    fn read(value: Value) -> Result<Option<Self>, String> {
        match value {
            Value::String(s) if s.contains('\0') => {
                Err("must not contain NUL characters".to_owned())
            }
            Value::String(s) => Ok(Some(Self(s))),
            _ => Err("must be a string".to_owned()),
        }
    }
}
field!(Password, string().min_length(Some(8)).max_length(Some(128)));

/// A finite number.
#[derive(Debug, Clone, Copy)]
pub struct Number(pub f64);

impl Field for Number {
    fn read(value: Value) -> Result<Option<Self>, String> {
        match value {
            Value::Number(n) => n
                .as_f64()
                .filter(|f| f.is_finite())
                .map(|f| Some(Self(f)))
                .ok_or_else(|| "must be a number".to_owned()),
            _ => Err("must be a number".to_owned()),
        }
    }
}
field!(
    Number,
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)))
);

/// An angle from `-LIMIT` to `LIMIT` degrees: a [`Latitude`] or a [`Longitude`].
#[derive(Debug, Clone, Copy)]
pub struct Degrees<const LIMIT: u16>(pub f64);

pub type Latitude = Degrees<90>;
pub type Longitude = Degrees<180>;

impl<const LIMIT: u16> Field for Degrees<LIMIT> {
    fn read(value: Value) -> Result<Option<Self>, String> {
        let Some(Number(f)) = Number::read(value)? else {
            return Ok(None);
        };
        let limit = f64::from(LIMIT);
        if !(-limit..=limit).contains(&f) {
            return Err(format!("must be between -{LIMIT} and {LIMIT}"));
        }
        Ok(Some(Self(f)))
    }
}
field!(
    Degrees<const LIMIT: u16>,
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)))
        .minimum(Some(-f64::from(LIMIT)))
        .maximum(Some(f64::from(LIMIT)))
);

/// An instant, RFC 3339 with an offset (`2026-02-12T08:55:12Z`), as UTC. A blank string is not
/// one: it is refused, not taken as absent.
#[derive(Debug, Clone, Copy)]
pub struct Instant(pub DateTime<Utc>);

impl Field for Instant {
    fn read(value: Value) -> Result<Option<Self>, String> {
        let s = match &value {
            Value::String(s) if s.trim().is_empty() => "",
            _ => &Text::<64>::read(value)?.map(|t| t.0).unwrap_or_default(),
        };
        DateTime::parse_from_rfc3339(s)
            .map(|at| Some(Self(at.with_timezone(&Utc))))
            .map_err(|_| {
                "must be a valid RFC 3339 date-time (e.g. 2026-02-12T08:55:12Z)".to_owned()
            })
    }
}
field!(
    Instant,
    string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
);

/// A calendar date, `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy)]
pub struct Day(pub NaiveDate);

impl Field for Day {
    const BLANK: &'static str = "must be a valid date in YYYY-MM-DD format";

    fn read(value: Value) -> Result<Option<Self>, String> {
        let Some(Text(s)) = Text::<{ usize::MAX }>::read(value)? else {
            return Ok(None);
        };
        Self::parse(&s)
            .map(|d| Some(Self(d)))
            .ok_or_else(|| Self::BLANK.to_owned())
    }
}

impl Day {
    /// `YYYY-MM-DD`, a real calendar date (no sign, no short forms).
    pub fn parse(s: &str) -> Option<NaiveDate> {
        let shaped = s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-';
        shaped
            .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .flatten()
    }
}
field!(
    Day,
    string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
);

/// A month, `1` to `12`, with or without a leading zero.
#[derive(Debug, Clone, Copy)]
pub struct Month(pub u32);

impl Field for Month {
    fn read(value: Value) -> Result<Option<Self>, String> {
        let Some(Text(s)) = Text::<{ usize::MAX }>::read(value)? else {
            return Ok(None);
        };
        (s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
            .filter(|m| (1..=12).contains(m))
            .map(|m| Some(Self(m)))
            .ok_or_else(|| "must be between 1 and 12".to_owned())
    }
}
field!(Month, string().pattern(Some(r"^\s*(0?[1-9]|1[0-2])\s*$")));

/// A year, four digits, from 1970.
#[derive(Debug, Clone, Copy)]
pub struct Year(pub i32);

impl Field for Year {
    fn read(value: Value) -> Result<Option<Self>, String> {
        let Some(Text(s)) = Text::<{ usize::MAX }>::read(value)? else {
            return Ok(None);
        };
        (s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<i32>().ok())
            .flatten()
            .filter(|y| *y >= 1970)
            .map(|y| Some(Self(y)))
            .ok_or_else(|| "must be a four-digit year from 1970".to_owned())
    }
}
field!(
    Year,
    string().pattern(Some(r"^\s*(19[7-9][0-9]|[2-9][0-9]{3})\s*$"))
);

impl<T, const MAX: usize> Items<T, MAX> {
    /// The elements, each as the bus takes it.
    pub fn into_vec<U: From<T>>(self) -> Vec<U> {
        self.0.into_iter().map(U::from).collect()
    }
}

/// A list of at most `MAX` objects (each a struct of fields). Its schema is the field's
/// `value_type = Vec<_>`.
#[derive(Debug, Clone)]
pub struct Items<T, const MAX: usize>(pub Vec<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for Items<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Elements<T, const MAX: usize>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for Elements<T, MAX> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                let too_many = || A::Error::custom(format!("must not have more than {MAX} items"));
                // The length first (a JSON array's is known), so a list too long is refused as
                // such whatever its elements are.
                if seq.size_hint().is_some_and(|n| n > MAX) {
                    return Err(too_many());
                }
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(Object(item)) = seq.next_element()? {
                    if items.len() == MAX {
                        return Err(too_many());
                    }
                    items.push(item);
                }
                Ok(items)
            }
        }
        d.deserialize_seq(Elements::<T, MAX>(std::marker::PhantomData))
            .map(Self)
    }
}

/// A list of at most `MAX` strings, each as sent (the handler parses them).
#[derive(Debug, Clone)]
pub struct Strings<const MAX: usize>(pub Vec<String>);

impl<const MAX: usize> Field for Strings<MAX> {
    fn read(value: Value) -> Result<Option<Self>, String> {
        let Value::Array(items) = value else {
            return Err("must be an array".to_owned());
        };
        if items.len() > MAX {
            return Err(format!("must not have more than {MAX} items"));
        }
        items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                _ => Err("must be an array of strings".to_owned()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|items| Some(Self(items)))
    }
}
field!(
    Strings<const MAX: usize>,
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(string())
        .max_items(Some(MAX))
);

/// A whole number, 0 to `MAX`.
#[derive(Debug, Clone, Copy)]
pub struct Whole<const MAX: u32>(pub u32);

impl<const MAX: u32> Field for Whole<MAX> {
    fn read(value: Value) -> Result<Option<Self>, String> {
        match value {
            Value::Number(n) => match n.as_u64() {
                Some(v) if v <= u64::from(MAX) => Ok(Some(Self(v as u32))),
                _ if n.as_i64().is_some() || n.as_u64().is_some() => {
                    Err(format!("must be between 0 and {MAX}"))
                }
                _ => Err("must be an integer".to_owned()),
            },
            _ => Err("must be an integer".to_owned()),
        }
    }
}
field!(
    Whole<const MAX: u32>,
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .minimum(Some(0.0))
        .maximum(Some(f64::from(MAX)))
);

/// For an object field that `null` clears: absent is `None`, `null` is `Some(None)`.
pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<Object<T>>::deserialize(d)
        .map(|o| Some(o.map(|o| o.0)))
        .map_err(|err| {
            if err.to_string().contains("expected an object") {
                D::Error::custom("must be an object or null")
            } else {
                err
            }
        })
}

/// For an optional object field (a struct of fields): absent or `null` is `None`.
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<Object<T>>::deserialize(d).map(|o| o.map(|o| o.0))
}

/// A struct of fields read only from a JSON object: serde's derive would also take an array,
/// its elements in field order.
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Members<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Members(std::marker::PhantomData))
            .map(Object)
    }
}

/// For a field that `null` clears: absent is `None`, `null` (or blank) is `Some(None)`.
pub fn clearable<'de, D: Deserializer<'de>, T: Field>(d: D) -> Result<Option<Option<T>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Some(None)),
        value => T::read(value).map(Some).map_err(D::Error::custom),
    }
}

/// A flag.
#[derive(Debug, Clone, Copy)]
pub struct Flag(pub bool);

impl Field for Flag {
    fn read(value: Value) -> Result<Option<Self>, String> {
        match value {
            Value::Bool(b) => Ok(Some(Self(b))),
            _ => Err("must be true or false".to_owned()),
        }
    }
}
field!(Flag, ObjectBuilder::new().schema_type(Type::Boolean));

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Shape {
        name: Text<5>,
        #[serde(default, deserialize_with = "optional")]
        note: Option<Text<255>>,
        #[serde(default, deserialize_with = "optional")]
        password: Option<Password>,
        #[serde(default, deserialize_with = "optional")]
        lat: Option<Latitude>,
        #[serde(default, deserialize_with = "optional")]
        hours: Option<Whole<720>>,
        #[serde(default, deserialize_with = "optional")]
        day: Option<Day>,
        #[serde(default, deserialize_with = "optional")]
        at: Option<Instant>,
        #[serde(default, deserialize_with = "optional")]
        tags: Option<Strings<2>>,
        #[serde(default)]
        items: Option<Items<Item, 2>>,
        #[serde(default, deserialize_with = "nullable")]
        nested: Option<Option<Item>>,
        #[serde(default, deserialize_with = "clearable")]
        template: Option<Option<Text<10>>>,
        #[serde(default, deserialize_with = "object")]
        obj: Option<Item>,
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Item {
        start: Instant,
    }

    fn read(json: &str) -> Result<Shape, String> {
        Fields::parse(json.as_bytes())
            .and_then(Fields::into_body)
            .map_err(|e| e.message)
    }

    fn refused(json: &str) -> String {
        read(json).expect_err(json)
    }

    #[test]
    fn texts_are_trimmed_and_blank_is_missing() {
        let s = read(r#"{"name": "  Jane ", "note": "  ", "template": " "}"#).unwrap();
        assert_eq!(s.name.0, "Jane");
        assert!(s.note.is_none());
        // Blank clears like null; absent leaves as is.
        assert!(matches!(s.template, Some(None)));
        assert!(read(r#"{"name": "J"}"#).unwrap().template.is_none());
        assert_eq!(refused(r#"{"name": " "}"#), "The name field is required");
        assert_eq!(refused(r#"{"name": null}"#), "The name field is required");
        assert_eq!(refused("{}"), "The name field is required");
        assert_eq!(refused(r#"{"name": 5}"#), "The name field must be a string");
        assert_eq!(
            refused(r#"{"name": "abcdef"}"#),
            "The name field must not be greater than 5 characters"
        );
        assert_eq!(
            refused(r#"{"name": "a\u0000b"}"#),
            "The name field must not contain NUL characters"
        );
        assert_eq!(
            refused(r#"{"name": "J", "password": "x\u0000"}"#),
            "The password field must not contain NUL characters"
        );
        let s = read(r#"{"name": "J", "password": " spaced "}"#).unwrap();
        assert_eq!(s.password.unwrap().0, " spaced ");
    }

    #[test]
    fn numbers_dates_and_instants() {
        assert_eq!(
            refused(r#"{"name": "J", "lat": "1"}"#),
            "The lat field must be a number"
        );
        assert_eq!(
            refused(r#"{"name": "J", "lat": 91}"#),
            "The lat field must be between -90 and 90"
        );
        assert_eq!(
            read(r#"{"name": "J", "hours": 80}"#)
                .unwrap()
                .hours
                .unwrap()
                .0,
            80
        );
        assert_eq!(
            refused(r#"{"name": "J", "hours": -1}"#),
            "The hours field must be between 0 and 720"
        );
        assert_eq!(
            refused(r#"{"name": "J", "hours": 1.5}"#),
            "The hours field must be an integer"
        );
        assert_eq!(
            refused(r#"{"name": "J", "day": "2026-02-30"}"#),
            "The day field must be a valid date in YYYY-MM-DD format"
        );
        for bad in ["2026-2-1", "+2026-02-01", "2026/02/01", "2026-02-010"] {
            assert_eq!(Day::parse(bad), None, "{bad}");
        }
        assert_eq!(
            refused(r#"{"name": "J", "lat": -90.5}"#),
            "The lat field must be between -90 and 90"
        );
        assert_eq!(
            read(r#"{"name": "J", "day": "2026-02-28"}"#)
                .unwrap()
                .day
                .unwrap()
                .0,
            NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()
        );
        assert_eq!(
            read(r#"{"name": "J", "at": "2026-02-12T10:55:12+02:00"}"#)
                .unwrap()
                .at
                .unwrap()
                .0,
            "2026-02-12T08:55:12Z".parse::<DateTime<Utc>>().unwrap()
        );
        // A blank instant is refused, not taken as absent.
        assert_eq!(
            refused(r#"{"name": "J", "at": " "}"#),
            "The at field must be a valid RFC 3339 date-time (e.g. 2026-02-12T08:55:12Z)"
        );
    }

    #[test]
    fn lists_and_nested_objects_name_the_element() {
        assert_eq!(
            refused(r#"{"name": "J", "tags": ["a", 1]}"#),
            "The tags field must be an array of strings"
        );
        assert_eq!(
            refused(r#"{"name": "J", "tags": ["a", "b", "c"]}"#),
            "The tags field must not have more than 2 items"
        );
        assert_eq!(
            refused(r#"{"name": "J", "tags": "a"}"#),
            "The tags field must be an array"
        );
        assert_eq!(
            refused(r#"{"name": "J", "items": [{"start": "2026-02-12T08:00:00Z"}, 5]}"#),
            "The items.1 field must be an object"
        );
        assert_eq!(
            refused(r#"{"name": "J", "items": [{"start": 7}]}"#),
            "The items.0.start field must be a string"
        );
        assert_eq!(
            refused(r#"{"name": "J", "items": [{}]}"#),
            "The items.0.start field is required"
        );
        assert_eq!(
            refused(r#"{"name": "J", "items": {}}"#),
            "The items field must be an array"
        );
        let three = r#"{"start": "2026-02-12T08:00:00Z"}"#;
        assert_eq!(
            refused(&format!(
                r#"{{"name": "J", "items": [{three}, {three}, {three}]}}"#
            )),
            "The items field must not have more than 2 items"
        );
        assert!(matches!(
            read(r#"{"name": "J", "nested": null}"#).unwrap().nested,
            Some(None)
        ));
        assert_eq!(
            refused(r#"{"name": "J", "nested": 5}"#),
            "The nested field must be an object or null"
        );
        assert_eq!(
            refused(r#"{"name": "J", "nested": {}}"#),
            "The nested.start field is required"
        );
        // serde's derive would take an array for a struct, its elements in field order.
        let at = r#""2026-02-12T08:00:00Z""#;
        for body in [
            format!(r#"{{"name": "J", "obj": [{at}]}}"#),
            format!(r#"{{"name": "J", "items": [[{at}]]}}"#),
        ] {
            assert!(
                refused(&body).ends_with("field must be an object"),
                "{body}"
            );
        }
        assert_eq!(
            refused(&format!(r#"{{"name": "J", "nested": [{at}]}}"#)),
            "The nested field must be an object or null"
        );
        assert_eq!(
            refused(r#"{"name": "J", "items": [null]}"#),
            "The items.0 field must be an object"
        );
        // The length is checked before the elements.
        assert_eq!(
            refused(r#"{"name": "J", "items": [5, 5, 5]}"#),
            "The items field must not have more than 2 items"
        );
        assert!(read(r#"{"name": "J", "obj": null}"#).unwrap().obj.is_none());
    }

    #[derive(Deserialize, Debug)]
    struct MonthYear {
        month: Month,
        year: Year,
        #[serde(default, deserialize_with = "given")]
        day: Option<Day>,
    }

    fn query(pairs: &[(&str, &str)]) -> Result<MonthYear, String> {
        let pairs = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Fields::from_pairs(pairs).into_body().map_err(|e| e.message)
    }

    #[test]
    fn query_parameters_are_string_fields() {
        let q = query(&[("month", "02"), ("year", "2026")]).unwrap();
        assert_eq!((q.month.0, q.year.0), (2, 2026));
        assert_eq!(
            query(&[("month", " 2 "), ("year", "2026")])
                .unwrap()
                .month
                .0,
            2
        );
        for bad in ["0", "13", "002", "x", "-1"] {
            assert_eq!(
                query(&[("month", bad), ("year", "2026")]).unwrap_err(),
                "The month field must be between 1 and 12"
            );
        }
        assert_eq!(
            query(&[("year", "2026")]).unwrap_err(),
            "The month field is required"
        );
        assert_eq!(
            query(&[("month", ""), ("year", "2026")]).unwrap_err(),
            "The month field is required"
        );
        assert_eq!(
            query(&[("month", "1"), ("year", "26")]).unwrap_err(),
            "The year field must be a four-digit year from 1970"
        );
        // Left out, a `given` parameter asks for the default; blank, it is refused.
        assert!(
            query(&[("month", "1"), ("year", "2026")])
                .unwrap()
                .day
                .is_none()
        );
        assert_eq!(
            query(&[("month", "1"), ("year", "2026"), ("day", " ")]).unwrap_err(),
            "The day field must be a valid date in YYYY-MM-DD format"
        );
    }
}
