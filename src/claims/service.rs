//! Residents claim points for good deeds; staff approve (awarding through the ledger) or reject.

use actix_web::HttpResponse;
use chrono::Duration;
use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::claims::api::{
    ApprovalRequest, ClaimListQuery, ClaimResponse, CreateClaimRequest, MAX_DESCRIPTION_CHARS, MAX_EVIDENCE_CHARS,
    MAX_EVIDENCE_ITEMS, MAX_REASON_CHARS, RejectionRequest,
};
use crate::claims::model::{Claim, ClaimFilter, ClaimStatus, Decision};
use crate::db::{DbConnection, new_id};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::idempotency::{self, Reply, Scope};
use crate::ledger::model::LedgerHead;
use crate::ledger::service::{Award, award_in, community_for, community_to_read, is_staff, validate_points};
use crate::pagination::{Page, PageRequest};
use crate::rules::model::{Rule, RuleDirection};
use crate::rules::service::resolve;
use crate::startup::AppState;
use crate::units::model::{Roles, Unit};
use crate::units::service::DEFAULT_MAX_OPEN_CLAIMS;
use crate::validation;

/// Clocks of phones and servers differ a little.
const FUTURE_TOLERANCE: Duration = Duration::minutes(5);

fn claim_location(claim: &Claim) -> String {
    format!("/api/v1/communities/{}/claims/{}", claim.community_id, claim.id)
}

pub async fn create(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    community_id: String,
    request: CreateClaimRequest,
) -> ApiResult<HttpResponse> {
    let description = validation::multiline_text("description", &request.description, MAX_DESCRIPTION_CHARS)?;
    let rule_code = validation::text("rule_code", &request.rule_code, 64)?;
    if request.evidence.len() > MAX_EVIDENCE_ITEMS {
        return Err(ApiError::validation(format!("evidence holds at most {MAX_EVIDENCE_ITEMS} items")));
    }
    let evidence = request
        .evidence
        .iter()
        .map(|item| validation::text("evidence", item, MAX_EVIDENCE_CHARS))
        .collect::<ApiResult<Vec<_>>>()?;
    let now = state.clock.now();
    if request.occurred_at > now + FUTURE_TOLERANCE {
        return Err(ApiError::validation("occurred_at is in the future"));
    }
    idempotency::write(&state.db, scope, now, move |conn| {
        let (community, _) = community_for(conn, &principal, &community_id, |roles| roles.resident, "file claims")?;
        let rule = resolve(conn, &community, &rule_code, RuleDirection::Earn)?;
        // A community's claims are filed one at a time, so the open-claims limit holds. Its
        // ledger lock, not the resident's user row: user rows are also locked by sign-ins, which
        // commit in another writer lane, and two lanes must never wait on each other's batches.
        LedgerHead::lock(conn, &community.id)?;
        let limit = community.max_open_claims.unwrap_or(DEFAULT_MAX_OPEN_CLAIMS);
        if Claim::open_count(conn, &community.id, &principal.user.id)? >= i64::from(limit) {
            return Err(ApiError::new(
                ErrorCode::TooManyOpenClaims,
                format!("you have {limit} claims waiting for staff; wait until they are decided"),
            ));
        }
        let claim = Claim {
            id: new_id(),
            community_id: community.id.clone(),
            user_id: principal.user.id.clone(),
            rule_id: rule.id.clone(),
            description,
            occurred_at: request.occurred_at.naive_utc(),
            evidence: serde_json::to_string(&evidence).map_err(ApiError::internal)?,
            status: ClaimStatus::Pending.as_str().to_owned(),
            points: None,
            decided_by: None,
            decided_at: None,
            decision_reason: None,
            transaction_id: None,
            created_at: now.naive_utc(),
        };
        claim.insert(conn)?;
        let location = claim_location(&claim);
        Reply::created(&ClaimResponse::new(claim, rule.code), location)
    })
    .await
}

pub async fn list(
    state: &AppState,
    principal: Principal,
    community_id: String,
    query: ClaimListQuery,
) -> ApiResult<Page<ClaimResponse>> {
    let page = PageRequest::<Uuid>::parse(query.limit, query.cursor.as_deref())?;
    let (fetch, after) = (page.fetch_limit(), page.after.map(|id| id.to_string()));
    let rows = state
        .db
        .read(move |conn| {
            let (community, roles) = community_to_read(conn, &principal, &community_id, |_| true, "read claims")?;
            let mut filter = ClaimFilter {
                user_id: query.user_id.map(|id| id.to_string()),
                status: query.status,
                rule_code: query.rule_code,
            };
            if !(roles.admin || roles.staff || roles.auditor) {
                if filter.user_id.as_ref().is_some_and(|id| *id != principal.user.id) {
                    return Err(ApiError::forbidden("residents can read their own claims only"));
                }
                filter.user_id = Some(principal.user.id.clone());
            }
            Ok(Claim::list(conn, &community.id, &filter, after.as_deref(), fetch)?)
        })
        .await?;
    Ok(Page::from_rows(rows, &page, |(claim, _)| claim.id.clone(), |(claim, code)| ClaimResponse::new(claim, code)))
}

/// The claim with its rule, if the caller may see it (staff and auditors: all; residents: their own)
/// and their roles satisfy `allowed`, which is checked first: a refused caller learns nothing of the claim.
fn visible_claim(
    conn: &mut DbConnection,
    principal: &Principal,
    community_id: &str,
    claim_id: &str,
    (allowed, action): (fn(Roles) -> bool, &str),
) -> ApiResult<(Unit, Claim, Rule)> {
    let (community, roles) = community_for(conn, principal, community_id, allowed, action)?;
    let claim = Claim::find(conn, &community.id, claim_id)?
        .filter(|claim| roles.admin || roles.staff || roles.auditor || claim.user_id == principal.user.id)
        .ok_or_else(|| ApiError::not_found("claim"))?;
    let rule =
        Rule::find(conn, &community.id, &claim.rule_id)?.ok_or_else(|| ApiError::internal("claim without rule"))?;
    Ok((community, claim, rule))
}

pub async fn get(
    state: &AppState,
    principal: Principal,
    community_id: String,
    claim_id: String,
) -> ApiResult<ClaimResponse> {
    state
        .db
        .read(move |conn| {
            let (_, claim, rule) =
                visible_claim(conn, &principal, &community_id, &claim_id, (|_| true, "read claims"))?;
            Ok(ClaimResponse::new(claim, rule.code))
        })
        .await
}

fn already_decided() -> ApiError {
    ApiError::new(ErrorCode::ClaimAlreadyDecided, "this claim has already been decided")
}

pub async fn approve(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    community_id: String,
    claim_id: String,
    request: ApprovalRequest,
) -> ApiResult<HttpResponse> {
    let points = request.points.map(validate_points).transpose()?;
    let now = state.clock.now();
    idempotency::write(&state.db, scope, now, move |conn| {
        let (community, claim, rule) =
            visible_claim(conn, &principal, &community_id, &claim_id, (is_staff, "decide claims"))?;
        let mut lock = LedgerHead::lock(conn, &community.id)?;
        if claim.status() != ClaimStatus::Pending {
            return Err(already_decided());
        }
        let rule = resolve(conn, &community, &rule.code, RuleDirection::Earn)?;
        let summary: String = claim.description.chars().take(100).collect();
        let award = Award {
            memo: format!("{}: {summary}", rule.name),
            actor: &principal,
            cause: Some(("claim".to_owned(), claim.id.clone())),
            lines: vec![(claim.user_id.clone(), points)],
        };
        let (transaction, postings) = award_in(conn, &mut lock, &community, &rule, award, now)?;
        let points = postings.iter().map(|posting| posting.amount).max();
        let decision = Decision {
            status: ClaimStatus::Approved,
            points,
            decided_by: &principal.user.id,
            decided_at: now.naive_utc(),
            reason: None,
            transaction_id: Some(transaction.id),
        };
        if !Claim::decide(conn, &claim.id, decision)? {
            return Err(already_decided());
        }
        let claim = Claim::find(conn, &community.id, &claim.id)?.ok_or_else(|| ApiError::not_found("claim"))?;
        Reply::ok(&ClaimResponse::new(claim, rule.code))
    })
    .await
}

pub async fn reject(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    community_id: String,
    claim_id: String,
    request: RejectionRequest,
) -> ApiResult<HttpResponse> {
    let reason = validation::multiline_text("reason", &request.reason, MAX_REASON_CHARS)?;
    let now = state.clock.now();
    idempotency::write(&state.db, scope, now, move |conn| {
        let (community, claim, rule) =
            visible_claim(conn, &principal, &community_id, &claim_id, (is_staff, "decide claims"))?;
        let decision = Decision {
            status: ClaimStatus::Rejected,
            points: None,
            decided_by: &principal.user.id,
            decided_at: now.naive_utc(),
            reason: Some(reason),
            transaction_id: None,
        };
        if !Claim::decide(conn, &claim.id, decision)? {
            return Err(already_decided());
        }
        let claim = Claim::find(conn, &community.id, &claim.id)?.ok_or_else(|| ApiError::not_found("claim"))?;
        Reply::ok(&ClaimResponse::new(claim, rule.code))
    })
    .await
}
