//! One module per resource; each function answers one bus operation.

pub mod admins;
pub mod employees;
pub mod keys;
pub mod locations;
pub mod orgs;
pub mod passwords;

use clokio_bus::BusError;

/// A trimmed, non-empty name of at most `max` characters.
pub fn name_field(field: &str, value: &str, max: usize) -> Result<String, BusError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(BusError::invalid(format!("The {field} field is required")));
    }
    if value.chars().count() > max {
        return Err(BusError::invalid(format!(
            "The {field} field must not be greater than {max} characters"
        )));
    }
    Ok(value.to_owned())
}
