//! Wire types of orders in the points shop.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::redemptions::model::{Redemption, RedemptionStatus};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reward_id": "0193f6f0-0000-7000-8000-000000000001", "quantity": 1}))]
pub struct OrderRequest {
    pub reward_id: Uuid,
    /// 1 to 100 (default 1).
    #[schema(minimum = 1, maximum = 100)]
    pub quantity: Option<i32>,
    /// Staff only: order for this resident (who has no phone); recorded as ordered by the staff member.
    pub user_id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"pickup_code": "K7PQ3MXA"}))]
pub struct FulfilmentRequest {
    /// The code the resident shows at the counter.
    pub pickup_code: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193f700-0000-7000-8000-000000000001",
    "community_id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f",
    "user_id": "0193f6a2-6c2d-7e4f-a000-0a1b2c3d4e5f",
    "reward_id": "0193f6f0-0000-7000-8000-000000000001",
    "reward_name": "洗衣液 2kg",
    "quantity": 1,
    "points": 120,
    "status": "pending",
    "pickup_code": "K7PQ3MXA",
    "ordered_by": "0193f6a2-6c2d-7e4f-a000-0a1b2c3d4e5f",
    "hold_transaction_id": "0193f6b0-0000-7000-8000-000000000011",
    "settle_transaction_id": null,
    "resolved_by": null,
    "resolved_at": null,
    "created_at": "2026-11-27T02:30:00Z"
}))]
pub struct RedemptionResponse {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub community_id: String,
    /// The resident it is for.
    #[schema(format = Uuid)]
    pub user_id: String,
    #[schema(format = Uuid)]
    pub reward_id: String,
    pub reward_name: String,
    pub quantity: i32,
    /// Points held (pending), spent (fulfilled) or returned (cancelled).
    pub points: i64,
    pub status: RedemptionStatus,
    /// Show it at the counter: 8 characters without look-alikes. Shown only to the resident and to
    /// the staff member who ordered for them; other staff must get it from the resident.
    pub pickup_code: Option<String>,
    /// The resident, or the staff member who ordered for them.
    #[schema(format = Uuid)]
    pub ordered_by: String,
    #[schema(format = Uuid)]
    pub hold_transaction_id: String,
    /// The handover (`redemption`) or the `refund`.
    #[schema(format = Uuid)]
    pub settle_transaction_id: Option<String>,
    /// Who handed it over or cancelled it; null when the pickup window ran out.
    #[schema(format = Uuid)]
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl RedemptionResponse {
    /// `viewer`: who asks; the pickup code is theirs to see only if the order is theirs.
    pub fn new(redemption: Redemption, reward_name: String, viewer: &str) -> Self {
        let sees_code = redemption.user_id == viewer || redemption.ordered_by == viewer;
        RedemptionResponse {
            status: redemption.status(),
            id: redemption.id,
            community_id: redemption.community_id,
            user_id: redemption.user_id,
            reward_id: redemption.reward_id,
            reward_name,
            quantity: redemption.quantity,
            points: redemption.points,
            pickup_code: sees_code.then_some(redemption.pickup_code),
            ordered_by: redemption.ordered_by,
            hold_transaction_id: redemption.hold_transaction_id,
            settle_transaction_id: redemption.settle_transaction_id,
            resolved_by: redemption.resolved_by,
            resolved_at: redemption.resolved_at.map(|at| at.and_utc()),
            created_at: redemption.created_at.and_utc(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RedemptionListQuery {
    pub status: Option<RedemptionStatus>,
    pub reward_id: Option<Uuid>,
    /// Staff: find the order a resident shows at the counter.
    pub pickup_code: Option<String>,
    /// Staff: one resident's orders (residents always see their own only).
    pub user_id: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
