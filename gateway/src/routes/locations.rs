//! `/api/v1/locations`: work locations with a geofence.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use clokio_bus::ops::{Location, LocationCreate, LocationCreateOp, LocationListOp, OrgRef};
use utoipa::ToSchema;

use super::{RETRIEVED, forward};
use crate::auth::Auth;
use crate::body::Fields;
use crate::envelope::ApiError;
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::{App, RequestId};

pub fn routes() -> Router<App> {
    Router::new().route("/api/v1/locations", get(list).post(create))
}

/// List the organization's work locations.
#[utoipa::path(get, path = "/api/v1/locations", tag = "Locations",
    responses((status = 200, body = Envelope<Vec<Location>>), (status = 401, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn list(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
) -> Result<Response, ApiError> {
    forward::<LocationListOp>(
        &app,
        &rid,
        &OrgRef {
            org_id: auth.org_id,
        },
        StatusCode::OK,
        RETRIEVED,
    )
    .await
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LocationCreateBody {
    /// Unique within the organization.
    #[schema(pattern = r"\S")]
    name: String,
    #[schema(minimum = -90.0, maximum = 90.0)]
    latitude: f64,
    #[schema(minimum = -180.0, maximum = 180.0)]
    longitude: f64,
    /// Geofence radius in meters.
    #[schema(exclusive_minimum = 0.0, maximum = 100000.0)]
    radius_meters: f64,
}

/// Create a work location.
#[utoipa::path(post, path = "/api/v1/locations", tag = "Locations", request_body = LocationCreateBody,
    responses((status = 201, body = Envelope<Location>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn create(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    mut f: Fields,
) -> Result<Response, ApiError> {
    let name = f.required_str("name", 255)?;
    let latitude = f.required_f64("latitude")?;
    let longitude = f.required_f64("longitude")?;
    let radius_meters = f.required_f64("radius_meters")?;
    if !(-90.0..=90.0).contains(&latitude) {
        return Err(ApiError::invalid(
            "The latitude field must be between -90 and 90",
        ));
    }
    if !(-180.0..=180.0).contains(&longitude) {
        return Err(ApiError::invalid(
            "The longitude field must be between -180 and 180",
        ));
    }
    let req = LocationCreate {
        org_id: auth.org_id,
        name,
        latitude,
        longitude,
        radius_meters,
    };
    forward::<LocationCreateOp>(
        &app,
        &rid,
        &req,
        StatusCode::CREATED,
        "Location created successfully",
    )
    .await
}
