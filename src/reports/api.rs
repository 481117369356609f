//! Wire types of leaderboards (评比) and dashboard statistics.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::calendar::Period;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaderboardPeriod {
    Month,
    /// The calendar quarter: January–March, April–June, July–September, October–December.
    Quarter,
    Year,
}

impl LeaderboardPeriod {
    pub fn calendar(self) -> Period {
        match self {
            LeaderboardPeriod::Month => Period::Month,
            LeaderboardPeriod::Quarter => Period::Quarter,
            LeaderboardPeriod::Year => Period::Year,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaderboardGroup {
    /// Each resident on their own.
    Resident,
    /// Residents summed by 楼栋 (compound and building of their household).
    Building,
    /// Residents summed by 小区.
    Compound,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LeaderboardQuery {
    /// Default: month.
    pub period: Option<LeaderboardPeriod>,
    /// A day of the period, in the community's calendar; default: today there.
    pub at: Option<NaiveDate>,
    /// Default: resident.
    pub group: Option<LeaderboardGroup>,
    /// Entries to return, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// One resident's place. Names of residents who opted out are masked (e.g. 张**) to other
/// residents, and then carry no user id; phone numbers and households are never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResidentEntry {
    /// Standard competition ranking: equal points share a rank (1, 1, 3).
    pub rank: i64,
    /// null when masked.
    #[schema(format = Uuid)]
    pub user_id: Option<String>,
    pub display_name: String,
    /// The resident opted out of being named, and the caller is neither they nor staff.
    pub masked: bool,
    /// This is the caller.
    pub you: bool,
    /// Points awarded in the period, less reversals of awards in the period.
    pub earned: i64,
    /// Points deducted in the period, less reversals of deductions in the period; does not lower `earned`.
    pub deducted: i64,
}

/// One building's or compound's place.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupEntry {
    pub rank: i64,
    /// null: residents without this detail in their household.
    pub compound: Option<String>,
    /// Always null when grouping by compound.
    pub building: Option<String>,
    /// Active residents of the group today.
    pub members: i64,
    pub earned: i64,
    pub deducted: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "community_id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f",
    "period": "month",
    "group": "resident",
    "timezone": "Asia/Shanghai",
    "from": "2026-11-01",
    "to": "2026-11-30",
    "residents": [
        {"rank": 1, "user_id": "0193f6a2-6c2d-7e4f-a000-0a1b2c3d4e5f", "display_name": "张阿姨", "masked": false, "you": false, "earned": 120, "deducted": 0},
        {"rank": 1, "user_id": null, "display_name": "李**", "masked": true, "you": false, "earned": 120, "deducted": 5},
        {"rank": 3, "user_id": "0193f6a2-6c2d-7e4f-a000-0a1b2c3d4e60", "display_name": "王先生", "masked": false, "you": true, "earned": 40, "deducted": 0}
    ],
    "groups": []
}))]
pub struct LeaderboardResponse {
    #[schema(format = Uuid)]
    pub community_id: String,
    pub period: LeaderboardPeriod,
    pub group: LeaderboardGroup,
    /// The community's time zone: the period runs from local midnight to local midnight.
    pub timezone: String,
    /// First day of the period (local).
    pub from: NaiveDate,
    /// Last day of the period (local, inclusive).
    pub to: NaiveDate,
    /// With `group=resident`: residents with points earned or deducted in the period, best first. Otherwise empty.
    pub residents: Vec<ResidentEntry>,
    /// With `group=building` or `compound`: every group with active residents or points, best first. Otherwise empty.
    pub groups: Vec<GroupEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatsBucket {
    Day,
    /// From Monday.
    Week,
    Month,
}

impl StatsBucket {
    pub fn calendar(self) -> Period {
        match self {
            StatsBucket::Day => Period::Day,
            StatsBucket::Week => Period::Week,
            StatsBucket::Month => Period::Month,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// First day (local, inclusive); default: 29 days before `to`.
    pub from: Option<NaiveDate>,
    /// Last day (local, inclusive); default: today.
    pub to: Option<NaiveDate>,
    /// Default: day. At most 400 buckets.
    pub bucket: Option<StatsBucket>,
}

/// The figures of a bucket or of the whole range.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct Figures {
    /// Points awarded, less reversals of awards.
    pub awarded: i64,
    /// Points deducted, less reversals of deductions.
    pub deducted: i64,
    /// Points of orders handed over in the points shop.
    pub redeemed: i64,
    pub expired: i64,
    /// The liability at the end: all residents' points, held ones included.
    pub outstanding: i64,
    /// Distinct residents with a ledger transaction on their account (other than an expiry) or an activity check-in.
    pub active_residents: i64,
    /// Completed activities, counted when they end.
    pub activities_held: i64,
    /// Activity check-ins.
    pub attendance: i64,
    /// Claims approved, counted when decided.
    pub claims_approved: i64,
    pub claims_rejected: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BucketFigures {
    /// First day of the bucket (local); the first bucket starts at `from`.
    pub start: NaiveDate,
    /// Last day of the bucket (local, inclusive); the last bucket ends at `to`.
    pub end: NaiveDate,
    #[serde(flatten)]
    pub figures: Figures,
}

/// A rule by the points awarded through it in the range (less reversals).
#[derive(Debug, Serialize, ToSchema)]
pub struct TopRule {
    #[schema(format = Uuid)]
    pub community_id: String,
    pub code: String,
    pub name: Option<String>,
    pub points: i64,
}

/// A reward by the items handed over in the range.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopReward {
    #[schema(format = Uuid)]
    pub community_id: String,
    #[schema(format = Uuid)]
    pub reward_id: String,
    pub name: String,
    pub quantity: i64,
    pub points: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "unit_id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f",
    "timezone": "Asia/Shanghai",
    "from": "2026-11-26",
    "to": "2026-11-27",
    "bucket": "day",
    "buckets": [
        {"start": "2026-11-26", "end": "2026-11-26", "awarded": 50, "deducted": 5, "redeemed": 0, "expired": 0, "outstanding": 45, "active_residents": 3, "activities_held": 0, "attendance": 0, "claims_approved": 1, "claims_rejected": 0},
        {"start": "2026-11-27", "end": "2026-11-27", "awarded": 30, "deducted": 0, "redeemed": 20, "expired": 0, "outstanding": 55, "active_residents": 4, "activities_held": 1, "attendance": 3, "claims_approved": 0, "claims_rejected": 1}
    ],
    "totals": {"awarded": 80, "deducted": 5, "redeemed": 20, "expired": 0, "outstanding": 55, "active_residents": 5, "activities_held": 1, "attendance": 3, "claims_approved": 1, "claims_rejected": 1},
    "top_rules": [{"community_id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f", "code": "volunteering", "name": "志愿服务", "points": 80}],
    "top_rewards": [{"community_id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f", "reward_id": "0193f6f0-0000-7000-8000-000000000001", "name": "洗衣液 2kg", "quantity": 1, "points": 20}]
}))]
pub struct StatsResponse {
    /// The community, street or district.
    #[schema(format = Uuid)]
    pub unit_id: String,
    /// The calendar of the buckets: the communities' time zone if they share one, else UTC.
    pub timezone: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub bucket: StatsBucket,
    /// Oldest first, without gaps.
    pub buckets: Vec<BucketFigures>,
    /// The whole range: sums of the buckets, except `outstanding` (at the end) and `active_residents` (distinct over the range).
    pub totals: Figures,
    /// Up to five, most points first.
    pub top_rules: Vec<TopRule>,
    /// Up to five, most items first.
    pub top_rewards: Vec<TopReward>,
}
