//! Sessions: a random 256-bit id in a cookie, the session itself in Redis under the SHA-256 of
//! that id (a copy of Redis holds no id that signs anyone in). A session ends after
//! `session_idle` unused or `session_max` after sign-in, whichever comes first; every request
//! that uses it moves the idle deadline, in the same round trip that reads it. It carries the
//! admin, the organization, a CSRF token of its own, and, for the page after a redirect, a flash
//! message. A secret to show once on that page (a new key, a one-time password) waits beside it
//! under a key of its own that expires after [`REVEAL_FOR`], and is deleted as it is read.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use clokio_bus::ids::{EmployeeId, OrgId};
use clokio_bus::key::KeyHash;
use clokio_bus::ops::SignedIn;
use clokio_runtime::redis::LazyRedis;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// One signed-in admin's session, as a request sees it.
#[derive(Clone, Debug)]
pub struct Session {
    /// The Redis key (`<prefix>:console:session:<sha256 of the id>`).
    pub key: String,
    pub org_id: OrgId,
    pub org_name: String,
    pub admin_id: EmployeeId,
    pub admin_name: String,
    pub email: String,
    /// The token every state-changing request of this session must carry.
    pub csrf: String,
    /// The admin's `credentials_version` at sign-in (or at their own last password change).
    pub credentials_version: i64,
    pub must_change_password: bool,
    /// Taken from the session by this request (a page after a redirect).
    pub flash: Option<Flash>,
    pub reveal: Option<Reveal>,
}

/// A confirmation for the page after a redirect ("API key revoked").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Flash {
    pub text: String,
}

/// A secret the page after a redirect shows once: a new API key, a one-time password, a
/// webhook signing secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reveal {
    /// What it is ("API key").
    pub what: String,
    /// Whose or which ("Payroll Integration").
    pub name: String,
    pub secret: String,
    /// When it was put there (ms since the epoch); older than [`REVEAL_FOR`] it is not shown.
    pub at_ms: i64,
}

/// How long a secret waits in the session for the page that shows it.
pub const REVEAL_FOR: Duration = Duration::from_secs(300);

/// Reads a session (KEYS[1]), ends it when its absolute lifetime is over, moves its idle deadline,
/// and (ARGV[4] = "1") takes its flash and its waiting secret (KEYS[2]) out. Returns its fields
/// (the secret as `reveal`), or nil.
const LOAD: &str = r#"
local s = redis.call('HGETALL', KEYS[1])
if #s == 0 then return nil end
local created = 0
for i = 1, #s, 2 do
  if s[i] == 'created_ms' then created = tonumber(s[i + 1]) end
end
local left = created + tonumber(ARGV[3]) - tonumber(ARGV[1])
if left <= 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
  return nil
end
redis.call('PEXPIRE', KEYS[1], math.min(left, tonumber(ARGV[2])))
if ARGV[4] == '1' then
  redis.call('HDEL', KEYS[1], 'flash')
  local secret = redis.call('GET', KEYS[2])
  if secret then
    redis.call('DEL', KEYS[2])
    table.insert(s, 'reveal')
    table.insert(s, secret)
  end
end
return s
"#;

/// Puts a flash in a session that still exists (KEYS[1]) and a secret beside it (KEYS[2]) for
/// ARGV[3] ms.
const REVEAL: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'flash', ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"#;

/// Sets fields of a session that still exists (never recreates one that ended meanwhile).
const SET: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"#;

pub struct SessionStore {
    redis: Arc<LazyRedis>,
    prefix: String,
    idle: Duration,
    max: Duration,
    load: redis::Script,
    set: redis::Script,
    reveal: redis::Script,
}

/// A new random token: 32 bytes, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    B64.encode(bytes)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl SessionStore {
    pub fn new(redis: Arc<LazyRedis>, prefix: &str, idle: Duration, max: Duration) -> Self {
        Self {
            redis,
            prefix: format!("{prefix}:console:session:"),
            idle,
            max,
            load: redis::Script::new(LOAD),
            set: redis::Script::new(SET),
            reveal: redis::Script::new(REVEAL),
        }
    }

    /// The Redis key of a session id.
    pub fn key(&self, id: &str) -> String {
        format!("{}{}", self.prefix, KeyHash::of(id).as_str())
    }

    /// Starts a session for `admin`; returns the id for the cookie.
    pub async fn create(&self, admin: &SignedIn) -> redis::RedisResult<String> {
        let id = random_token();
        let key = self.key(&id);
        let mut conn = self.redis.connection().await?;
        let fields: Vec<(&str, String)> = vec![
            ("org_id", admin.org_id.to_string()),
            ("org_name", admin.org_name.clone()),
            ("admin_id", admin.admin.employee_id.get().to_string()),
            ("admin_name", admin.admin.name.clone()),
            ("email", admin.admin.email.to_string()),
            ("csrf", random_token()),
            ("version", admin.admin.credentials_version.to_string()),
            (
                "must_change",
                u8::from(admin.admin.must_change_password).to_string(),
            ),
            ("created_ms", now_ms().to_string()),
        ];
        let ttl = self.idle.min(self.max).as_millis() as u64;
        redis::pipe()
            .atomic()
            .hset_multiple(&key, &fields)
            .ignore()
            .pexpire(&key, ttl as i64)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(id)
    }

    /// The session of `id`, if it is alive; `take` also takes its flash and reveal out.
    pub async fn load(&self, id: &str, take: bool) -> redis::RedisResult<Option<Session>> {
        let key = self.key(id);
        let mut conn = self.redis.connection().await?;
        let fields: Option<Vec<String>> = self
            .load
            .key(&key)
            .key(reveal_key(&key))
            .arg(now_ms())
            .arg(self.idle.as_millis() as u64)
            .arg(self.max.as_millis() as u64)
            .arg(if take { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await?;
        Ok(fields.and_then(|f| parse(key, f)))
    }

    /// Whether the session under `key` still exists.
    pub async fn alive(&self, key: &str) -> redis::RedisResult<bool> {
        let mut conn = self.redis.connection().await?;
        redis::cmd("EXISTS").arg(key).query_async(&mut conn).await
    }

    /// Ends a session.
    pub async fn destroy(&self, key: &str) -> redis::RedisResult<()> {
        let mut conn = self.redis.connection().await?;
        redis::cmd("DEL")
            .arg(key)
            .arg(reveal_key(key))
            .query_async(&mut conn)
            .await
    }

    async fn set(&self, key: &str, fields: &[(&str, String)]) -> redis::RedisResult<()> {
        let mut conn = self.redis.connection().await?;
        let mut call = self.set.key(key);
        for (name, value) in fields {
            call.arg(*name).arg(value);
        }
        call.invoke_async::<i64>(&mut conn).await.map(|_| ())
    }

    /// A confirmation for the next page of this session.
    pub async fn flash(&self, s: &Session, text: impl Into<String>) -> redis::RedisResult<()> {
        let flash = Flash { text: text.into() };
        self.set(&s.key, &[("flash", json(&flash))]).await
    }

    /// A secret for the next page of this session to show once, with a confirmation.
    pub async fn reveal(
        &self,
        s: &Session,
        flash: impl Into<String>,
        what: &str,
        name: &str,
        secret: &str,
    ) -> redis::RedisResult<()> {
        let reveal = Reveal {
            what: what.to_owned(),
            name: name.to_owned(),
            secret: secret.to_owned(),
            at_ms: now_ms(),
        };
        let flash = Flash { text: flash.into() };
        let mut conn = self.redis.connection().await?;
        self.reveal
            .key(&s.key)
            .key(reveal_key(&s.key))
            .arg(json(&flash))
            .arg(json(&reveal))
            .arg(REVEAL_FOR.as_millis() as u64)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
    }

    /// After the admin's own password change: this session carries the new version, the others
    /// (older) end.
    pub async fn credentials_changed(&self, s: &Session, version: i64) -> redis::RedisResult<()> {
        self.set(
            &s.key,
            &[
                ("version", version.to_string()),
                ("must_change", "0".to_owned()),
            ],
        )
        .await
    }
}

/// Where a session's secret to show once waits.
fn reveal_key(session_key: &str) -> String {
    format!("{session_key}:reveal")
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn parse(key: String, fields: Vec<String>) -> Option<Session> {
    let mut m = std::collections::HashMap::new();
    let mut it = fields.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        m.insert(k, v);
    }
    let mut take = |name: &str| m.remove(name);
    let reveal = take("reveal")
        .and_then(|r| serde_json::from_str::<Reveal>(&r).ok())
        .filter(|r| now_ms() - r.at_ms <= REVEAL_FOR.as_millis() as i64);
    Some(Session {
        key,
        org_id: take("org_id")?.parse().ok()?,
        org_name: take("org_name")?,
        admin_id: EmployeeId::new(take("admin_id")?.parse().ok()?),
        admin_name: take("admin_name")?,
        email: take("email")?,
        csrf: take("csrf")?,
        credentials_version: take("version")?.parse().ok()?,
        must_change_password: take("must_change").as_deref() == Some("1"),
        flash: take("flash").and_then(|f| serde_json::from_str(&f).ok()),
        reveal,
    })
}

/// Equal strings, compared in time that depends only on their lengths.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session cookie's name: `__Host-` over https, so only this host, over https, at `/` can
/// set it.
pub fn cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-clokio_session"
    } else {
        "clokio_session"
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure over https; `max_age` None
/// deletes it.
pub fn set_cookie(name: &str, value: &str, https: bool, max_age: Option<Duration>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    match max_age {
        Some(age) => c.push_str(&format!("; Max-Age={}", age.as_secs())),
        None => c.push_str("; Max-Age=0"),
    }
    if https {
        c.push_str("; Secure");
    }
    c
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_and_written_strictly() {
        let mut h = axum::http::HeaderMap::new();
        h.append("cookie", "a=1; clokio_session=abc".parse().unwrap());
        h.append("cookie", "b=2".parse().unwrap());
        assert_eq!(cookie(&h, "clokio_session"), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(
            set_cookie(
                "__Host-clokio_session",
                "x",
                true,
                Some(Duration::from_secs(60))
            ),
            "__Host-clokio_session=x; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        assert_eq!(
            set_cookie("clokio_session", "", false, None),
            "clokio_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }

    #[test]
    fn tokens_are_256_bits_and_compared_exactly() {
        let t = random_token();
        assert_eq!(B64.decode(&t).unwrap().len(), 32);
        assert_ne!(t, random_token());
        assert!(constant_time_eq(&t, &t.clone()));
        assert!(!constant_time_eq(&t, &random_token()));
        assert!(!constant_time_eq("a", "ab"));
    }

    #[test]
    fn a_stale_reveal_is_not_shown() {
        let old = Reveal {
            what: "API key".into(),
            name: "n".into(),
            secret: "s".into(),
            at_ms: now_ms() - REVEAL_FOR.as_millis() as i64 - 1,
        };
        let fields = |reveal: &Reveal| {
            vec![
                "org_id",
                &OrgId::new_random().to_string(),
                "org_name",
                "Acme",
                "admin_id",
                "7",
                "admin_name",
                "Ann",
                "email",
                "ann@acme.test",
                "csrf",
                "t",
                "version",
                "3",
                "must_change",
                "1",
                "created_ms",
                "0",
                "reveal",
                &json(reveal),
            ]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
        };
        let s = parse("k".into(), fields(&old)).unwrap();
        assert_eq!(s.reveal, None);
        assert!(s.must_change_password);
        assert_eq!(s.credentials_version, 3);
        let fresh = Reveal {
            at_ms: now_ms(),
            ..old
        };
        assert!(parse("k".into(), fields(&fresh)).unwrap().reveal.is_some());
    }
}
