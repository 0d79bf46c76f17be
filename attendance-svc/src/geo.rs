//! Geofencing: which of the org's locations a reported position is at.

use clokio_bus::ops::{Coordinates, Location};

const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres (haversine).
pub fn distance_m(a: Coordinates, b: Coordinates) -> f64 {
    let (lat1, lat2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.longitude - a.longitude).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// The nearest location whose radius contains `point`, if any.
pub fn locate(locations: &[Location], point: Coordinates) -> Option<&Location> {
    locations
        .iter()
        .map(|l| {
            let d = distance_m(
                point,
                Coordinates {
                    latitude: l.latitude,
                    longitude: l.longitude,
                },
            );
            (l, d)
        })
        .filter(|(l, d)| *d <= l.radius_meters)
        .min_by(|(_, a), (_, b)| a.total_cmp(b))
        .map(|(l, _)| l)
}

/// Checks a reported position is on Earth.
pub fn validate(point: Coordinates) -> Result<(), &'static str> {
    if !(point.latitude.is_finite() && (-90.0..=90.0).contains(&point.latitude)) {
        return Err("The latitude field must be between -90 and 90");
    }
    if !(point.longitude.is_finite() && (-180.0..=180.0).contains(&point.longitude)) {
        return Err("The longitude field must be between -180 and 180");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clokio_bus::ids::LocationId;

    fn loc(id: i64, lat: f64, lon: f64, radius: f64) -> Location {
        Location {
            id: LocationId::new(id),
            name: format!("L{id}"),
            latitude: lat,
            longitude: lon,
            radius_meters: radius,
            created_at: chrono::Utc::now(),
        }
    }

    fn at(latitude: f64, longitude: f64) -> Coordinates {
        Coordinates {
            latitude,
            longitude,
        }
    }

    #[test]
    fn distances_match_known_values() {
        // Tel Aviv to Jerusalem is about 54 km.
        let d = distance_m(at(32.0853, 34.7818), at(31.7683, 35.2137));
        assert!((53_000.0..55_000.0).contains(&d), "{d}");
        // One thousandth of a degree of latitude is about 111 m.
        let d = distance_m(at(32.0, 34.0), at(32.001, 34.0));
        assert!((110.0..112.5).contains(&d), "{d}");
        assert_eq!(distance_m(at(10.0, 10.0), at(10.0, 10.0)), 0.0);
        // Across the antimeridian.
        let d = distance_m(at(0.0, 179.9995), at(0.0, -179.9995));
        assert!((100.0..120.0).contains(&d), "{d}");
    }

    #[test]
    fn picks_the_nearest_containing_location() {
        let locations = vec![
            loc(1, 32.0000, 34.0000, 500.0),
            loc(2, 32.0020, 34.0000, 500.0),
            loc(3, 32.0100, 34.0000, 50.0),
        ];
        // 0.0015° north: inside both 1 (167 m) and 2 (56 m); 2 is nearer.
        assert_eq!(locate(&locations, at(32.0015, 34.0)).unwrap().id.get(), 2);
        assert_eq!(locate(&locations, at(32.0001, 34.0)).unwrap().id.get(), 1);
        // Near 3's centre but outside its small radius, and far from the others.
        assert!(locate(&locations, at(32.0106, 34.0)).is_none());
        assert!(locate(&[], at(0.0, 0.0)).is_none());
    }

    #[test]
    fn validates_ranges() {
        assert!(validate(at(90.0, 180.0)).is_ok());
        assert!(validate(at(90.1, 0.0)).is_err());
        assert!(validate(at(0.0, -180.5)).is_err());
        assert!(validate(at(f64::NAN, 0.0)).is_err());
    }
}
