//! Orders in the points shop, as two-phase transfers: points are held at the order,
//! posted to the redemption account at the handover, or returned on cancellation.

use std::sync::Arc;

use actix_web::HttpResponse;
use chrono::{DateTime, NaiveDateTime, Utc};
use uuid::Uuid;

use crate::audit::Trail;
use crate::auth::principal::Principal;
use crate::calendar::{Period, period_start};
use crate::codes::{is_code, normalize_code, unused_code};
use crate::db::{Database, DbConnection, new_id};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::idempotency::{self, Reply, Scope};
use crate::ledger::expiry::timezone_of;
use crate::ledger::model::{Account, AccountKind, LedgerHead, LedgerLock, LotMovement, TransactionKind};
use crate::ledger::service::{
    Leg, LotEffect, NewTransaction, active_resident_account, community_for, community_to_read, expire_community,
    is_staff, post,
};
use crate::pagination::{Page, PageRequest};
use crate::redemptions::api::{FulfilmentRequest, OrderRequest, RedemptionListQuery, RedemptionResponse};
use crate::redemptions::model::{Redemption, RedemptionFilter, RedemptionStatus};
use crate::rewards::model::{LimitPeriod, Reward};
use crate::startup::AppState;
use crate::units::model::{Roles, Unit};

pub const PICKUP_CODE_LENGTH: usize = 8;
/// How long an order's handover stays locked after too many wrong pickup codes.
const PICKUP_LOCK: chrono::Duration = chrono::Duration::minutes(15);
const MAX_QUANTITY: i32 = 100;

fn not_pending() -> ApiError {
    ApiError::new(ErrorCode::RedemptionNotPending, "this order was already handed over or cancelled")
}

fn period(limit: LimitPeriod) -> Period {
    match limit {
        LimitPeriod::Day => Period::Day,
        LimitPeriod::Week => Period::Week,
        LimitPeriod::Month => Period::Month,
        LimitPeriod::Year => Period::Year,
    }
}

fn reward_name(conn: &mut DbConnection, redemption: &Redemption) -> ApiResult<String> {
    Ok(Reward::find(conn, &redemption.community_id, &redemption.reward_id)?
        .map(|reward| reward.name)
        .unwrap_or_default())
}

fn reply(conn: &mut DbConnection, community: &Unit, id: &str, viewer: &str) -> ApiResult<Reply> {
    let redemption = Redemption::find(conn, &community.id, id)?.ok_or_else(|| ApiError::not_found("redemption"))?;
    let name = reward_name(conn, &redemption)?;
    Reply::ok(&RedemptionResponse::new(redemption, name, viewer))
}

/// Inserts the order under a fresh pickup code, drawn again while its community has the code:
/// the insert itself asks, so a fresh code costs no statement of its own.
fn insert_with_unused_pickup_code(conn: &mut DbConnection, redemption: &mut Redemption) -> ApiResult<()> {
    unused_code(PICKUP_CODE_LENGTH, |code| {
        redemption.pickup_code = code.to_owned();
        Ok::<_, ApiError>(!redemption.insert_unless_code_taken(conn)?)
    })?
    .map(drop)
    .ok_or_else(|| ApiError::internal("could not find an unused pickup code"))
}

/// An order whose form is valid, on its way to be written.
pub struct OrderRequestChecked {
    pub community_id: String,
    pub principal: Principal,
    pub scope: Scope,
    pub reward_id: String,
    pub quantity: i32,
    /// Whom it is for: the caller, or a resident staff order for.
    pub user_id: String,
    pub now: DateTime<Utc>,
}

impl OrderRequestChecked {
    /// The roles that may place it: a resident orders for themself, staff for a resident.
    pub fn allowed(&self) -> fn(Roles) -> bool {
        if self.user_id == self.principal.user.id { |roles| roles.resident } else { is_staff }
    }
}

pub const ORDER_ACTION: &str = "order in the points shop";

pub async fn order(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    community_id: String,
    request: OrderRequest,
) -> ApiResult<HttpResponse> {
    let quantity = request.quantity.unwrap_or(1);
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(ApiError::validation(format!("quantity must be from 1 to {MAX_QUANTITY}")));
    }
    let request = Arc::new(OrderRequestChecked {
        community_id,
        user_id: request.user_id.map_or_else(|| principal.user.id.clone(), |id| id.to_string()),
        principal,
        scope,
        reward_id: request.reward_id.to_string(),
        quantity,
        now: state.clock.now(),
    });
    if let Some(reply) = state.groups.orders.write(&state.db, &request).await {
        return Ok(reply.into_first_response());
    }
    idempotency::write(&state.db, request.scope.clone(), request.now, move |conn| {
        let (community, _) =
            community_for(conn, &request.principal, &request.community_id, request.allowed(), ORDER_ACTION)?;
        let mut lock = LedgerHead::lock(conn, &community.id)?;
        let now = request.now;
        let resident = active_resident_account(conn, &community, &request.user_id, now.naive_utc())?;
        let reward = Reward::find(conn, &community.id, &request.reward_id)?
            .filter(|reward| reward.is_on_offer(now.naive_utc()))
            .ok_or_else(|| ApiError::new(ErrorCode::RewardUnavailable, "this reward is not on offer"))?;
        if let (Some(limit), Some(limit_period)) = (reward.limit_per_resident, reward.limit_period()) {
            let since = period_start(now, timezone_of(&community), period(limit_period))
                .ok_or_else(|| ApiError::internal("no local calendar"))?;
            let ordered = Redemption::quantity_since(conn, &request.user_id, &reward.id, since)?;
            if ordered + i64::from(request.quantity) > i64::from(limit) {
                return Err(ApiError::new(
                    ErrorCode::LimitReached,
                    format!("at most {limit} per resident per {}; {ordered} already ordered", limit_period.as_str()),
                ));
            }
        }
        if !Reward::take_stock(conn, &reward.id, request.quantity)? {
            return Err(ApiError::new(ErrorCode::OutOfStock, "not enough left in stock"));
        }
        let hold_account = Account::system(conn, &community.id, AccountKind::Hold)?;
        let id = new_id();
        let (new, legs) = hold_transaction(&request, &reward, &id, resident.clone(), hold_account);
        let (hold, _) = post(conn, &mut lock, new, legs)?;
        let mut redemption = new_order(&request, &reward, id, hold.id);
        Account::add_held_and_spent(conn, &resident.id, redemption.points, 0)?;
        insert_with_unused_pickup_code(conn, &mut redemption)?;
        order_reply(redemption, reward.name, &request.principal)
    })
    .await
}

/// The ledger transaction of order `id`: its points held from the resident's soonest-expiring lots.
pub fn hold_transaction(
    request: &OrderRequestChecked,
    reward: &Reward,
    id: &str,
    resident: Account,
    hold_account: Account,
) -> (NewTransaction, Vec<Leg>) {
    let points = reward.cost * i64::from(request.quantity);
    let legs = vec![
        Leg {
            account: resident,
            amount: -points,
            earned: 0,
            spent: 0,
            lots: Some(LotEffect::Consume { preferred: Vec::new() }),
        },
        Leg::system(hold_account, points),
    ];
    let mut new = NewTransaction::new(
        &request.community_id,
        TransactionKind::RedemptionHold,
        reward.name.clone(),
        Some(request.principal.user.id.clone()),
        request.now.naive_utc(),
    );
    new.cause = Some(("redemption".to_owned(), id.to_owned()));
    (new, legs)
}

/// The pending order `id` whose points transaction `hold_transaction_id` holds, with no pickup code yet.
pub fn new_order(
    request: &OrderRequestChecked,
    reward: &Reward,
    id: String,
    hold_transaction_id: String,
) -> Redemption {
    Redemption {
        id,
        community_id: request.community_id.clone(),
        user_id: request.user_id.clone(),
        reward_id: reward.id.clone(),
        quantity: request.quantity,
        points: reward.cost * i64::from(request.quantity),
        status: RedemptionStatus::Pending.as_str().to_owned(),
        pickup_code: String::new(),
        ordered_by: request.principal.user.id.clone(),
        hold_transaction_id,
        settle_transaction_id: None,
        resolved_by: None,
        resolved_at: None,
        created_at: request.now.naive_utc(),
        pickup_failures: 0,
        pickup_locked_until: None,
    }
}

pub fn order_reply(redemption: Redemption, reward_name: String, principal: &Principal) -> ApiResult<Reply> {
    let location = format!("/api/v1/communities/{}/redemptions/{}", redemption.community_id, redemption.id);
    Reply::created(&RedemptionResponse::new(redemption, reward_name, &principal.user.id), location)
}

pub async fn fulfil(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    community_id: String,
    redemption_id: String,
    request: FulfilmentRequest,
) -> ApiResult<HttpResponse> {
    let code = normalize_code(&request.pickup_code);
    let now = state.clock.now();
    // The code is checked first in a transaction of its own, under the ledger lock, so
    // every wrong guess is counted (and kept) even when many arrive at once.
    let (checked_code, checked_id, checked_principal, checked_community) =
        (code.clone(), redemption_id.clone(), principal.clone(), community_id.clone());
    let lock_until = (now + PICKUP_LOCK).naive_utc();
    let trail = Trail::current();
    let code_matches = state
        .db
        .write(&community_id, move |conn| {
            let (community, _) =
                community_for(conn, &checked_principal, &checked_community, is_staff, "hand over rewards")?;
            LedgerHead::lock(conn, &community.id)?;
            let redemption =
                Redemption::find(conn, &community.id, &checked_id)?.ok_or_else(|| ApiError::not_found("redemption"))?;
            if redemption.pickup_locked_until.is_some_and(|until| until > now.naive_utc()) {
                return Err(too_many_attempts());
            }
            let matches = is_code(&checked_code) && checked_code == redemption.pickup_code;
            if !matches && redemption.status() == RedemptionStatus::Pending {
                Redemption::record_pickup_failure(conn, &redemption.id, lock_until)?;
                trail.append_error(conn, &wrong_pickup_code())?;
            }
            Ok(matches)
        })
        .await?;
    if !code_matches {
        return Err(wrong_pickup_code());
    }
    idempotency::write(&state.db, scope, now, move |conn| {
        let (community, _) = community_for(conn, &principal, &community_id, is_staff, "hand over rewards")?;
        let mut lock = LedgerHead::lock(conn, &community.id)?;
        let redemption =
            Redemption::find(conn, &community.id, &redemption_id)?.ok_or_else(|| ApiError::not_found("redemption"))?;
        if redemption.status() != RedemptionStatus::Pending {
            return Err(not_pending());
        }
        if redemption.pickup_locked_until.is_some_and(|until| until > now.naive_utc()) {
            return Err(too_many_attempts());
        }
        if !is_code(&code) || code != redemption.pickup_code {
            return Err(wrong_pickup_code());
        }
        let legs = vec![
            Leg::system(Account::system(conn, &community.id, AccountKind::Hold)?, -redemption.points),
            Leg::system(Account::system(conn, &community.id, AccountKind::Redemption)?, redemption.points),
        ];
        let memo = reward_name(conn, &redemption)?;
        let mut new = NewTransaction::new(
            &community.id,
            TransactionKind::Redemption,
            memo,
            Some(principal.user.id.clone()),
            now.naive_utc(),
        );
        new.cause = Some(("redemption".to_owned(), redemption.id.clone()));
        let (settled, _) = post(conn, &mut lock, new, legs)?;
        let resident = Account::resident(conn, &community.id, &redemption.user_id)?
            .ok_or_else(|| ApiError::internal("resident account missing"))?;
        Account::add_held_and_spent(conn, &resident.id, -redemption.points, redemption.points)?;
        if !Redemption::resolve(
            conn,
            &redemption.id,
            RedemptionStatus::Fulfilled,
            &settled.id,
            Some(&principal.user.id),
            now.naive_utc(),
        )? {
            return Err(not_pending());
        }
        reply(conn, &community, &redemption.id, &principal.user.id)
    })
    .await
}

fn wrong_pickup_code() -> ApiError {
    ApiError::new(ErrorCode::InvalidPickupCode, "this is not the order's pickup code")
}

fn too_many_attempts() -> ApiError {
    ApiError::new(ErrorCode::TooManyPickupAttempts, "too many wrong pickup codes for this order; try again later")
        .with_header(actix_web::http::header::RETRY_AFTER, PICKUP_LOCK.num_seconds().to_string())
}

/// Returns a pending order's points to the lots they came from (keeping their expiry
/// dates; points whose lot expired meanwhile expire at the next run) and its stock.
fn refund(
    conn: &mut DbConnection,
    lock: &mut LedgerLock,
    community: &Unit,
    redemption: &Redemption,
    resolved_by: Option<&str>,
    now: NaiveDateTime,
) -> ApiResult<()> {
    let resident = Account::resident(conn, &community.id, &redemption.user_id)?
        .ok_or_else(|| ApiError::internal("resident account missing"))?;
    let taken: Vec<LotMovement> = LotMovement::of_transaction(conn, &redemption.hold_transaction_id)?
        .into_iter()
        .filter(|m| m.amount > 0)
        .collect();
    let legs = vec![
        Leg::system(Account::system(conn, &community.id, AccountKind::Hold)?, -redemption.points),
        Leg {
            account: resident.clone(),
            amount: redemption.points,
            earned: 0,
            spent: 0,
            lots: Some(LotEffect::Restore(taken)),
        },
    ];
    let memo = reward_name(conn, redemption)?;
    let mut new =
        NewTransaction::new(&community.id, TransactionKind::Refund, memo, resolved_by.map(str::to_owned), now);
    new.cause = Some(("redemption".to_owned(), redemption.id.clone()));
    let (settled, _) = post(conn, lock, new, legs)?;
    Account::add_held_and_spent(conn, &resident.id, -redemption.points, 0)?;
    // Points that went back to lots which expired meanwhile expire now, not after another round trip.
    expire_community(conn, lock, now.and_utc())?;
    Reward::return_stock(conn, &redemption.reward_id, redemption.quantity)?;
    if !Redemption::resolve(conn, &redemption.id, RedemptionStatus::Cancelled, &settled.id, resolved_by, now)? {
        return Err(not_pending());
    }
    Ok(())
}

pub async fn cancel(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    community_id: String,
    redemption_id: String,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    idempotency::write(&state.db, scope, now, move |conn| {
        let (community, roles) = community_for(conn, &principal, &community_id, |_| true, "cancel orders")?;
        let mut lock = LedgerHead::lock(conn, &community.id)?;
        let redemption = Redemption::find(conn, &community.id, &redemption_id)?
            .filter(|redemption| is_staff(roles) || redemption.user_id == principal.user.id)
            .ok_or_else(|| ApiError::not_found("redemption"))?;
        if redemption.status() != RedemptionStatus::Pending {
            return Err(not_pending());
        }
        refund(conn, &mut lock, &community, &redemption, Some(&principal.user.id), now.naive_utc())?;
        reply(conn, &community, &redemption.id, &principal.user.id)
    })
    .await
}

/// Cancels orders not collected within their community's pickup window. Blocking.
pub fn cancel_uncollected(db: &Database, now: DateTime<Utc>) -> ApiResult<usize> {
    let mut conn = db.blocking_connection()?;
    let overdue = Redemption::overdue(&mut conn, now.naive_utc())?;
    drop(conn);
    let mut cancelled = 0;
    for redemption in overdue {
        let result = db.write_blocking(|conn| -> ApiResult<()> {
            let community =
                Unit::find(conn, &redemption.community_id)?.ok_or_else(|| ApiError::internal("community missing"))?;
            let mut lock = LedgerHead::lock(conn, &community.id)?;
            match Redemption::find(conn, &community.id, &redemption.id)? {
                Some(current) if current.status() == RedemptionStatus::Pending => {
                    refund(conn, &mut lock, &community, &current, None, now.naive_utc())
                }
                _ => Ok(()),
            }
        });
        match result {
            Ok(()) => cancelled += 1,
            Err(err) => {
                tracing::error!(redemption = %redemption.id, error = %err, "cancelling an uncollected order failed")
            }
        }
    }
    Ok(cancelled)
}

pub async fn list(
    state: &AppState,
    principal: Principal,
    community_id: String,
    query: RedemptionListQuery,
) -> ApiResult<Page<RedemptionResponse>> {
    let page = PageRequest::<Uuid>::parse(query.limit, query.cursor.as_deref())?;
    let (fetch, after) = (page.fetch_limit(), page.after.map(|id| id.to_string()));
    let viewer = principal.user.id.clone();
    let rows = state
        .db
        .read(move |conn| {
            let (community, roles) = community_to_read(conn, &principal, &community_id, |_| true, "see orders")?;
            let mut filter = RedemptionFilter {
                user_id: query.user_id.map(|id| id.to_string()),
                status: query.status,
                reward_id: query.reward_id.map(|id| id.to_string()),
                pickup_code: query.pickup_code.as_deref().map(normalize_code),
            };
            if !(is_staff(roles) || roles.auditor) {
                if filter.user_id.as_ref().is_some_and(|id| *id != principal.user.id) {
                    return Err(ApiError::forbidden("residents can see their own orders only"));
                }
                filter.user_id = Some(principal.user.id.clone());
            }
            Ok(Redemption::list(conn, &community.id, &filter, after.as_deref(), fetch)?)
        })
        .await?;
    Ok(Page::from_rows(
        rows,
        &page,
        |(redemption, _)| redemption.id.clone(),
        |(redemption, name)| RedemptionResponse::new(redemption, name, &viewer),
    ))
}

pub async fn get(
    state: &AppState,
    principal: Principal,
    community_id: String,
    redemption_id: String,
) -> ApiResult<RedemptionResponse> {
    state
        .db
        .read(move |conn| {
            let (community, roles) = community_to_read(conn, &principal, &community_id, |_| true, "see orders")?;
            let redemption = Redemption::find(conn, &community.id, &redemption_id)?
                .filter(|redemption| is_staff(roles) || roles.auditor || redemption.user_id == principal.user.id)
                .ok_or_else(|| ApiError::not_found("redemption"))?;
            let name = reward_name(conn, &redemption)?;
            Ok(RedemptionResponse::new(redemption, name, &principal.user.id))
        })
        .await
}
