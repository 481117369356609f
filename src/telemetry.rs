//! Logs: `tracing` to stderr, filtered by RUST_LOG, one line per request.

use std::io::IsTerminal;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};

use crate::startup::AppState;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, kept in the request's extensions for whoever needs to name the request.
#[derive(Clone)]
pub struct RequestId(pub String);

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (e.g. in tests) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// A client's request id is kept if it is short printable ASCII; otherwise one is generated.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// Tags everything logged while serving a request with its id, echoes the id in
/// `X-Request-Id`, and logs one line when the response is ready.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let request_id = request_id(&req);
    let span = tracing::info_span!("request", request_id = %request_id);
    let method = req.method().clone();
    let path = req.path().to_owned();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let metrics = req.app_data::<web::Data<AppState>>().map(|state| state.metrics.clone());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let mut response = match next.call(req).instrument(span.clone()).await {
        Ok(response) => response,
        Err(err) => {
            let status = err.as_response_error().status_code().as_u16();
            span.in_scope(|| tracing::info!(%method, %path, status, "request failed before a response"));
            return Err(err);
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(metrics) = metrics {
        metrics.observe_request(&route, method.as_str(), status, elapsed);
    }
    let latency_ms = elapsed * 1000.0;
    span.in_scope(|| tracing::info!(%method, %path, status, latency_ms = format!("{latency_ms:.1}"), "request"));
    Ok(response)
}
