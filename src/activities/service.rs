//! Activities: publishing, sign-up within capacity, check-in by rotating code or by
//! staff, and completion that pays every attendee in one ledger transaction.

use std::collections::HashMap;

use actix_web::HttpResponse;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::activities::api::{
    ActivityListQuery, ActivityResponse, CheckInCodeResponse, CheckInRequest, CompletionRequest, CreateActivityRequest,
    ParticipantListQuery, ParticipantResponse, UpdateActivityRequest, When,
};
use crate::activities::model::{Activity, ActivityChanges, ActivityFilter, ActivityStatus, Registration};
use crate::auth::model::User;
use crate::auth::principal::Principal;
use crate::codes::{code_from_bytes, normalize_code, random_code};
use crate::db::{DbConnection, new_id};
use crate::error::{ApiError, ApiResult, ErrorCode, unique_violation_as};
use crate::idempotency::{self, Reply, Scope};
use crate::ledger::model::{LedgerHead, Posting};
use crate::ledger::service::{Award, award_in, community_for, community_to_read, is_staff, validate_points};
use crate::pagination::{Page, PageRequest};
use crate::rules::model::{Rule, RuleDirection};
use crate::rules::service::resolve;
use crate::startup::AppState;
use crate::units::model::{Membership, MembershipStatus, Roles, Unit};
use crate::validation::{self, MAX_NAME_CHARS};

/// Check-in codes change this often; the previous one is still accepted.
const CODE_WINDOW_SECONDS: i64 = 300;
const CODE_LENGTH: usize = 6;
/// Check-in opens this long before the start and closes this long after the end.
const CHECK_IN_MARGIN: Duration = Duration::minutes(30);
pub const MAX_TEXT_CHARS: usize = 2_000;

fn activity_location(activity: &Activity) -> String {
    format!("/api/v1/communities/{}/activities/{}", activity.community_id, activity.id)
}

fn closed() -> ApiError {
    ApiError::new(ErrorCode::ActivityClosed, "this activity is not open (it is a draft, completed or cancelled)")
}

fn validate_capacity(capacity: Option<i32>) -> ApiResult<Option<i32>> {
    match capacity {
        Some(capacity) if !(1..=100_000).contains(&capacity) => {
            Err(ApiError::validation("capacity must be from 1 to 100000, or null"))
        }
        _ => Ok(capacity),
    }
}

fn validate_times(starts_at: NaiveDateTime, ends_at: NaiveDateTime, signup_deadline: NaiveDateTime) -> ApiResult<()> {
    if starts_at >= ends_at {
        return Err(ApiError::validation("ends_at must be after starts_at"));
    }
    if signup_deadline > ends_at {
        return Err(ApiError::validation("signup_deadline must not be after ends_at"));
    }
    Ok(())
}

fn response(conn: &mut DbConnection, activity: Activity, viewer: &str) -> ApiResult<ActivityResponse> {
    let rule = Rule::find(conn, &activity.community_id, &activity.rule_id)?
        .ok_or_else(|| ApiError::internal("activity without rule"))?;
    let mine = Registration::find(conn, &activity.id, viewer)?;
    Ok(ActivityResponse::new(activity, rule.code.clone(), rule.category(), mine))
}

/// Whoever may see the community may see its activities.
const SEE: (fn(Roles) -> bool, &str) = (|_| true, "see activities");

/// The activity if the caller may see it (staff see all, others published and completed ones)
/// and their roles satisfy `allowed`, which is checked first: a refused caller learns nothing of the activity.
fn visible_activity(
    conn: &mut DbConnection,
    principal: &Principal,
    community_id: &str,
    activity_id: &str,
    (allowed, action): (fn(Roles) -> bool, &str),
) -> ApiResult<(Unit, Roles, Activity)> {
    let (community, roles) = community_for(conn, principal, community_id, allowed, action)?;
    let activity = Activity::find(conn, &community.id, activity_id)?
        .filter(|activity| {
            is_staff(roles) || matches!(activity.status(), ActivityStatus::Published | ActivityStatus::Completed)
        })
        .ok_or_else(|| ApiError::not_found("activity"))?;
    Ok((community, roles, activity))
}

pub async fn create(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    community_id: String,
    request: CreateActivityRequest,
) -> ApiResult<HttpResponse> {
    let title = validation::text("title", &request.title, MAX_NAME_CHARS)?;
    let description =
        validation::optional_text("description", Some(&request.description), MAX_TEXT_CHARS)?.unwrap_or_default();
    let location = validation::optional_text("location", Some(&request.location), MAX_NAME_CHARS)?.unwrap_or_default();
    let rule_code = validation::text("rule_code", &request.rule_code, 64)?;
    let points = request.points.map(validate_points).transpose()?;
    let capacity = validate_capacity(request.capacity)?;
    let (starts_at, ends_at) = (request.starts_at.naive_utc(), request.ends_at.naive_utc());
    let signup_deadline = request.signup_deadline.map_or(starts_at, |deadline| deadline.naive_utc());
    validate_times(starts_at, ends_at, signup_deadline)?;
    let status = match request.status.unwrap_or(ActivityStatus::Draft) {
        status @ (ActivityStatus::Draft | ActivityStatus::Published) => status,
        _ => return Err(ApiError::validation("a new activity is a draft or published")),
    };
    let now = state.clock.now();
    idempotency::write(&state.db, scope, now, move |conn| {
        let (community, _) = community_for(conn, &principal, &community_id, is_staff, "manage activities")?;
        let rule = resolve(conn, &community, &rule_code, RuleDirection::Earn)?;
        let points = points.unwrap_or(rule.default_points);
        if !(rule.min_points..=rule.max_points).contains(&points) {
            return Err(ApiError::new(
                ErrorCode::PointsOutOfRange,
                format!("rule {} allows {} to {} points, not {points}", rule.code, rule.min_points, rule.max_points),
            ));
        }
        let activity = Activity {
            id: new_id(),
            community_id: community.id.clone(),
            rule_id: rule.id.clone(),
            title,
            description,
            location,
            points,
            starts_at,
            ends_at,
            capacity,
            signup_deadline,
            status: status.as_str().to_owned(),
            registered: 0,
            check_in_secret: random_code(32),
            award_transaction_id: None,
            created_by: principal.user.id.clone(),
            created_at: now.naive_utc(),
            updated_at: now.naive_utc(),
        };
        activity.insert(conn)?;
        let location = activity_location(&activity);
        Reply::created(&response(conn, activity, &principal.user.id)?, location)
    })
    .await
}

pub async fn list(
    state: &AppState,
    principal: Principal,
    community_id: String,
    query: ActivityListQuery,
) -> ApiResult<Page<ActivityResponse>> {
    let page = PageRequest::<(DateTime<Utc>, Uuid)>::parse(query.limit, query.cursor.as_deref())?;
    let (fetch, after) =
        (page.fetch_limit(), page.after.map(|(starts_at, id)| (starts_at.naive_utc(), id.to_string())));
    let now = state.clock.now().naive_utc();
    let rows = state
        .db
        .read(move |conn| {
            let (community, roles) = community_to_read(conn, &principal, &community_id, |_| true, "see activities")?;
            let visible = if is_staff(roles) {
                vec![
                    ActivityStatus::Draft,
                    ActivityStatus::Published,
                    ActivityStatus::Completed,
                    ActivityStatus::Cancelled,
                ]
            } else {
                vec![ActivityStatus::Published, ActivityStatus::Completed]
            };
            let statuses = match query.status {
                Some(status) => visible.into_iter().filter(|visible| *visible == status).collect(),
                None => visible,
            };
            let filter = ActivityFilter {
                statuses,
                upcoming: query.when.map(|when| (when == When::Upcoming, now)),
                category: query.category.map(|category| category.as_str().to_owned()),
            };
            Activity::list(conn, &community.id, &filter, after, fetch)?
                .into_iter()
                .map(|activity| response(conn, activity, &principal.user.id))
                .collect::<ApiResult<Vec<_>>>()
        })
        .await?;
    Ok(Page::from_rows(rows, &page, |activity| (activity.starts_at, activity.id.clone()), |activity| activity))
}

pub async fn get(
    state: &AppState,
    principal: Principal,
    community_id: String,
    activity_id: String,
) -> ApiResult<ActivityResponse> {
    state
        .db
        .read(move |conn| {
            let (_, _, activity) = visible_activity(conn, &principal, &community_id, &activity_id, SEE)?;
            response(conn, activity, &principal.user.id)
        })
        .await
}

pub async fn update(
    state: &AppState,
    principal: Principal,
    community_id: String,
    activity_id: String,
    request: UpdateActivityRequest,
) -> ApiResult<HttpResponse> {
    let mut changes = ActivityChanges {
        title: request.title.as_deref().map(|title| validation::text("title", title, MAX_NAME_CHARS)).transpose()?,
        description: request
            .description
            .as_deref()
            .map(|text| validation::multiline_text("description", text, MAX_TEXT_CHARS))
            .transpose()?,
        location: request
            .location
            .as_deref()
            .map(|text| validation::text("location", text, MAX_NAME_CHARS))
            .transpose()?,
        points: request.points.map(validate_points).transpose()?,
        starts_at: request.starts_at.map(|t| t.naive_utc()),
        ends_at: request.ends_at.map(|t| t.naive_utc()),
        capacity: request.capacity.map(validate_capacity).transpose()?,
        signup_deadline: request.signup_deadline.map(|t| t.naive_utc()),
        status: None,
        updated_at: Some(state.clock.now().naive_utc()),
    };
    idempotency::write(&state.db, Scope::unkeyed(&community_id), state.clock.now(), move |conn| {
        let (community, _) = community_for(conn, &principal, &community_id, is_staff, "manage activities")?;
        let activity =
            Activity::find(conn, &community.id, &activity_id)?.ok_or_else(|| ApiError::not_found("activity"))?;
        let current = activity.status();
        if matches!(current, ActivityStatus::Completed | ActivityStatus::Cancelled) {
            return Err(closed());
        }
        changes.status = match (current, request.status) {
            (_, None) => None,
            (status, Some(wanted)) if status == wanted => None,
            (ActivityStatus::Draft, Some(ActivityStatus::Published)) | (_, Some(ActivityStatus::Cancelled)) => {
                request.status.map(|status| status.as_str().to_owned())
            }
            (_, Some(wanted)) => {
                return Err(ApiError::validation(format!(
                    "an activity goes from {} to published or cancelled, not {}",
                    current.as_str(),
                    wanted.as_str()
                )));
            }
        };
        validate_times(
            changes.starts_at.unwrap_or(activity.starts_at),
            changes.ends_at.unwrap_or(activity.ends_at),
            changes.signup_deadline.unwrap_or(activity.signup_deadline),
        )?;
        if let Some(Some(capacity)) = changes.capacity
            && capacity < activity.registered
        {
            return Err(ApiError::validation(format!(
                "{} residents are signed up; capacity cannot be lower",
                activity.registered
            )));
        }
        if let Some(points) = changes.points {
            let rule = Rule::find(conn, &community.id, &activity.rule_id)?
                .ok_or_else(|| ApiError::internal("activity without rule"))?;
            if !(rule.min_points..=rule.max_points).contains(&points) {
                return Err(ApiError::new(
                    ErrorCode::PointsOutOfRange,
                    format!("rule {} allows {} to {} points", rule.code, rule.min_points, rule.max_points),
                ));
            }
        }
        let activity = Activity::update(conn, &activity.id, &changes)?;
        Reply::ok(&response(conn, activity, &principal.user.id)?)
    })
    .await
}

/// Whether the user is an active resident of the community.
fn is_active_resident(conn: &mut DbConnection, community: &Unit, user_id: &str) -> ApiResult<bool> {
    Ok(Membership::find(conn, &community.id, user_id)?
        .is_some_and(|membership| membership.is_resident && membership.status() == MembershipStatus::Active))
}

/// Signs the resident up, taking a place (the capacity is checked in the UPDATE).
fn register(
    conn: &mut DbConnection,
    activity: &Activity,
    user_id: &str,
    now: NaiveDateTime,
) -> ApiResult<Registration> {
    if !Activity::take_place(conn, &activity.id)? {
        return Err(ApiError::new(ErrorCode::ActivityFull, "every place of this activity is taken"));
    }
    let registration = Registration {
        activity_id: activity.id.clone(),
        user_id: user_id.to_owned(),
        registered_at: now,
        checked_in_at: None,
        check_in_method: None,
    };
    registration
        .insert(conn)
        .map_err(unique_violation_as(ErrorCode::AlreadyRegistered, "you are already signed up for this activity"))?;
    Ok(registration)
}

pub async fn sign_up(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    community_id: String,
    activity_id: String,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    idempotency::write(&state.db, scope, now, move |conn| {
        let (_, _, activity) = visible_activity(
            conn,
            &principal,
            &community_id,
            &activity_id,
            (|roles| roles.resident, "sign up for activities"),
        )?;
        if !Activity::lock_open(conn, &activity.id)? {
            return Err(closed());
        }
        if now.naive_utc() >= activity.signup_deadline {
            return Err(ApiError::new(ErrorCode::RegistrationClosed, "the sign-up deadline has passed"));
        }
        if Registration::find(conn, &activity.id, &principal.user.id)?.is_some() {
            return Err(ApiError::new(ErrorCode::AlreadyRegistered, "you are already signed up for this activity"));
        }
        register(conn, &activity, &principal.user.id, now.naive_utc())?;
        let activity = Activity::find(conn, &activity.community_id, &activity.id)?
            .ok_or_else(|| ApiError::not_found("activity"))?;
        let location = format!("{}/registrations/me", activity_location(&activity));
        Reply::created(&response(conn, activity, &principal.user.id)?, location)
    })
    .await
}

pub async fn withdraw(
    state: &AppState,
    principal: Principal,
    community_id: String,
    activity_id: String,
) -> ApiResult<HttpResponse> {
    idempotency::write(&state.db, Scope::unkeyed(&community_id), state.clock.now(), move |conn| {
        let (_, _, activity) = visible_activity(conn, &principal, &community_id, &activity_id, SEE)?;
        let registration = Registration::find(conn, &activity.id, &principal.user.id)?
            .ok_or_else(|| ApiError::not_found("registration"))?;
        if !Activity::lock_open(conn, &activity.id)? {
            return Err(closed());
        }
        if registration.checked_in_at.is_some() || Registration::delete(conn, &activity.id, &principal.user.id)? == 0 {
            return Err(ApiError::new(ErrorCode::AlreadyCheckedIn, "you have checked in; the sign-up stays"));
        }
        Activity::free_place(conn, &activity.id)?;
        Ok(Reply::no_content())
    })
    .await
}

fn code_for(activity: &Activity, window: i64) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(activity.check_in_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(&window.to_be_bytes());
    code_from_bytes(&mac.finalize().into_bytes()[..CODE_LENGTH])
}

fn check_in_window(activity: &Activity) -> (NaiveDateTime, NaiveDateTime) {
    (activity.starts_at - CHECK_IN_MARGIN, activity.ends_at + CHECK_IN_MARGIN)
}

pub async fn check_in_code(
    state: &AppState,
    principal: Principal,
    community_id: String,
    activity_id: String,
) -> ApiResult<CheckInCodeResponse> {
    let now = state.clock.now();
    let activity = state
        .db
        .read(move |conn| {
            let (community, _) = community_to_read(conn, &principal, &community_id, is_staff, "show check-in codes")?;
            Activity::find(conn, &community.id, &activity_id)?.ok_or_else(|| ApiError::not_found("activity"))
        })
        .await?;
    let window = now.timestamp().div_euclid(CODE_WINDOW_SECONDS);
    let (opens, closes) = check_in_window(&activity);
    Ok(CheckInCodeResponse {
        code: code_for(&activity, window),
        valid_until: DateTime::from_timestamp((window + 2) * CODE_WINDOW_SECONDS, 0).unwrap_or(now),
        check_in_opens: opens.and_utc(),
        check_in_closes: closes.and_utc(),
    })
}

pub async fn check_in(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    community_id: String,
    activity_id: String,
    request: CheckInRequest,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    let code = request.code.as_deref().map(normalize_code);
    let by_staff = match (&code, request.user_id) {
        (Some(_), None) => None,
        (None, Some(user_id)) => Some(user_id.to_string()),
        _ => {
            return Err(ApiError::validation(
                "give either code (a resident checking in) or user_id (staff checking a resident in)",
            ));
        }
    };
    idempotency::write(&state.db, scope, now, move |conn| {
        let (community, roles, activity) = visible_activity(conn, &principal, &community_id, &activity_id, SEE)?;
        let (user_id, method) = match by_staff {
            Some(user_id) if is_staff(roles) => (user_id, "staff"),
            Some(_) => return Err(ApiError::forbidden("only staff check others in")),
            None if roles.resident => (principal.user.id.clone(), "code"),
            None => return Err(ApiError::forbidden("only residents of the community check in")),
        };
        if !Activity::lock_open(conn, &activity.id)? {
            return Err(closed());
        }
        let (opens, closes) = check_in_window(&activity);
        if !(opens..=closes).contains(&now.naive_utc()) {
            return Err(ApiError::new(
                ErrorCode::CheckInClosed,
                "check-in is open from 30 minutes before the start until 30 minutes after the end",
            ));
        }
        if let Some(code) = &code {
            let window = now.timestamp().div_euclid(CODE_WINDOW_SECONDS);
            if *code != code_for(&activity, window) && *code != code_for(&activity, window - 1) {
                return Err(ApiError::new(
                    ErrorCode::InvalidCheckInCode,
                    "this check-in code is wrong or no longer valid",
                ));
            }
        }
        if !is_active_resident(conn, &community, &user_id)? {
            return Err(ApiError::new(
                ErrorCode::ResidentNotActive,
                format!("user {user_id} is not an active resident of this community"),
            ));
        }
        // Walk-ins are signed up on the spot, within the capacity.
        if Registration::find(conn, &activity.id, &user_id)?.is_none() {
            register(conn, &activity, &user_id, now.naive_utc())?;
        }
        if !Registration::check_in(conn, &activity.id, &user_id, method, now.naive_utc())? {
            return Err(ApiError::new(ErrorCode::AlreadyCheckedIn, "already checked in"));
        }
        let registration = Registration::find(conn, &activity.id, &user_id)?
            .ok_or_else(|| ApiError::internal("registration vanished"))?;
        let user = User::find(conn, &user_id)?.ok_or_else(|| ApiError::not_found("user"))?;
        let location = format!("{}/participants", activity_location(&activity));
        Reply::created(&participant(registration, user, &HashMap::new()), location)
    })
    .await
}

fn participant(registration: Registration, user: User, awarded: &HashMap<String, i64>) -> ParticipantResponse {
    ParticipantResponse {
        awarded_points: awarded.get(&user.id).copied(),
        user_id: user.id,
        username: user.username,
        display_name: user.display_name,
        registered_at: registration.registered_at.and_utc(),
        checked_in_at: registration.checked_in_at.map(|at| at.and_utc()),
        check_in_method: registration.check_in_method,
    }
}

pub async fn complete(
    state: &AppState,
    principal: Principal,
    scope: Scope,
    community_id: String,
    activity_id: String,
    request: CompletionRequest,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    idempotency::write(&state.db, scope, now, move |conn| {
        let (community, _) = community_for(conn, &principal, &community_id, is_staff, "complete activities")?;
        // Under the ledger lock, so of parallel completions exactly one sees the activity open.
        let mut lock = LedgerHead::lock(conn, &community.id)?;
        let activity =
            Activity::find(conn, &community.id, &activity_id)?.ok_or_else(|| ApiError::not_found("activity"))?;
        match activity.status() {
            ActivityStatus::Published if Activity::lock_open(conn, &activity.id)? => {}
            ActivityStatus::Completed => {
                return Err(ApiError::new(
                    ErrorCode::AlreadyCompleted,
                    "this activity was completed and its attendees paid",
                ));
            }
            _ => return Err(closed()),
        }
        let mut attendees: Vec<String> = match request.attendees {
            Some(list) => list.iter().map(Uuid::to_string).collect(),
            None => Registration::checked_in_users(conn, &activity.id)?,
        };
        attendees.sort();
        attendees.dedup();
        let transaction_id = if attendees.is_empty() {
            None
        } else {
            let rule = Rule::find(conn, &community.id, &activity.rule_id)?
                .ok_or_else(|| ApiError::internal("activity without rule"))?;
            let award = Award {
                memo: format!("活动: {}", activity.title),
                actor: &principal,
                cause: Some(("activity".to_owned(), activity.id.clone())),
                lines: attendees.into_iter().map(|user_id| (user_id, Some(activity.points))).collect(),
            };
            Some(award_in(conn, &mut lock, &community, &rule, award, now)?.0.id)
        };
        if !Activity::complete(conn, &activity.id, transaction_id.as_deref(), now.naive_utc())? {
            return Err(ApiError::new(
                ErrorCode::AlreadyCompleted,
                "this activity was completed and its attendees paid",
            ));
        }
        let activity =
            Activity::find(conn, &community.id, &activity.id)?.ok_or_else(|| ApiError::not_found("activity"))?;
        Reply::ok(&response(conn, activity, &principal.user.id)?)
    })
    .await
}

pub async fn participants(
    state: &AppState,
    principal: Principal,
    community_id: String,
    activity_id: String,
    query: ParticipantListQuery,
) -> ApiResult<Page<ParticipantResponse>> {
    let page = PageRequest::<Uuid>::parse(query.limit, query.cursor.as_deref())?;
    let (fetch, after) = (page.fetch_limit(), page.after.map(|id| id.to_string()));
    let rows = state
        .db
        .read(move |conn| {
            let (community, _) = community_to_read(conn, &principal, &community_id, is_staff, "see participants")?;
            let activity =
                Activity::find(conn, &community.id, &activity_id)?.ok_or_else(|| ApiError::not_found("activity"))?;
            let awarded: HashMap<String, i64> = match &activity.award_transaction_id {
                Some(id) => Posting::of_transactions(conn, std::slice::from_ref(id))?
                    .into_iter()
                    .filter_map(|(posting, account)| account.user_id.map(|user_id| (user_id, posting.amount)))
                    .collect(),
                None => HashMap::new(),
            };
            Ok(Registration::list(conn, &activity.id, after.as_deref(), fetch)?
                .into_iter()
                .map(|(registration, user)| participant(registration, user, &awarded))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(Page::from_rows(rows, &page, |participant| participant.user_id.clone(), |participant| participant))
}
