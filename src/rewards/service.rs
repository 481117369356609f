//! Managing the points shop's catalogue.

use actix_web::HttpResponse;
use chrono::{DateTime, NaiveDateTime, Utc};
use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::db::new_id;
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{self, Reply, Scope};
use crate::ledger::api::MAX_POINTS;
use crate::ledger::model::LedgerHead;
use crate::ledger::service::{community_for, community_to_read, is_staff};
use crate::pagination::{Page, PageRequest};
use crate::rewards::api::{
    CreateRewardRequest, PerResidentLimit, RewardListQuery, RewardResponse, UpdateRewardRequest,
};
use crate::rewards::model::{Reward, RewardChanges};
use crate::startup::AppState;
use crate::validation::{self, MAX_NAME_CHARS};

pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
pub const MAX_IMAGE_URL_CHARS: usize = 500;
const MAX_STOCK: i32 = 1_000_000;

fn validate_cost(cost: i64) -> ApiResult<i64> {
    if !(1..=MAX_POINTS).contains(&cost) {
        return Err(ApiError::validation(format!("cost must be from 1 to {MAX_POINTS} points")));
    }
    Ok(cost)
}

fn validate_stock(stock: Option<i32>) -> ApiResult<Option<i32>> {
    match stock {
        Some(stock) if !(0..=MAX_STOCK).contains(&stock) => {
            Err(ApiError::validation(format!("stock must be from 0 to {MAX_STOCK}, or null")))
        }
        _ => Ok(stock),
    }
}

fn validate_limit(limit: Option<PerResidentLimit>) -> ApiResult<(Option<i32>, Option<String>)> {
    match limit {
        None => Ok((None, None)),
        Some(limit) if !(1..=1000).contains(&limit.count) => {
            Err(ApiError::validation("limit_per_resident.count must be from 1 to 1000"))
        }
        Some(limit) => Ok((Some(limit.count), Some(limit.period.as_str().to_owned()))),
    }
}

fn validate_image_url(url: Option<&str>) -> ApiResult<Option<String>> {
    validation::url("image_url", url, MAX_IMAGE_URL_CHARS)
}

fn validate_window(from: Option<NaiveDateTime>, until: Option<NaiveDateTime>) -> ApiResult<()> {
    if let (Some(from), Some(until)) = (from, until)
        && from >= until
    {
        return Err(ApiError::validation("available_until must be after available_from"));
    }
    Ok(())
}

pub async fn create(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    community_id: String,
    request: CreateRewardRequest,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    let (limit_per_resident, limit_period) = validate_limit(request.limit_per_resident)?;
    let (available_from, available_until) =
        (request.available_from.map(|t| t.naive_utc()), request.available_until.map(|t| t.naive_utc()));
    validate_window(available_from, available_until)?;
    let reward = Reward {
        id: new_id(),
        community_id: community_id.clone(),
        name: validation::text("name", &request.name, MAX_NAME_CHARS)?,
        description: validation::optional_text("description", Some(&request.description), MAX_DESCRIPTION_CHARS)?
            .unwrap_or_default(),
        image_url: validate_image_url(request.image_url.as_deref())?,
        cost: validate_cost(request.cost)?,
        stock: validate_stock(request.stock)?,
        limit_per_resident,
        limit_period,
        available_from,
        available_until,
        active: request.active.unwrap_or(true),
        created_at: now.naive_utc(),
        updated_at: now.naive_utc(),
    };
    idempotency::write(&state.db, scope, now, move |conn| {
        community_for(conn, &principal, &reward.community_id, is_staff, "manage the points shop")?;
        reward.insert(conn)?;
        let location = format!("/api/v1/communities/{}/rewards/{}", reward.community_id, reward.id);
        Reply::created(&RewardResponse::from(reward), location)
    })
    .await
}

/// Staff see the whole catalogue; everyone else what is on offer now.
pub async fn list(
    state: &AppState,
    principal: Principal,
    community_id: String,
    query: RewardListQuery,
) -> ApiResult<Page<RewardResponse>> {
    let page = PageRequest::<Uuid>::parse(query.limit, query.cursor.as_deref())?;
    let (fetch, after) = (page.fetch_limit(), page.after.map(|id| id.to_string()));
    let now = state.clock.now().naive_utc();
    let rewards = state
        .db
        .read(move |conn| {
            let (community, roles) =
                community_to_read(conn, &principal, &community_id, |_| true, "see the points shop")?;
            let on_offer_at = (!is_staff(roles)).then_some(now);
            Ok(Reward::list(conn, &community.id, on_offer_at, after.as_deref(), fetch)?)
        })
        .await?;
    Ok(Page::from_rows(rewards, &page, |reward| reward.id.clone(), RewardResponse::from))
}

pub async fn get(
    state: &AppState,
    principal: Principal,
    community_id: String,
    reward_id: String,
) -> ApiResult<RewardResponse> {
    let now: DateTime<Utc> = state.clock.now();
    state
        .db
        .read(move |conn| {
            let (community, roles) =
                community_to_read(conn, &principal, &community_id, |_| true, "see the points shop")?;
            let reward = Reward::find(conn, &community.id, &reward_id)?
                .filter(|reward| is_staff(roles) || reward.is_on_offer(now.naive_utc()))
                .ok_or_else(|| ApiError::not_found("reward"))?;
            Ok(RewardResponse::from(reward))
        })
        .await
}

pub async fn update(
    state: &AppState,
    principal: Principal,
    community_id: String,
    reward_id: String,
    request: UpdateRewardRequest,
) -> ApiResult<HttpResponse> {
    let limit = request.limit_per_resident.map(validate_limit).transpose()?;
    let changes = RewardChanges {
        name: request.name.as_deref().map(|name| validation::text("name", name, MAX_NAME_CHARS)).transpose()?,
        description: request
            .description
            .as_deref()
            .map(|text| {
                validation::optional_text("description", Some(text), MAX_DESCRIPTION_CHARS)
                    .map(Option::unwrap_or_default)
            })
            .transpose()?,
        image_url: request.image_url.map(|url| validate_image_url(url.as_deref())).transpose()?,
        cost: request.cost.map(validate_cost).transpose()?,
        stock: request.stock.map(validate_stock).transpose()?,
        limit_per_resident: limit.as_ref().map(|(count, _)| *count),
        limit_period: limit.map(|(_, period)| period),
        available_from: request.available_from.map(|from| from.map(|t| t.naive_utc())),
        available_until: request.available_until.map(|until| until.map(|t| t.naive_utc())),
        active: request.active,
        updated_at: Some(state.clock.now().naive_utc()),
    };
    idempotency::write(&state.db, Scope::unkeyed(&community_id), state.clock.now(), move |conn| {
        let (community, _) = community_for(conn, &principal, &community_id, is_staff, "manage the points shop")?;
        // Orders reserve stock under this lock; a stock change must not slip in between.
        LedgerHead::lock(conn, &community.id)?;
        let reward = Reward::find(conn, &community.id, &reward_id)?.ok_or_else(|| ApiError::not_found("reward"))?;
        validate_window(
            changes.available_from.unwrap_or(reward.available_from),
            changes.available_until.unwrap_or(reward.available_until),
        )?;
        Reply::ok(&RewardResponse::from(Reward::update(conn, &reward.id, &changes)?))
    })
    .await
}
