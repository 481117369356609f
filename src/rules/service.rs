//! Managing point rules, and holding awards and deductions to them.

use chrono::{DateTime, Utc};

use crate::auth::principal::Principal;
use crate::calendar::{Period, period_start};
use crate::db::{DbConnection, new_id};
use crate::error::{ApiError, ApiResult, ErrorCode, unique_violation_as};
use crate::idempotency::{self, Reply, Scope};
use crate::ledger::api::MAX_POINTS;
use crate::ledger::expiry::timezone_of;
use crate::ledger::model::{Account, LedgerTransaction, TransactionKind};
use crate::ledger::service::{community_for, community_to_read, is_staff};
use crate::pagination::{Page, PageRequest};
use crate::rules::api::{CreateRuleRequest, RuleListQuery, RuleResponse, UpdateRuleRequest};
use crate::rules::model::{Rule, RuleChanges, RuleDirection, RuleFilter};
use crate::startup::AppState;
use crate::units::model::Unit;
use crate::validation::{self, MAX_NAME_CHARS};
use actix_web::HttpResponse;

const RULE_CODE_TAKEN: &str = "this community already has a rule with this code";

fn validate_code(code: &str) -> ApiResult<String> {
    let valid = (1..=64).contains(&code.len())
        && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(ApiError::validation("code must be 1 to 64 lower-case letters, digits or _"));
    }
    Ok(code.to_owned())
}

fn validate_cap(field: &str, cap: Option<i32>) -> ApiResult<Option<i32>> {
    match cap {
        Some(cap) if !(1..=1000).contains(&cap) => {
            Err(ApiError::validation(format!("{field} must be from 1 to 1000, or null")))
        }
        _ => Ok(cap),
    }
}

/// min ≤ default ≤ max within 1..=1,000,000.
fn validate_points(min: i64, default: i64, max: i64) -> ApiResult<()> {
    if !(1 <= min && min <= default && default <= max && max <= MAX_POINTS) {
        return Err(ApiError::validation(format!(
            "points must satisfy 1 ≤ min_points ≤ default_points ≤ max_points ≤ {MAX_POINTS}"
        )));
    }
    Ok(())
}

pub async fn create(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    community_id: String,
    request: CreateRuleRequest,
) -> ApiResult<HttpResponse> {
    let code = validate_code(&request.code)?;
    let name = validation::text("name", &request.name, MAX_NAME_CHARS)?;
    let (min, max) =
        (request.min_points.unwrap_or(request.default_points), request.max_points.unwrap_or(request.default_points));
    validate_points(min, request.default_points, max)?;
    let now = state.clock.now().naive_utc();
    let rule = Rule {
        id: new_id(),
        community_id,
        code,
        name,
        category: request.category.as_str().to_owned(),
        direction: request.direction.as_str().to_owned(),
        default_points: request.default_points,
        min_points: min,
        max_points: max,
        daily_cap: validate_cap("daily_cap", request.daily_cap)?,
        weekly_cap: validate_cap("weekly_cap", request.weekly_cap)?,
        monthly_cap: validate_cap("monthly_cap", request.monthly_cap)?,
        active: request.active.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    idempotency::write(&state.db, scope, state.clock.now(), move |conn| {
        community_for(conn, &principal, &rule.community_id, is_staff, "manage rules")?;
        if Rule::find_by_code(conn, &rule.community_id, &rule.code)?.is_some() {
            return Err(ApiError::new(ErrorCode::RuleCodeTaken, RULE_CODE_TAKEN));
        }
        rule.insert(conn).map_err(unique_violation_as(ErrorCode::RuleCodeTaken, RULE_CODE_TAKEN))?;
        let location = format!("/api/v1/communities/{}/rules/{}", rule.community_id, rule.id);
        Reply::created(&RuleResponse::from(rule), location)
    })
    .await
}

pub async fn list(
    state: &AppState,
    principal: Principal,
    community_id: String,
    query: RuleListQuery,
) -> ApiResult<Page<RuleResponse>> {
    let page = PageRequest::<String>::parse(query.limit, query.cursor.as_deref())?;
    let after = page
        .after
        .as_deref()
        .map(validate_code)
        .transpose()
        .map_err(|_| ApiError::new(ErrorCode::InvalidCursor, "the cursor was not issued by this endpoint"))?;
    let filter = RuleFilter { active: query.active, category: query.category, direction: query.direction };
    let fetch = page.fetch_limit();
    let rules = state
        .db
        .read(move |conn| {
            let (community, _) = community_to_read(conn, &principal, &community_id, |_| true, "read rules")?;
            Ok(Rule::list(conn, &community.id, &filter, after.as_deref(), fetch)?)
        })
        .await?;
    Ok(Page::from_rows(rules, &page, |rule| rule.code.clone(), RuleResponse::from))
}

pub async fn update(
    state: &AppState,
    principal: Principal,
    community_id: String,
    rule_id: String,
    request: UpdateRuleRequest,
) -> ApiResult<HttpResponse> {
    let changes = RuleChanges {
        name: request.name.as_deref().map(|name| validation::text("name", name, MAX_NAME_CHARS)).transpose()?,
        category: request.category.map(|category| category.as_str().to_owned()),
        default_points: request.default_points,
        min_points: request.min_points,
        max_points: request.max_points,
        daily_cap: request.daily_cap.map(|cap| validate_cap("daily_cap", cap)).transpose()?,
        weekly_cap: request.weekly_cap.map(|cap| validate_cap("weekly_cap", cap)).transpose()?,
        monthly_cap: request.monthly_cap.map(|cap| validate_cap("monthly_cap", cap)).transpose()?,
        active: request.active,
        updated_at: Some(state.clock.now().naive_utc()),
    };
    idempotency::write(&state.db, Scope::unkeyed(&community_id), state.clock.now(), move |conn| {
        let (community, _) = community_for(conn, &principal, &community_id, is_staff, "manage rules")?;
        let rule = Rule::find(conn, &community.id, &rule_id)?.ok_or_else(|| ApiError::not_found("rule"))?;
        validate_points(
            changes.min_points.unwrap_or(rule.min_points),
            changes.default_points.unwrap_or(rule.default_points),
            changes.max_points.unwrap_or(rule.max_points),
        )?;
        Reply::ok(&RuleResponse::from(Rule::update(conn, &rule.id, &changes)?))
    })
    .await
}

/// The active rule `code` of the community, for the given direction.
pub fn resolve(conn: &mut DbConnection, community: &Unit, code: &str, direction: RuleDirection) -> ApiResult<Rule> {
    match Rule::find_by_code(conn, &community.id, code)? {
        Some(rule) if rule.active && rule.direction() == direction => Ok(rule),
        Some(rule) if !rule.active => Err(ApiError::new(ErrorCode::InvalidRule, format!("rule {code} is not active"))),
        Some(_) => Err(ApiError::new(
            ErrorCode::InvalidRule,
            format!(
                "rule {code} is for {}ing points, not this",
                if direction == RuleDirection::Earn { "deduct" } else { "earn" }
            ),
        )),
        None => Err(ApiError::new(ErrorCode::InvalidRule, format!("this community has no rule {code}"))),
    }
}

pub fn check_range(rule: &Rule, points: i64) -> ApiResult<()> {
    if !(rule.min_points..=rule.max_points).contains(&points) {
        return Err(ApiError::new(
            ErrorCode::PointsOutOfRange,
            format!("rule {} allows {} to {} points, not {points}", rule.code, rule.min_points, rule.max_points),
        ));
    }
    Ok(())
}

/// Holds one use of `rule` for one resident to the rule's points range and caps.
/// Call it under the community's ledger lock, so parallel requests are counted.
pub fn check_use(
    conn: &mut DbConnection,
    community: &Unit,
    rule: &Rule,
    resident: &Account,
    points: i64,
    kind: TransactionKind,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    check_range(rule, points)?;
    let caps = [
        (rule.daily_cap, Period::Day, "day"),
        (rule.weekly_cap, Period::Week, "week"),
        (rule.monthly_cap, Period::Month, "month"),
    ];
    for (cap, calendar_period, period) in caps {
        let Some(cap) = cap else { continue };
        let since = period_start(now, timezone_of(community), calendar_period)
            .ok_or_else(|| ApiError::internal("no local calendar"))?;
        let used = LedgerTransaction::rule_uses(conn, &community.id, &resident.id, &rule.code, kind, since)?;
        if used >= i64::from(cap) {
            return Err(ApiError::new(
                ErrorCode::RuleCapExceeded,
                format!(
                    "user {} has reached rule {}'s cap of {cap} per {period}",
                    resident.user_id.as_deref().unwrap_or_default(),
                    rule.code
                ),
            ));
        }
    }
    Ok(())
}
