//! Wire types of sign-in, registration and the caller's own profile.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::model::User;
use crate::units::api::UnitSummary;
use crate::units::model::{Household, Membership, MembershipStatus, Role, Unit};
use crate::validation::nullable;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "admin", "password": "correct horse battery"}))]
pub struct LoginRequest {
    pub username: String,
    #[schema(max_length = 128)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
    "token_type": "Bearer",
    "expires_in": 900,
    "refresh_token": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f.bWFjLW9mLXRoZS1pZA"
}))]
pub struct TokenResponse {
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Single use: exchange it at /auth/refresh for a new pair before it expires (30 days).
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f.bWFjLW9mLXRoZS1pZA"}))]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f.bWFjLW9mLXRoZS1pZA"}))]
pub struct LogoutRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "join_code": "FUY8K3QM",
    "username": "13800138000",
    "password": "my garden is green",
    "display_name": "张阿姨",
    "household": {"compound": "煤气小区", "building": "3号楼", "unit": "2单元", "room": "301"}
}))]
pub struct RegisterRequest {
    /// The community's join code, as posted by its staff.
    pub join_code: String,
    #[schema(schema_with = crate::validation::username_schema)]
    pub username: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_NAME_CHARS}))))]
    pub display_name: String,
    pub phone: Option<String>,
    pub household: Option<Household>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"display_name": "张桂兰", "phone": "13800138000", "show_on_leaderboard": false}))]
pub struct UpdateMeRequest {
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_NAME_CHARS}))))]
    pub display_name: Option<String>,
    /// null clears the phone number.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// false: leaderboards show you masked (e.g. 张**) to other residents; staff still see your name.
    pub show_on_leaderboard: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current_password": "change me soon", "new_password": "my garden is green"}))]
pub struct ChangePasswordRequest {
    pub current_password: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

/// One of the caller's memberships.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyMembership {
    pub unit: UnitSummary,
    pub roles: Vec<Role>,
    pub status: MembershipStatus,
    pub household: Option<Household>,
}

/// The caller's profile and role grants.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193f6a2-6c2d-7e4f-a000-0a1b2c3d4e5f",
    "username": "13800138000",
    "display_name": "张阿姨",
    "phone": null,
    "show_on_leaderboard": true,
    "memberships": [{
        "unit": {"id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f", "kind": "community", "name": "福寓苑社区"},
        "roles": ["resident"],
        "status": "active",
        "household": {"compound": "煤气小区", "building": "3号楼", "unit": "2单元", "room": "301"}
    }]
}))]
pub struct MeResponse {
    #[schema(format = Uuid)]
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub phone: Option<String>,
    /// Whether leaderboards name you to other residents (otherwise: masked, e.g. 张**).
    pub show_on_leaderboard: bool,
    pub memberships: Vec<MyMembership>,
}

impl MeResponse {
    pub fn new(user: User, memberships: Vec<(Membership, Unit)>) -> Self {
        MeResponse {
            id: user.id,
            username: user.username,
            display_name: user.display_name,
            phone: user.phone,
            show_on_leaderboard: user.show_on_leaderboard,
            memberships: memberships
                .into_iter()
                .map(|(membership, unit)| MyMembership {
                    unit: UnitSummary::from(&unit),
                    roles: membership.roles().to_list(),
                    status: membership.status(),
                    household: membership.household(),
                })
                .collect(),
        }
    }
}
