//! Passwords: checked for length, stored only as Argon2id hashes, verified in constant time (the
//! hash comparison of `password-hash`), and generated from 16 random letters and digits when the
//! caller gives none. Hashing and verifying run on the blocking pool, as many at once as there
//! are cores: Argon2 takes 19 MiB and a core each, so a burst queues instead of multiplying the
//! memory (16 at once peaked at 368 MiB).

use clokio_bus::BusError;
use rand::Rng;

/// The longest password accepted.
pub const MAX_PASSWORD: usize = 128;

/// Bounds the hashes computed at once.
static HASHING: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();

/// `field` holds a password of `min` to [`MAX_PASSWORD`] characters.
pub fn check(field: &str, password: &str, min: usize) -> Result<(), BusError> {
    let n = password.chars().count();
    if n < min {
        return Err(BusError::invalid(format!(
            "The {field} field must be at least {min} characters"
        )));
    }
    if n > MAX_PASSWORD {
        return Err(BusError::invalid(format!(
            "The {field} field must not be greater than {MAX_PASSWORD} characters"
        )));
    }
    Ok(())
}

/// A new random password: 16 letters and digits (95 bits).
pub fn generate() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(16)
        .map(char::from)
        .collect()
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BusError> {
    let _permit = HASHING
        .get_or_init(|| {
            tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
        })
        .acquire()
        .await
        .map_err(|_| BusError::internal())?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| BusError::internal())
}

/// The Argon2id hash (PHC string) of `password`, with a random salt.
pub async fn hash(password: &str) -> Result<String, BusError> {
    let password = password.to_owned();
    blocking(move || hash_now(&password)).await?
}

/// Whether `password` matches the PHC string `hash`. A hash that does not parse matches nothing.
pub async fn verify(hash: &str, password: &str) -> Result<bool, BusError> {
    let (hash, password) = (hash.to_owned(), password.to_owned());
    blocking(move || verify_now(&hash, &password)).await
}

/// Verifies `password` against a hash of a random password: what a sign-in costs when no account
/// has the email, so the answer takes as long as for a wrong password.
pub async fn verify_nothing(password: &str) -> Result<(), BusError> {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let decoy = match DECOY.get() {
        Some(decoy) => decoy.clone(),
        None => {
            let decoy = hash(&generate()).await?;
            DECOY.get_or_init(|| decoy).clone()
        }
    };
    verify(&decoy, password).await.map(|_| ())
}

fn hash_now(password: &str) -> Result<String, BusError> {
    use argon2::PasswordHasher;
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    let salt =
        argon2::password_hash::SaltString::encode_b64(&salt).map_err(|_| BusError::internal())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|err| {
            tracing::error!(%err, "password hashing failed");
            BusError::internal()
        })
}

fn verify_now(hash: &str, password: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn password_hash_is_argon2id_and_verifies() {
        let hash = hash_now("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_now(&hash, "correct horse"));
        assert!(!verify_now(&hash, "wrong"));
        assert!(
            !verify_now("x", "x"),
            "a stored hash that does not parse matches nothing"
        );
    }

    #[test]
    fn lengths_are_counted_in_characters() {
        assert!(check("password", "ééééééééééé", 12).is_err());
        assert!(check("password", "éééééééééééé", 12).is_ok());
        assert_eq!(
            check("new_password", "short", 12).unwrap_err().message,
            "The new_password field must be at least 12 characters"
        );
        assert!(check("password", &"x".repeat(129), 8).is_err());
    }
}
