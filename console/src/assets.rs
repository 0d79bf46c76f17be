//! The console's own stylesheet, script and icon, compiled into the binary and served under
//! names that carry a hash of their content (`/assets/console.3f2a9c1b04d7.css`), so browsers may
//! keep them forever and a new release is fetched at once. Nothing comes from anywhere else.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    url: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// (stem, extension, content type, bytes)
const FILES: &[(&str, &str, &str, &[u8])] = &[
    (
        "console",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/console.css"),
    ),
    (
        "console",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/console.js"),
    ),
    (
        "icon",
        "svg",
        "image/svg+xml",
        include_bytes!("../assets/icon.svg"),
    ),
];

static ASSETS: LazyLock<HashMap<&'static str, Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(stem, ext, content_type, bytes)| {
            let hash: String = Sha256::digest(bytes)
                .iter()
                .take(6)
                .map(|b| format!("{b:02x}"))
                .collect();
            let asset = Asset {
                url: format!("/assets/{stem}.{hash}.{ext}"),
                content_type,
                bytes,
            };
            (*ext, asset)
        })
        .collect()
});

/// The URL of the stylesheet.
pub fn css() -> &'static str {
    &ASSETS["css"].url
}

/// The URL of the script.
pub fn js() -> &'static str {
    &ASSETS["js"].url
}

/// The URL of the icon.
pub fn icon() -> &'static str {
    &ASSETS["svg"].url
}

/// `GET /assets/{name}`: only the current hashed names exist.
pub async fn serve(Path(name): Path<String>) -> Response {
    let path = format!("/assets/{name}");
    match ASSETS.values().find(|a| a.url == path) {
        Some(asset) => {
            let mut res = asset.bytes.into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            res
        }
        None => (StatusCode::NOT_FOUND, "Not found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_content_hash() {
        for url in [css(), js(), icon()] {
            assert!(url.starts_with("/assets/"), "{url}");
            let file = url.trim_start_matches("/assets/");
            let parts: Vec<&str> = file.split('.').collect();
            assert_eq!(parts.len(), 3, "{url}");
            assert_eq!(parts[1].len(), 12);
        }
        assert_ne!(css(), js());
    }
}
