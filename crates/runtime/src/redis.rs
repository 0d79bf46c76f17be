//! Redis for the services that use it: one multiplexed, auto-reconnecting connection per
//! process (concurrent commands are pipelined on it), made on first use so a process starts and
//! degrades, rather than failing, while Redis is down. Also the org generation key that writers
//! bump and the gateway reads.

use std::time::Duration;

use clokio_bus::ids::OrgId;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub struct LazyRedis {
    client: redis::Client,
    conn: tokio::sync::OnceCell<ConnectionManager>,
    timeout: Duration,
    /// After a failed generation bump, further bumps are skipped until then, so an outage does
    /// not add the timeout to every write.
    bump_down_until: std::sync::Mutex<Option<std::time::Instant>>,
}

impl LazyRedis {
    /// `timeout` bounds connecting and each command.
    pub fn new(url: &str, timeout: Duration) -> redis::RedisResult<Self> {
        // Small request/response traffic: Nagle's algorithm would only add latency.
        let info = redis::IntoConnectionInfo::into_connection_info(url)?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        Ok(Self {
            client: redis::Client::open(info)?,
            conn: tokio::sync::OnceCell::new(),
            timeout,
            bump_down_until: std::sync::Mutex::new(None),
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let conn = self
            .conn
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(conn.clone())
    }

    /// PING, for readiness.
    pub async fn ping(&self) -> bool {
        let ping = async {
            let mut conn = self.connection().await.ok()?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .ok()
        };
        matches!(
            tokio::time::timeout(self.timeout.max(Duration::from_millis(500)), ping).await,
            Ok(Some(_))
        )
    }

    /// Bumps `org`'s generation (see [`generation_key`]); false when Redis did not answer (and,
    /// for a second after that, without trying).
    pub async fn bump_generation(&self, prefix: &str, org: OrgId) -> bool {
        let now = std::time::Instant::now();
        {
            let mut down = self
                .bump_down_until
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if down.is_some_and(|until| now < until) {
                return false;
            }
            *down = None;
        }
        let bump = async {
            let mut conn = self.connection().await.ok()?;
            redis::cmd("INCR")
                .arg(generation_key(prefix, org))
                .query_async::<i64>(&mut conn)
                .await
                .ok()
        };
        let ok = matches!(tokio::time::timeout(self.timeout, bump).await, Ok(Some(_)));
        if !ok {
            *self
                .bump_down_until
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(now + Duration::from_secs(1));
        }
        ok
    }
}

/// `<prefix>:gen:<org>`: how many writes of the org's cached data have been announced. Writers
/// bump it after their invalidation announcement reached NATS; the gateway reads it in the rate
/// limiter's script, so a cached read is proven fresh in the round trip it makes anyway.
pub fn generation_key(prefix: &str, org: OrgId) -> String {
    format!("{prefix}:gen:{org}")
}
