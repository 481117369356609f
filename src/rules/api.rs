//! Wire types of point rules.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::rules::model::{Rule, RuleCategory, RuleDirection};
use crate::validation::nullable;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193f6c0-0000-7000-8000-000000000001",
    "community_id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f",
    "code": "corridor_cleanup",
    "name": "清理楼道杂物",
    "category": "environment",
    "direction": "earn",
    "default_points": 10,
    "min_points": 5,
    "max_points": 20,
    "daily_cap": 1,
    "weekly_cap": null,
    "monthly_cap": 4,
    "active": true,
    "created_at": "2026-11-27T02:30:00Z",
    "updated_at": "2026-11-27T02:30:00Z"
}))]
pub struct RuleResponse {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub community_id: String,
    /// Unique in the community; awards and deductions cite it as `rule_code`.
    pub code: String,
    pub name: String,
    pub category: RuleCategory,
    pub direction: RuleDirection,
    pub default_points: i64,
    pub min_points: i64,
    pub max_points: i64,
    /// How many times a resident may receive (or be charged) under this rule per local day; null: no cap.
    pub daily_cap: Option<i32>,
    /// Per local week (Monday to Sunday).
    pub weekly_cap: Option<i32>,
    /// Per local calendar month.
    pub monthly_cap: Option<i32>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Rule> for RuleResponse {
    fn from(rule: Rule) -> Self {
        RuleResponse {
            category: rule.category(),
            direction: rule.direction(),
            id: rule.id,
            community_id: rule.community_id,
            code: rule.code,
            name: rule.name,
            default_points: rule.default_points,
            min_points: rule.min_points,
            max_points: rule.max_points,
            daily_cap: rule.daily_cap,
            weekly_cap: rule.weekly_cap,
            monthly_cap: rule.monthly_cap,
            active: rule.active,
            created_at: rule.created_at.and_utc(),
            updated_at: rule.updated_at.and_utc(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "code": "corridor_cleanup",
    "name": "清理楼道杂物",
    "category": "environment",
    "direction": "earn",
    "default_points": 10,
    "min_points": 5,
    "max_points": 20,
    "daily_cap": 1
}))]
pub struct CreateRuleRequest {
    /// 1 to 64 characters: lower-case letters, digits and `_`. Cannot be changed later.
    #[schema(pattern = r"^[a-z0-9_]{1,64}$")]
    pub code: String,
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_NAME_CHARS}))))]
    pub name: String,
    pub category: RuleCategory,
    pub direction: RuleDirection,
    /// 1 to 1,000,000.
    #[schema(minimum = 1, maximum = 1000000)]
    pub default_points: i64,
    /// Default: `default_points`.
    #[schema(minimum = 1, maximum = 1000000)]
    pub min_points: Option<i64>,
    /// Default: `default_points`.
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_points: Option<i64>,
    #[schema(minimum = 1, maximum = 1000)]
    pub daily_cap: Option<i32>,
    #[schema(minimum = 1, maximum = 1000)]
    pub weekly_cap: Option<i32>,
    #[schema(minimum = 1, maximum = 1000)]
    pub monthly_cap: Option<i32>,
    /// Default: true.
    pub active: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"default_points": 12, "daily_cap": null, "active": true}))]
pub struct UpdateRuleRequest {
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_NAME_CHARS}))))]
    pub name: Option<String>,
    pub category: Option<RuleCategory>,
    #[schema(minimum = 1, maximum = 1000000)]
    pub default_points: Option<i64>,
    #[schema(minimum = 1, maximum = 1000000)]
    pub min_points: Option<i64>,
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_points: Option<i64>,
    /// null removes the cap.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>)]
    #[schema(minimum = 1, maximum = 1000)]
    pub daily_cap: Option<Option<i32>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>)]
    #[schema(minimum = 1, maximum = 1000)]
    pub weekly_cap: Option<Option<i32>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>)]
    #[schema(minimum = 1, maximum = 1000)]
    pub monthly_cap: Option<Option<i32>>,
    /// Inactive rules cannot be cited by new awards, deductions, activities or claims.
    pub active: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RuleListQuery {
    pub active: Option<bool>,
    pub category: Option<RuleCategory>,
    pub direction: Option<RuleDirection>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
