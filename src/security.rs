//! Protection at the edge: who the client is behind proxies, rate limits, the
//! request timeout, CORS and the security headers every response carries.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName};
use actix_web::http::{Method, header::HeaderValue};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{HttpRequest, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::error::{ApiError, ErrorCode};
use crate::startup::AppState;

/// A request still unanswered after this long is abandoned with 503 `request_timeout`.
/// Exports only need their first byte within it: their body streams on afterwards.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Per-minute budgets, each also the burst allowed at once.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Requests to `/api/v1/auth/*` per client address.
    pub auth_per_ip: NonZeroU32,
    /// Writes (POST, PUT, PATCH, DELETE) per signed-in user.
    pub writes_per_user: NonZeroU32,
}

/// The rate limiters of one server, in memory: each server instance limits on its own.
pub struct Limiters {
    auth: DefaultKeyedRateLimiter<IpAddr>,
    writes: DefaultKeyedRateLimiter<String>,
}

impl Limiters {
    pub fn new(limits: RateLimits) -> Self {
        Limiters {
            auth: RateLimiter::keyed(Quota::per_minute(limits.auth_per_ip)),
            writes: RateLimiter::keyed(Quota::per_minute(limits.writes_per_user)),
        }
    }

    /// Counts a write by `user_id`.
    pub fn check_write(&self, user_id: &str) -> Result<(), ApiError> {
        self.writes.check_key(&user_id.to_owned()).map_err(|not_until| {
            rate_limited(not_until.wait_time_from(DefaultClock::default().now()), "you are sending changes too quickly")
        })
    }

    /// Forgets clients that have been quiet for a while, so memory stays bounded.
    pub fn forget_quiet_clients(&self) {
        self.auth.retain_recent();
        self.writes.retain_recent();
    }
}

fn rate_limited(wait: Duration, detail: &str) -> ApiError {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(ErrorCode::RateLimited, format!("{detail}; retry in {seconds} s"))
        .with_header(header::RETRY_AFTER, seconds.max(1).to_string())
}

/// The client's address: the peer's, unless the peer is a trusted proxy. Then
/// `X-Forwarded-For` is read from the right, through trusted proxies, to the first
/// address that is not one; an entry that is not an address ends the walk at the
/// last hop believed, so a client cannot hide behind a garbage entry of its own.
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let trusted = req.app_data::<web::Data<AppState>>().map(|state| state.trusted_proxies.as_slice()).unwrap_or(&[]);
    Some(forwarded_client(peer, req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()), trusted))
}

fn forwarded_client<'a>(peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let hops: Vec<&str> = forwarded_for.flat_map(|value| value.split(',')).map(str::trim).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        if !is_trusted(&client) {
            break;
        }
        match hop.parse::<IpAddr>() {
            Ok(ip) => client = ip,
            Err(_) => break,
        }
    }
    client
}

/// Parses `JIFEN_TRUSTED_PROXIES`: addresses or networks, separated by commas.
pub fn parse_trusted_proxies(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>().or_else(|_| item.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                format!("JIFEN_TRUSTED_PROXIES: {item:?} is not an IP address or network (e.g. 10.0.0.0/8)")
            })
        })
        .collect()
}

/// Limits sign-in, refresh, logout and registration per client address, and
/// abandons requests that take longer than [`REQUEST_TIMEOUT`].
pub async fn guard(req: ServiceRequest, next: Next<BoxBody>) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.path().starts_with("/api/v1/auth/")
        && let (Some(state), Some(ip)) = (req.app_data::<web::Data<AppState>>(), client_ip(req.request()))
        && let Err(not_until) = state.limiters.auth.check_key(&ip)
    {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let error = rate_limited(wait, "too many sign-in requests from your address");
        return Ok(req.error_response(error));
    }
    // Rendered by actix from the error: the request itself went to the handler.
    tokio::time::timeout(REQUEST_TIMEOUT, next.call(req)).await.unwrap_or_else(|_| {
        Err(ApiError::new(
            ErrorCode::RequestTimeout,
            "the request took too long; retry it (with the same Idempotency-Key, if it had one)",
        )
        .with_header(header::RETRY_AFTER, "1")
        .into())
    })
}

/// Browsers on the listed origins (the staff dashboard) may call the API.
/// Requests from other origins get no CORS headers, so browsers keep their
/// answers from the calling page; other clients are unaffected.
pub fn cors(origins: &[String]) -> Cors {
    let exposed: Vec<HeaderName> = [
        "location",
        "retry-after",
        "idempotent-replayed",
        "x-request-id",
        "content-disposition",
        "x-jifen-chain-sequence",
        "x-jifen-chain-hash",
    ]
    .into_iter()
    .map(HeaderName::from_static)
    .collect();
    origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .allowed_header(HeaderName::from_static("idempotency-key"))
        .allowed_header(HeaderName::from_static("x-request-id"))
        .expose_headers(exposed)
        .max_age(3600)
        .block_on_origin_mismatch(false)
}

/// Headers for every response that does not set its own: no sniffing, no framing,
/// no referrer, no caching of personal data, and nothing active in a JSON answer.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .add((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .add((header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .add((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .add((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")))
        .add((header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let trusted = parse_trusted_proxies("10.0.0.0/8").unwrap();
        let client = |peer: &str, header: &[&str]| {
            forwarded_client(peer.parse().unwrap(), header.iter().copied(), &trusted).to_string()
        };
        assert_eq!(client("198.51.100.1", &["203.0.113.7"]), "198.51.100.1", "an untrusted peer is the client");
        assert_eq!(client("10.0.0.1", &["192.0.2.1, 203.0.113.7"]), "203.0.113.7");
        assert_eq!(client("10.0.0.1", &["192.0.2.1, 203.0.113.7, 10.0.0.2"]), "203.0.113.7");
        assert_eq!(client("10.0.0.1", &["192.0.2.1", "203.0.113.7"]), "203.0.113.7", "several headers form one list");
        assert_eq!(client("10.0.0.1", &["garbage, 203.0.113.7"]), "203.0.113.7", "garbage to the left is ignored");
        assert_eq!(client("10.0.0.1", &["203.0.113.7, garbage"]), "10.0.0.1", "a garbled hop ends the walk");
        assert_eq!(client("10.0.0.1", &[]), "10.0.0.1");
        assert_eq!(client("10.0.0.1", &["10.0.0.3"]), "10.0.0.3", "only proxies: the farthest one");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let parsed = parse_trusted_proxies("10.0.0.0/8, 127.0.0.1 ,::1").unwrap();
        assert_eq!(parsed.len(), 3);
        assert!(parsed[1].contains(&"127.0.0.1".parse::<IpAddr>().unwrap()));
        assert!(parse_trusted_proxies("").unwrap().is_empty());
        assert!(parse_trusted_proxies("10.0.0.0/8,proxy.local").unwrap_err().contains("proxy.local"));
    }
}
