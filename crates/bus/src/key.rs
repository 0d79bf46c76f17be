//! API key format: `clk_` + 32 characters of `[A-Za-z0-9]`. The first 26 come from a CSPRNG; the
//! last 6 are the base62 CRC32 of those 26, zero-padded, so a mistyped or invented key is refused
//! before any lookup and secret scanners can recognise leaked keys. Only the SHA-256 hex of the
//! whole key is stored, and a presented key is hashed before it is looked up: no code compares
//! the secret itself, so no comparison's timing can reveal how much of a key matched.

use std::fmt;

use rand::Rng;
use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "clk_";
const RANDOM_LEN: usize = 26;
const CHECK_LEN: usize = 6;
const BODY_LEN: usize = RANDOM_LEN + CHECK_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A well-formed API key (format and checksum verified). Its `Debug` and `Display` show only
/// the hint, so it cannot end up whole in a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let random: String = (0..RANDOM_LEN)
            .map(|_| BASE62[rng.random_range(0..BASE62.len())] as char)
            .collect();
        let check = checksum(random.as_bytes());
        Self(format!("{KEY_PREFIX}{random}{check}"))
    }

    /// Accepts exactly `clk_` + 32 base62 characters whose last 6 are the checksum of the first 26.
    pub fn parse(s: &str) -> Option<Self> {
        let body = s.strip_prefix(KEY_PREFIX)?;
        if body.len() != BODY_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let (random, check) = body.split_at(RANDOM_LEN);
        if checksum(random.as_bytes()).as_bytes() != check.as_bytes() {
            return None;
        }
        Some(Self(s.to_owned()))
    }

    /// The whole secret. Call only to hand it to its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }

    /// `clk_…` + the last 4 characters: what lists and logs may show.
    pub fn hint(&self) -> String {
        format!("{KEY_PREFIX}…{}", &self.0[self.0.len() - 4..])
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.hint())
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hint())
    }
}

/// SHA-256 of a key, lowercase hex (64 characters): how keys are stored and looked up.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyHash(String);

impl KeyHash {
    pub fn of(key: &str) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = Sha256::digest(key.as_bytes());
        let mut hex = String::with_capacity(64);
        for b in digest {
            hex.push(HEX[usize::from(b >> 4)] as char);
            hex.push(HEX[usize::from(b & 0xf)] as char);
        }
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", &self.0[..8])
    }
}

impl TryFrom<String> for KeyHash {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s))
        } else {
            Err("a key hash is 64 lowercase hex characters".to_owned())
        }
    }
}

impl From<KeyHash> for String {
    fn from(h: KeyHash) -> String {
        h.0
    }
}

/// Base62 of CRC32, zero-padded to 6 characters (62^6 > 2^32).
fn checksum(data: &[u8]) -> String {
    let mut n = crc32fast::hash(data) as u64;
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).expect("base62 is ascii")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_published_shape() {
        for _ in 0..200 {
            let key = ApiKey::generate();
            let s = key.expose();
            assert!(s.starts_with("clk_"));
            assert_eq!(s.len(), 36);
            assert!(s[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
            assert_eq!(ApiKey::parse(s).as_ref(), Some(&key));
        }
    }

    #[test]
    fn keys_are_distinct() {
        let keys: std::collections::HashSet<String> = (0..1000)
            .map(|_| ApiKey::generate().expose().to_owned())
            .collect();
        assert_eq!(keys.len(), 1000);
    }

    #[test]
    fn checksum_refuses_typos_and_inventions() {
        let key = ApiKey::generate();
        let s = key.expose();
        // Change one character of the random part.
        let mut typo = s.as_bytes().to_vec();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        assert!(ApiKey::parse(std::str::from_utf8(&typo).unwrap()).is_none());
        assert!(ApiKey::parse("clk_your_api_key_here").is_none());
        assert!(ApiKey::parse(&format!("clk_{}", "a".repeat(32))).is_none());
        assert!(ApiKey::parse(&s[..35]).is_none());
        assert!(ApiKey::parse(&format!("CLK_{}", &s[4..])).is_none());
        assert!(ApiKey::parse(&format!("{s}x")).is_none());
    }

    #[test]
    fn checksum_is_known_value() {
        // crc32("") = 0 -> all zeros; crc32("a") = 0xe8b7be43 = 3904355907.
        assert_eq!(checksum(b""), "000000");
        let mut n: u64 = 3_904_355_907;
        let mut digits = Vec::new();
        while n > 0 {
            digits.push(BASE62[(n % 62) as usize]);
            n /= 62;
        }
        digits.reverse();
        let expected = format!("{:0>6}", String::from_utf8(digits).unwrap());
        assert_eq!(checksum(b"a"), expected);
    }

    #[test]
    fn hash_is_sha256_hex_and_hint_hides_the_secret() {
        let h = KeyHash::of("abc");
        assert_eq!(
            h.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let key = ApiKey::generate();
        let hint = key.hint();
        assert_eq!(hint.chars().count(), 4 + 1 + 4);
        assert!(hint.ends_with(&key.expose()[32..]));
        assert!(!format!("{key:?} {key}").contains(&key.expose()[4..20]));
    }
}
