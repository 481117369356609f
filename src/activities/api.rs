//! Wire types of activities.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::activities::model::{Activity, ActivityStatus, Registration};
use crate::rules::model::RuleCategory;
use crate::validation::nullable;

#[derive(Debug, Serialize, ToSchema)]
pub struct MyRegistration {
    pub registered_at: DateTime<Utc>,
    pub checked_in_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193f6e0-0000-7000-8000-000000000001",
    "community_id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f",
    "title": "清理楼道杂物",
    "description": "3号楼至5号楼，请自带手套",
    "location": "煤气小区3号楼门口",
    "rule_code": "corridor_cleanup",
    "category": "environment",
    "points": 10,
    "starts_at": "2026-11-28T01:00:00Z",
    "ends_at": "2026-11-28T03:00:00Z",
    "signup_deadline": "2026-11-28T01:00:00Z",
    "capacity": 20,
    "registered": 12,
    "status": "published",
    "award_transaction_id": null,
    "my_registration": null,
    "created_at": "2026-11-27T02:30:00Z",
    "updated_at": "2026-11-27T02:30:00Z"
}))]
pub struct ActivityResponse {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub community_id: String,
    pub title: String,
    pub description: String,
    pub location: String,
    /// The rule each participant is paid under.
    pub rule_code: String,
    pub category: RuleCategory,
    /// Paid to each participant on completion.
    pub points: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub signup_deadline: DateTime<Utc>,
    /// null: no limit.
    pub capacity: Option<i32>,
    /// Residents signed up so far.
    pub registered: i32,
    pub status: ActivityStatus,
    /// The award that paid the participants, once completed.
    #[schema(format = Uuid)]
    pub award_transaction_id: Option<String>,
    /// The caller's own sign-up, if any.
    pub my_registration: Option<MyRegistration>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ActivityResponse {
    pub fn new(activity: Activity, rule_code: String, category: RuleCategory, mine: Option<Registration>) -> Self {
        ActivityResponse {
            status: activity.status(),
            id: activity.id,
            community_id: activity.community_id,
            title: activity.title,
            description: activity.description,
            location: activity.location,
            rule_code,
            category,
            points: activity.points,
            starts_at: activity.starts_at.and_utc(),
            ends_at: activity.ends_at.and_utc(),
            signup_deadline: activity.signup_deadline.and_utc(),
            capacity: activity.capacity,
            registered: activity.registered,
            award_transaction_id: activity.award_transaction_id,
            my_registration: mine.map(|registration| MyRegistration {
                registered_at: registration.registered_at.and_utc(),
                checked_in_at: registration.checked_in_at.map(|at| at.and_utc()),
            }),
            created_at: activity.created_at.and_utc(),
            updated_at: activity.updated_at.and_utc(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "清理楼道杂物",
    "description": "3号楼至5号楼，请自带手套",
    "location": "煤气小区3号楼门口",
    "rule_code": "corridor_cleanup",
    "starts_at": "2026-11-28T09:00:00+08:00",
    "ends_at": "2026-11-28T11:00:00+08:00",
    "capacity": 20,
    "status": "published"
}))]
pub struct CreateActivityRequest {
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_NAME_CHARS}))))]
    pub title: String,
    #[serde(default)]
    #[schema(extensions(("x-text" = json!({"max_chars": crate::activities::service::MAX_TEXT_CHARS, "blank_is_absent": true}))))]
    pub description: String,
    #[serde(default)]
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_NAME_CHARS, "blank_is_absent": true}))))]
    pub location: String,
    /// An active `earn` rule of the community.
    #[schema(extensions(("x-text" = json!({"max_chars": crate::ledger::api::MAX_RULE_CODE_CHARS}))))]
    pub rule_code: String,
    /// Within the rule's range; default: the rule's default points.
    #[schema(minimum = 1, maximum = 1000000)]
    pub points: Option<i64>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Default: no limit.
    #[schema(minimum = 1, maximum = 100000)]
    pub capacity: Option<i32>,
    /// Default: `starts_at`.
    pub signup_deadline: Option<DateTime<Utc>>,
    /// `draft` (default) or `published`.
    pub status: Option<ActivityStatus>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "published"}))]
pub struct UpdateActivityRequest {
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_NAME_CHARS}))))]
    pub title: Option<String>,
    #[schema(extensions(("x-text" = json!({"max_chars": crate::activities::service::MAX_TEXT_CHARS, "multiline": true}))))]
    pub description: Option<String>,
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_NAME_CHARS}))))]
    pub location: Option<String>,
    #[schema(minimum = 1, maximum = 1000000)]
    pub points: Option<i64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// null removes the limit; it cannot go below the number already signed up.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>)]
    #[schema(minimum = 1, maximum = 100000)]
    pub capacity: Option<Option<i32>>,
    pub signup_deadline: Option<DateTime<Utc>>,
    /// `published` (from draft) or `cancelled`; completion has its own endpoint.
    pub status: Option<ActivityStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Not yet over.
    Upcoming,
    /// Over.
    Past,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActivityListQuery {
    #[param(inline)]
    pub when: Option<When>,
    pub category: Option<RuleCategory>,
    /// Staff only; residents see published and completed activities.
    pub status: Option<ActivityStatus>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": "K7PQ3M", "valid_until": "2026-11-28T01:05:00Z", "check_in_opens": "2026-11-28T00:30:00Z", "check_in_closes": "2026-11-28T03:30:00Z"}))]
pub struct CheckInCodeResponse {
    /// Show it on screen or as a QR code; it changes every 5 minutes, and the previous one is still accepted.
    pub code: String,
    pub valid_until: DateTime<Utc>,
    /// Check-in works from 30 minutes before the start until 30 minutes after the end.
    pub check_in_opens: DateTime<Utc>,
    pub check_in_closes: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "K7PQ3M"}))]
pub struct CheckInRequest {
    /// A resident checking themself in: the code on the screen.
    pub code: Option<String>,
    /// Staff checking a resident in from a paper sheet.
    pub user_id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({}))]
pub struct CompletionRequest {
    /// Who is paid; default: every resident who checked in.
    pub attendees: Option<Vec<Uuid>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "user_id": "0193f6a2-6c2d-7e4f-a000-0a1b2c3d4e5f",
    "username": "13800138000",
    "display_name": "张阿姨",
    "registered_at": "2026-11-27T02:30:00Z",
    "checked_in_at": "2026-11-28T01:05:00Z",
    "check_in_method": "code",
    "awarded_points": 10
}))]
pub struct ParticipantResponse {
    #[schema(format = Uuid)]
    pub user_id: String,
    pub username: String,
    pub display_name: String,
    pub registered_at: DateTime<Utc>,
    pub checked_in_at: Option<DateTime<Utc>>,
    /// `code` (self) or `staff` (paper sheet).
    pub check_in_method: Option<String>,
    /// Points paid on completion.
    pub awarded_points: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ParticipantListQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
