//! The one pagination of the API: `?limit=&cursor=` in, `{items, next_cursor}` out.
//! Keyset-based (the cursor encodes the last key returned), so pages stay stable
//! while rows are inserted, and a deep page costs the same as the first.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorCode};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// A validated page request: how many items, and after which key.
#[derive(Debug)]
pub struct PageRequest<K> {
    pub limit: i64,
    pub after: Option<K>,
}

/// The `limit` parameter: 1 to 200, default 50; also for lists that are not paged (leaderboards).
pub fn parse_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::validation(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    Ok(limit)
}

impl<K: DeserializeOwned> PageRequest<K> {
    pub fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = parse_limit(limit)?;
        let after = match cursor {
            None | Some("") => None,
            Some(cursor) => Some(decode_cursor(cursor)?),
        };
        Ok(PageRequest { limit, after })
    }

    /// Rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }
}

fn decode_cursor<K: DeserializeOwned>(cursor: &str) -> Result<K, ApiError> {
    let invalid = || ApiError::new(ErrorCode::InvalidCursor, "the cursor was not issued by this endpoint");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid())
}

/// One page of results.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> Page<T> {
    /// Builds a page from up to `fetch_limit()` rows, in key order.
    pub fn from_rows<R, K: Serialize>(
        mut rows: Vec<R>,
        request: &PageRequest<impl DeserializeOwned>,
        key: impl Fn(&R) -> K,
        to_item: impl FnMut(R) -> T,
    ) -> Self {
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|row| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&key(row)).unwrap_or_default()))
        } else {
            None
        };
        Page { items: rows.into_iter().map(to_item).collect(), next_cursor }
    }
}
