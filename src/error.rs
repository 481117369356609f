//! The one error type of the API, rendered in one place as
//! `application/problem+json` (RFC 9457) with a stable machine-readable `code`.

use actix_web::error::{BlockingError, JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// Every error code the API answers with. Clients switch on these; they never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not JSON of the documented shape: syntax, types, missing or unknown fields.
    InvalidBody,
    /// A value is out of its documented range or format.
    ValidationFailed,
    /// The `cursor` parameter was not produced by this endpoint.
    InvalidCursor,
    /// No valid access token.
    Unauthorized,
    /// Unknown user, wrong password or locked account (deliberately indistinguishable).
    InvalidCredentials,
    /// The refresh token is unknown, expired, revoked or was already used.
    InvalidRefreshToken,
    /// Authenticated, but the caller's roles do not allow this.
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// The change conflicts with the current state.
    Conflict,
    UsernameTaken,
    NameTaken,
    AlreadyMember,
    AlreadyResidentElsewhere,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidJoinCode,
    InvalidParent,
    InvalidRoleForUnit,
    CurrentPasswordIncorrect,
    /// This operation must be sent with an `Idempotency-Key` header.
    IdempotencyKeyRequired,
    InvalidIdempotencyKey,
    /// The `Idempotency-Key` was already used for a different request.
    IdempotencyKeyReused,
    /// A request with this `Idempotency-Key` is still running; retry shortly.
    IdempotencyInProgress,
    /// The resident's available points do not cover this.
    InsufficientPoints,
    AlreadyReversed,
    /// Only awards and deductions can be reversed.
    NotReversible,
    /// The user is not an active resident of this community (pending, suspended or not a member).
    ResidentNotActive,
    /// The rule does not exist in this community, is inactive, or is for the other direction.
    InvalidRule,
    /// The points are outside the rule's range.
    PointsOutOfRange,
    /// The resident reached the rule's cap for the day, week or month.
    RuleCapExceeded,
    RuleCodeTaken,
    /// The resident has as many undecided claims as the community allows.
    TooManyOpenClaims,
    ClaimAlreadyDecided,
    /// Staff may not decide on their own or their household's claims.
    ConflictOfInterest,
    /// The activity is a draft, completed or cancelled.
    ActivityClosed,
    ActivityFull,
    AlreadyRegistered,
    AlreadyCheckedIn,
    AlreadyCompleted,
    /// The sign-up deadline has passed.
    RegistrationClosed,
    /// Check-in opens 30 minutes before the start and closes 30 minutes after the end.
    CheckInClosed,
    InvalidCheckInCode,
    OutOfStock,
    /// The resident reached the reward's limit for the period.
    LimitReached,
    /// The reward is inactive or outside its availability window.
    RewardUnavailable,
    InvalidPickupCode,
    /// The order was already handed over or cancelled.
    RedemptionNotPending,
    /// Too many wrong pickup codes for this order; see `Retry-After`.
    TooManyPickupAttempts,
    /// Too many requests from this address (sign-in) or this user (writes); see `Retry-After`.
    RateLimited,
    /// The request took too long and was abandoned; it may still have taken effect, so retry with the same `Idempotency-Key`.
    RequestTimeout,
    InternalError,
    ServiceUnavailable,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            InvalidBody | ValidationFailed | InvalidCursor | IdempotencyKeyRequired | InvalidIdempotencyKey => {
                StatusCode::BAD_REQUEST
            }
            Unauthorized | InvalidCredentials | InvalidRefreshToken => StatusCode::UNAUTHORIZED,
            Forbidden | ConflictOfInterest => StatusCode::FORBIDDEN,
            TooManyOpenClaims | TooManyPickupAttempts | RateLimited => StatusCode::TOO_MANY_REQUESTS,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Conflict
            | UsernameTaken
            | NameTaken
            | AlreadyMember
            | AlreadyResidentElsewhere
            | IdempotencyInProgress
            | InsufficientPoints
            | AlreadyReversed
            | RuleCodeTaken
            | ClaimAlreadyDecided
            | ActivityClosed
            | ActivityFull
            | AlreadyRegistered
            | AlreadyCheckedIn
            | AlreadyCompleted
            | OutOfStock
            | LimitReached
            | RedemptionNotPending => StatusCode::CONFLICT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            InvalidJoinCode
            | InvalidParent
            | InvalidRoleForUnit
            | CurrentPasswordIncorrect
            | IdempotencyKeyReused
            | NotReversible
            | ResidentNotActive
            | InvalidRule
            | PointsOutOfRange
            | RuleCapExceeded
            | RegistrationClosed
            | CheckInClosed
            | InvalidCheckInCode
            | RewardUnavailable
            | InvalidPickupCode => StatusCode::UNPROCESSABLE_ENTITY,
            InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceUnavailable | RequestTimeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidBody => "invalid_body",
            ValidationFailed => "validation_failed",
            InvalidCursor => "invalid_cursor",
            Unauthorized => "unauthorized",
            InvalidCredentials => "invalid_credentials",
            InvalidRefreshToken => "invalid_refresh_token",
            Forbidden => "forbidden",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            Conflict => "conflict",
            UsernameTaken => "username_taken",
            NameTaken => "name_taken",
            AlreadyMember => "already_member",
            AlreadyResidentElsewhere => "already_resident_elsewhere",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            InvalidJoinCode => "invalid_join_code",
            InvalidParent => "invalid_parent",
            InvalidRoleForUnit => "invalid_role_for_unit",
            CurrentPasswordIncorrect => "current_password_incorrect",
            IdempotencyKeyRequired => "idempotency_key_required",
            InvalidIdempotencyKey => "invalid_idempotency_key",
            IdempotencyKeyReused => "idempotency_key_reused",
            IdempotencyInProgress => "idempotency_in_progress",
            InsufficientPoints => "insufficient_points",
            AlreadyReversed => "already_reversed",
            NotReversible => "not_reversible",
            ResidentNotActive => "resident_not_active",
            InvalidRule => "invalid_rule",
            PointsOutOfRange => "points_out_of_range",
            RuleCapExceeded => "rule_cap_exceeded",
            RuleCodeTaken => "rule_code_taken",
            TooManyOpenClaims => "too_many_open_claims",
            ClaimAlreadyDecided => "claim_already_decided",
            ConflictOfInterest => "conflict_of_interest",
            ActivityClosed => "activity_closed",
            ActivityFull => "activity_full",
            AlreadyRegistered => "already_registered",
            AlreadyCheckedIn => "already_checked_in",
            AlreadyCompleted => "already_completed",
            RegistrationClosed => "registration_closed",
            CheckInClosed => "check_in_closed",
            InvalidCheckInCode => "invalid_check_in_code",
            OutOfStock => "out_of_stock",
            LimitReached => "limit_reached",
            RewardUnavailable => "reward_unavailable",
            InvalidPickupCode => "invalid_pickup_code",
            RedemptionNotPending => "redemption_not_pending",
            TooManyPickupAttempts => "too_many_pickup_attempts",
            RateLimited => "rate_limited",
            RequestTimeout => "request_timeout",
            InternalError => "internal_error",
            ServiceUnavailable => "service_unavailable",
        }
    }
}

/// A problem details object (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "tag:jifen,2026:problem:validation_failed",
    "title": "Validation failed",
    "status": 400,
    "detail": "password must be 8 to 128 characters",
    "code": "validation_failed"
}))]
pub struct Problem {
    /// `tag:jifen,2026:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    /// What went wrong with this request, for people; never contains internals.
    pub detail: String,
    pub code: ErrorCode,
}

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    detail: String,
    headers: Vec<(HeaderName, String)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError { code, detail: detail.into(), headers: Vec::new() }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, detail).with_header(header::WWW_AUTHENTICATE, "Bearer")
    }

    /// Logs the cause once, here, and answers with a generic 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::InternalError, "the server failed to handle this request; it has been logged")
    }

    pub fn pool_timeout(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "no database connection available");
        Self::new(ErrorCode::ServiceUnavailable, "the database is busy; retry shortly")
            .with_header(header::RETRY_AFTER, "1")
    }

    pub fn problem(&self) -> Problem {
        Problem {
            problem_type: format!("tag:jifen,2026:problem:{}", self.code.as_str()),
            title: self.code.status().canonical_reason().unwrap_or("Error").to_owned(),
            status: self.code.status().as_u16(),
            detail: self.detail.clone(),
            code: self.code,
        }
    }

    /// Maps a failed JSON body to 400, 413 or 415 with serde's description of what
    /// was wrong (it names fields and positions, never internals).
    pub fn from_json_error(err: &JsonPayloadError) -> Self {
        match err {
            JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
                Self::new(ErrorCode::PayloadTooLarge, format!("the body is larger than {limit} bytes"))
            }
            JsonPayloadError::ContentType => {
                Self::new(ErrorCode::UnsupportedMediaType, "the body must be sent as Content-Type: application/json")
            }
            JsonPayloadError::Deserialize(err) => {
                Self::new(ErrorCode::InvalidBody, format!("invalid JSON body: {err}"))
            }
            other => Self::new(ErrorCode::InvalidBody, format!("invalid JSON body: {other}")),
        }
    }

    pub fn from_query_error(err: &QueryPayloadError) -> Self {
        Self::validation(format!("invalid query parameters: {err}"))
    }

    /// A path parameter that does not parse (e.g. not a UUID) names nothing that exists.
    pub fn from_path_error(_err: &PathError) -> Self {
        Self::not_found("resource")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem();
        let mut response = HttpResponse::build(self.code.status());
        response.content_type(PROBLEM_JSON);
        for (name, value) in &self.headers {
            if let Ok(value) = HeaderValue::from_str(value) {
                response.insert_header((name.clone(), value));
            }
        }
        response.json(problem)
    }
}

/// Maps a unique-constraint violation to a precise conflict: for the race where
/// a concurrent request inserted the same value between our check and our insert.
pub fn unique_violation_as(code: ErrorCode, detail: &'static str) -> impl FnOnce(diesel::result::Error) -> ApiError {
    move |err| match err {
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
            ApiError::new(code, detail)
        }
        other => other.into(),
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match err {
            Error::NotFound => Self::not_found("resource"),
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                Self::new(ErrorCode::Conflict, "this conflicts with an existing record")
            }
            Error::DatabaseError(DatabaseErrorKind::CheckViolation, _) => Self::new(
                ErrorCode::Conflict,
                "the change conflicts with the current state (perhaps a concurrent change); reload and retry",
            ),
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                Self::new(ErrorCode::ServiceUnavailable, "a concurrent change got in the way; retry")
                    .with_header(header::RETRY_AFTER, "1")
            }
            // PostgreSQL refuses NUL characters in text; input checks should have caught them.
            Error::DatabaseError(_, info) if info.message().contains("invalid byte sequence") => {
                Self::validation("text must not contain NUL or other control characters")
            }
            // SQLite's busy timeout ran out, or PostgreSQL broke a deadlock: transient.
            Error::DatabaseError(_, info)
                if info.message().contains("database is locked") || info.message().contains("deadlock detected") =>
            {
                tracing::warn!(error = info.message(), "transient database conflict");
                Self::new(ErrorCode::ServiceUnavailable, "the database is busy; retry shortly")
                    .with_header(header::RETRY_AFTER, "1")
            }
            other => Self::internal(other),
        }
    }
}

impl From<diesel::r2d2::PoolError> for ApiError {
    fn from(err: diesel::r2d2::PoolError) -> Self {
        Self::pool_timeout(err)
    }
}

impl From<BlockingError> for ApiError {
    fn from(err: BlockingError) -> Self {
        Self::internal(err)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        Self::internal(format!("{err:#}"))
    }
}
