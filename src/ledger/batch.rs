//! Awards that arrive together, written together.
//!
//! Group commit ([`crate::db::group_commit`]) shares one COMMIT among the writes of a batch,
//! but each write still runs its own statements: 18 for an award on PostgreSQL. Awards that
//! queue in one writer lane while it is busy, of any community, are taken instead by one
//! write, which checks them all in memory, each community's under its ledger lock, and writes
//! them a statement per table: the transactions, their postings, lots, stored answers and
//! audit records each in one INSERT (on SQLite, which has no round trips to save, a statement
//! per row), and the credits and the chain heads in one UPDATE each (on SQLite, one per row).
//! Each award is answered after the COMMIT, as any write is.
//!
//! An award takes its seat in the lane of its community as any write does, and keeps it until
//! its group's batch is over; so while it is in flight every write of its community goes to
//! that lane, and two lanes never hold locks of one community at once. Within a group, the
//! communities are locked in the order of their ids.
//!
//! This is a fast path for the common case, not a second set of rules. An award it cannot
//! vouch for in memory (the caller's rights, a key with an answer already or sent twice, a
//! rule with caps or not for earning, points out of the rule's range, a beneficiary who is
//! not an active resident with an account, a possible conflict of interest) is handed back
//! to run alone on the usual path ([`crate::ledger::service::award`]), which answers it,
//! refusals included. So is every award of a group whose write failed or was rolled back.
//! Every award carries an `Idempotency-Key`, so one that runs again alone is never applied twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::IntCounter;
use tokio::sync::oneshot;

use crate::audit::Trail;
use crate::audit::model::AuditRecord;
use crate::db::group_commit::Seat;
use crate::db::{Database, DbConnection};
use crate::error::ApiResult;
use crate::idempotency::model::IdempotencyRecord;
use crate::idempotency::{self, Reply};
use crate::ledger::api::PostingResponse;
use crate::ledger::model::{Account, AccountKind, LedgerHead, LedgerLock, LedgerTransaction, Lot, Posting};
use crate::ledger::service::{
    Award, AwardRequestChecked, Leg, LotEffect, award_transaction, created, is_conflict_of_interest, is_staff, link,
};
use crate::rules::model::{Rule, RuleDirection};
use crate::rules::service::{check_range, resolve};
use crate::units::model::{Membership, Unit, UnitKind};

/// Awards one write takes at most: each is a transaction row, a stored answer and an audit record.
const MAX_AWARDS: usize = 64;
/// Awards to more residents than this run alone: they are set-shaped already (one transaction,
/// a posting per resident), and a group of them would make statements of thousands of rows.
const MAX_LINES: usize = 16;

/// The awards waiting for their lane's next group write.
pub struct AwardBatches {
    /// Writer lane → awards in the order they came.
    waiting: Mutex<HashMap<usize, Vec<QueuedAward>>>,
    counts: GroupCounts,
}

/// Committed group writes and the awards they wrote, registered with the server's
/// metrics as they are: awards ÷ groups is the mean group size.
#[derive(Clone)]
pub struct GroupCounts {
    pub groups: IntCounter,
    pub awards: IntCounter,
}

struct QueuedAward {
    award: PendingAward,
    /// Held until the group's batch is over.
    seat: Seat,
}

struct PendingAward {
    request: Arc<AwardRequestChecked>,
    trail: Trail,
    /// Dropped unanswered: the award was not written, and runs alone.
    reply: oneshot::Sender<Written>,
}

/// The write that takes the awards waiting in a lane: a write of the group commit.
struct GroupWrite {
    batches: Arc<AwardBatches>,
    lane: usize,
    ran: AtomicBool,
    /// The seats of the awards it took, given up with it: once its batch is over and answered.
    seats: Mutex<Vec<Seat>>,
}

impl GroupWrite {
    fn run(&self, conn: &mut DbConnection) -> ApiResult<Vec<(oneshot::Sender<Written>, Written)>> {
        self.ran.store(true, Ordering::Relaxed);
        let mut awards = Vec::new();
        let mut seats = self.seats.lock().unwrap_or_else(PoisonError::into_inner);
        for queued in self.batches.take(self.lane) {
            awards.push(queued.award);
            seats.push(queued.seat);
        }
        drop(seats);
        self.batches.write_group(conn, awards)
    }
}

impl Drop for GroupWrite {
    /// A write that never ran (refused by a full queue or a failed pool, or dropped with its
    /// task) leaves its awards waiting: they run alone.
    fn drop(&mut self) {
        if !self.ran.load(Ordering::Relaxed) {
            drop(self.batches.take(self.lane));
        }
    }
}

/// An award written by a group, as its request is answered once the group has committed.
struct Written {
    reply: Reply,
    /// Its audit record was written with it.
    audited: bool,
}

impl AwardBatches {
    pub fn new() -> prometheus::Result<Self> {
        let counts = GroupCounts {
            groups: IntCounter::new("ledger_award_groups_total", "Committed writes of awards queued together")?,
            awards: IntCounter::new(
                "ledger_awards_grouped_total",
                "Awards committed by group writes; the others ran alone. Divided by ledger_award_groups_total, the mean group size",
            )?,
        };
        Ok(AwardBatches { waiting: Mutex::default(), counts })
    }

    pub fn counts(&self) -> &GroupCounts {
        &self.counts
    }

    /// Writes `request` together with the other awards that queue with it in its lane, and
    /// answers after the COMMIT. None: it was not written, and has to run alone.
    pub async fn write(self: &Arc<Self>, db: &Database, request: &Arc<AwardRequestChecked>) -> Option<Reply> {
        if request.lines.len() > MAX_LINES || request.scope.key().is_none() {
            return None;
        }
        let trail = Trail::current();
        let (reply, answer) = oneshot::channel();
        let seat = db.seat(&request.community_id);
        let lane = seat.lane();
        let starts_group = {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            let queue = waiting.entry(lane).or_default();
            let award = PendingAward { request: Arc::clone(request), trail: trail.clone(), reply };
            queue.push(QueuedAward { award, seat });
            // Every MAX_AWARDS awards waiting need a write of their own to take them.
            (queue.len() - 1).is_multiple_of(MAX_AWARDS)
        };
        if starts_group {
            let batches = Arc::clone(self);
            let group = GroupWrite { batches, lane, ran: AtomicBool::new(false), seats: Mutex::default() };
            let (group, db) = (Arc::new(group), db.clone());
            // A task of its own: the group must be written even if this request goes away.
            tokio::spawn(async move {
                let counts = group.batches.counts.clone();
                let running = Arc::clone(&group);
                // On an error, the awards it took went unanswered, and run alone.
                let Ok(answers) = db.write_in(lane, move |conn| running.run(conn)).await else { return };
                if !answers.is_empty() {
                    counts.groups.inc();
                    counts.awards.inc_by(answers.len() as u64);
                }
                for (reply, written) in answers {
                    // A caller that went away still had its award written.
                    let _ = reply.send(written);
                }
                // The seats go with the group, now that its awards are answered.
                drop(group);
            });
        }
        let written = answer.await.ok()?;
        if written.audited {
            trail.appended(written.reply.status());
        }
        Some(written.reply)
    }

    /// The next awards waiting in `lane`, but those whose callers went away.
    fn take(&self, lane: usize) -> Vec<QueuedAward> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(queue) = waiting.get_mut(&lane) else { return Vec::new() };
        let taken: Vec<QueuedAward> = queue.drain(..queue.len().min(MAX_AWARDS)).collect();
        if queue.is_empty() {
            waiting.remove(&lane);
        }
        taken.into_iter().filter(|queued| !queued.award.reply.is_closed()).collect()
    }

    /// Writes the awards it can vouch for; their answers are to be sent after the COMMIT. The
    /// others are dropped here, and run alone.
    fn write_group(
        &self,
        conn: &mut DbConnection,
        awards: Vec<PendingAward>,
    ) -> ApiResult<Vec<(oneshot::Sender<Written>, Written)>> {
        if awards.is_empty() {
            return Ok(Vec::new());
        }
        // A key answered already or sent twice: replays and reuses are the single path's to answer.
        let keys: Vec<(&str, &str)> = awards.iter().filter_map(|award| award.request.scope.key()).collect();
        let mut alone: HashSet<(String, String)> = IdempotencyRecord::existing(conn, &keys)?.into_iter().collect();
        let mut seen = HashSet::new();
        alone.extend(
            keys.iter().filter(|key| !seen.insert(**key)).map(|(user, key)| ((*user).to_owned(), (*key).to_owned())),
        );
        let mut by_community: BTreeMap<String, Vec<PendingAward>> = BTreeMap::new();
        for award in awards {
            let Some((user_id, key)) = award.request.scope.key() else { continue };
            if !alone.contains(&(user_id.to_owned(), key.to_owned())) {
                by_community.entry(award.request.community_id.clone()).or_default().push(award);
            }
        }

        let mut group = Group::default();
        // No other lane holds these communities' locks (their awards' seats keep them in this one);
        // taking them in the order of their ids is one rule fewer to reason about.
        for (community_id, awards) in by_community {
            let Some(community) = Unit::find(conn, &community_id)?.filter(|unit| unit.kind() == UnitKind::Community)
            else {
                continue;
            };
            let lock = LedgerHead::lock(conn, &community.id)?;
            let checks = Checks::read(conn, &community, &awards)?;
            let issuance = Account::system(conn, &community.id, AccountKind::Issuance)?;
            let mut head = lock.head().clone();
            for award in awards {
                let Some((rule, residents)) = checks.vouch_for(&award.request) else { continue };
                let request = &award.request;
                let checked =
                    Award { memo: request.memo.clone(), actor: &request.principal, cause: None, lines: residents };
                let (new, legs) = award_transaction(&community, rule, checked, issuance.clone(), request.now);
                let (transaction, postings) = link(&head, new, &legs);
                head.sequence = transaction.sequence;
                head.hash = transaction.hash.clone();
                group.add(award, transaction, postings, &legs)?;
            }
            if head.sequence != lock.head().sequence {
                group.heads.push((lock, head));
            }
            group.communities.push(community);
        }
        group.write(conn)
    }
}

/// What a group write writes, gathered community by community.
#[derive(Default)]
struct Group {
    communities: Vec<Unit>,
    /// Each community's lock, with its chain head after the group's transactions.
    heads: Vec<(LedgerLock, LedgerHead)>,
    transactions: Vec<LedgerTransaction>,
    postings: Vec<Posting>,
    lots: Vec<Lot>,
    /// Account id → (points, of which earned); the issuance accounts' only ever go out.
    credits: BTreeMap<String, (i64, i64)>,
    answers: Vec<(PendingAward, Reply)>,
}

impl Group {
    fn add(
        &mut self,
        award: PendingAward,
        transaction: LedgerTransaction,
        postings: Vec<Posting>,
        legs: &[Leg],
    ) -> ApiResult<()> {
        for leg in legs {
            let credit = self.credits.entry(leg.account.id.clone()).or_default();
            *credit = (credit.0 + leg.amount, credit.1 + leg.earned);
            if let Some(LotEffect::NewLot { expires_at }) = leg.lots {
                self.lots.push(Lot::new(&leg.account.id, &transaction, leg.amount, expires_at));
            }
        }
        let responses =
            postings.iter().zip(legs).map(|(posting, leg)| PostingResponse::new(posting, &leg.account)).collect();
        let reply = created(transaction.clone(), responses)?;
        self.transactions.push(transaction);
        self.postings.extend(postings);
        self.answers.push((award, reply));
        Ok(())
    }

    fn write(self, conn: &mut DbConnection) -> ApiResult<Vec<(oneshot::Sender<Written>, Written)>> {
        if self.answers.is_empty() {
            return Ok(Vec::new());
        }
        let credits: Vec<(&str, i64, i64)> =
            self.credits.iter().map(|(account_id, (amount, earned))| (account_id.as_str(), *amount, *earned)).collect();
        Account::credit_all(conn, &credits)?;
        LedgerTransaction::insert_all(conn, &self.transactions, &self.postings)?;
        Lot::insert_all(conn, &self.lots)?;
        LedgerHead::advance_all(conn, self.heads)?;
        let mut stored: Vec<_> =
            self.answers.iter().map(|(award, reply)| (&award.request.scope, award.request.now, reply)).collect();
        // A key sent to two communities at once may be written by two lanes: in one order, they
        // wait for each other instead of deadlocking.
        stored.sort_by(|a, b| a.0.key().cmp(&b.0.key()));
        idempotency::store_all(conn, &stored)?;
        let records: Vec<_> = self
            .answers
            .iter()
            .map(|(award, reply)| award.trail.new_record(reply.status(), reply.location()))
            .collect();
        let audited: Vec<bool> = records.iter().map(Option::is_some).collect();
        AuditRecord::insert_all_in(conn, &self.communities, records.into_iter().flatten().collect())?;
        Ok(self
            .answers
            .into_iter()
            .zip(audited)
            .map(|((award, reply), audited)| (award.reply, Written { reply, audited }))
            .collect())
    }
}

/// What a community's awards in a group are checked against, read once for all of them.
struct Checks<'a> {
    community: &'a Unit,
    /// Rule code → the rule, if awards may use it without counting its uses.
    rules: HashMap<String, Option<Rule>>,
    /// User id → their membership of the community, and their resident account if open.
    members: HashMap<String, (Membership, Option<Account>)>,
}

impl<'a> Checks<'a> {
    fn read(conn: &mut DbConnection, community: &'a Unit, awards: &[PendingAward]) -> ApiResult<Self> {
        let mut rules = HashMap::new();
        for award in awards {
            if !rules.contains_key(&award.request.rule_code) {
                // A rule that cannot be used this way is the single path's to refuse.
                let rule = resolve(conn, community, &award.request.rule_code, RuleDirection::Earn)
                    .ok()
                    .filter(|rule| !rule.has_caps());
                rules.insert(award.request.rule_code.clone(), rule);
            }
        }
        let users: HashSet<&str> =
            awards.iter().flat_map(|award| award.request.lines.iter().map(|(user_id, _)| user_id.as_str())).collect();
        let users: Vec<&str> = users.into_iter().collect();
        let members = Account::memberships_and_residents(conn, &community.id, &users)?
            .into_iter()
            .map(|(membership, account)| (membership.user_id.clone(), (membership, account)))
            .collect();
        Ok(Checks { community, rules, members })
    }

    /// The award's rule and residents with their points, if it passes every check the single
    /// path makes; None if that path has to answer it.
    fn vouch_for(&self, request: &AwardRequestChecked) -> Option<(&Rule, Vec<(Account, i64)>)> {
        request.principal.authorize(self.community, is_staff, "award points").ok()?;
        let rule = self.rules.get(&request.rule_code)?.as_ref()?;
        let mut residents = Vec::with_capacity(request.lines.len());
        for (user_id, points) in &request.lines {
            let member = self.members.get(user_id);
            let conflict = is_conflict_of_interest(&request.principal, &self.community.id, user_id, || {
                Ok(member.map(|(membership, _)| membership.clone()))
            });
            if conflict.unwrap_or(true) {
                return None;
            }
            let (membership, account) = member?;
            if !membership.is_active_resident() {
                return None;
            }
            let points = points.unwrap_or(rule.default_points);
            check_range(rule, points).ok()?;
            residents.push((account.clone()?, points));
        }
        Some((rule, residents))
    }
}
