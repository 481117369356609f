//! The ledger's write path ([`post`]) and the operations built on it. Awards written in groups
//! (`ledger::award_batch`) share its [`link`] and award checks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix_web::HttpResponse;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};

use crate::auth::principal::Principal;
use crate::db::{Database, DbConnection, new_id};
use crate::error::{ApiError, ApiResult, ErrorCode, unique_violation_as};
use crate::idempotency::{self, Reply, Scope};
use crate::ledger::api::{
    AccountResponse, AwardRequest, ChainHead, DeductionRequest, ExpiringPoints, MAX_AWARD_LINES, MAX_MEMO_CHARS,
    MAX_POINTS, MAX_RULE_CODE_CHARS, PostingResponse, ReversalRequest, TransactionListQuery, TransactionResponse,
    VerifyResponse,
};
use crate::ledger::chain::{self, GENESIS_HASH};
use crate::ledger::expiry::{ExpiryPolicy, timezone_of};
use crate::ledger::model::{
    Account, AccountKind, LedgerHead, LedgerLock, LedgerTransaction, Lot, LotMovement, Posting, TransactionFilter,
    TransactionKind,
};
use crate::pagination::{Page, PageRequest};
use crate::rules::model::{Rule, RuleDirection};
use crate::rules::{self};
use crate::startup::AppState;
use crate::units::model::{Membership, Roles, Unit, UnitKind};
use crate::validation;

/// How a leg's points move between the resident's lots.
pub enum LotEffect {
    /// A credit that becomes a new lot.
    NewLot { expires_at: Option<NaiveDateTime> },
    /// A credit that gives points back to the lots they were taken from.
    Restore(Vec<LotMovement>),
    /// A debit that takes from these lots first, then from the others, soonest expiry first.
    Consume { preferred: Vec<Lot> },
}

/// One posting to be made, with what it does to the account beyond its balance.
pub struct Leg {
    pub account: Account,
    pub amount: i64,
    /// Change of the resident's lifetime earned / spent figures.
    pub earned: i64,
    pub spent: i64,
    /// For resident accounts.
    pub lots: Option<LotEffect>,
}

impl Leg {
    pub fn system(account: Account, amount: i64) -> Self {
        Leg { account, amount, earned: 0, spent: 0, lots: None }
    }
}

pub struct NewTransaction {
    pub community_id: String,
    pub kind: TransactionKind,
    pub rule_code: Option<String>,
    pub memo: String,
    pub actor_id: Option<String>,
    pub cause: Option<(String, String)>,
    pub reverses_id: Option<String>,
    pub created_at: NaiveDateTime,
}

impl NewTransaction {
    pub fn new(
        community_id: &str,
        kind: TransactionKind,
        memo: String,
        actor_id: Option<String>,
        created_at: NaiveDateTime,
    ) -> Self {
        NewTransaction {
            community_id: community_id.to_owned(),
            kind,
            rule_code: None,
            memo,
            actor_id,
            cause: None,
            reverses_id: None,
            created_at,
        }
    }
}

/// Open lots a debit reads first: most debits use up one to a few lots.
pub const FIRST_LOTS_PAGE: usize = 4;
/// Open lots a debit reads at once after its first page.
pub const LOTS_PER_PAGE: usize = 32;

fn insufficient_points() -> ApiError {
    ApiError::new(ErrorCode::InsufficientPoints, "the resident does not have enough points available")
}

/// Writes one ledger transaction: balances (a resident's never below zero, checked
/// in the UPDATE), postings, lots, and the next link of the community's hash chain.
/// Runs inside the caller's database transaction; any error rolls all of it back.
pub fn post(
    conn: &mut DbConnection,
    lock: &mut LedgerLock,
    new: NewTransaction,
    legs: Vec<Leg>,
) -> ApiResult<(LedgerTransaction, Vec<PostingResponse>)> {
    check_balanced(&legs)?;
    if lock.community_id() != new.community_id {
        return Err(ApiError::internal("a ledger write under another community's lock"));
    }
    for leg in &legs {
        let is_resident = leg.account.kind() == AccountKind::Resident;
        if is_resident && leg.amount < 0 {
            if !Account::debit_if_covered(conn, &leg.account.id, -leg.amount, leg.earned, leg.spent)? {
                return Err(insufficient_points());
            }
        } else {
            Account::credit(conn, &leg.account.id, leg.amount, leg.earned, leg.spent)?;
        }
    }
    let (transaction, postings) = link(lock.head(), new, &legs);
    transaction
        .insert(conn, &postings)
        .map_err(unique_violation_as(ErrorCode::AlreadyReversed, "this transaction has already been reversed"))?;

    let posted = postings.iter().zip(&legs).map(|(posting, leg)| PostingResponse::new(posting, &leg.account)).collect();
    let mut movements = Vec::new();
    for leg in legs {
        match leg.lots {
            Some(LotEffect::NewLot { expires_at }) => {
                Lot::new(&leg.account.id, &transaction, leg.amount, expires_at).insert(conn)?
            }
            Some(LotEffect::Restore(taken)) => {
                for movement in taken {
                    Lot::give_back(conn, &movement.lot_id, movement.amount)?;
                    movements.push(LotMovement {
                        transaction_id: transaction.id.clone(),
                        lot_id: movement.lot_id,
                        amount: -movement.amount,
                    });
                }
            }
            Some(LotEffect::Consume { preferred }) => {
                let mut needed = -leg.amount;
                let mut take = |conn: &mut DbConnection, lot: Lot, needed: &mut i64| -> ApiResult<()> {
                    let taken = (*needed).min(lot.remaining);
                    if !Lot::take(conn, &lot.id, taken)? {
                        return Err(ApiError::internal(format!("lot {} changed under a ledger lock", lot.id)));
                    }
                    movements.push(LotMovement {
                        transaction_id: transaction.id.clone(),
                        lot_id: lot.id,
                        amount: taken,
                    });
                    *needed -= taken;
                    Ok(())
                };
                for lot in preferred {
                    if needed == 0 {
                        break;
                    }
                    take(conn, lot, &mut needed)?;
                }
                // Then the others, a page at a time, so a debit reads only the lots it uses. A
                // page is read once every lot before it is used up (the preferred ones too), so
                // each page starts at the first lot still open.
                let mut page_size = FIRST_LOTS_PAGE;
                while needed > 0 {
                    let page = Lot::open(conn, &leg.account.id, page_size)?;
                    let last_page = page.len() < page_size;
                    page_size = LOTS_PER_PAGE;
                    for lot in page {
                        if needed == 0 {
                            break;
                        }
                        take(conn, lot, &mut needed)?;
                    }
                    if last_page {
                        break;
                    }
                }
                if needed > 0 {
                    return Err(ApiError::internal(format!(
                        "the lots of account {} do not cover its balance",
                        leg.account.id
                    )));
                }
            }
            None => {}
        }
    }
    LotMovement::insert_all(conn, &movements)?;
    LedgerHead::advance(conn, lock, transaction.sequence, transaction.hash.clone())?;
    Ok((transaction, posted))
}

/// Refuses a transaction whose legs do not sum to zero, or that has fewer than two or an empty one.
pub fn check_balanced(legs: &[Leg]) -> ApiResult<()> {
    let total = legs.iter().try_fold(0i64, |sum, leg| sum.checked_add(leg.amount));
    if legs.len() < 2 || total != Some(0) || legs.iter().any(|leg| leg.amount == 0) {
        return Err(ApiError::internal("unbalanced ledger transaction"));
    }
    Ok(())
}

/// The link of the chain after `head`: the transaction `new`, with a posting for each leg.
pub fn link(head: &LedgerHead, new: NewTransaction, legs: &[Leg]) -> (LedgerTransaction, Vec<Posting>) {
    let mut transaction = LedgerTransaction {
        id: new_id(),
        community_id: new.community_id,
        sequence: head.sequence + 1,
        kind: new.kind.as_str().to_owned(),
        rule_code: new.rule_code,
        memo: new.memo,
        actor_id: new.actor_id,
        cause_type: new.cause.as_ref().map(|(kind, _)| kind.clone()),
        cause_id: new.cause.map(|(_, id)| id),
        reverses_id: new.reverses_id,
        created_at: new.created_at,
        previous_hash: head.hash.clone(),
        hash: String::new(),
    };
    let postings: Vec<Posting> = legs
        .iter()
        .zip(1..)
        .map(|(leg, line)| Posting {
            transaction_id: transaction.id.clone(),
            line,
            account_id: leg.account.id.clone(),
            amount: leg.amount,
        })
        .collect();
    transaction.hash = chain::chained_hash(&transaction.previous_hash, &transaction, &postings);
    (transaction, postings)
}

pub fn is_staff(roles: Roles) -> bool {
    roles.admin || roles.staff
}

/// Staff, auditors and admins: whoever may read a community's figures in full.
pub fn is_reader(roles: Roles) -> bool {
    roles.admin || roles.staff || roles.auditor
}

/// The community, if the caller's roles on it satisfy `allowed` (404 if it is out of their sight, 403 if they lack the role).
pub fn community_for(
    conn: &mut DbConnection,
    principal: &Principal,
    community_id: &str,
    allowed: impl Fn(Roles) -> bool,
    action: &str,
) -> ApiResult<(Unit, Roles)> {
    let unit = Unit::find(conn, community_id)?
        .filter(|unit| unit.kind() == UnitKind::Community)
        .ok_or_else(|| ApiError::not_found("community"))?;
    let roles = principal.authorize(&unit, allowed, action)?;
    Ok((unit, roles))
}

/// [`community_for`] for reads. Members of the community itself (residents, its staff) got its
/// row with their memberships at the start of the request, and a read may answer from that;
/// only callers from above it (district, street) look it up. Writes read it afresh, so that
/// one queued behind a change of the community's settings applies the new ones.
pub fn community_to_read(
    conn: &mut DbConnection,
    principal: &Principal,
    community_id: &str,
    allowed: impl Fn(Roles) -> bool,
    action: &str,
) -> ApiResult<(Unit, Roles)> {
    match principal.unit(community_id).filter(|unit| unit.kind() == UnitKind::Community) {
        Some(unit) => Ok((unit.clone(), principal.authorize(unit, allowed, action)?)),
        None => community_for(conn, principal, community_id, allowed, action),
    }
}

fn validate_memo(memo: &str) -> ApiResult<String> {
    validation::multiline_text("memo", memo, MAX_MEMO_CHARS)
}

fn validate_rule_code(rule_code: &str) -> ApiResult<String> {
    validation::text("rule_code", rule_code, MAX_RULE_CODE_CHARS)
}

pub fn validate_points(points: i64) -> ApiResult<i64> {
    if !(1..=MAX_POINTS).contains(&points) {
        return Err(ApiError::validation(format!("points must be a whole number from 1 to {MAX_POINTS}")));
    }
    Ok(points)
}

/// The resident's account in this community, if their membership is active.
pub fn active_resident_account(
    conn: &mut DbConnection,
    community: &Unit,
    user_id: &str,
    now: NaiveDateTime,
) -> ApiResult<Account> {
    let member = Account::membership_and_resident(conn, &community.id, user_id)?;
    let Some((_, account)) = member.filter(|(membership, _)| membership.is_active_resident()) else {
        return Err(ApiError::new(
            ErrorCode::ResidentNotActive,
            format!("user {user_id} is not an active resident of this community"),
        ));
    };
    match account {
        Some(account) => Ok(account),
        None => Ok(Account::open_new_resident(conn, &community.id, user_id, now)?),
    }
}

fn transaction_location(transaction: &LedgerTransaction) -> String {
    format!("/api/v1/communities/{}/transactions/{}", transaction.community_id, transaction.id)
}

/// The full view of a transaction just written (its writer is staff).
pub fn created(transaction: LedgerTransaction, postings: Vec<PostingResponse>) -> ApiResult<Reply> {
    let location = transaction_location(&transaction);
    Reply::created(&TransactionResponse::new(transaction, postings, None), location)
}

pub async fn award(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    community_id: String,
    request: AwardRequest,
) -> ApiResult<HttpResponse> {
    let memo = validate_memo(&request.memo)?;
    let rule_code = validate_rule_code(&request.rule_code)?;
    if request.awards.is_empty() || request.awards.len() > MAX_AWARD_LINES {
        return Err(ApiError::validation(format!("awards must list 1 to {MAX_AWARD_LINES} residents")));
    }
    let mut lines = Vec::with_capacity(request.awards.len());
    let mut seen = HashSet::new();
    for line in &request.awards {
        if !seen.insert(line.user_id) {
            return Err(ApiError::validation(format!(
                "user {} is listed twice; list each resident once",
                line.user_id
            )));
        }
        lines.push((line.user_id.to_string(), line.points.map(validate_points).transpose()?));
    }
    let request = Arc::new(AwardRequestChecked {
        community_id,
        principal,
        scope,
        memo,
        rule_code,
        lines,
        now: state.clock.now(),
    });
    if let Some(reply) = state.groups.awards.write(&state.db, &request).await {
        return Ok(reply.into_first_response());
    }
    idempotency::write(&state.db, request.scope.clone(), request.now, move |conn| {
        let principal = &request.principal;
        let (community, _) = community_for(conn, principal, &request.community_id, is_staff, "award points")?;
        let mut lock = LedgerHead::lock(conn, &community.id)?;
        let rule = rules::service::resolve(conn, &community, &request.rule_code, RuleDirection::Earn)?;
        let award = Award { memo: request.memo.clone(), actor: principal, cause: None, lines: request.lines.clone() };
        let (transaction, postings) = award_in(conn, &mut lock, &community, &rule, award, request.now)?;
        created(transaction, postings)
    })
    .await
}

/// An award request whose form is valid, on its way to be written.
pub struct AwardRequestChecked {
    pub community_id: String,
    pub principal: Principal,
    pub scope: Scope,
    pub memo: String,
    pub rule_code: String,
    /// User ids, each with its points (None: the rule's default).
    pub lines: Vec<(String, Option<i64>)>,
    pub now: DateTime<Utc>,
}

fn conflict_of_interest() -> ApiError {
    ApiError::new(ErrorCode::ConflictOfInterest, "points for yourself or your household must be given by other staff")
}

/// Whether points for `beneficiary_id` would go to the actor or their household (same compound,
/// building, unit and room in this community): staff may not award those; someone else must.
/// `beneficiary` gives the beneficiary's membership of the community; it is asked for only if
/// the actor lives there, so staff who live elsewhere (the usual case) cost no lookup.
pub fn is_conflict_of_interest(
    actor: &Principal,
    community_id: &str,
    beneficiary_id: &str,
    beneficiary: impl FnOnce() -> ApiResult<Option<Membership>>,
) -> ApiResult<bool> {
    if actor.user.id == beneficiary_id {
        return Ok(true);
    }
    let complete_household = |membership: &Membership| {
        Some(membership)
            .filter(|membership| membership.is_resident)
            .and_then(Membership::household)
            .filter(|h| h.compound.is_some() && h.building.is_some() && h.unit.is_some() && h.room.is_some())
    };
    let Some(actor_home) = actor.membership_in(community_id).and_then(complete_household) else {
        return Ok(false);
    };
    Ok(beneficiary()?.as_ref().and_then(complete_household).as_ref() == Some(&actor_home))
}

/// An award to be written: to whom (user ids, points None for the rule's default; or, once
/// checked, resident accounts and their points), why, by whom.
pub struct Award<'a, Line = (String, Option<i64>)> {
    pub memo: String,
    pub actor: &'a Principal,
    pub cause: Option<(String, String)>,
    pub lines: Vec<Line>,
}

/// Awards points under `rule` to active residents, in one ledger transaction,
/// each held to the rule's range and caps. Call under the community's ledger lock.
/// A check added here belongs in `ledger::award_batch`'s `Checks::vouch_for` too.
pub fn award_in(
    conn: &mut DbConnection,
    lock: &mut LedgerLock,
    community: &Unit,
    rule: &Rule,
    award: Award<'_>,
    now: DateTime<Utc>,
) -> ApiResult<(LedgerTransaction, Vec<PostingResponse>)> {
    let issuance = Account::system(conn, &community.id, AccountKind::Issuance)?;
    let mut residents = Vec::with_capacity(award.lines.len());
    for (user_id, points) in award.lines {
        if is_conflict_of_interest(award.actor, &community.id, &user_id, || {
            Ok(Membership::find(conn, &community.id, &user_id)?)
        })? {
            return Err(conflict_of_interest());
        }
        let account = active_resident_account(conn, community, &user_id, now.naive_utc())?;
        let points = points.unwrap_or(rule.default_points);
        rules::service::check_use(conn, community, rule, &account, points, TransactionKind::Award, now)?;
        residents.push((account, points));
    }
    let award = Award { memo: award.memo, actor: award.actor, cause: award.cause, lines: residents };
    let (new, legs) = award_transaction(community, rule, award, issuance, now);
    post(conn, lock, new, legs)
}

/// The ledger transaction of a checked award: its lines' points from the issuance account.
pub fn award_transaction(
    community: &Unit,
    rule: &Rule,
    award: Award<'_, (Account, i64)>,
    issuance: Account,
    now: DateTime<Utc>,
) -> (NewTransaction, Vec<Leg>) {
    let expires_at = ExpiryPolicy::of(community).expires_at(now, timezone_of(community));
    let total = award.lines.iter().map(|(_, points)| points).sum::<i64>();
    let mut legs = vec![Leg::system(issuance, -total)];
    for (account, points) in award.lines {
        let lots = Some(LotEffect::NewLot { expires_at });
        legs.push(Leg { account, amount: points, earned: points, spent: 0, lots });
    }
    let actor_id = Some(award.actor.user.id.clone());
    let mut new = NewTransaction::new(&community.id, TransactionKind::Award, award.memo, actor_id, now.naive_utc());
    new.rule_code = Some(rule.code.clone());
    new.cause = award.cause;
    (new, legs)
}

pub async fn deduct(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    community_id: String,
    request: DeductionRequest,
) -> ApiResult<HttpResponse> {
    let memo = validate_memo(&request.memo)?;
    let rule_code = validate_rule_code(&request.rule_code)?;
    let points = request.points.map(validate_points).transpose()?;
    let user_id = request.user_id.to_string();
    let now = state.clock.now();
    idempotency::write(&state.db, scope, now, move |conn| {
        let (community, _) = community_for(conn, &principal, &community_id, is_staff, "deduct points")?;
        let mut lock = LedgerHead::lock(conn, &community.id)?;
        let rule = rules::service::resolve(conn, &community, &rule_code, RuleDirection::Deduct)?;
        let account = active_resident_account(conn, &community, &user_id, now.naive_utc())?;
        let points = points.unwrap_or(rule.default_points);
        rules::service::check_use(conn, &community, &rule, &account, points, TransactionKind::Deduction, now)?;
        let legs = vec![
            Leg {
                account,
                amount: -points,
                earned: 0,
                spent: 0,
                lots: Some(LotEffect::Consume { preferred: Vec::new() }),
            },
            Leg::system(Account::system(conn, &community.id, AccountKind::Penalty)?, points),
        ];
        let mut new = NewTransaction::new(
            &community.id,
            TransactionKind::Deduction,
            memo,
            Some(principal.user.id.clone()),
            now.naive_utc(),
        );
        new.rule_code = Some(rule_code);
        let (transaction, postings) = post(conn, &mut lock, new, legs)?;
        created(transaction, postings)
    })
    .await
}

pub async fn reverse(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    community_id: String,
    transaction_id: String,
    request: ReversalRequest,
) -> ApiResult<HttpResponse> {
    let memo = validate_memo(&request.memo)?;
    let now = state.clock.now();
    idempotency::write(&state.db, scope, now, move |conn| {
        let (community, _) = community_for(conn, &principal, &community_id, is_staff, "reverse transactions")?;
        // Every check below must see the ledger as the write will: under the lock.
        let mut lock = LedgerHead::lock(conn, &community.id)?;
        let original = LedgerTransaction::find(conn, &community.id, &transaction_id)?
            .ok_or_else(|| ApiError::not_found("transaction"))?;
        let kind = TransactionKind::parse(&original.kind);
        if !matches!(kind, Some(TransactionKind::Award | TransactionKind::Deduction)) {
            return Err(ApiError::new(
                ErrorCode::NotReversible,
                format!("a {} cannot be reversed; only awards and deductions can", original.kind),
            ));
        }
        if !LedgerTransaction::reversals_of(conn, std::slice::from_ref(&original.id))?.is_empty() {
            return Err(ApiError::new(ErrorCode::AlreadyReversed, "this transaction has already been reversed"));
        }
        let taken = LotMovement::of_transaction(conn, &original.id)?;
        let mut legs = Vec::new();
        for (posting, account) in Posting::of_transactions(conn, std::slice::from_ref(&original.id))? {
            let amount = -posting.amount;
            let leg = if account.kind() != AccountKind::Resident {
                Leg::system(account, amount)
            } else if amount < 0 {
                // Taking back an award: what is left of those very points first.
                let preferred = Lot::open_of_transaction(conn, &original.id)?
                    .into_iter()
                    .filter(|lot| lot.account_id == account.id)
                    .collect();
                Leg { account, amount, earned: amount, spent: 0, lots: Some(LotEffect::Consume { preferred }) }
            } else {
                // Returning a deduction: to the lots it took from, keeping their expiry dates
                // (a deduction has one resident leg, so all it took is this account's).
                let restore = taken.iter().filter(|movement| movement.amount > 0).cloned().collect();
                Leg { account, amount, earned: 0, spent: 0, lots: Some(LotEffect::Restore(restore)) }
            };
            legs.push(leg);
        }
        let mut new = NewTransaction::new(
            &community.id,
            TransactionKind::Reversal,
            memo,
            Some(principal.user.id.clone()),
            now.naive_utc(),
        );
        new.rule_code = original.rule_code.clone();
        new.reverses_id = Some(original.id.clone());
        let (transaction, postings) = post(conn, &mut lock, new, legs)?;
        // A deduction's points that went back to lots which expired meanwhile expire now.
        expire_community(conn, &mut lock, now)?;
        created(transaction, postings)
    })
    .await
}

/// Postings as the caller may see them: a resident sees only their own (not, say, the total
/// a batch award took from the issuance account, which would tell what others received).
fn visible_postings(
    rows: Vec<(Posting, Account)>,
    resident_account: Option<&str>,
) -> HashMap<String, Vec<PostingResponse>> {
    let mut by_transaction: HashMap<String, Vec<PostingResponse>> = HashMap::new();
    for (posting, account) in rows {
        let visible = match resident_account {
            None => true,
            Some(own) => account.id == own,
        };
        if visible {
            by_transaction
                .entry(posting.transaction_id.clone())
                .or_default()
                .push(PostingResponse::new(&posting, &account));
        }
    }
    by_transaction
}

fn responses(
    conn: &mut DbConnection,
    transactions: Vec<LedgerTransaction>,
    resident_account: Option<&str>,
) -> ApiResult<Vec<TransactionResponse>> {
    let ids: Vec<String> = transactions.iter().map(|transaction| transaction.id.clone()).collect();
    let mut postings = visible_postings(Posting::of_transactions(conn, &ids)?, resident_account);
    let reversals: HashMap<String, String> = LedgerTransaction::reversals_of(conn, &ids)?.into_iter().collect();
    Ok(transactions
        .into_iter()
        .map(|transaction| {
            let postings = postings.remove(&transaction.id).unwrap_or_default();
            let reversed_by = reversals.get(&transaction.id).cloned();
            TransactionResponse::new(transaction, postings, reversed_by)
        })
        .collect())
}

/// Whom a caller reads the ledger as: everyone's (staff, auditors) or their own account's.
enum Reader {
    Official,
    Resident(Option<Account>),
}

fn reader(conn: &mut DbConnection, principal: &Principal, community_id: &str) -> ApiResult<(Unit, Reader)> {
    let (community, roles) = community_to_read(
        conn,
        principal,
        community_id,
        |roles| is_reader(roles) || roles.resident,
        "read the ledger",
    )?;
    if is_reader(roles) {
        return Ok((community, Reader::Official));
    }
    let own = Account::resident(conn, &community.id, &principal.user.id)?;
    Ok((community, Reader::Resident(own)))
}

pub async fn list_transactions(
    state: &AppState,
    principal: Principal,
    community_id: String,
    query: TransactionListQuery,
) -> ApiResult<Page<TransactionResponse>> {
    let page = PageRequest::<i64>::parse(query.limit, query.cursor.as_deref())?;
    let (fetch, before) = (page.fetch_limit(), page.after);
    let rows = state
        .db
        .read(move |conn| {
            let (community, reader) = reader(conn, &principal, &community_id)?;
            let mut filter = TransactionFilter {
                account_id: None,
                kind: query.kind,
                from: query.from.map(|t| t.naive_utc()),
                to: query.to.map(|t| t.naive_utc()),
            };
            let own_account = match reader {
                Reader::Official => {
                    if let Some(user_id) = query.user_id {
                        match Account::resident(conn, &community.id, &user_id.to_string())? {
                            Some(account) => filter.account_id = Some(account.id),
                            None => return Ok(Vec::new()),
                        }
                    }
                    None
                }
                Reader::Resident(None) => return Ok(Vec::new()),
                Reader::Resident(Some(account)) => {
                    if query.user_id.is_some_and(|user_id| user_id.to_string() != principal.user.id) {
                        return Err(ApiError::forbidden("residents can read their own transactions only"));
                    }
                    filter.account_id = Some(account.id.clone());
                    Some(account.id)
                }
            };
            let transactions = LedgerTransaction::list(conn, &community.id, &filter, before, fetch)?;
            responses(conn, transactions, own_account.as_deref())
        })
        .await?;
    Ok(Page::from_rows(rows, &page, |transaction| transaction.sequence, |transaction| transaction))
}

pub async fn get_transaction(
    state: &AppState,
    principal: Principal,
    community_id: String,
    transaction_id: String,
) -> ApiResult<TransactionResponse> {
    state
        .db
        .read(move |conn| {
            let (community, reader) = reader(conn, &principal, &community_id)?;
            let transaction = LedgerTransaction::find(conn, &community.id, &transaction_id)?
                .ok_or_else(|| ApiError::not_found("transaction"))?;
            let own_account = match reader {
                Reader::Official => None,
                Reader::Resident(account) => {
                    let own = account.map(|account| account.id).ok_or_else(|| ApiError::not_found("transaction"))?;
                    let touches_own = Posting::of_transactions(conn, std::slice::from_ref(&transaction.id))?
                        .iter()
                        .any(|(posting, _)| posting.account_id == own);
                    if !touches_own {
                        return Err(ApiError::not_found("transaction"));
                    }
                    Some(own)
                }
            };
            responses(conn, vec![transaction], own_account.as_deref())?
                .pop()
                .ok_or_else(|| ApiError::not_found("transaction"))
        })
        .await
}

/// How far ahead the account view lists expiring points.
const EXPIRING_WINDOW: Duration = Duration::days(30);

/// `user_id` None: the caller's own account.
pub async fn account(
    state: &AppState,
    principal: Principal,
    community_id: String,
    user_id: Option<String>,
) -> ApiResult<AccountResponse> {
    let now = state.clock.now().naive_utc();
    state
        .db
        .read(move |conn| {
            let (community, reader) = reader(conn, &principal, &community_id)?;
            let user_id = user_id.unwrap_or_else(|| principal.user.id.clone());
            let account = match reader {
                Reader::Resident(own) => own.filter(|_| user_id == principal.user.id),
                Reader::Official => Account::resident(conn, &community.id, &user_id)?,
            };
            let account = account.ok_or_else(|| ApiError::not_found("account"))?;
            let expiring = Lot::expiring(conn, &account.id, now, now + EXPIRING_WINDOW)?
                .into_iter()
                .map(|(expires_at, points)| ExpiringPoints { expires_at: expires_at.and_utc(), points })
                .collect();
            Ok(AccountResponse {
                user_id,
                community_id: community.id,
                balance: account.balance,
                held: account.held,
                lifetime_earned: account.earned,
                lifetime_spent: account.spent,
                expiring,
            })
        })
        .await
}

/// Every community that has a ledger.
pub fn community_ids(conn: &mut DbConnection) -> ApiResult<Vec<String>> {
    Ok(LedgerHead::community_ids(conn)?)
}

/// Recomputes a community's chain from its first transaction.
pub fn verify_chain(conn: &mut DbConnection, community_id: &str) -> ApiResult<VerifyResponse> {
    const SEGMENT: i64 = 500;
    let head = LedgerHead::read(conn, community_id)?;
    let mut previous_hash = GENESIS_HASH.to_owned();
    let mut checked = 0;
    let mut first_bad = None;
    'segments: loop {
        // Transactions committed after the head was read are not part of this verification.
        let segment =
            LedgerTransaction::chain_segment(conn, community_id, checked, SEGMENT.min(head.sequence - checked))?;
        if segment.is_empty() {
            break;
        }
        let ids: Vec<String> = segment.iter().map(|transaction| transaction.id.clone()).collect();
        let mut postings: HashMap<String, Vec<Posting>> = HashMap::new();
        for (posting, _) in Posting::of_transactions(conn, &ids)? {
            postings.entry(posting.transaction_id.clone()).or_default().push(posting);
        }
        for transaction in segment {
            let expected = checked + 1;
            let postings = postings.remove(&transaction.id).unwrap_or_default();
            let balanced = postings.len() >= 2 && postings.iter().map(|posting| posting.amount).sum::<i64>() == 0;
            let intact = transaction.sequence == expected
                && transaction.previous_hash == previous_hash
                && chain::chained_hash(&previous_hash, &transaction, &postings) == transaction.hash;
            if !(balanced && intact) {
                first_bad = Some(expected);
                break 'segments;
            }
            previous_hash = transaction.hash;
            checked = expected;
        }
    }
    // Transactions removed from the end leave the head pointing past the chain.
    if first_bad.is_none() && (head.sequence != checked || head.hash != previous_hash) {
        first_bad = Some(checked + 1);
    }
    Ok(VerifyResponse {
        ok: first_bad.is_none(),
        transactions_checked: checked,
        first_bad_sequence: first_bad,
        head: ChainHead { sequence: head.sequence, hash: head.hash },
    })
}

pub async fn verify(state: &AppState, principal: Principal, community_id: String) -> ApiResult<VerifyResponse> {
    state
        .db
        .read(move |conn| {
            let (community, _) = community_to_read(
                conn,
                &principal,
                &community_id,
                |roles| roles.admin || roles.auditor,
                "verify the ledger",
            )?;
            verify_chain(conn, &community.id)
        })
        .await
}

/// Expires every due lot of one community: one `expiry` transaction per account.
/// Rerunning it expires nothing twice: expired lots hold no points.
/// Call it under the community's ledger lock, so no debit takes from these lots between
/// reading and expiring them.
pub fn expire_community(conn: &mut DbConnection, lock: &mut LedgerLock, now: DateTime<Utc>) -> ApiResult<usize> {
    let community_id = lock.community_id().to_owned();
    let mut due_by_account: Vec<(String, Vec<Lot>)> = Vec::new();
    for lot in Lot::due(conn, &community_id, now.naive_utc())? {
        match due_by_account.last_mut() {
            Some((account_id, lots)) if *account_id == lot.account_id => lots.push(lot),
            _ => due_by_account.push((lot.account_id.clone(), vec![lot])),
        }
    }
    let expiry_account = Account::system(conn, &community_id, AccountKind::Expiry)?;
    let mut written = 0;
    for (account_id, lots) in due_by_account {
        let Some(account) = Account::find_all(conn, &[account_id])?.pop() else { continue };
        let total: i64 = lots.iter().map(|lot| lot.remaining).sum();
        let legs = vec![
            Leg { account, amount: -total, earned: 0, spent: 0, lots: Some(LotEffect::Consume { preferred: lots }) },
            Leg::system(expiry_account.clone(), total),
        ];
        let memo = "points reached their expiry date".to_owned();
        let new = NewTransaction::new(&community_id, TransactionKind::Expiry, memo, None, now.naive_utc());
        post(conn, lock, new, legs)?;
        written += 1;
    }
    Ok(written)
}

/// Expires due points in every community, one database transaction per community.
/// A community that fails is logged and retried next round; the others go on.
/// Blocking: for the maintenance task and the command line.
pub fn run_expiry(db: &Database, now: DateTime<Utc>) -> ApiResult<usize> {
    let mut conn = db.blocking_connection()?;
    let communities = Lot::communities_with_due_lots(&mut conn, now.naive_utc())?;
    drop(conn);
    let mut written = 0;
    for community_id in communities {
        let expired = db.write_blocking(|conn| {
            let mut lock = LedgerHead::lock(conn, &community_id)?;
            expire_community(conn, &mut lock, now)
        });
        match expired {
            Ok(count) => written += count,
            Err(err) => tracing::error!(community = %community_id, error = %err, "expiring points failed"),
        }
    }
    Ok(written)
}
