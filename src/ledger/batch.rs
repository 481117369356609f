//! Awards to one community that arrive together, written together.
//!
//! Group commit ([`crate::db::group_commit`]) shares one COMMIT among the writes of a batch,
//! but each write still runs its own statements: 18 for an award on PostgreSQL. Awards to one
//! community that queue while its writer is busy are taken instead by one write, which checks
//! them all in memory under one ledger lock and writes them a statement per table: the
//! transactions, their postings, lots, stored answers and audit records each in one INSERT
//! (on SQLite, which has no round trips to save, a statement per row), one UPDATE per
//! resident credited and one for the issuance account, the chain head once.
//! Each award is answered after the COMMIT, as any write is.
//!
//! This is a fast path for the common case, not a second set of rules. An award it cannot
//! vouch for in memory (the caller's rights, a key with an answer already or sent twice, a
//! rule with caps or not for earning, points out of the rule's range, a beneficiary who is
//! not an active resident with an account, a possible conflict of interest) is handed back
//! to run alone on the usual path ([`crate::ledger::service::award`]), which answers it, refusals included.
//! So is every award of a group whose write failed or was rolled back. Every award carries an
//! `Idempotency-Key`, so one that runs again alone is never applied twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::IntCounter;
use tokio::sync::oneshot;

use crate::audit::Trail;
use crate::audit::model::AuditRecord;
use crate::db::{Database, DbConnection};
use crate::error::ApiResult;
use crate::idempotency::model::IdempotencyRecord;
use crate::idempotency::{self, Reply};
use crate::ledger::api::PostingResponse;
use crate::ledger::model::{Account, AccountKind, LedgerHead, LedgerTransaction, Lot};
use crate::ledger::service::{
    Award, AwardRequestChecked, LotEffect, award_transaction, created, is_conflict_of_interest, is_staff, link,
};
use crate::rules::model::{Rule, RuleDirection};
use crate::rules::service::{check_range, resolve};
use crate::units::model::{Membership, Unit, UnitKind};

/// Awards one write takes at most: each is a transaction row, a stored answer and an audit record.
const MAX_AWARDS: usize = 64;
/// Awards to more residents than this run alone: they are set-shaped already (one transaction,
/// a posting per resident), and a group of them would make statements of thousands of rows.
const MAX_LINES: usize = 16;

/// The awards waiting for their community's next group write.
pub struct AwardBatches {
    /// Community id → awards in the order they came.
    waiting: Mutex<HashMap<String, Vec<QueuedAward>>>,
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
    request: Arc<AwardRequestChecked>,
    trail: Trail,
    /// Dropped unanswered: the award was not written, and runs alone.
    reply: oneshot::Sender<Written>,
}

/// The write that takes a group of awards: a write of the group commit.
struct GroupWrite {
    batches: Arc<AwardBatches>,
    community_id: String,
    ran: AtomicBool,
}

impl GroupWrite {
    fn run(&self, conn: &mut DbConnection) -> ApiResult<Vec<(oneshot::Sender<Written>, Written)>> {
        self.ran.store(true, Ordering::Relaxed);
        self.batches.write_group(conn, &self.community_id)
    }
}

impl Drop for GroupWrite {
    /// A write that never ran (refused by a full queue or a failed pool, or dropped with its
    /// task) leaves its awards waiting: they run alone.
    fn drop(&mut self) {
        if !self.ran.load(Ordering::Relaxed) {
            drop(self.batches.take(&self.community_id));
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

    /// Writes `request` together with the other awards to its community that queue with it,
    /// and answers after the COMMIT. None: it was not written, and has to run alone.
    pub async fn write(self: &Arc<Self>, db: &Database, request: &Arc<AwardRequestChecked>) -> Option<Reply> {
        if request.lines.len() > MAX_LINES || request.scope.key().is_none() {
            return None;
        }
        let trail = Trail::current();
        let (reply, answer) = oneshot::channel();
        let community_id = request.community_id.clone();
        let starts_group = {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            let queue = waiting.entry(community_id.clone()).or_default();
            queue.push(QueuedAward { request: Arc::clone(request), trail: trail.clone(), reply });
            // Every MAX_AWARDS awards waiting need a write of their own to take them.
            (queue.len() - 1).is_multiple_of(MAX_AWARDS)
        };
        if starts_group {
            let group = Arc::new(GroupWrite { batches: Arc::clone(self), community_id, ran: AtomicBool::new(false) });
            let db = db.clone();
            // A task of its own: the group must be written even if this request goes away.
            tokio::spawn(async move {
                let (lane, counts) = (group.community_id.clone(), group.batches.counts.clone());
                // On an error, the awards it took went unanswered, and run alone.
                let Ok(answers) = db.write(&lane, move |conn| group.run(conn)).await else { return };
                if !answers.is_empty() {
                    counts.groups.inc();
                    counts.awards.inc_by(answers.len() as u64);
                }
                for (reply, written) in answers {
                    // A caller that went away still had its award written.
                    let _ = reply.send(written);
                }
            });
        }
        let written = answer.await.ok()?;
        if written.audited {
            trail.appended(written.reply.status());
        }
        Some(written.reply)
    }

    /// The next awards waiting for `community_id`, but those whose callers went away.
    fn take(&self, community_id: &str) -> Vec<QueuedAward> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(queue) = waiting.get_mut(community_id) else { return Vec::new() };
        let taken: Vec<QueuedAward> = queue.drain(..queue.len().min(MAX_AWARDS)).collect();
        if queue.is_empty() {
            waiting.remove(community_id);
        }
        taken.into_iter().filter(|award| !award.reply.is_closed()).collect()
    }

    /// Takes the awards waiting for the community and writes those it can vouch for; their
    /// answers are to be sent after the COMMIT. The others are dropped here, and run alone.
    fn write_group(
        &self,
        conn: &mut DbConnection,
        community_id: &str,
    ) -> ApiResult<Vec<(oneshot::Sender<Written>, Written)>> {
        let awards = self.take(community_id);
        if awards.is_empty() {
            return Ok(Vec::new());
        }
        let Some(community) = Unit::find(conn, community_id)?.filter(|unit| unit.kind() == UnitKind::Community) else {
            return Ok(Vec::new());
        };
        let mut lock = LedgerHead::lock(conn, &community.id)?;
        let checks = Checks::read(conn, &community, &awards)?;
        let issuance = Account::system(conn, &community.id, AccountKind::Issuance)?;

        let mut head = lock.head().clone();
        let (mut transactions, mut postings, mut lots) = (Vec::new(), Vec::new(), Vec::new());
        // Account id → (points, of which earned); the issuance account's only ever go out.
        let mut credits: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut answers = Vec::new();
        for award in awards {
            let Some((rule, residents)) = checks.vouch_for(&award.request) else { continue };
            let request = &award.request;
            let checked =
                Award { memo: request.memo.clone(), actor: &request.principal, cause: None, lines: residents };
            let (new, legs) = award_transaction(&community, rule, checked, issuance.clone(), request.now);
            let (transaction, transaction_postings) = link(&head, new, &legs);
            for leg in &legs {
                let credit = credits.entry(leg.account.id.clone()).or_default();
                *credit = (credit.0 + leg.amount, credit.1 + leg.earned);
                if let Some(LotEffect::NewLot { expires_at }) = leg.lots {
                    lots.push(Lot::new(&leg.account.id, &transaction, leg.amount, expires_at));
                }
            }
            let responses = transaction_postings
                .iter()
                .zip(&legs)
                .map(|(posting, leg)| PostingResponse::new(posting, &leg.account))
                .collect();
            head.sequence = transaction.sequence;
            head.hash = transaction.hash.clone();
            let reply = created(transaction.clone(), responses)?;
            transactions.push(transaction);
            postings.extend(transaction_postings);
            answers.push((award, reply));
        }
        if answers.is_empty() {
            return Ok(Vec::new());
        }

        for (account_id, (amount, earned)) in &credits {
            Account::credit(conn, account_id, *amount, *earned, 0)?;
        }
        LedgerTransaction::insert_all(conn, &transactions, &postings)?;
        Lot::insert_all(conn, &lots)?;
        LedgerHead::advance(conn, &mut lock, head.sequence, head.hash)?;
        let stored: Vec<_> =
            answers.iter().map(|(award, reply)| (&award.request.scope, award.request.now, reply)).collect();
        idempotency::store_all(conn, &stored)?;
        let records: Vec<_> =
            answers.iter().map(|(award, reply)| award.trail.new_record(reply.status(), reply.location())).collect();
        let audited: Vec<bool> = records.iter().map(Option::is_some).collect();
        AuditRecord::insert_all_in(conn, &community, records.into_iter().flatten().collect())?;
        Ok(answers
            .into_iter()
            .zip(audited)
            .map(|((award, reply), audited)| (award.reply, Written { reply, audited }))
            .collect())
    }
}

/// What a group's awards are checked against, read once for all of them.
struct Checks<'a> {
    community: &'a Unit,
    /// Keys with an answer stored already: their requests are replays, or reuses.
    answered: HashSet<(String, String)>,
    /// Keys sent more than once in the group: their awards run alone, where the first to
    /// commit answers and the others replay it (or are refused, if their requests differ).
    repeated: HashSet<(String, String)>,
    /// Rule code → the rule, if awards may use it without counting its uses.
    rules: HashMap<String, Option<Rule>>,
    /// User id → their membership of the community, and their resident account if open.
    members: HashMap<String, (Membership, Option<Account>)>,
}

impl<'a> Checks<'a> {
    fn read(conn: &mut DbConnection, community: &'a Unit, awards: &[QueuedAward]) -> ApiResult<Self> {
        let keys: Vec<(&str, &str)> = awards.iter().filter_map(|award| award.request.scope.key()).collect();
        let answered = IdempotencyRecord::existing(conn, &keys)?.into_iter().collect();
        let mut seen = HashSet::new();
        let repeated = keys
            .iter()
            .filter(|key| !seen.insert(**key))
            .map(|(user_id, key)| ((*user_id).to_owned(), (*key).to_owned()))
            .collect();
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
        Ok(Checks { community, answered, repeated, rules, members })
    }

    /// The award's rule and residents with their points, if it passes every check the single
    /// path makes; None if that path has to answer it. A key sent twice passes once.
    fn vouch_for(&self, request: &AwardRequestChecked) -> Option<(&Rule, Vec<(Account, i64)>)> {
        let (user_id, key) = request.scope.key()?;
        let key = (user_id.to_owned(), key.to_owned());
        if self.answered.contains(&key) || self.repeated.contains(&key) {
            return None;
        }
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
