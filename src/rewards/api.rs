//! Wire types of the points shop's catalogue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::rewards::model::{LimitPeriod, Reward};
use crate::validation::nullable;

/// "At most `count` per resident per `period`" (in the community's local calendar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PerResidentLimit {
    /// 1 or more.
    #[schema(minimum = 1, maximum = 1000)]
    pub count: i32,
    pub period: LimitPeriod,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193f6f0-0000-7000-8000-000000000001",
    "community_id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f",
    "name": "洗衣液 2kg",
    "description": "蓝月亮",
    "image_url": null,
    "cost": 120,
    "stock": 30,
    "limit_per_resident": {"count": 1, "period": "month"},
    "available_from": null,
    "available_until": null,
    "active": true,
    "created_at": "2026-11-27T02:30:00Z",
    "updated_at": "2026-11-27T02:30:00Z"
}))]
pub struct RewardResponse {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub community_id: String,
    pub name: String,
    pub description: String,
    pub image_url: Option<String>,
    /// Points per item.
    pub cost: i64,
    /// Items left; null: unlimited.
    pub stock: Option<i32>,
    pub limit_per_resident: Option<PerResidentLimit>,
    pub available_from: Option<DateTime<Utc>>,
    pub available_until: Option<DateTime<Utc>>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Reward> for RewardResponse {
    fn from(reward: Reward) -> Self {
        RewardResponse {
            limit_per_resident: reward
                .limit_per_resident
                .zip(reward.limit_period())
                .map(|(count, period)| PerResidentLimit { count, period }),
            id: reward.id,
            community_id: reward.community_id,
            name: reward.name,
            description: reward.description,
            image_url: reward.image_url,
            cost: reward.cost,
            stock: reward.stock,
            available_from: reward.available_from.map(|at| at.and_utc()),
            available_until: reward.available_until.map(|at| at.and_utc()),
            active: reward.active,
            created_at: reward.created_at.and_utc(),
            updated_at: reward.updated_at.and_utc(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "洗衣液 2kg", "description": "蓝月亮", "cost": 120, "stock": 30, "limit_per_resident": {"count": 1, "period": "month"}}))]
pub struct CreateRewardRequest {
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_NAME_CHARS}))))]
    pub name: String,
    #[serde(default)]
    #[schema(extensions(("x-text" = json!({"max_chars": crate::rewards::service::MAX_DESCRIPTION_CHARS, "blank_is_absent": true}))))]
    pub description: String,
    /// An https URL of a picture.
    #[schema(extensions(("x-text" = json!({"max_chars": crate::rewards::service::MAX_IMAGE_URL_CHARS, "blank_is_absent": true, "url": true}))))]
    pub image_url: Option<String>,
    /// 1 to 1,000,000 points per item.
    #[schema(minimum = 1, maximum = 1000000)]
    pub cost: i64,
    /// Items in stock; omit for unlimited (e.g. a service).
    #[schema(minimum = 0, maximum = 1000000)]
    pub stock: Option<i32>,
    pub limit_per_resident: Option<PerResidentLimit>,
    pub available_from: Option<DateTime<Utc>>,
    pub available_until: Option<DateTime<Utc>>,
    /// Default: true.
    pub active: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"stock": 50, "active": true}))]
pub struct UpdateRewardRequest {
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_NAME_CHARS}))))]
    pub name: Option<String>,
    #[schema(extensions(("x-text" = json!({"max_chars": crate::rewards::service::MAX_DESCRIPTION_CHARS, "blank_is_absent": true}))))]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    #[schema(extensions(("x-text" = json!({"max_chars": crate::rewards::service::MAX_IMAGE_URL_CHARS, "blank_is_absent": true, "url": true}))))]
    pub image_url: Option<Option<String>>,
    #[schema(minimum = 1, maximum = 1000000)]
    pub cost: Option<i64>,
    /// Sets the items left; null: unlimited.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>)]
    #[schema(minimum = 0, maximum = 1000000)]
    pub stock: Option<Option<i32>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<PerResidentLimit>)]
    pub limit_per_resident: Option<Option<PerResidentLimit>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub available_from: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub available_until: Option<Option<DateTime<Utc>>>,
    pub active: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RewardListQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
