//! Work locations: a named point with a geofence radius, unique by name within an org.

use chrono::{DateTime, Utc};
use clokio_bus::BusError;
use clokio_bus::ids::{LocationId, OrgId};
use clokio_bus::ops::{Location, LocationCreate};

use crate::{State, db};

#[derive(sqlx::FromRow)]
struct LocationRow {
    id: i64,
    name: String,
    latitude: f64,
    longitude: f64,
    radius_meters: f64,
    created_at: DateTime<Utc>,
}

impl From<LocationRow> for Location {
    fn from(r: LocationRow) -> Self {
        Location {
            id: LocationId::new(r.id),
            name: r.name,
            latitude: r.latitude,
            longitude: r.longitude,
            radius_meters: r.radius_meters,
            created_at: r.created_at,
        }
    }
}

/// Maximum geofence radius: 100 km is already a city.
pub const MAX_RADIUS_METERS: f64 = 100_000.0;

pub async fn create(state: &State, req: LocationCreate) -> db::Result<Location> {
    let name = super::name_field("name", &req.name, 255)?;
    if !(req.latitude.is_finite() && (-90.0..=90.0).contains(&req.latitude)) {
        return Err(BusError::invalid("The latitude field must be between -90 and 90").into());
    }
    if !(req.longitude.is_finite() && (-180.0..=180.0).contains(&req.longitude)) {
        return Err(BusError::invalid("The longitude field must be between -180 and 180").into());
    }
    if !(req.radius_meters.is_finite()
        && req.radius_meters > 0.0
        && req.radius_meters <= MAX_RADIUS_METERS)
    {
        return Err(BusError::invalid(
            "The radius_meters field must be greater than 0 and at most 100000",
        )
        .into());
    }
    let row: Option<LocationRow> = sqlx::query_as(
        "INSERT INTO locations (org_id, name, latitude, longitude, radius_meters) \
         SELECT id, $2, $3, $4, $5 FROM organizations WHERE id = $1 \
         RETURNING id, name, latitude, longitude, radius_meters, created_at",
    )
    .bind(req.org_id.as_uuid())
    .bind(&name)
    .bind(req.latitude)
    .bind(req.longitude)
    .bind(req.radius_meters)
    .fetch_optional(&state.pool)
    .await?;
    let location: Location = row
        .map(Into::into)
        .ok_or_else(|| BusError::not_found("Organization not found"))?;
    // attendance-svc geofences against the org's locations from its cache.
    state.org_changed(req.org_id).await;
    Ok(location)
}

pub async fn list(state: &State, org_id: OrgId) -> db::Result<Vec<Location>> {
    let rows: Vec<LocationRow> = sqlx::query_as(
        "SELECT id, name, latitude, longitude, radius_meters, created_at \
         FROM locations WHERE org_id = $1 ORDER BY name, id",
    )
    .bind(org_id.as_uuid())
    .fetch_all(&state.pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}
