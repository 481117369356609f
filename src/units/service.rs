//! Creating and managing units and their members, with the rules of who may do what.

use std::collections::HashSet;

use actix_web::HttpResponse;
use chrono::NaiveDateTime;

use crate::auth::model::User;
use crate::auth::password;
use crate::auth::principal::Principal;
use crate::auth::service::USERNAME_TAKEN;
use crate::codes::{random_code, unused_code};
use crate::db::DbConnection;
use crate::error::{ApiError, ApiResult, ErrorCode, unique_violation_as};
use crate::idempotency::{self, Reply, Scope};
use crate::ledger::expiry::ExpiryPolicy;
use crate::ledger::model::Account;
use crate::pagination::{Page, PageRequest};
use crate::startup::AppState;
use crate::units::api::{
    AddMemberRequest, CreateUnitRequest, MemberListQuery, MemberResponse, UnitListQuery, UnitResponse,
    UpdateMemberRequest, UpdateUnitRequest,
};
use crate::units::model::{
    MemberFilter, Membership, MembershipChanges, MembershipStatus, Role, Roles, Unit, UnitChanges, UnitFilter, UnitKind,
};
use crate::validation::{self, MAX_NAME_CHARS};
use uuid::Uuid;

pub const DEFAULT_TIMEZONE: &str = "Asia/Shanghai";
const JOIN_CODE_LENGTH: usize = 8;
/// ~59 bits from a CSPRNG: fine for a first password the resident is told to change.
const INITIAL_PASSWORD_LENGTH: usize = 12;

fn validate_timezone(timezone: &str) -> ApiResult<String> {
    timezone.parse::<chrono_tz::Tz>().map(|tz| tz.name().to_owned()).map_err(|_| {
        ApiError::validation(format!("timezone {timezone:?} is not an IANA time zone name such as Asia/Shanghai"))
    })
}

fn unused_join_code(conn: &mut DbConnection) -> ApiResult<String> {
    unused_code(JOIN_CODE_LENGTH, |code| Unit::find_by_join_code(conn, code).map(|unit| unit.is_some()))?
        .ok_or_else(|| ApiError::internal("could not find an unused join code"))
}

fn find_unit(conn: &mut DbConnection, id: &str) -> ApiResult<Unit> {
    Unit::find(conn, id)?.ok_or_else(|| ApiError::not_found("unit"))
}

pub async fn create_unit(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    request: CreateUnitRequest,
) -> ApiResult<HttpResponse> {
    let kind = request.kind;
    if kind == UnitKind::Platform {
        return Err(ApiError::new(
            ErrorCode::InvalidParent,
            "the platform unit exists once, from the first start; create districts, streets and communities",
        ));
    }
    let name = validation::text("name", &request.name, MAX_NAME_CHARS)?;
    let timezone = match (kind, request.timezone) {
        (UnitKind::Community, timezone) => Some(validate_timezone(timezone.as_deref().unwrap_or(DEFAULT_TIMEZONE))?),
        (_, None) => None,
        (_, Some(_)) => return Err(ApiError::validation("timezone applies to communities only")),
    };
    let max_open_claims = match (kind, request.max_open_claims) {
        (UnitKind::Community, limit) => Some(validate_max_open_claims(limit.unwrap_or(DEFAULT_MAX_OPEN_CLAIMS))?),
        (_, None) => None,
        (_, Some(_)) => return Err(ApiError::validation("max_open_claims applies to communities only")),
    };
    let pickup_window_days = match (kind, request.pickup_window_days) {
        (UnitKind::Community, days) => Some(validate_pickup_window(days.unwrap_or(DEFAULT_PICKUP_WINDOW_DAYS))?),
        (_, None) => None,
        (_, Some(_)) => return Err(ApiError::validation("pickup_window_days applies to communities only")),
    };
    let expiry_policy = match (kind, request.expiry_policy) {
        (UnitKind::Community, policy) => Some(validate_expiry_policy(policy.unwrap_or(ExpiryPolicy::Never))?),
        (_, None) => None,
        (_, Some(_)) => return Err(ApiError::validation("expiry_policy applies to communities only")),
    };
    let now = state.clock.now();
    idempotency::write(&state.db, scope, now, move |conn| {
        let now = now.naive_utc();
        let parent = match (request.parent_id, kind) {
            (Some(parent_id), _) => find_unit(conn, &parent_id.to_string())?,
            (None, UnitKind::District) => {
                Unit::platform(conn)?.ok_or_else(|| ApiError::internal("the platform unit is missing"))?
            }
            (None, _) => {
                return Err(ApiError::validation("parent_id is required for streets and communities"));
            }
        };
        principal.authorize(&parent, |roles| roles.admin, "create units under this one")?;
        if Some(parent.kind()) != kind.parent_kind() {
            let expected = kind.parent_kind().map_or("nothing", UnitKind::as_str);
            return Err(ApiError::new(
                ErrorCode::InvalidParent,
                format!("a {} must sit under a {expected}, not a {}", kind.as_str(), parent.kind().as_str()),
            ));
        }
        if Unit::name_taken(conn, &parent.id, &name, None)? {
            return Err(ApiError::new(
                ErrorCode::NameTaken,
                format!("{} already has a unit named {name:?}", parent.name),
            ));
        }
        let unit = Unit {
            timezone,
            join_code: if kind == UnitKind::Community { Some(unused_join_code(conn)?) } else { None },
            expiry_policy: expiry_policy.map(|policy| policy.columns().0),
            expiry_days: expiry_policy.and_then(|policy| policy.columns().1),
            max_open_claims,
            pickup_window_days,
            ..Unit::new(kind, name, Some(&parent), now)
        };
        unit.insert(conn)?;
        if kind == UnitKind::Community {
            Account::open_community(conn, &unit.id, now)?;
        }
        let roles = principal.roles_on(&unit);
        let location = format!("/api/v1/units/{}", unit.id);
        Reply::created(&UnitResponse::new(unit, roles), location)
    })
    .await
}

pub async fn list_units(state: &AppState, principal: Principal, query: UnitListQuery) -> ApiResult<Page<UnitResponse>> {
    let page = PageRequest::<Uuid>::parse(query.limit, query.cursor.as_deref())?;
    let filter = UnitFilter { kind: query.kind, parent_id: query.parent_id.map(|id| id.to_string()) };
    let roots = principal.visible_roots();
    let fetch = page.fetch_limit();
    let after = page.after.map(|id| id.to_string());
    let units =
        state.db.read(move |conn| Ok(Unit::list_within(conn, &roots, &filter, after.as_deref(), fetch)?)).await?;
    Ok(Page::from_rows(
        units,
        &page,
        |unit| unit.id.clone(),
        |unit| {
            let roles = principal.roles_on(&unit);
            UnitResponse::new(unit, roles)
        },
    ))
}

pub async fn get_unit(state: &AppState, principal: Principal, unit_id: String) -> ApiResult<UnitResponse> {
    let unit = state.db.read(move |conn| find_unit(conn, &unit_id)).await?;
    let roles = principal.authorize(&unit, |_| true, "see this unit")?;
    Ok(UnitResponse::new(unit, roles))
}

pub async fn update_unit(
    state: &AppState,
    principal: Principal,
    unit_id: String,
    request: UpdateUnitRequest,
) -> ApiResult<HttpResponse> {
    let name = request.name.as_deref().map(|name| validation::text("name", name, MAX_NAME_CHARS)).transpose()?;
    let timezone = request.timezone.as_deref().map(validate_timezone).transpose()?;
    let expiry_policy = request.expiry_policy.map(validate_expiry_policy).transpose()?;
    let max_open_claims = request.max_open_claims.map(validate_max_open_claims).transpose()?;
    let pickup_window_days = request.pickup_window_days.map(validate_pickup_window).transpose()?;
    let now = state.clock.now();
    idempotency::write(&state.db, Scope::unkeyed(&unit_id), now, move |conn| {
        let now = now.naive_utc();
        let unit = find_unit(conn, &unit_id)?;
        principal.authorize(&unit, |_| true, "see this unit")?;
        // A unit is governed by the admins of its parent (the platform by its own).
        let governing = match &unit.parent_id {
            Some(parent_id) => find_unit(conn, parent_id)?,
            None => unit.clone(),
        };
        if !principal.roles_on(&governing).admin {
            return Err(ApiError::forbidden("only admins of the parent unit can change a unit"));
        }
        let is_community = unit.kind() == UnitKind::Community;
        let community_only =
            timezone.is_some() || request.regenerate_join_code || expiry_policy.is_some() || max_open_claims.is_some();
        if community_only && !is_community {
            return Err(ApiError::validation(
                "timezone, expiry_policy, max_open_claims and regenerate_join_code apply to communities only",
            ));
        }
        if let (Some(name), Some(parent_id)) = (&name, &unit.parent_id)
            && Unit::name_taken(conn, parent_id, name, Some(&unit.id))?
        {
            return Err(ApiError::new(ErrorCode::NameTaken, format!("the parent already has a unit named {name:?}")));
        }
        let changes = UnitChanges {
            name,
            timezone,
            join_code: if request.regenerate_join_code { Some(unused_join_code(conn)?) } else { None },
            updated_at: Some(now),
            expiry_policy: expiry_policy.map(|policy| policy.columns().0),
            expiry_days: expiry_policy.map(|policy| policy.columns().1),
            max_open_claims,
            pickup_window_days,
        };
        let unit = Unit::update(conn, &unit.id, &changes)?;
        let roles = principal.roles_on(&unit);
        Reply::ok(&UnitResponse::new(unit, roles))
    })
    .await
}

fn distinct_roles(roles: &[Role]) -> ApiResult<Roles> {
    let roles = Roles::from_list(&roles.iter().copied().collect::<HashSet<_>>().into_iter().collect::<Vec<_>>());
    if roles.is_empty() {
        return Err(ApiError::validation("roles must name at least one role"));
    }
    Ok(roles)
}

fn check_roles_fit_unit(roles: Roles, unit: &Unit) -> ApiResult<()> {
    if roles.resident && unit.kind() != UnitKind::Community {
        return Err(ApiError::new(ErrorCode::InvalidRoleForUnit, "residents belong to a community"));
    }
    Ok(())
}

fn check_not_resident_elsewhere(conn: &mut DbConnection, user_id: &str, unit: &Unit) -> ApiResult<()> {
    match Membership::residence_of(conn, user_id)? {
        Some(residence) if residence.unit_id != unit.id => Err(ApiError::new(
            ErrorCode::AlreadyResidentElsewhere,
            "this user is a resident of another community; that membership must end first",
        )),
        _ => Ok(()),
    }
}

const RESIDENT_ONLY: Roles = Roles { admin: false, staff: false, auditor: false, resident: true };

pub async fn add_member(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    unit_id: String,
    request: AddMemberRequest,
) -> ApiResult<HttpResponse> {
    let roles = distinct_roles(&request.roles)?;
    let household = validation::household(request.household)?;
    if household.is_some() && !roles.resident {
        return Err(ApiError::validation("household applies to residents only"));
    }
    // Validate and hash before the transaction: hashing takes tens of milliseconds.
    let new_user = match (request.user_id, request.new_user) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::validation("give exactly one of user_id and new_user"));
        }
        (Some(_), None) => None,
        (None, Some(new_user)) => {
            let username = validation::username(&new_user.username)?;
            let display_name = validation::text("display_name", &new_user.display_name, MAX_NAME_CHARS)?;
            let phone = validation::phone(new_user.phone.as_deref())?;
            if let Some(password) = &new_user.password {
                password::validate_new_password(password)?;
            }
            let initial_password = new_user.password.is_none().then(|| random_code(INITIAL_PASSWORD_LENGTH));
            let password = new_user.password.or_else(|| initial_password.clone()).unwrap_or_default();
            let password_hash = actix_web::web::block(move || password::hash(&password)).await??;
            Some((username, display_name, phone, password_hash, initial_password))
        }
    };
    let existing_user_id = request.user_id.map(|id| id.to_string());
    let now = state.clock.now();
    idempotency::write(&state.db, scope, now, move |conn| {
        let now = now.naive_utc();
        let unit = find_unit(conn, &unit_id)?;
        let caller = principal.authorize(&unit, |r| r.admin || r.staff, "add members")?;
        if !caller.admin && roles != RESIDENT_ONLY {
            return Err(ApiError::forbidden("staff can add residents only; ask an admin to grant other roles"));
        }
        check_roles_fit_unit(roles, &unit)?;
        let (user, initial_password) = match (existing_user_id, new_user) {
            (Some(user_id), _) => {
                let user = User::find(conn, &user_id)?.ok_or_else(|| ApiError::not_found("user"))?;
                // Only users the caller manages somewhere: others' existence is not revealed.
                let manages = Membership::of_user(conn, &user.id)?.iter().any(|(_, unit)| {
                    let roles = principal.roles_on(unit);
                    roles.admin || roles.staff
                });
                if !manages {
                    return Err(ApiError::not_found("user"));
                }
                if Membership::find(conn, &unit.id, &user.id)?.is_some() {
                    return Err(ApiError::new(
                        ErrorCode::AlreadyMember,
                        "this user is already a member of this unit; change the membership instead",
                    ));
                }
                if roles.resident {
                    check_not_resident_elsewhere(conn, &user.id, &unit)?;
                }
                (user, None)
            }
            (None, Some((username, display_name, phone, password_hash, initial_password))) => {
                if User::username_exists(conn, &username)? {
                    return Err(ApiError::new(ErrorCode::UsernameTaken, USERNAME_TAKEN));
                }
                let user = User::new(username, display_name, phone, password_hash, now);
                user.insert(conn).map_err(unique_violation_as(ErrorCode::UsernameTaken, USERNAME_TAKEN))?;
                (user, initial_password)
            }
            (None, None) => return Err(ApiError::validation("give exactly one of user_id and new_user")),
        };
        // Added by staff: confirmed at once.
        let mut membership = Membership::new(&unit.id, &user.id, roles, MembershipStatus::Active, now);
        membership.set_household(household);
        membership.insert(conn).map_err(unique_violation_as(
            ErrorCode::AlreadyMember,
            "this user is already a member of this unit, or a resident of another community",
        ))?;
        open_account_if_active_resident(conn, &membership, now)?;
        let location = format!("/api/v1/units/{}/members/{}", membership.unit_id, membership.user_id);
        let mut response = MemberResponse::new(membership, user);
        response.initial_password = initial_password;
        Reply::created(&response, location)
    })
    .await
}

/// A resident's points account opens when their membership first becomes active.
fn open_account_if_active_resident(
    conn: &mut DbConnection,
    membership: &Membership,
    now: NaiveDateTime,
) -> ApiResult<()> {
    if membership.is_resident && membership.status() == MembershipStatus::Active {
        Account::open_resident(conn, &membership.unit_id, &membership.user_id, now)?;
    }
    Ok(())
}

pub const DEFAULT_MAX_OPEN_CLAIMS: i32 = 5;
pub const DEFAULT_PICKUP_WINDOW_DAYS: i32 = 14;

fn validate_pickup_window(days: i32) -> ApiResult<i32> {
    if !(1..=365).contains(&days) {
        return Err(ApiError::validation("pickup_window_days must be from 1 to 365"));
    }
    Ok(days)
}

fn validate_max_open_claims(limit: i32) -> ApiResult<i32> {
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation("max_open_claims must be from 1 to 100"));
    }
    Ok(limit)
}

fn validate_expiry_policy(policy: ExpiryPolicy) -> ApiResult<ExpiryPolicy> {
    if !policy.is_valid() {
        return Err(ApiError::validation("expiry_policy days must be from 1 to 3650"));
    }
    Ok(policy)
}

pub async fn list_members(
    state: &AppState,
    principal: Principal,
    unit_id: String,
    query: MemberListQuery,
) -> ApiResult<Page<MemberResponse>> {
    let page = PageRequest::<Uuid>::parse(query.limit, query.cursor.as_deref())?;
    let filter = MemberFilter {
        role: query.role,
        status: query.status,
        search: validation::optional_text("q", query.q.as_deref(), MAX_NAME_CHARS)?,
    };
    let fetch = page.fetch_limit();
    let after = page.after.map(|id| id.to_string());
    let rows = state
        .db
        .read(move |conn| {
            let unit = find_unit(conn, &unit_id)?;
            principal.authorize(&unit, |r| r.admin || r.staff || r.auditor, "list members")?;
            Ok(Membership::list(conn, &unit.id, &filter, after.as_deref(), fetch)?)
        })
        .await?;
    Ok(Page::from_rows(
        rows,
        &page,
        |(membership, _)| membership.id.clone(),
        |(membership, user)| MemberResponse::new(membership, user),
    ))
}

pub async fn update_member(
    state: &AppState,
    principal: Principal,
    unit_id: String,
    user_id: String,
    request: UpdateMemberRequest,
) -> ApiResult<HttpResponse> {
    let new_roles = request.roles.as_deref().map(distinct_roles).transpose()?;
    let household = request.household.map(validation::household).transpose()?;
    let now = state.clock.now();
    idempotency::write(&state.db, Scope::unkeyed(&unit_id), now, move |conn| {
        let now = now.naive_utc();
        let unit = find_unit(conn, &unit_id)?;
        let caller = principal.authorize(&unit, |r| r.admin || r.staff, "change members")?;
        let membership = Membership::find(conn, &unit.id, &user_id)?.ok_or_else(|| ApiError::not_found("member"))?;
        if !caller.admin
            && (membership.roles() != RESIDENT_ONLY || new_roles.is_some_and(|roles| roles != RESIDENT_ONLY))
        {
            return Err(ApiError::forbidden("staff can change residents only; ask an admin"));
        }
        if membership.user_id == principal.user.id && (new_roles.is_some() || request.status.is_some()) {
            return Err(ApiError::forbidden("you cannot change your own roles or status; ask another admin"));
        }
        let roles = new_roles.unwrap_or(membership.roles());
        check_roles_fit_unit(roles, &unit)?;
        if roles.resident && !membership.is_resident {
            check_not_resident_elsewhere(conn, &membership.user_id, &unit)?;
        }
        if matches!(household, Some(Some(_))) && !roles.resident {
            return Err(ApiError::validation("household applies to residents only"));
        }
        let mut changes = MembershipChanges {
            status: request.status.map(|status| status.as_str().to_owned()),
            updated_at: Some(now),
            ..MembershipChanges::default()
        };
        if new_roles.is_some() {
            changes.set_roles(roles);
        }
        if let Some(household) = household {
            changes.set_household(household);
        } else if !roles.resident {
            changes.set_household(None);
        }
        let membership = Membership::update(conn, &membership.id, &changes)?;
        open_account_if_active_resident(conn, &membership, now)?;
        let user = User::find(conn, &membership.user_id)?.ok_or_else(|| ApiError::not_found("member"))?;
        Reply::ok(&MemberResponse::new(membership, user))
    })
    .await
}
