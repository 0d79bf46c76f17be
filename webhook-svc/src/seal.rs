//! Signing secrets at rest: the database holds each webhook secret sealed with AES-256-GCM under
//! the operator's key (`CLOKIO_WEBHOOK_SECRET_KEY`), so a dump or a backup of the `webhook` schema
//! does not give away what signs the deliveries. The key is installed once per process; a
//! [`Secret`] is sealed as it is bound into a query and opened as it is read, so the code above
//! this module only ever sees plaintext. A stored value that does not open (the key was changed,
//! or the value damaged) reads as unreadable instead of failing its row: only what needs the
//! plaintext (signing a generic delivery, the hint) fails, and for that webhook alone. Values written before sealing existed (plain `whsec_…`)
//! are still read, and sealed on their next write.

use std::sync::OnceLock;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

static CIPHER: OnceLock<Aes256Gcm> = OnceLock::new();

/// What marks a sealed value: the version, then base64 of nonce and ciphertext.
const SEALED: &str = "sealed1:";

/// Installs the process's key (the first call wins: replicas in one test process share one).
pub fn install(key: &[u8; 32]) {
    let _ = CIPHER.get_or_init(|| Aes256Gcm::new(key.into()));
}

fn cipher() -> Result<&'static Aes256Gcm, BoxDynError> {
    CIPHER
        .get()
        .ok_or_else(|| "no webhook secret key installed".into())
}

pub fn seal(plain: &str) -> Result<String, BoxDynError> {
    let nonce: [u8; 12] = rand::random();
    let sealed = cipher()?
        .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
        .map_err(|_| "sealing failed")?;
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    Ok(format!("{SEALED}{}", STANDARD.encode(bytes)))
}

pub fn open(stored: &str) -> Result<String, BoxDynError> {
    let Some(b64) = stored.strip_prefix(SEALED) else {
        return Ok(stored.to_owned());
    };
    let bytes = STANDARD.decode(b64)?;
    if bytes.len() < 12 {
        return Err("sealed secret too short".into());
    }
    let (nonce, sealed) = bytes.split_at(12);
    let plain = cipher()?
        .decrypt(Nonce::from_slice(nonce), sealed)
        .map_err(|_| "a sealed secret does not open with CLOKIO_WEBHOOK_SECRET_KEY")?;
    Ok(String::from_utf8(plain)?)
}

/// Seals the secrets stored before sealing existed (an upgrade), once per row; replicas starting
/// together each seal what is left, and a row already sealed is not touched.
pub async fn seal_stored(pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    let rows = unsealed(pool).await?;
    let n = rows.len();
    seal_rows(pool, rows).await?;
    if n > 0 {
        tracing::info!(subscriptions = n, "sealed stored webhook secrets");
    }
    Ok(())
}

/// A subscription row with a secret stored in plain text, as read.
pub struct Unsealed {
    id: uuid::Uuid,
    secret: String,
    previous: Option<String>,
}

/// The rows with a secret in plain text (the first half of [`seal_stored`]).
pub async fn unsealed(pool: &sqlx::PgPool) -> Result<Vec<Unsealed>, sqlx::Error> {
    let rows: Vec<(uuid::Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT id, secret, previous_secret FROM subscriptions \
         WHERE secret NOT LIKE 'sealed1:%' OR previous_secret NOT LIKE 'sealed1:%'",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, secret, previous)| Unsealed {
            id,
            secret,
            previous,
        })
        .collect())
}

/// Writes each row's secrets back sealed (the second half of [`seal_stored`]), unless the row
/// changed since it was read: a rotation in between (another replica already serving) wrote
/// sealed secrets of its own, which the values read must not overwrite.
pub async fn seal_rows(pool: &sqlx::PgPool, rows: Vec<Unsealed>) -> Result<(), sqlx::Error> {
    for row in rows {
        let secret = Secret(open(&row.secret).ok());
        let previous = row.previous.as_deref().map(|p| Secret(open(p).ok()));
        let readable = |s: &Secret| s.plain().is_some();
        if !readable(&secret) || previous.as_ref().is_some_and(|p| !readable(p)) {
            tracing::error!(subscription = %row.id, "a stored webhook secret does not open; left as it is");
            continue;
        }
        sqlx::query(
            "UPDATE subscriptions SET secret = $2, previous_secret = $3 \
             WHERE id = $1 AND secret = $4 AND previous_secret IS NOT DISTINCT FROM $5",
        )
        .bind(row.id)
        .bind(&secret)
        .bind(&previous)
        .bind(&row.secret)
        .bind(&row.previous)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// A signing secret: plaintext in memory, sealed in the database; `None` when the stored value
/// does not open.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Option<String>);

impl Secret {
    pub fn new(plain: String) -> Self {
        Self(Some(plain))
    }

    /// The plaintext, unless the stored value does not open.
    pub fn plain(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Type<Postgres> for Secret {
    fn type_info() -> PgTypeInfo {
        <String as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <String as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for Secret {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(open(<&str as Decode<Postgres>>::decode(value)?).ok()))
    }
}

impl Encode<'_, Postgres> for Secret {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let plain = self
            .plain()
            .ok_or("an unreadable webhook secret cannot be stored again")?;
        <String as Encode<Postgres>>::encode(seal(plain)?, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_and_hide_the_secret() {
        install(&[7; 32]);
        let sealed = seal("whsec_abc").unwrap();
        assert!(sealed.starts_with(SEALED));
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            seal("whsec_abc").unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(open(&sealed).unwrap(), "whsec_abc");
        assert_eq!(open("whsec_legacy").unwrap(), "whsec_legacy");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(open(&tampered).is_err());
    }
}
