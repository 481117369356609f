//! Wire types of residents' claims.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::claims::model::{Claim, ClaimStatus};

pub const MAX_DESCRIPTION_CHARS: usize = 1_000;
pub const MAX_EVIDENCE_ITEMS: usize = 10;
pub const MAX_EVIDENCE_CHARS: usize = 500;
pub const MAX_REASON_CHARS: usize = 500;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "rule_code": "mutual_aid",
    "description": "帮3号楼的李奶奶把米扛上五楼",
    "occurred_at": "2026-11-26T09:30:00+08:00",
    "evidence": ["https://example.org/photos/123.jpg", "邻居王先生可作证"]
}))]
pub struct CreateClaimRequest {
    /// An active `earn` rule of the community.
    #[schema(extensions(("x-text" = json!({"max_chars": crate::ledger::api::MAX_RULE_CODE_CHARS}))))]
    pub rule_code: String,
    /// 1 to 1,000 characters.
    #[schema(extensions(("x-text" = json!({"max_chars": MAX_DESCRIPTION_CHARS, "multiline": true}))))]
    pub description: String,
    /// When it happened; not in the future.
    pub occurred_at: DateTime<Utc>,
    /// Up to 10 links or short notes (each up to 500 characters).
    #[serde(default)]
    #[schema(extensions(("x-text" = json!({"max_chars": MAX_EVIDENCE_CHARS}))))]
    pub evidence: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"points": 15}))]
pub struct ApprovalRequest {
    /// Within the rule's range; default: the rule's default points.
    #[schema(minimum = 1, maximum = 1000000)]
    pub points: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "未能核实，请补充照片"}))]
pub struct RejectionRequest {
    /// Shown to the resident.
    #[schema(extensions(("x-text" = json!({"max_chars": MAX_REASON_CHARS, "multiline": true}))))]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193f6d0-0000-7000-8000-000000000001",
    "community_id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f",
    "user_id": "0193f6a2-6c2d-7e4f-a000-0a1b2c3d4e5f",
    "rule_code": "mutual_aid",
    "description": "帮3号楼的李奶奶把米扛上五楼",
    "occurred_at": "2026-11-26T01:30:00Z",
    "evidence": ["邻居王先生可作证"],
    "status": "approved",
    "points": 10,
    "decided_by": "0193f6a2-6c2d-7e4f-a000-0a1b2c3d4e00",
    "decided_at": "2026-11-27T02:00:00Z",
    "decision_reason": null,
    "transaction_id": "0193f6b0-0000-7000-8000-000000000009",
    "created_at": "2026-11-26T12:00:00Z"
}))]
pub struct ClaimResponse {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub community_id: String,
    /// The resident who claims.
    #[schema(format = Uuid)]
    pub user_id: String,
    pub rule_code: String,
    pub description: String,
    pub occurred_at: DateTime<Utc>,
    pub evidence: Vec<String>,
    pub status: ClaimStatus,
    /// Points awarded, once approved.
    pub points: Option<i64>,
    #[schema(format = Uuid)]
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// Why it was rejected.
    pub decision_reason: Option<String>,
    /// The award, once approved.
    #[schema(format = Uuid)]
    pub transaction_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl ClaimResponse {
    pub fn new(claim: Claim, rule_code: String) -> Self {
        ClaimResponse {
            status: claim.status(),
            evidence: serde_json::from_str(&claim.evidence).unwrap_or_default(),
            id: claim.id,
            community_id: claim.community_id,
            user_id: claim.user_id,
            rule_code,
            description: claim.description,
            occurred_at: claim.occurred_at.and_utc(),
            points: claim.points,
            decided_by: claim.decided_by,
            decided_at: claim.decided_at.map(|at| at.and_utc()),
            decision_reason: claim.decision_reason,
            transaction_id: claim.transaction_id,
            created_at: claim.created_at.and_utc(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ClaimListQuery {
    pub status: Option<ClaimStatus>,
    pub rule_code: Option<String>,
    /// Staff: one resident's claims (residents always see their own only).
    pub user_id: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
