//! Pages of the lists that grow with the organization (employees, daily and range reports, an
//! employee's records, leaves, webhooks, API keys): `?page=&per_page=` (at most 500), with the
//! whole list's length in `X-Total-Count` and RFC 8288 `Link` relations `first`, `prev`, `next`
//! and `last`, like GitHub's and Kimai's. Without either parameter a list answers as it always
//! did, whole and without these headers, so the product document's examples keep working. Items
//! keep the order the list has (each documents it), so pages do not overlap.
//!
//! The page is cut from the service's answer at the gateway. The employee list, which grows
//! largest, is kept in the gateway's cache as an [`IndexedList`] (its items' places found once,
//! when it is loaded), so a page costs the page, not the list; the others are bounded by their
//! queries (a date, a 31-day range, a month, an org's webhooks and keys) and are cut as they come.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use clokio_bus::ops::Operation;
use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::IntoParams;

use crate::envelope::{self, ApiError};
use crate::{App, RequestId};

/// The most items one page holds.
pub const MAX_PER_PAGE: u32 = 500;
/// The highest page number (the document states integers as int32).
pub const MAX_PAGE: u32 = i32::MAX as u32;
/// Items per page when only `page` is given.
pub const DEFAULT_PER_PAGE: u32 = 50;

/// The page parameters (read with `crate::request::Params`).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The page, from 1. With `per_page`, the answer is one page of the list, with
    /// `X-Total-Count` and a `Link` header; without both, the whole list.
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 2147483647)]
    page: Option<String>,
    /// Items per page, 1-500 (default 50).
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    per_page: Option<String>,
}

impl PageParams {
    /// The page asked for, if any.
    pub fn page(&self) -> Result<Option<Page>, ApiError> {
        Page::parse(self.page.as_deref(), self.per_page.as_deref())
    }
}

/// A requested page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    number: u32,
    size: u32,
}

impl Page {
    /// The page asked for by `page` and `per_page`, if either is given.
    pub fn parse(page: Option<&str>, per_page: Option<&str>) -> Result<Option<Self>, ApiError> {
        let number = positive(page, "page", MAX_PAGE)?;
        let size = positive(per_page, "per_page", MAX_PER_PAGE)?;
        if number.is_none() && size.is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            number: number.unwrap_or(1),
            size: size.unwrap_or(DEFAULT_PER_PAGE),
        }))
    }
}

/// A page parameter: an integer from 1 to `max` (the delivery log's, too).
pub fn positive(raw: Option<&str>, name: &str, max: u32) -> Result<Option<u32>, ApiError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let range = || {
        if max == MAX_PAGE {
            format!("The {name} field must be a positive integer")
        } else {
            format!("The {name} field must be an integer between 1 and {max}")
        }
    };
    match raw.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::invalid(range())),
    }
}

/// Sends `req` to its service and answers its list, or the page of it asked for.
pub async fn forward_list<O: Operation>(
    app: &App,
    rid: &RequestId,
    req: &O::Request,
    page: Option<Page>,
    uri: &Uri,
    message: &str,
) -> Result<Response, ApiError> {
    let data = app.bus.call_raw::<O>(req, Some(&rid.0)).await?;
    Ok(respond(page, uri, message, data))
}

/// A list answer (a JSON array) with where each of its items lies in it.
#[derive(Clone, Debug)]
pub struct IndexedList {
    pub bytes: Bytes,
    items: Arc<[(u32, u32)]>,
}

impl IndexedList {
    /// Finds the items of `bytes`; an error when it is not a JSON array.
    pub fn new(bytes: Bytes) -> Result<Self, ApiError> {
        let items: Vec<&RawValue> = serde_json::from_slice(&bytes).map_err(|err| {
            tracing::error!(%err, "a list answer is not a JSON array");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        })?;
        let base = bytes.as_ptr() as usize;
        let items = items
            .iter()
            .map(|item| {
                let at = item.get().as_ptr() as usize - base;
                (at as u32, item.get().len() as u32)
            })
            .collect();
        Ok(Self { bytes, items })
    }

    fn item(&self, i: usize) -> &[u8] {
        let (at, len) = self.items[i];
        &self.bytes[at as usize..(at + len) as usize]
    }
}

impl clokio_runtime::cache::Weigh for IndexedList {
    fn weight(&self) -> u32 {
        u32::try_from(self.bytes.len() + self.items.len() * 8).unwrap_or(u32::MAX)
    }
}

/// The envelope of `list` (a JSON array), or of the page of it asked for, with its headers.
pub fn respond(page: Option<Page>, uri: &Uri, message: &str, list: Bytes) -> Response {
    match page {
        None => envelope::raw(StatusCode::OK, message, &list),
        Some(page) => match IndexedList::new(list) {
            Ok(list) => respond_indexed(Some(page), uri, message, &list),
            Err(err) => err.into_response(),
        },
    }
}

/// [`respond`] for a list whose items are already found.
pub fn respond_indexed(
    page: Option<Page>,
    uri: &Uri,
    message: &str,
    list: &IndexedList,
) -> Response {
    let Some(page) = page else {
        return envelope::raw(StatusCode::OK, message, &list.bytes);
    };
    let total = list.items.len();
    let size = page.size as usize;
    let start = (page.number as usize - 1).saturating_mul(size).min(total);
    let end = start.saturating_add(size).min(total);
    let mut body = Vec::with_capacity(
        2 + list.items[start..end]
            .iter()
            .map(|(_, len)| *len as usize + 1)
            .sum::<usize>(),
    );
    body.push(b'[');
    for i in start..end {
        if i > start {
            body.push(b',');
        }
        body.extend_from_slice(list.item(i));
    }
    body.push(b']');
    let mut res = envelope::raw(StatusCode::OK, message, &body);
    let headers = res.headers_mut();
    headers.insert("x-total-count", HeaderValue::from(total as u64));
    if let Ok(link) = HeaderValue::from_str(&links(uri, page, total)) {
        headers.insert(axum::http::header::LINK, link);
    }
    res
}

/// The `Link` header of `page` of a list of `total` items: URI references relative to the
/// request, keeping its other parameters.
fn links(uri: &Uri, page: Page, total: usize) -> String {
    let last = total.div_ceil(page.size as usize).max(1) as u64;
    let others: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .filter(|(k, _)| k != "page" && k != "per_page")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let to = |number: u64| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(&others);
        query.append_pair("page", &number.to_string());
        query.append_pair("per_page", &page.size.to_string());
        format!("<{}?{}>", uri.path(), query.finish())
    };
    let number = u64::from(page.number);
    let mut links = Vec::with_capacity(4);
    links.push(format!("{}; rel=\"first\"", to(1)));
    if number > 1 {
        links.push(format!("{}; rel=\"prev\"", to((number - 1).min(last))));
    }
    if number < last {
        links.push(format!("{}; rel=\"next\"", to(number + 1)));
    }
    links.push(format!("{}; rel=\"last\"", to(last)));
    links.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_asked_for_with_either_parameter_and_bounded() {
        assert_eq!(Page::parse(None, None).unwrap(), None);
        assert_eq!(
            Page::parse(Some("2"), None).unwrap(),
            Some(Page {
                number: 2,
                size: 50
            })
        );
        assert_eq!(
            Page::parse(None, Some("500")).unwrap(),
            Some(Page {
                number: 1,
                size: 500
            })
        );
        for (page, per_page) in [
            (Some("0"), None),
            (Some("2147483648"), None),
            (Some(" 2"), None),
            (Some("x"), None),
            (None, Some("0")),
            (None, Some("501")),
        ] {
            assert!(
                Page::parse(page, per_page).is_err(),
                "{page:?} {per_page:?}"
            );
        }
    }

    #[test]
    fn links_keep_the_other_parameters_and_name_every_neighbour() {
        let uri: Uri = "/api/v1/employees?status=active&page=2&per_page=2"
            .parse()
            .unwrap();
        let page = Page { number: 2, size: 2 };
        assert_eq!(
            links(&uri, page, 5),
            "</api/v1/employees?status=active&page=1&per_page=2>; rel=\"first\", \
             </api/v1/employees?status=active&page=1&per_page=2>; rel=\"prev\", \
             </api/v1/employees?status=active&page=3&per_page=2>; rel=\"next\", \
             </api/v1/employees?status=active&page=3&per_page=2>; rel=\"last\""
        );
        // Past the end: no next, and prev leads back to the last page.
        let far = Page { number: 9, size: 2 };
        assert_eq!(
            links(&uri, far, 5),
            "</api/v1/employees?status=active&page=1&per_page=2>; rel=\"first\", \
             </api/v1/employees?status=active&page=3&per_page=2>; rel=\"prev\", \
             </api/v1/employees?status=active&page=3&per_page=2>; rel=\"last\""
        );
        // An empty list has one (empty) page.
        assert_eq!(
            links(&uri, Page { number: 1, size: 2 }, 0),
            "</api/v1/employees?status=active&page=1&per_page=2>; rel=\"first\", \
             </api/v1/employees?status=active&page=1&per_page=2>; rel=\"last\""
        );
    }

    #[tokio::test]
    async fn a_page_is_cut_from_the_list_as_sent() {
        let uri: Uri = "/x?page=2&per_page=2".parse().unwrap();
        let list = Bytes::from_static(br#"[{"a":1}, {"a":2},{"a": 3}]"#);
        let page = Some(Page { number: 2, size: 2 });
        let res = respond(page, &uri, "ok", list.clone());
        assert_eq!(res.headers()["x-total-count"], "3");
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(
            &body[..],
            br#"{"status":"success","message":"ok","data":[{"a": 3}]}"#
        );
        let res = respond(None, &uri, "ok", list);
        assert!(res.headers().get("x-total-count").is_none());
        let indexed =
            IndexedList::new(Bytes::from_static(br#"[{"a":1}, {"a":2},{"a": 3}]"#)).unwrap();
        assert_eq!(indexed.item(1), br#"{"a":2}"#);
        assert!(IndexedList::new(Bytes::from_static(b"{}")).is_err());
    }
}
