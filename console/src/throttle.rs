//! Sign-in throttling, in Redis so every console replica counts together: at most
//! `signin_account_limit` failures per account (the email, whether or not it exists) and
//! `signin_address_limit` per client address in one window. An attempt is counted before the
//! password is checked, in one atomic script, so parallel guesses cannot slip past the limit; a
//! successful sign-in takes its own attempt back and clears the account's count.

use std::sync::Arc;
use std::time::Duration;

use clokio_bus::key::KeyHash;
use clokio_runtime::redis::LazyRedis;

/// Counts the attempt under both keys (each window starts at its first failure); returns the
/// seconds to wait when either is over its limit, else -1.
const ATTEMPT: &str = r#"
local a = redis.call('INCR', KEYS[1])
if a == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local i = redis.call('INCR', KEYS[2])
if i == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
local wait = -1
if a > tonumber(ARGV[2]) then wait = math.max(wait, redis.call('PTTL', KEYS[1])) end
if i > tonumber(ARGV[3]) then wait = math.max(wait, redis.call('PTTL', KEYS[2])) end
if wait >= 0 then return {1, wait} end
return {0, a, i, redis.call('PTTL', KEYS[1]), redis.call('PTTL', KEYS[2])}
"#;

/// A success: the account starts afresh; the address gets its attempt back, but only while its
/// window still runs (a DECR of an expired key would create one without an expiry, below zero,
/// that never throttles again).
const SUCCEEDED: &str = r#"
redis.call('DEL', KEYS[1])
if redis.call('PTTL', KEYS[2]) > 0 and tonumber(redis.call('GET', KEYS[2])) > 0 then
  redis.call('DECR', KEYS[2])
end
return 1
"#;

/// What an attempt may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Check the password; if it fails and this attempt reached a limit, the wait to show.
    Go { wait_if_wrong: Option<Duration> },
    /// Refused without checking; try again after this long.
    Wait(Duration),
}

pub struct Throttle {
    redis: Arc<LazyRedis>,
    prefix: String,
    window: Duration,
    account_limit: u32,
    address_limit: u32,
    script: redis::Script,
    succeeded: redis::Script,
}

impl Throttle {
    pub fn new(
        redis: Arc<LazyRedis>,
        prefix: &str,
        window: Duration,
        account_limit: u32,
        address_limit: u32,
    ) -> Self {
        Self {
            redis,
            prefix: format!("{prefix}:console:signin:"),
            window,
            account_limit,
            address_limit,
            script: redis::Script::new(ATTEMPT),
            succeeded: redis::Script::new(SUCCEEDED),
        }
    }

    /// The two counters' keys; the email and address appear only as their SHA-256.
    fn keys(&self, email: &str, address: &str) -> (String, String) {
        (
            format!(
                "{}account:{}",
                self.prefix,
                KeyHash::of(&email.to_lowercase()).as_str()
            ),
            format!("{}address:{}", self.prefix, KeyHash::of(address).as_str()),
        )
    }

    /// Counts an attempt of `email` from `address`.
    pub async fn attempt(&self, email: &str, address: &str) -> redis::RedisResult<Attempt> {
        let (account, addr) = self.keys(email, address);
        let mut conn = self.redis.connection().await?;
        let out: Vec<i64> = self
            .script
            .key(&account)
            .key(&addr)
            .arg(self.window.as_millis() as u64)
            .arg(self.account_limit)
            .arg(self.address_limit)
            .invoke_async(&mut conn)
            .await?;
        Ok(match out.as_slice() {
            [1, wait_ms] => Attempt::Wait(Duration::from_millis((*wait_ms).max(1000) as u64)),
            [0, a, i, ttl_a, ttl_i] => {
                let mut wait = None;
                if *a >= i64::from(self.account_limit) {
                    wait = Some(*ttl_a);
                }
                if *i >= i64::from(self.address_limit) {
                    wait = Some(wait.unwrap_or(0).max(*ttl_i));
                }
                Attempt::Go {
                    wait_if_wrong: wait.map(|ms| Duration::from_millis(ms.max(1000) as u64)),
                }
            }
            _ => Attempt::Go {
                wait_if_wrong: None,
            },
        })
    }

    /// A successful sign-in: the account starts afresh and the address gets its attempt back.
    pub async fn succeeded(&self, email: &str, address: &str) -> redis::RedisResult<()> {
        let (account, addr) = self.keys(email, address);
        let mut conn = self.redis.connection().await?;
        self.succeeded
            .key(&account)
            .key(&addr)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
    }
}

/// "14 minutes", "1 minute", "40 seconds": a wait as people read it (minutes rounded up).
pub fn wait_text(wait: Duration) -> String {
    let secs = wait.as_secs().max(1);
    if secs < 60 {
        format!("{secs} second{}", if secs == 1 { "" } else { "s" })
    } else {
        let minutes = secs.div_ceil(60);
        format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_naturally() {
        assert_eq!(wait_text(Duration::from_secs(1)), "1 second");
        assert_eq!(wait_text(Duration::from_secs(40)), "40 seconds");
        assert_eq!(wait_text(Duration::from_secs(60)), "1 minute");
        assert_eq!(wait_text(Duration::from_secs(61)), "2 minutes");
        assert_eq!(wait_text(Duration::from_secs(900)), "15 minutes");
    }
}
