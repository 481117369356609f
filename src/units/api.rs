//! Wire types of organisation units and their members.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::model::User;
use crate::ledger::expiry::ExpiryPolicy;
use crate::units::model::{Household, Membership, MembershipStatus, Role, Roles, Unit, UnitKind};
use crate::validation::{MAX_NAME_CHARS, TextRule, nullable};

/// A unit in brief, as shown inside other objects.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnitSummary {
    #[schema(format = Uuid)]
    pub id: String,
    pub kind: UnitKind,
    pub name: String,
}

impl From<&Unit> for UnitSummary {
    fn from(unit: &Unit) -> Self {
        UnitSummary { id: unit.id.clone(), kind: unit.kind(), name: unit.name.clone() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f",
    "kind": "community",
    "parent_id": "0193f6a2-4a0b-7c2d-8e00-0a1b2c3d4e5f",
    "name": "福寓苑社区",
    "timezone": "Asia/Shanghai",
    "join_code": "FUY8K3QM",
    "expiry_policy": {"policy": "year_end"},
    "max_open_claims": 5,
    "pickup_window_days": 14,
    "created_at": "2026-11-27T02:30:00Z",
    "updated_at": "2026-11-27T02:30:00Z"
}))]
pub struct UnitResponse {
    #[schema(format = Uuid)]
    pub id: String,
    pub kind: UnitKind,
    /// null only for the platform root.
    #[schema(format = Uuid)]
    pub parent_id: Option<String>,
    pub name: String,
    /// IANA time zone of a community (its calendar for caps, expiry, reports); null for other kinds.
    pub timezone: Option<String>,
    /// The code residents register with; shown to staff and admins of the community only.
    pub join_code: Option<String>,
    /// When a community's points expire; null for other kinds.
    pub expiry_policy: Option<ExpiryPolicy>,
    /// How many undecided claims a resident of the community may have at once; null for other kinds.
    pub max_open_claims: Option<i32>,
    /// Days residents have to collect an order from the points shop; null for other kinds.
    pub pickup_window_days: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UnitResponse {
    /// `roles` are the caller's roles on the unit: the join code is for staff eyes.
    pub fn new(unit: Unit, roles: Roles) -> Self {
        let shows_join_code = roles.admin || roles.staff;
        let expiry_policy = (unit.kind() == UnitKind::Community).then(|| ExpiryPolicy::of(&unit));
        UnitResponse {
            expiry_policy,
            max_open_claims: unit.max_open_claims,
            pickup_window_days: unit.pickup_window_days,
            kind: unit.kind(),
            id: unit.id,
            parent_id: unit.parent_id,
            name: unit.name,
            timezone: unit.timezone,
            join_code: unit.join_code.filter(|_| shows_join_code),
            created_at: unit.created_at.and_utc(),
            updated_at: unit.updated_at.and_utc(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "community", "name": "福寓苑社区", "parent_id": "0193f6a2-4a0b-7c2d-8e00-0a1b2c3d4e5f"}))]
pub struct CreateUnitRequest {
    /// `district`, `street` or `community` (a district sits under the platform, a street under a district, a community under a street).
    pub kind: UnitKind,
    /// 1 to 100 characters, unique among the parent's children.
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_NAME_CHARS}))))]
    pub name: String,
    /// Required except for districts, whose parent is the platform.
    pub parent_id: Option<Uuid>,
    #[schema(schema_with = crate::validation::timezone_schema)]
    pub timezone: Option<String>,
    /// Communities only; default `{"policy": "never"}`.
    pub expiry_policy: Option<ExpiryPolicy>,
    /// Communities only: undecided claims per resident, 1 to 100 (default 5).
    #[schema(minimum = 1, maximum = 100)]
    pub max_open_claims: Option<i32>,
    /// Communities only: days to collect an order, 1 to 365 (default 14).
    #[schema(minimum = 1, maximum = 365)]
    pub pickup_window_days: Option<i32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "福寓苑社区", "regenerate_join_code": true}))]
pub struct UpdateUnitRequest {
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_NAME_CHARS}))))]
    pub name: Option<String>,
    #[schema(schema_with = crate::validation::timezone_schema)]
    pub timezone: Option<String>,
    /// Communities only: issue a new join code (e.g. after the old one leaked); the old one stops working.
    #[serde(default)]
    pub regenerate_join_code: bool,
    /// Communities only: applies to points earned from now on; earlier lots keep their dates.
    pub expiry_policy: Option<ExpiryPolicy>,
    /// Communities only: undecided claims per resident, 1 to 100.
    #[schema(minimum = 1, maximum = 100)]
    pub max_open_claims: Option<i32>,
    /// Communities only: days to collect an order, 1 to 365.
    #[schema(minimum = 1, maximum = 365)]
    pub pickup_window_days: Option<i32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UnitListQuery {
    /// Only units of this kind.
    pub kind: Option<UnitKind>,
    /// Only the children of this unit.
    pub parent_id: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The user of a membership, as staff see them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberUser {
    #[schema(format = Uuid)]
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "user": {"id": "0193f6a2-6c2d-7e4f-a000-0a1b2c3d4e5f", "username": "13800138000", "display_name": "张阿姨", "phone": "13800138000"},
    "unit_id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f",
    "roles": ["resident"],
    "status": "active",
    "household": {"compound": "煤气小区", "building": "3号楼", "unit": "2单元", "room": "301"},
    "created_at": "2026-11-27T02:30:00Z",
    "updated_at": "2026-11-27T02:30:00Z"
}))]
pub struct MemberResponse {
    pub user: MemberUser,
    #[schema(format = Uuid)]
    pub unit_id: String,
    pub roles: Vec<Role>,
    pub status: MembershipStatus,
    pub household: Option<Household>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Only when staff created the user without a password: hand it to the resident. It is shown in
    /// this first answer only, never stored: a replay of the request (same Idempotency-Key) omits it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_password: Option<String>,
}

impl MemberResponse {
    pub fn new(membership: Membership, user: User) -> Self {
        MemberResponse {
            roles: membership.roles().to_list(),
            status: membership.status(),
            household: membership.household(),
            user: MemberUser {
                id: user.id,
                username: user.username,
                display_name: user.display_name,
                phone: user.phone,
            },
            unit_id: membership.unit_id,
            created_at: membership.created_at.and_utc(),
            updated_at: membership.updated_at.and_utc(),
            initial_password: None,
        }
    }
}

/// A user to create together with the membership.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(schema_with = crate::validation::username_schema)]
    pub username: String,
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_NAME_CHARS}))))]
    pub display_name: String,
    pub phone: Option<String>,
    /// 8 to 128 characters; omit to have one generated and returned once as `initial_password`.
    #[schema(min_length = 8, max_length = 128)]
    pub password: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "new_user": {"username": "13800138000", "display_name": "张阿姨"},
    "roles": ["resident"],
    "household": {"compound": "煤气小区", "building": "3号楼", "unit": "2单元", "room": "301"}
}))]
pub struct AddMemberRequest {
    /// An existing user; give either this or `new_user`.
    pub user_id: Option<Uuid>,
    /// A user to create; give either this or `user_id`.
    pub new_user: Option<NewUser>,
    /// At least one. Staff may grant `resident` only; admins any role. `resident` only on a community.
    #[schema(min_items = 1)]
    pub roles: Vec<Role>,
    /// Residents only.
    pub household: Option<Household>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "active"}))]
pub struct UpdateMemberRequest {
    /// Replaces the roles held on this unit (admins only).
    #[schema(min_items = 1)]
    pub roles: Option<Vec<Role>>,
    pub status: Option<MembershipStatus>,
    /// Replaces the household; null clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Household>)]
    pub household: Option<Option<Household>>,
}

/// What the search in members accepts: up to a name's length, blank for none.
fn search_schema() -> Object {
    let rule = TextRule { max_chars: MAX_NAME_CHARS, multiline: false, blank_is_absent: true, url: false };
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(rule.pattern())).build()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MemberListQuery {
    /// Only members holding this role.
    pub role: Option<Role>,
    pub status: Option<MembershipStatus>,
    /// Search in display name and username (case-insensitive substring).
    #[param(schema_with = search_schema)]
    pub q: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
