//! Recording requests: the audit trail of the request being served.
//!
//! A middleware opens a trail for each request the audit log covers and keeps it
//! in a task-local while the handler runs. A request's own write transaction
//! appends its record ([`Trail::append`]), so a change is never committed without
//! its record. Requests that end without writing (refused, failed, replayed) get
//! their record from the middleware afterwards, in a transaction of its own.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};
use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::audit::model::{NewAuditRecord, Outcome};
use crate::auth::principal::Principal;
use crate::db::{DbConnection, new_id};
use crate::error::{ApiError, ErrorCode};
use crate::idempotency::IDEMPOTENT_REPLAYED;
use crate::openapi::RouteTable;
use crate::security::client_ip;
use crate::startup::AppState;
use crate::telemetry::RequestId;
use crate::units::model::MembershipStatus;

tokio::task_local! {
    static CURRENT: Arc<Request>;
}

/// The outcome a response stands for.
fn outcome_of(status: StatusCode, replayed: bool) -> Outcome {
    match status {
        _ if replayed => Outcome::Replayed,
        status if status.is_server_error() => Outcome::Failed,
        status if status.is_client_error() => Outcome::Refused,
        _ => Outcome::Succeeded,
    }
}

/// What the log will say about one request, gathered while it runs.
struct Request {
    occurred_at: NaiveDateTime,
    action: String,
    request_id: String,
    client_ip: Option<String>,
    /// Sign-ins and exports are recorded whoever makes them; other requests only
    /// when they change state and come from staff or admins.
    always: bool,
    unit_id: Option<String>,
    routes: web::Data<RouteTable>,
    known: Mutex<Known>,
}

#[derive(Default)]
struct Known {
    actor_id: Option<String>,
    actor_is_staff: bool,
    target: Option<(String, String)>,
    appended: Option<Outcome>,
}

/// The trail of the request being served; does nothing outside a recorded request.
#[derive(Clone, Default)]
pub struct Trail(Option<Arc<Request>>);

impl Trail {
    /// The current request's trail. Call it in the request's task and move it
    /// into the blocking closure that writes.
    pub fn current() -> Trail {
        Trail(CURRENT.try_with(Arc::clone).ok())
    }

    /// Called once the caller is authenticated.
    pub fn identify(&self, principal: &Principal) {
        if let Some(request) = &self.0 {
            let staff = principal.memberships.iter().any(|(membership, _)| {
                membership.status() == MembershipStatus::Active && (membership.is_staff || membership.is_admin)
            });
            let mut known = request.known();
            known.actor_id = Some(principal.user.id.clone());
            known.actor_is_staff = staff;
        }
    }

    /// For requests that name their actor otherwise than by an access token (sign-in).
    pub fn set_actor(&self, user_id: &str) {
        if let Some(request) = &self.0 {
            request.known().actor_id = Some(user_id.to_owned());
        }
    }

    pub fn set_target(&self, target_type: &str, target_id: &str) {
        if let Some(request) = &self.0 {
            request.known().target = Some((target_type.to_owned(), target_id.to_owned()));
        }
    }

    /// Appends the request's record within its write transaction, once, naming what
    /// the request will answer. `location` is the URL of a resource it created.
    pub fn append(
        &self,
        conn: &mut DbConnection,
        status: StatusCode,
        code: Option<ErrorCode>,
        location: Option<&str>,
    ) -> QueryResult<()> {
        let Some(request) = &self.0 else { return Ok(()) };
        if request.known().appended.is_some() {
            return Ok(());
        }
        request.append(conn, outcome_of(status, false), code, location)
    }

    /// The record [`Trail::append`] would write, for a write that inserts the records of
    /// several requests at once; [`Trail::appended`] once they have committed.
    pub fn new_record(&self, status: StatusCode, location: Option<&str>) -> Option<NewAuditRecord> {
        let request = self.0.as_ref()?;
        if request.known().appended.is_some() {
            return None;
        }
        request.new_record(outcome_of(status, false), None, location)
    }

    /// The request's record, from [`Trail::new_record`], is committed.
    pub fn appended(&self, status: StatusCode) {
        if let Some(request) = &self.0 {
            request.known().appended = Some(outcome_of(status, false));
        }
    }

    pub fn append_error(&self, conn: &mut DbConnection, error: &ApiError) -> QueryResult<()> {
        self.append(conn, error.status_code(), Some(error.code()), None)
    }
}

impl Request {
    fn known(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin(req: &ServiceRequest) -> Option<Request> {
        let changes_state = ![Method::GET, Method::HEAD, Method::OPTIONS].contains(req.method());
        // Reads other than exports are never recorded: spare them the route lookup.
        if !changes_state && !req.path().contains("/exports/") {
            return None;
        }
        let routes = req.app_data::<web::Data<RouteTable>>()?.clone();
        let state = req.app_data::<web::Data<AppState>>()?;
        let route = routes.resolve(req.method(), req.path())?;
        let always = route.operation_id == "login" || route.pattern.contains("/exports/");
        if !always && !changes_state {
            return None;
        }
        // Ids as the handlers spell them once parsed, whatever the URL's spelling.
        let id_param = |name: &str| {
            route
                .params
                .iter()
                .find(|(param, _)| param == name)
                .and_then(|(_, value)| uuid::Uuid::parse_str(value).ok().map(|id| id.to_string()))
        };
        let unit_id = id_param("community_id").or_else(|| id_param("unit_id"));
        let target = route.params.last().and_then(|(name, _)| target_of(name, id_param(name)?));
        let request = Request {
            occurred_at: state.clock.now().naive_utc(),
            action: route.operation_id.to_owned(),
            request_id: req.extensions().get::<RequestId>().map(|id| id.0.clone()).unwrap_or_default(),
            client_ip: client_ip(req.request()).map(|ip| ip.to_string()),
            always,
            unit_id,
            known: Mutex::new(Known { target, ..Known::default() }),
            routes: routes.clone(),
        };
        Some(request)
    }

    fn is_recorded(&self, known: &Known) -> bool {
        self.always || known.actor_is_staff
    }

    fn append(
        &self,
        conn: &mut DbConnection,
        outcome: Outcome,
        code: Option<ErrorCode>,
        location: Option<&str>,
    ) -> QueryResult<()> {
        if let Some(record) = self.new_record(outcome, code, location) {
            record.insert(conn)?;
            self.known().appended = Some(outcome);
        }
        Ok(())
    }

    /// The record of this request, unless requests like it go unrecorded.
    fn new_record(&self, outcome: Outcome, code: Option<ErrorCode>, location: Option<&str>) -> Option<NewAuditRecord> {
        let (actor_id, target) = {
            let known = self.known();
            if !self.is_recorded(&known) {
                return None;
            }
            let created = location.and_then(|location| self.created_target(location));
            (known.actor_id.clone(), created.or_else(|| known.target.clone()))
        };
        // A unit created by this request is where its record belongs.
        let unit_id = self
            .unit_id
            .clone()
            .or_else(|| target.as_ref().filter(|(target_type, _)| target_type == "unit").map(|(_, id)| id.clone()));
        let (target_type, target_id) = target.unzip();
        Some(NewAuditRecord {
            id: new_id(),
            occurred_at: self.occurred_at,
            actor_id,
            action: self.action.clone(),
            target_type,
            target_id,
            unit_id,
            request_id: self.request_id.clone(),
            client_ip: self.client_ip.clone(),
            outcome: outcome.as_str().to_owned(),
            code: code.map(|code| code.as_str().to_owned()),
        })
    }

    /// The resource a `Location` header points to, as (type, id).
    fn created_target(&self, location: &str) -> Option<(String, String)> {
        let route = self.routes.resolve(&Method::GET, location)?;
        let (name, value) = route.params.last()?;
        target_of(name, value.clone())
    }
}

/// `("claim", id)` for a path parameter `claim_id`.
fn target_of(param: &str, id: String) -> Option<(String, String)> {
    param.strip_suffix("_id").map(|target_type| (target_type.to_owned(), id))
}

/// Runs the request with a trail and, unless its write transaction already did,
/// records how it ended.
pub async fn record(req: ServiceRequest, next: Next<BoxBody>) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(request) = Request::begin(&req) else {
        return next.call(req).await;
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await;
    };
    let request = Arc::new(request);
    let result = CURRENT.scope(request.clone(), next.call(req)).await;
    let (status, error, replayed) = match &result {
        Ok(response) => (
            response.status(),
            response.response().error().and_then(|error| error.as_error::<ApiError>()).map(ApiError::code),
            response.headers().contains_key(IDEMPOTENT_REPLAYED),
        ),
        Err(error) => {
            (error.as_response_error().status_code(), error.as_error::<ApiError>().map(ApiError::code), false)
        }
    };
    let outcome = outcome_of(status, replayed);
    let settled = {
        let known = request.known();
        // A flood of requests over the rate limit must not turn into a flood of writes.
        !request.is_recorded(&known) || known.appended == Some(outcome) || error == Some(ErrorCode::RateLimited)
    };
    if !settled {
        let recording = request.clone();
        let written = state.db.write("", move |conn| Ok(recording.append(conn, outcome, error, None)?)).await;
        if let Err(err) = written {
            tracing::error!(error = %err, action = %request.action, "writing the audit record failed");
        }
    }
    result
}
