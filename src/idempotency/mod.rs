//! The one idempotency mechanism of the API: `Idempotency-Key` on POSTs.
//!
//! The key's record (request fingerprint and answer) is written in the same
//! database transaction as the effect, so there is never an effect without its
//! record or a record without its effect. The same key with the same request
//! replays the stored answer (`Idempotent-Replayed: true`); with another request
//! it is refused. Successes and refusals for the state of things (409, such as
//! `insufficient_points` or `already_reversed`) are stored and replayed; any other
//! error (invalid input, missing rights, server errors) rolls everything back,
//! key included, so the corrected request can use the same key.

pub mod model;

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, LOCATION};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audit::Trail;
use crate::db::{Database, DbConnection};
use crate::error::{ApiError, ErrorCode, PROBLEM_JSON};
use model::IdempotencyRecord;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// Records are kept at least this long, then purged by the maintenance task.
pub const RETENTION: Duration = Duration::hours(24);

/// The request's `Idempotency-Key`, if it sent one: 1 to 255 visible ASCII characters.
pub struct IdempotencyKey(Option<String>);

impl IdempotencyKey {
    /// For operations that must not run twice: the key is mandatory.
    pub fn required(self) -> Result<String, ApiError> {
        self.0.ok_or_else(|| {
            ApiError::new(
                ErrorCode::IdempotencyKeyRequired,
                "send an Idempotency-Key header (e.g. a UUID) and reuse it when you retry this request",
            )
        })
    }

    pub fn optional(self) -> Option<String> {
        self.0
    }
}

impl FromRequest for IdempotencyKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
            return ready(Ok(IdempotencyKey(None)));
        };
        let valid =
            value.as_bytes().len() <= 255 && !value.is_empty() && value.as_bytes().iter().all(u8::is_ascii_graphic);
        ready(match value.to_str() {
            Ok(key) if valid => Ok(IdempotencyKey(Some(key.to_owned()))),
            _ => Err(ApiError::new(
                ErrorCode::InvalidIdempotencyKey,
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )),
        })
    }
}

/// The answer of a write, as it is sent and, with a key, stored.
pub struct Reply {
    status: StatusCode,
    body: String,
    location: Option<String>,
    /// Sent instead of `body` the first time only: for secrets that must never be stored.
    first_time_body: Option<String>,
    /// The problem's code, when the answer is a refusal.
    code: Option<ErrorCode>,
}

impl Reply {
    pub fn created(body: &impl Serialize, location: String) -> Result<Self, ApiError> {
        Ok(Reply {
            status: StatusCode::CREATED,
            body: serde_json::to_string(body).map_err(ApiError::internal)?,
            location: Some(location),
            first_time_body: None,
            code: None,
        })
    }

    pub fn ok(body: &impl Serialize) -> Result<Self, ApiError> {
        Ok(Reply {
            status: StatusCode::OK,
            body: serde_json::to_string(body).map_err(ApiError::internal)?,
            location: None,
            first_time_body: None,
            code: None,
        })
    }

    pub fn no_content() -> Self {
        Reply { status: StatusCode::NO_CONTENT, body: String::new(), location: None, first_time_body: None, code: None }
    }

    /// The answer carries a secret (e.g. a generated password): `stored` is what a
    /// replay gets, `with_secret` what this first answer shows.
    pub fn created_with_secret(
        stored: &impl Serialize,
        with_secret: &impl Serialize,
        location: String,
    ) -> Result<Self, ApiError> {
        let mut reply = Self::created(stored, location)?;
        reply.first_time_body = Some(serde_json::to_string(with_secret).map_err(ApiError::internal)?);
        Ok(reply)
    }

    fn from_error(err: &ApiError) -> Self {
        Reply {
            status: err.status_code(),
            body: serde_json::to_string(&err.problem()).unwrap_or_default(),
            location: None,
            first_time_body: None,
            code: Some(err.code()),
        }
    }

    fn into_response(self, replayed: bool) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status != StatusCode::NO_CONTENT {
            response.content_type(if self.status.is_success() { "application/json" } else { PROBLEM_JSON });
        }
        if let Some(location) = self.location {
            response.insert_header((LOCATION, location));
        }
        if replayed {
            response.insert_header((IDEMPOTENT_REPLAYED, "true"));
        }
        response.body(self.first_time_body.unwrap_or(self.body))
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The record that replays this answer to the key's later requests.
    fn stored_as(&self, user_id: String, key: String, fingerprint: String, now: DateTime<Utc>) -> IdempotencyRecord {
        IdempotencyRecord {
            user_id,
            key,
            fingerprint,
            status: i32::from(self.status.as_u16()),
            body: self.body.clone(),
            location: self.location.clone(),
            created_at: now.naive_utc(),
        }
    }

    /// The answer of a write that did not go through [`write`] (see [`store_all`]).
    pub fn into_first_response(self) -> HttpResponse {
        self.into_response(false)
    }
}

/// Who sends which request with which key, and where it writes.
#[derive(Clone)]
pub struct Scope {
    user_id: String,
    key: Option<String>,
    fingerprint: String,
    /// The community or unit of the request, which picks its writer lane ([`Database::write`]).
    lane: String,
}

impl Scope {
    /// For writes without an `Idempotency-Key`: PATCH and DELETE, which are
    /// idempotent by nature, and changes to one's own account. `lane` is the
    /// community or unit written to, empty for one's own account.
    pub fn unkeyed(lane: &str) -> Self {
        Scope { user_id: String::new(), key: None, fingerprint: String::new(), lane: lane.to_owned() }
    }

    /// The fingerprint covers method, path and the parsed body (so a retry that
    /// orders fields differently is the same request).
    pub fn new(user_id: &str, key: Option<String>, req: &HttpRequest, body: &impl Serialize) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(req.method().as_str().as_bytes());
        hasher.update(b"\n");
        hasher.update(req.path().as_bytes());
        hasher.update(b"\n");
        hasher.update(serde_json::to_vec(body).unwrap_or_default());
        let fingerprint = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let lane = ["community_id", "unit_id"].iter().find_map(|name| req.match_info().get(name)).unwrap_or_default();
        // Spelt as the handlers spell the parsed id, so that a unit's writes share a lane however the URL spells it.
        let lane = uuid::Uuid::parse_str(lane).map(|id| id.to_string()).unwrap_or_else(|_| lane.to_owned());
        Scope { user_id: user_id.to_owned(), key, fingerprint, lane }
    }

    /// The user and key a keyed request's answer is stored under.
    pub fn key(&self) -> Option<(&str, &str)> {
        self.key.as_deref().map(|key| (self.user_id.as_str(), key))
    }
}

/// Stores the answers of keyed writes that one effect applied together, in one INSERT,
/// within its transaction; for writes [`write`] does not see (see `ledger::batch`).
/// Fails on a key that has an answer already, as [`write`] would.
pub fn store_all(conn: &mut DbConnection, answers: &[(&Scope, DateTime<Utc>, &Reply)]) -> diesel::QueryResult<()> {
    let records: Vec<IdempotencyRecord> = answers
        .iter()
        .filter_map(|(scope, now, reply)| {
            let (user_id, key) = scope.key()?;
            Some(reply.stored_as(user_id.to_owned(), key.to_owned(), scope.fingerprint.clone(), *now))
        })
        .collect();
    if records.is_empty() {
        return Ok(());
    }
    IdempotencyRecord::insert_all(conn, &records)
}

enum Outcome {
    Fresh(Reply),
    Stored(IdempotencyRecord),
    /// Another request with the same key was running; nothing of ours was written.
    Raced,
}

fn replay(scope: &Scope, record: IdempotencyRecord) -> Result<HttpResponse, ApiError> {
    if record.fingerprint != scope.fingerprint {
        return Err(ApiError::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used for a different request; use a new key for a new request",
        ));
    }
    let status = u16::try_from(record.status).ok().and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
    Ok(Reply { status, body: record.body, location: record.location, first_time_body: None, code: None }
        .into_response(true))
}

impl Reply {
    fn append_to(&self, trail: &Trail, conn: &mut DbConnection) -> diesel::QueryResult<()> {
        trail.append(conn, self.status, self.code, self.location.as_deref())
    }
}

/// What a keyed request's answer is stored under, and the trail it is recorded in.
#[derive(Clone)]
struct Answer {
    user_id: String,
    key: String,
    fingerprint: String,
    now: DateTime<Utc>,
    trail: Trail,
}

impl Answer {
    /// Stores `reply` as the key's answer and appends the request's audit record.
    fn record(self, conn: &mut DbConnection, reply: Reply) -> Result<Outcome, ApiError> {
        let record = reply.stored_as(self.user_id, self.key, self.fingerprint, self.now);
        // Writes of one community share a lane, so a retry normally finds the record first.
        // One with the same key in another lane (another community's path) waits here
        // (PostgreSQL) until ours commits, then fails; its effect is rolled back with it.
        match record.insert(conn) {
            Ok(()) => {}
            Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
                return Err(ApiError::new(ErrorCode::IdempotencyInProgress, "raced"));
            }
            Err(err) => return Err(err.into()),
        }
        reply.append_to(&self.trail, conn)?;
        Ok(Outcome::Fresh(reply))
    }
}

/// The one write path of requests: runs `effect` in one write transaction,
/// together with the key's record (if the request sent a key) and the request's
/// audit record.
pub async fn write<F>(db: &Database, scope: Scope, now: DateTime<Utc>, effect: F) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<Reply, ApiError> + Send + 'static,
{
    let trail = Trail::current();
    let Some(key) = scope.key.clone() else {
        let reply = db
            .write(&scope.lane, move |conn| {
                let reply = effect(conn)?;
                reply.append_to(&trail, conn)?;
                Ok(reply)
            })
            .await?;
        return Ok(reply.into_response(false));
    };
    let answer = Answer { user_id: scope.user_id.clone(), key, fingerprint: scope.fingerprint.clone(), now, trail };
    let refusal = answer.clone();
    let outcome = db
        .write_or_else(
            &scope.lane,
            move |conn| {
                // A retry of a finished request is rare: looking for its answer here rather than
                // in a read beforehand saves every first attempt a round trip.
                if let Some(stored) = IdempotencyRecord::find(conn, &answer.user_id, &answer.key)? {
                    return Ok(Outcome::Stored(stored));
                }
                let reply = effect(conn)?;
                answer.record(conn, reply)
            },
            // Everything the effect wrote is rolled back by now. A conflict with the state (not
            // enough points, already reversed, ...) is the answer to this request and is
            // replayed; anything else leaves the key unused.
            move |conn, err| {
                if err.status_code() != StatusCode::CONFLICT || err.code() == ErrorCode::IdempotencyInProgress {
                    return Err(err);
                }
                refusal.record(conn, Reply::from_error(&err))
            },
        )
        .await
        .or_else(|err| if err.code() == ErrorCode::IdempotencyInProgress { Ok(Outcome::Raced) } else { Err(err) })?;
    match outcome {
        Outcome::Fresh(reply) => Ok(reply.into_response(false)),
        Outcome::Stored(record) => replay(&scope, record),
        Outcome::Raced => {
            let (user_id, key) = (scope.user_id.clone(), scope.key.clone().unwrap_or_default());
            match db.read(move |conn| Ok(IdempotencyRecord::find(conn, &user_id, &key)?)).await? {
                Some(record) => replay(&scope, record),
                None => Err(ApiError::new(
                    ErrorCode::IdempotencyInProgress,
                    "a request with this Idempotency-Key is still being processed; retry shortly",
                )),
            }
        }
    }
}
