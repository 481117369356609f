//! Leaderboards and statistics: who may read them, and their figures, computed in Rust
//! from a few whole-range reads (see `model`), in the local calendar.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;

use crate::auth::principal::Principal;
use crate::calendar::{Period, local_midnight};
use crate::claims::model::ClaimStatus;
use crate::db::DbConnection;
use crate::error::{ApiError, ApiResult};
use crate::ledger::expiry::timezone_of;
use crate::ledger::model::{AccountKind, TransactionKind};
use crate::ledger::service::{community_to_read, is_reader};
use crate::pagination::parse_limit;
use crate::reports::api::{
    BucketFigures, Figures, GroupEntry, LeaderboardGroup, LeaderboardPeriod, LeaderboardQuery, LeaderboardResponse,
    ResidentEntry, StatsBucket, StatsQuery, StatsResponse, TopReward, TopRule,
};
use crate::reports::model::{self, Entrant, Handover, OutsideLeg, Window};
use crate::startup::AppState;
use crate::units::model::Unit;

/// A chart has at most this many buckets.
const MAX_BUCKETS: usize = 400;
/// Statistics cover this many days up to `to` unless `from` is given.
const DEFAULT_DAYS: u64 = 30;
/// Rules and rewards listed as the top ones.
const TOP: usize = 5;

fn out_of_range() -> ApiError {
    ApiError::validation("the dates are outside the supported calendar")
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The UTC span from local midnight of `first` to local midnight of `next`.
fn local_window(first: NaiveDate, next: NaiveDate, timezone: Tz) -> ApiResult<Window> {
    let midnight = |date| local_midnight(date, timezone).ok_or_else(out_of_range);
    Ok(Window { from: midnight(first)?, to: midnight(next)? })
}

/// Standard competition ranks of scores sorted best first: equal scores share a rank,
/// and the ranks after them skip (1, 1, 3).
fn ranks(scores: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let mut ranks: Vec<i64> = Vec::new();
    let mut previous: Option<(i64, i64)> = None;
    for (index, score) in scores.into_iter().enumerate() {
        let rank = match previous {
            Some((previous_score, rank)) if previous_score == score => rank,
            _ => count(index + 1),
        };
        ranks.push(rank);
        previous = Some((score, rank));
    }
    ranks
}

/// 张阿姨 → 张**: enough for neighbours to cheer, not enough to identify.
fn mask(name: &str) -> String {
    name.chars().next().map(|first| format!("{first}**")).unwrap_or_default()
}

/// A resident with their points in the period.
struct Scored {
    entrant: Entrant,
    earned: i64,
    deducted: i64,
}

pub async fn leaderboard(
    state: &AppState,
    principal: Principal,
    community_id: String,
    query: LeaderboardQuery,
) -> ApiResult<LeaderboardResponse> {
    let limit = usize::try_from(parse_limit(query.limit)?).unwrap_or(usize::MAX);
    let period = query.period.unwrap_or(LeaderboardPeriod::Month);
    let group = query.group.unwrap_or(LeaderboardGroup::Resident);
    let now = state.clock.now();
    state
        .db
        .read(move |conn| {
            let (community, roles) =
                community_to_read(conn, &principal, &community_id, |_| true, "see the leaderboard")?;
            let timezone = timezone_of(&community);
            let at = query.at.unwrap_or_else(|| now.with_timezone(&timezone).date_naive());
            let (first, next) = period.calendar().bounds(at).ok_or_else(out_of_range)?;
            let window = local_window(first, next, timezone)?;
            let scored = scores(conn, &community.id, window)?;
            let (residents, groups) = match group {
                LeaderboardGroup::Resident => {
                    (resident_entries(scored, &principal.user.id, is_reader(roles), limit), Vec::new())
                }
                LeaderboardGroup::Building | LeaderboardGroup::Compound => {
                    let households = model::active_households(conn, &community.id)?;
                    let smallest_shown = if is_reader(roles) { 1 } else { SMALLEST_GROUP_SHOWN_TO_RESIDENTS };
                    (Vec::new(), group_entries(scored, households, group, smallest_shown, limit))
                }
            };
            Ok(LeaderboardResponse {
                community_id: community.id,
                period,
                group,
                timezone: timezone.name().to_owned(),
                from: first,
                to: next.pred_opt().unwrap_or(first),
                residents,
                groups,
            })
        })
        .await
}

/// The residents with points earned or deducted in the window.
fn scores(conn: &mut DbConnection, community_id: &String, window: Window) -> ApiResult<Vec<Scored>> {
    let community_ids = std::slice::from_ref(community_id);
    let earned: HashMap<String, i64> =
        model::resident_net(conn, community_ids, TransactionKind::Award, window)?.into_iter().collect();
    let deducted: HashMap<String, i64> =
        model::resident_net(conn, community_ids, TransactionKind::Deduction, window)?.into_iter().collect();
    Ok(Entrant::of_community(conn, community_id)?
        .into_iter()
        .map(|entrant| Scored {
            earned: earned.get(&entrant.user_id).copied().unwrap_or(0),
            // A resident's deduction postings are negative.
            deducted: -deducted.get(&entrant.user_id).copied().unwrap_or(0),
            entrant,
        })
        .filter(|scored| scored.earned != 0 || scored.deducted != 0)
        .collect())
}

/// Best first; equal points in user id order, which tells nothing about anyone.
fn resident_entries(mut scored: Vec<Scored>, caller_id: &str, official: bool, limit: usize) -> Vec<ResidentEntry> {
    scored.sort_by(|a, b| (Reverse(a.earned), &a.entrant.user_id).cmp(&(Reverse(b.earned), &b.entrant.user_id)));
    let ranks = ranks(scored.iter().map(|scored| scored.earned));
    scored
        .into_iter()
        .zip(ranks)
        .take(limit)
        .map(|(Scored { entrant, earned, deducted }, rank)| {
            let you = entrant.user_id == caller_id;
            let masked = !entrant.show_on_leaderboard && !official && !you;
            ResidentEntry {
                rank,
                user_id: (!masked).then_some(entrant.user_id),
                display_name: if masked { mask(&entrant.display_name) } else { entrant.display_name },
                masked,
                you,
                earned,
                deducted,
            }
        })
        .collect()
}

#[derive(Default)]
struct GroupTotals {
    members: i64,
    earned: i64,
    deducted: i64,
}

/// (compound, building); residents without a household all land in (None, None).
type GroupKey = (Option<String>, Option<String>);

fn group_key(group: LeaderboardGroup, compound: Option<String>, building: Option<String>) -> GroupKey {
    match group {
        LeaderboardGroup::Compound => (compound, None),
        LeaderboardGroup::Building | LeaderboardGroup::Resident => (compound, building),
    }
}

/// Residents see only groups at least this large: a building with one or two active residents
/// would tell them those neighbours' points, opted out or not.
const SMALLEST_GROUP_SHOWN_TO_RESIDENTS: i64 = 3;

/// Best first; equal points by name, the unnamed group last. Groups with fewer than
/// `smallest_shown` active residents are left out before ranking.
fn group_entries(
    scored: Vec<Scored>,
    households: Vec<(Option<String>, Option<String>)>,
    group: LeaderboardGroup,
    smallest_shown: i64,
    limit: usize,
) -> Vec<GroupEntry> {
    let mut groups: BTreeMap<GroupKey, GroupTotals> = BTreeMap::new();
    for (compound, building) in households {
        groups.entry(group_key(group, compound, building)).or_default().members += 1;
    }
    for Scored { entrant, earned, deducted } in scored {
        let totals = groups.entry(group_key(group, entrant.compound, entrant.building)).or_default();
        totals.earned += earned;
        totals.deducted += deducted;
    }
    let mut groups: Vec<(GroupKey, GroupTotals)> =
        groups.into_iter().filter(|(_, totals)| totals.members >= smallest_shown).collect();
    let order = |((compound, building), totals): &(GroupKey, GroupTotals)| {
        (Reverse(totals.earned), compound.is_none(), compound.clone(), building.is_none(), building.clone())
    };
    groups.sort_by_key(order);
    let ranks = ranks(groups.iter().map(|(_, totals)| totals.earned));
    groups
        .into_iter()
        .zip(ranks)
        .take(limit)
        .map(|(((compound, building), totals), rank)| GroupEntry {
            rank,
            compound,
            building,
            members: totals.members,
            earned: totals.earned,
            deducted: totals.deducted,
        })
        .collect()
}

pub async fn community_stats(
    state: &AppState,
    principal: Principal,
    community_id: String,
    query: StatsQuery,
) -> ApiResult<StatsResponse> {
    stats_of(state, query, move |conn| {
        let (community, _) = community_to_read(conn, &principal, &community_id, is_reader, "read statistics")?;
        let timezone = timezone_of(&community);
        Ok((community.id.clone(), vec![community], timezone))
    })
    .await
}

/// A street's or district's statistics: the sums over its communities.
pub async fn unit_stats(
    state: &AppState,
    principal: Principal,
    unit_id: String,
    query: StatsQuery,
) -> ApiResult<StatsResponse> {
    stats_of(state, query, move |conn| {
        let unit = Unit::find(conn, &unit_id)?.ok_or_else(|| ApiError::not_found("unit"))?;
        principal.authorize(&unit, is_reader, "read statistics")?;
        let communities = model::communities_within(conn, &unit)?;
        let timezone = shared_timezone(&communities);
        Ok((unit.id, communities, timezone))
    })
    .await
}

/// The statistics of the communities `scope` finds the caller may read: (the unit asked for, its communities, their calendar).
async fn stats_of(
    state: &AppState,
    query: StatsQuery,
    scope: impl FnOnce(&mut DbConnection) -> ApiResult<(String, Vec<Unit>, Tz)> + Send + 'static,
) -> ApiResult<StatsResponse> {
    let now = state.clock.now();
    state
        .db
        .read(move |conn| {
            let (unit_id, communities, timezone) = scope(conn)?;
            stats(conn, unit_id, &communities, timezone, &query, now)
        })
        .await
}

/// The communities' time zone if they share one; UTC otherwise (no local calendar fits them all).
fn shared_timezone(communities: &[Unit]) -> Tz {
    let mut zones = communities.iter().map(timezone_of);
    match zones.next() {
        Some(first) if zones.all(|zone| zone == first) => first,
        _ => chrono_tz::UTC,
    }
}

/// The buckets of a range: their local dates and the UTC instants they start at.
struct Buckets {
    dates: Vec<(NaiveDate, NaiveDate)>,
    starts: Vec<NaiveDateTime>,
    end: NaiveDateTime,
}

impl Buckets {
    fn new(from: NaiveDate, to: NaiveDate, period: Period, timezone: Tz) -> ApiResult<Buckets> {
        if to < from {
            return Err(ApiError::validation("to must not be before from"));
        }
        let mut dates = Vec::new();
        let mut start = from;
        while start <= to {
            if dates.len() == MAX_BUCKETS {
                return Err(ApiError::validation(format!(
                    "the range makes more than {MAX_BUCKETS} buckets; use larger buckets or a shorter range"
                )));
            }
            let (_, next) = period.bounds(start).ok_or_else(out_of_range)?;
            dates.push((start, next.pred_opt().ok_or_else(out_of_range)?.min(to)));
            start = next;
        }
        let starts = dates
            .iter()
            .map(|(first, _)| local_midnight(*first, timezone))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(out_of_range)?;
        let end = to.succ_opt().and_then(|next| local_midnight(next, timezone)).ok_or_else(out_of_range)?;
        Ok(Buckets { dates, starts, end })
    }

    fn window(&self) -> Window {
        Window { from: self.starts.first().copied().unwrap_or(self.end), to: self.end }
    }

    fn index_of(&self, at: NaiveDateTime) -> Option<usize> {
        if at >= self.end {
            return None;
        }
        self.starts.partition_point(|start| *start <= at).checked_sub(1)
    }
}

fn stats(
    conn: &mut DbConnection,
    unit_id: String,
    communities: &[Unit],
    timezone: Tz,
    query: &StatsQuery,
    now: DateTime<Utc>,
) -> ApiResult<StatsResponse> {
    let to = query.to.unwrap_or_else(|| now.with_timezone(&timezone).date_naive());
    let from = match query.from {
        Some(from) => from,
        None => to.checked_sub_days(Days::new(DEFAULT_DAYS - 1)).ok_or_else(out_of_range)?,
    };
    let bucket = query.bucket.unwrap_or(StatsBucket::Day);
    let buckets = Buckets::new(from, to, bucket.calendar(), timezone)?;
    let window = buckets.window();
    let ids: Vec<String> = communities.iter().map(|community| community.id.clone()).collect();
    let mut figures = vec![Figures::default(); buckets.dates.len()];

    let mut rule_points: HashMap<(String, String), i64> = HashMap::new();
    for leg in OutsideLeg::in_window(conn, &ids, window)? {
        let Some(figures) = buckets.index_of(leg.at).and_then(|index| figures.get_mut(index)) else { continue };
        match leg.account_kind() {
            Some(AccountKind::Issuance) => {
                figures.awarded -= leg.amount;
                if let Some(code) = leg.rule_code {
                    *rule_points.entry((leg.community_id, code)).or_default() -= leg.amount;
                }
            }
            Some(AccountKind::Penalty) => figures.deducted += leg.amount,
            Some(AccountKind::Expiry) => figures.expired += leg.amount,
            Some(AccountKind::Redemption) => figures.redeemed += leg.amount,
            _ => {}
        }
    }
    // Only these four flows change what residents hold (holds and refunds move points between their hands).
    let mut outstanding = OutsideLeg::liability_at(conn, &ids, window.from)?;
    for figures in &mut figures {
        outstanding += figures.awarded - figures.deducted - figures.expired - figures.redeemed;
        figures.outstanding = outstanding;
    }

    let check_ins = model::check_ins(conn, &ids, window)?;
    for (at, _) in &check_ins {
        if let Some(figures) = buckets.index_of(*at).and_then(|index| figures.get_mut(index)) {
            figures.attendance += 1;
        }
    }
    let mut active: Vec<HashSet<String>> = vec![HashSet::new(); figures.len()];
    let mut active_in_range = HashSet::new();
    for (at, user_id) in model::resident_transactions(conn, &ids, window)?.into_iter().chain(check_ins) {
        if let Some(residents) = buckets.index_of(at).and_then(|index| active.get_mut(index)) {
            residents.insert(user_id.clone());
            active_in_range.insert(user_id);
        }
    }
    for (figures, residents) in figures.iter_mut().zip(&active) {
        figures.active_residents = count(residents.len());
    }
    for at in model::completed_activities(conn, &ids, window)? {
        if let Some(figures) = buckets.index_of(at).and_then(|index| figures.get_mut(index)) {
            figures.activities_held += 1;
        }
    }
    for (at, status) in model::claim_decisions(conn, &ids, window)? {
        if let Some(figures) = buckets.index_of(at).and_then(|index| figures.get_mut(index)) {
            match ClaimStatus::parse(&status) {
                Some(ClaimStatus::Approved) => figures.claims_approved += 1,
                Some(ClaimStatus::Rejected) => figures.claims_rejected += 1,
                _ => {}
            }
        }
    }

    let totals = Figures {
        outstanding,
        active_residents: count(active_in_range.len()),
        ..figures.iter().fold(Figures::default(), |sum, figures| Figures {
            awarded: sum.awarded + figures.awarded,
            deducted: sum.deducted + figures.deducted,
            redeemed: sum.redeemed + figures.redeemed,
            expired: sum.expired + figures.expired,
            activities_held: sum.activities_held + figures.activities_held,
            attendance: sum.attendance + figures.attendance,
            claims_approved: sum.claims_approved + figures.claims_approved,
            claims_rejected: sum.claims_rejected + figures.claims_rejected,
            ..sum
        })
    };
    Ok(StatsResponse {
        unit_id,
        timezone: timezone.name().to_owned(),
        from,
        to,
        bucket,
        buckets: buckets
            .dates
            .into_iter()
            .zip(figures)
            .map(|((start, end), figures)| BucketFigures { start, end, figures })
            .collect(),
        totals,
        top_rules: top_rules(conn, &ids, rule_points)?,
        top_rewards: top_rewards(Handover::in_window(conn, &ids, window)?),
    })
}

/// The rules that brought the most points; those whose awards were all reversed are left out.
fn top_rules(
    conn: &mut DbConnection,
    community_ids: &[String],
    points: HashMap<(String, String), i64>,
) -> ApiResult<Vec<TopRule>> {
    let names: HashMap<(String, String), String> = model::rule_names(conn, community_ids)?
        .into_iter()
        .map(|(community_id, code, name)| ((community_id, code), name))
        .collect();
    let mut rules: Vec<((String, String), i64)> = points.into_iter().filter(|(_, points)| *points > 0).collect();
    rules.sort_by(|(a, a_points), (b, b_points)| (Reverse(a_points), a).cmp(&(Reverse(b_points), b)));
    Ok(rules
        .into_iter()
        .take(TOP)
        .map(|(key, points)| {
            let name = names.get(&key).cloned();
            let (community_id, code) = key;
            TopRule { community_id, code, name, points }
        })
        .collect())
}

/// The rewards most items of which were handed over.
fn top_rewards(handovers: Vec<Handover>) -> Vec<TopReward> {
    let mut rewards: HashMap<(String, String), TopReward> = HashMap::new();
    for handover in handovers {
        let reward =
            rewards.entry((handover.community_id.clone(), handover.reward_id.clone())).or_insert_with(|| TopReward {
                community_id: handover.community_id,
                reward_id: handover.reward_id,
                name: handover.reward_name,
                quantity: 0,
                points: 0,
            });
        reward.quantity += i64::from(handover.quantity);
        reward.points += handover.points;
    }
    let mut rewards: Vec<TopReward> = rewards.into_values().collect();
    rewards.sort_by(|a, b| {
        (Reverse(a.quantity), Reverse(a.points), &a.reward_id).cmp(&(
            Reverse(b.quantity),
            Reverse(b.points),
            &b.reward_id,
        ))
    });
    rewards.truncate(TOP);
    rewards
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_scores_share_a_rank_and_the_next_rank_skips() {
        assert_eq!(ranks([50, 30, 30, 10, 10, 10, 5]), vec![1, 2, 2, 4, 4, 4, 7]);
        assert_eq!(ranks([7, 7]), vec![1, 1]);
        assert_eq!(ranks([]), Vec::<i64>::new());
    }

    #[test]
    fn masks_keep_the_first_character_only() {
        assert_eq!(mask("张桂兰"), "张**");
        assert_eq!(mask("Li"), "L**");
        assert_eq!(mask(""), "");
    }

    #[test]
    fn buckets_follow_the_calendar_and_are_clipped_to_the_range() {
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let shanghai = chrono_tz::Asia::Shanghai;
        let weeks = Buckets::new(date("2026-11-27"), date("2026-12-09"), Period::Week, shanghai).unwrap();
        let dates: Vec<String> = weeks.dates.iter().map(|(first, last)| format!("{first}..{last}")).collect();
        assert_eq!(dates, ["2026-11-27..2026-11-29", "2026-11-30..2026-12-06", "2026-12-07..2026-12-09"]);
        assert_eq!(weeks.starts[1].to_string(), "2026-11-29 16:00:00");
        let at = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(weeks.index_of(at("2026-11-29 15:59:59")), Some(0));
        assert_eq!(weeks.index_of(at("2026-11-29 16:00:00")), Some(1));
        assert_eq!(weeks.index_of(at("2026-12-09 16:00:00")), None);
        assert_eq!(weeks.index_of(at("2026-11-26 15:59:59")), None);

        assert!(Buckets::new(date("2026-01-01"), date("2027-02-04"), Period::Day, shanghai).is_ok());
        assert!(Buckets::new(date("2026-01-01"), date("2027-02-05"), Period::Day, shanghai).is_err(), "401 days");
        assert!(Buckets::new(date("2026-01-02"), date("2026-01-01"), Period::Day, shanghai).is_err());
    }
}
