//! The Prometheus text a `/metrics` endpoint served.

/// The Prometheus text a gateway's `/metrics` served.
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the first sample whose line starts with `series` (name plus labels as the
    /// exporter writes them, e.g. `clokio_auth_cache_total{result="hit"}`).
    #[track_caller]
    pub fn value(&self, series: &str) -> f64 {
        self.0
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing from /metrics:\n{}", self.0))
    }

    pub fn contains(&self, text: &str) -> bool {
        self.0.contains(text)
    }
}
