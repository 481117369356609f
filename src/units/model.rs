//! Organisation units and memberships: rows and their queries.

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Bool;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::model::User;
use crate::db::schema::{memberships, units, users};
use crate::db::{DbConnection, MultiBackend, new_id};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// The root: one per deployment; its admins administer everything.
    Platform,
    District,
    /// 街道
    Street,
    /// 社区: owns residents, a ledger, activities and a points shop.
    Community,
}

impl UnitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::Platform => "platform",
            UnitKind::District => "district",
            UnitKind::Street => "street",
            UnitKind::Community => "community",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [UnitKind::Platform, UnitKind::District, UnitKind::Street, UnitKind::Community]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// The kind a unit of this kind must sit under.
    pub fn parent_kind(self) -> Option<UnitKind> {
        match self {
            UnitKind::Platform => None,
            UnitKind::District => Some(UnitKind::Platform),
            UnitKind::Street => Some(UnitKind::District),
            UnitKind::Community => Some(UnitKind::Street),
        }
    }
}

crate::sql_constant!(
    /// The kind of the platform unit, for the partial index `units_single_platform`.
    PlatformKind: diesel::sql_types::Text = "'platform'"
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages units and members, and can do everything staff can.
    Admin,
    /// Community staff: members, and (later) activities, claims, rewards.
    Staff,
    /// Reads everything of the units below, changes nothing.
    Auditor,
    /// Lives in one community; earns and spends points.
    Resident,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MembershipStatus {
    /// Registered with a join code, waiting for staff to confirm.
    Pending,
    Active,
    /// Roles have no effect until set active again.
    Suspended,
}

impl MembershipStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MembershipStatus::Pending => "pending",
            MembershipStatus::Active => "active",
            MembershipStatus::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [MembershipStatus::Pending, MembershipStatus::Active, MembershipStatus::Suspended]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// The roles one membership holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    pub admin: bool,
    pub staff: bool,
    pub auditor: bool,
    pub resident: bool,
}

impl Roles {
    pub fn from_list(list: &[Role]) -> Self {
        let has = |role| list.contains(&role);
        Roles {
            admin: has(Role::Admin),
            staff: has(Role::Staff),
            auditor: has(Role::Auditor),
            resident: has(Role::Resident),
        }
    }

    pub fn to_list(self) -> Vec<Role> {
        [
            (self.admin, Role::Admin),
            (self.staff, Role::Staff),
            (self.auditor, Role::Auditor),
            (self.resident, Role::Resident),
        ]
        .into_iter()
        .filter_map(|(held, role)| held.then_some(role))
        .collect()
    }

    pub fn union(self, other: Roles) -> Roles {
        Roles {
            admin: self.admin || other.admin,
            staff: self.staff || other.staff,
            auditor: self.auditor || other.auditor,
            resident: self.resident || other.resident,
        }
    }

    pub fn is_empty(self) -> bool {
        self == Roles::default()
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = units)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Unit {
    pub id: String,
    pub kind: String,
    pub parent_id: Option<String>,
    pub path: String,
    pub name: String,
    pub timezone: Option<String>,
    pub join_code: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Communities: `never`, `days` or `year_end` (see `ExpiryPolicy`).
    pub expiry_policy: Option<String>,
    pub expiry_days: Option<i32>,
    /// Communities: how many undecided claims a resident may have at once.
    pub max_open_claims: Option<i32>,
    /// Communities: days to collect an order before it is cancelled.
    pub pickup_window_days: Option<i32>,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = units)]
pub struct UnitChanges {
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub join_code: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
    pub expiry_policy: Option<String>,
    pub expiry_days: Option<Option<i32>>,
    pub max_open_claims: Option<i32>,
    pub pickup_window_days: Option<i32>,
}

/// Filters of the unit list.
#[derive(Debug, Default)]
pub struct UnitFilter {
    pub kind: Option<UnitKind>,
    pub parent_id: Option<String>,
}

impl Unit {
    pub fn kind(&self) -> UnitKind {
        UnitKind::parse(&self.kind).unwrap_or(UnitKind::Community)
    }

    /// A new unit under `parent` (the platform has none), without a community's settings.
    pub fn new(kind: UnitKind, name: String, parent: Option<&Unit>, now: NaiveDateTime) -> Unit {
        let id = new_id();
        Unit {
            path: parent.map_or_else(|| format!("/{id}/"), |parent| parent.child_path(&id)),
            id,
            kind: kind.as_str().to_owned(),
            parent_id: parent.map(|parent| parent.id.clone()),
            name,
            timezone: None,
            join_code: None,
            created_at: now,
            updated_at: now,
            expiry_policy: None,
            expiry_days: None,
            max_open_claims: None,
            pickup_window_days: None,
        }
    }

    pub fn child_path(&self, child_id: &str) -> String {
        format!("{}{child_id}/", self.path)
    }

    /// Whether `self` is `other` or lies below it.
    pub fn is_within(&self, other_path: &str) -> bool {
        self.path.starts_with(other_path)
    }

    pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Unit>> {
        crate::direct!(conn, |conn| units::table.find(id).select(Unit::as_select()).first(conn).optional())
    }

    pub fn platform(conn: &mut DbConnection) -> QueryResult<Option<Unit>> {
        units::table.filter(units::kind.eq(PlatformKind)).select(Unit::as_select()).first(conn).optional()
    }

    pub fn find_by_join_code(conn: &mut DbConnection, code: &str) -> QueryResult<Option<Unit>> {
        units::table.filter(units::join_code.eq(code)).select(Unit::as_select()).first(conn).optional()
    }

    pub fn name_taken(
        conn: &mut DbConnection,
        parent_id: &str,
        name: &str,
        except_id: Option<&str>,
    ) -> QueryResult<bool> {
        let others: i64 = units::table
            .filter(units::parent_id.eq(parent_id))
            .filter(units::name.eq(name))
            .filter(units::id.ne(except_id.unwrap_or_default()))
            .count()
            .get_result(conn)?;
        Ok(others > 0)
    }

    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(units::table).values(self).execute(conn).map(drop)
    }

    pub fn update(conn: &mut DbConnection, id: &str, changes: &UnitChanges) -> QueryResult<Unit> {
        diesel::update(units::table.find(id)).set(changes).execute(conn)?;
        units::table.find(id).select(Unit::as_select()).first(conn)
    }

    /// Units at or below any of `roots` (unit paths), in id order after `after`.
    pub fn list_within(
        conn: &mut DbConnection,
        roots: &[String],
        filter: &UnitFilter,
        after: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<Unit>> {
        if roots.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = units::table.filter(within_any(roots)).select(Unit::as_select()).into_boxed();
        if let Some(kind) = filter.kind {
            query = query.filter(units::kind.eq(kind.as_str()));
        }
        if let Some(parent_id) = &filter.parent_id {
            query = query.filter(units::parent_id.eq(parent_id.clone()));
        }
        if let Some(after) = after {
            query = query.filter(units::id.gt(after.to_owned()));
        }
        query.order(units::id.asc()).limit(limit).load(conn)
    }
}

/// `path LIKE root1% OR path LIKE root2% ...`; paths hold only UUIDs and slashes, so no escaping is needed.
fn within_any(roots: &[String]) -> Box<dyn BoxableExpression<units::table, MultiBackend, SqlType = Bool>> {
    roots
        .iter()
        .fold(Box::new(sql::<Bool>("1 = 0")), |acc, root| Box::new(acc.or(units::path.like(format!("{root}%")))))
}

/// Optional household details of a resident (小区, 楼栋, 单元, 室).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Household {
    /// 小区, e.g. 煤气小区
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_HOUSEHOLD_FIELD_CHARS, "blank_is_absent": true}))))]
    pub compound: Option<String>,
    /// 楼栋, e.g. 3号楼
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_HOUSEHOLD_FIELD_CHARS, "blank_is_absent": true}))))]
    pub building: Option<String>,
    /// 单元
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_HOUSEHOLD_FIELD_CHARS, "blank_is_absent": true}))))]
    pub unit: Option<String>,
    /// 室
    #[schema(extensions(("x-text" = json!({"max_chars": crate::validation::MAX_HOUSEHOLD_FIELD_CHARS, "blank_is_absent": true}))))]
    pub room: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = memberships)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Membership {
    pub id: String,
    pub unit_id: String,
    pub user_id: String,
    pub status: String,
    pub is_admin: bool,
    pub is_staff: bool,
    pub is_auditor: bool,
    pub is_resident: bool,
    pub household_compound: Option<String>,
    pub household_building: Option<String>,
    pub household_unit: Option<String>,
    pub household_room: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = memberships)]
pub struct MembershipChanges {
    pub status: Option<String>,
    pub is_admin: Option<bool>,
    pub is_staff: Option<bool>,
    pub is_auditor: Option<bool>,
    pub is_resident: Option<bool>,
    pub household_compound: Option<Option<String>>,
    pub household_building: Option<Option<String>>,
    pub household_unit: Option<Option<String>>,
    pub household_room: Option<Option<String>>,
    pub updated_at: Option<NaiveDateTime>,
}

impl MembershipChanges {
    pub fn set_roles(&mut self, roles: Roles) {
        self.is_admin = Some(roles.admin);
        self.is_staff = Some(roles.staff);
        self.is_auditor = Some(roles.auditor);
        self.is_resident = Some(roles.resident);
    }

    pub fn set_household(&mut self, household: Option<Household>) {
        let household = household.unwrap_or_default();
        self.household_compound = Some(household.compound);
        self.household_building = Some(household.building);
        self.household_unit = Some(household.unit);
        self.household_room = Some(household.room);
    }
}

/// Filters of the member list.
#[derive(Debug, Default)]
pub struct MemberFilter {
    pub role: Option<Role>,
    pub status: Option<MembershipStatus>,
    /// Matches display name or username, case-insensitively, anywhere in them.
    pub search: Option<String>,
}

impl Membership {
    /// A new membership, all roles given, no household yet.
    pub fn new(unit_id: &str, user_id: &str, roles: Roles, status: MembershipStatus, now: NaiveDateTime) -> Self {
        Membership {
            id: crate::db::new_id(),
            unit_id: unit_id.to_owned(),
            user_id: user_id.to_owned(),
            status: status.as_str().to_owned(),
            is_admin: roles.admin,
            is_staff: roles.staff,
            is_auditor: roles.auditor,
            is_resident: roles.resident,
            household_compound: None,
            household_building: None,
            household_unit: None,
            household_room: None,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn roles(&self) -> Roles {
        Roles { admin: self.is_admin, staff: self.is_staff, auditor: self.is_auditor, resident: self.is_resident }
    }

    pub fn status(&self) -> MembershipStatus {
        MembershipStatus::parse(&self.status).unwrap_or(MembershipStatus::Suspended)
    }

    /// A resident whose membership is active: one who may receive points.
    pub fn is_active_resident(&self) -> bool {
        self.is_resident && self.status() == MembershipStatus::Active
    }

    pub fn household(&self) -> Option<Household> {
        let household = Household {
            compound: self.household_compound.clone(),
            building: self.household_building.clone(),
            unit: self.household_unit.clone(),
            room: self.household_room.clone(),
        };
        (household != Household::default()).then_some(household)
    }

    pub fn set_household(&mut self, household: Option<Household>) {
        let household = household.unwrap_or_default();
        self.household_compound = household.compound;
        self.household_building = household.building;
        self.household_unit = household.unit;
        self.household_room = household.room;
    }

    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(memberships::table).values(self).execute(conn).map(drop)
    }

    pub fn find(conn: &mut DbConnection, unit_id: &str, user_id: &str) -> QueryResult<Option<Membership>> {
        crate::direct!(conn, |conn| memberships::table
            .filter(memberships::unit_id.eq(unit_id))
            .filter(memberships::user_id.eq(user_id))
            .select(Membership::as_select())
            .first(conn)
            .optional())
    }

    pub fn platform_has_admin(conn: &mut DbConnection, platform_id: &str) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            memberships::table
                .filter(memberships::unit_id.eq(platform_id))
                .filter(memberships::is_admin.eq(true))
                .filter(memberships::status.eq(MembershipStatus::Active.as_str())),
        ))
        .get_result(conn)
    }

    /// The user's resident membership, wherever it is.
    pub fn residence_of(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<Membership>> {
        memberships::table
            .filter(memberships::user_id.eq(user_id))
            .filter(memberships::is_resident.eq(true))
            .select(Membership::as_select())
            .first(conn)
            .optional()
    }

    pub fn update(conn: &mut DbConnection, id: &str, changes: &MembershipChanges) -> QueryResult<Membership> {
        diesel::update(memberships::table.find(id)).set(changes).execute(conn)?;
        memberships::table.find(id).select(Membership::as_select()).first(conn)
    }

    /// Every membership of a user with its unit, for authorisation and the profile.
    pub fn of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<(Membership, Unit)>> {
        crate::direct!(conn, |conn| memberships::table
            .inner_join(units::table)
            .filter(memberships::user_id.eq(user_id))
            .select((Membership::as_select(), Unit::as_select()))
            .order(memberships::id.asc())
            .load(conn))
    }

    /// Members of one unit with their users, in membership id order after `after`.
    pub fn list(
        conn: &mut DbConnection,
        unit_id: &str,
        filter: &MemberFilter,
        after: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<(Membership, User)>> {
        let mut query = memberships::table
            .inner_join(users::table)
            .filter(memberships::unit_id.eq(unit_id.to_owned()))
            .select((Membership::as_select(), User::as_select()))
            .into_boxed();
        if let Some(role) = filter.role {
            query = match role {
                Role::Admin => query.filter(memberships::is_admin.eq(true)),
                Role::Staff => query.filter(memberships::is_staff.eq(true)),
                Role::Auditor => query.filter(memberships::is_auditor.eq(true)),
                Role::Resident => query.filter(memberships::is_resident.eq(true)),
            };
        }
        if let Some(status) = filter.status {
            query = query.filter(memberships::status.eq(status.as_str()));
        }
        if let Some(search) = &filter.search {
            let pattern = format!("%{}%", escape_like(&search.to_lowercase()));
            query = query.filter(users::search_text.like(pattern).escape('\\'));
        }
        if let Some(after) = after {
            query = query.filter(memberships::id.gt(after.to_owned()));
        }
        query.order(memberships::id.asc()).limit(limit).load(conn)
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelled_out_platform_kind_is_the_platform_kind() {
        assert_eq!(PlatformKind::SQL, format!("'{}'", UnitKind::Platform.as_str()));
    }
}
