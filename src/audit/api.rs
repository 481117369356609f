//! Wire types of the audit log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::audit::model::{AuditRecord, Outcome};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditLogQuery {
    /// Only records of this user's requests.
    pub actor: Option<Uuid>,
    /// Only this action: an operation id of this API, e.g. `award`, `login`, `update_reward`.
    pub action: Option<String>,
    /// Only records of this unit and the units below it.
    pub unit: Option<Uuid>,
    /// From this instant (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Until this instant (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActorResponse {
    #[schema(format = Uuid)]
    pub id: String,
    /// Null if the user's name could not be read.
    pub username: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TargetResponse {
    /// What the request acted on, named after its path parameter: `community`, `unit`, `user`,
    /// `transaction`, `claim`, `activity`, `reward`, `rule`, `redemption`; `username` for a sign-in
    /// with an unknown username.
    #[serde(rename = "type")]
    pub target_type: String,
    pub id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193f6f0-0000-7000-8000-0000000000a1",
    "occurred_at": "2026-11-27T02:30:00Z",
    "actor": {"id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e60", "username": "wang.staff", "display_name": "王社工"},
    "action": "award",
    "target": {"type": "transaction", "id": "0193f6f0-0000-7000-8000-000000000042"},
    "unit_id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f",
    "request_id": "5f0c6c1e-8d2b-4a53-9a0e-3f2f6f9f1d11",
    "client_ip": "203.0.113.7",
    "outcome": "succeeded",
    "code": null
}))]
pub struct AuditRecordResponse {
    #[schema(format = Uuid)]
    pub id: String,
    pub occurred_at: DateTime<Utc>,
    /// Null for a sign-in with an unknown username.
    pub actor: Option<ActorResponse>,
    /// The operation id of the request in this API's description, e.g. `award`.
    pub action: String,
    pub target: Option<TargetResponse>,
    /// The community or unit the request concerned, if any.
    #[schema(format = Uuid)]
    pub unit_id: Option<String>,
    /// The request's `X-Request-Id`, to find it in the server log.
    pub request_id: String,
    pub client_ip: Option<String>,
    pub outcome: Outcome,
    /// The problem `code` of a refused or failed request.
    pub code: Option<String>,
}

impl AuditRecordResponse {
    pub fn new(record: AuditRecord, actor: Option<ActorResponse>) -> Self {
        // The database admits only these four values.
        let outcome = Outcome::parse(&record.outcome).unwrap_or(Outcome::Failed);
        let target =
            record.target_type.zip(record.target_id).map(|(target_type, id)| TargetResponse { target_type, id });
        AuditRecordResponse {
            id: record.id,
            occurred_at: record.occurred_at.and_utc(),
            actor,
            action: record.action,
            target,
            unit_id: record.unit_id,
            request_id: record.request_id,
            client_ip: record.client_ip,
            outcome,
            code: record.code,
        }
    }
}
