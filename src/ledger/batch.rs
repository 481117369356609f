//! Ledger writes that arrive together, written together.
//!
//! Group commit ([`crate::db::group_commit`]) shares one COMMIT among the writes of a batch,
//! but each write still runs its own statements: 18 for an award on PostgreSQL, 20 for an
//! order. Writes of one kind (awards, orders: a [`Grouped`] request) that queue in one writer
//! lane while it is busy, of any community, are taken instead by one write, which checks them
//! all in memory, each community's under its ledger lock, and writes them a statement per
//! table: the transactions, their postings, lots, lot movements, stored answers and audit
//! records each in one INSERT (on SQLite, which has no round trips to save, a statement per
//! row), the balances and the chain heads in one UPDATE each (on SQLite, one per row), then
//! the rows of the kind's own (orders and stock). Each write is answered after the COMMIT, as
//! any write is.
//!
//! A request takes its seat in the lane of its community as any write does, and keeps it
//! until its group's batch is over; so while it is in flight every write of its community goes
//! to that lane, and two lanes never hold locks of one community at once. Within a group, the
//! communities are locked in the order of their ids.
//!
//! This is a fast path for the common case, not a second set of rules. A request the group
//! cannot vouch for in memory (the kinds say which: [`crate::ledger::award_batch`],
//! [`crate::redemptions::batch`]), or one whose key has an answer already or was sent twice,
//! is handed back to run alone on its usual path, which answers it, refusals included. So is
//! every request of a group whose write failed or was rolled back. Every grouped request carries
//! an `Idempotency-Key`, so one that runs again alone is never applied twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use prometheus::IntCounter;
use tokio::sync::oneshot;

use crate::audit::Trail;
use crate::audit::model::AuditRecord;
use crate::db::group_commit::Seat;
use crate::db::{Database, DbConnection};
use crate::error::{ApiError, ApiResult};
use crate::idempotency::model::IdempotencyRecord;
use crate::idempotency::{self, Reply, Scope};
use crate::ledger::api::PostingResponse;
use crate::ledger::model::{
    Account, AccountKind, LedgerHead, LedgerLock, LedgerTransaction, Lot, LotMovement, Posting,
};
use crate::ledger::service::{FIRST_LOTS_PAGE, LOTS_PER_PAGE, Leg, LotEffect, NewTransaction, check_balanced, link};
use crate::units::model::{Unit, UnitKind};

/// Requests one write takes at most: each is a transaction row, a stored answer and an audit record.
const MAX_GROUP: usize = 64;

/// A kind of request that may be written in groups.
pub trait Grouped: Send + Sync + Sized + 'static {
    /// Rows of the kind's own, gathered with the group's ledger rows and written after them.
    type Rows: Default;

    /// The module and the kind, naming its metrics: `{module}_{kind}_groups_total` counts the
    /// committed group writes, `{module}_{kind}s_grouped_total` the requests they wrote, and
    /// `{module}_{kind}_groups_failed_total` the group writes that failed, whose requests ran alone.
    const METRICS: (&'static str, &'static str);

    fn community_id(&self) -> &str;
    /// Its key, with the caller's id: a request without one is not grouped.
    fn scope(&self) -> &Scope;
    fn now(&self) -> DateTime<Utc>;
    /// Whether it may be grouped at all; if not, it runs alone at once.
    fn may_be_grouped(&self) -> bool {
        true
    }

    /// Checks a community's requests of a group, under its ledger lock, and posts those it can
    /// vouch for to `group` after `head`. The others it drops: they run alone.
    fn gather(
        conn: &mut DbConnection,
        community: &Unit,
        head: &mut LedgerHead,
        requests: Vec<Pending<Self>>,
        group: &mut Group<Self>,
    ) -> ApiResult<()>;

    /// Writes the rows of the kind's own, after the ledger's.
    fn write_rows(conn: &mut DbConnection, rows: Self::Rows) -> ApiResult<()>;
}

/// The requests of a kind waiting for their lane's next group write.
pub struct Batches<R: Grouped> {
    /// Writer lane → requests in the order they came.
    waiting: Mutex<HashMap<usize, Vec<Queued<R>>>>,
    counts: GroupCounts,
}

/// Committed group writes and the requests they wrote, registered with the server's
/// metrics as they are: requests ÷ groups is the mean group size. Failed group writes cost
/// their requests a second try alone: more than a few of them is a fault to look into.
#[derive(Clone)]
pub struct GroupCounts {
    pub groups: IntCounter,
    pub requests: IntCounter,
    pub failed: IntCounter,
}

struct Queued<R> {
    pending: Pending<R>,
    /// Held until the group's batch is over.
    seat: Seat,
}

/// A request on its way into a group write.
pub struct Pending<R> {
    pub request: Arc<R>,
    trail: Trail,
    /// Dropped unanswered: the request was not written, and runs alone.
    reply: oneshot::Sender<Written>,
}

/// The write that takes the requests waiting in a lane: a write of the group commit.
struct GroupWrite<R: Grouped> {
    batches: Arc<Batches<R>>,
    lane: usize,
    ran: AtomicBool,
    /// The seats of the requests it took, given up with it: once its batch is over and answered.
    seats: Mutex<Vec<Seat>>,
}

impl<R: Grouped> GroupWrite<R> {
    fn run(&self, conn: &mut DbConnection) -> ApiResult<Vec<(oneshot::Sender<Written>, Written)>> {
        self.ran.store(true, Ordering::Relaxed);
        let mut requests = Vec::new();
        let mut seats = self.seats.lock().unwrap_or_else(PoisonError::into_inner);
        for queued in self.batches.take(self.lane) {
            requests.push(queued.pending);
            seats.push(queued.seat);
        }
        drop(seats);
        write_group(conn, requests)
    }
}

impl<R: Grouped> Drop for GroupWrite<R> {
    /// A write that never ran (refused by a full queue or a failed pool, or dropped with its
    /// task) leaves its requests waiting: they run alone.
    fn drop(&mut self) {
        if !self.ran.load(Ordering::Relaxed) {
            drop(self.batches.take(self.lane));
        }
    }
}

/// A request written by a group, as it is answered once the group has committed.
struct Written {
    reply: Reply,
    /// Its audit record was written with it.
    audited: bool,
}

impl<R: Grouped> Batches<R> {
    pub fn new() -> prometheus::Result<Self> {
        let (module, kind) = R::METRICS;
        let groups = format!("{module}_{kind}_groups_total");
        let requests = IntCounter::new(
            format!("{module}_{kind}s_grouped_total"),
            format!(
                "Requests ({kind}s) committed by group writes; the others ran alone. Divided by {groups}, the mean group size"
            ),
        )?;
        let groups = IntCounter::new(groups, format!("Committed writes of {kind}s queued together"))?;
        let failed = IntCounter::new(
            format!("{module}_{kind}_groups_failed_total"),
            format!("Writes of {kind}s queued together that failed or were rolled back; their {kind}s ran alone"),
        )?;
        let counts = GroupCounts { groups, requests, failed };
        Ok(Batches { waiting: Mutex::default(), counts })
    }

    pub fn counts(&self) -> &GroupCounts {
        &self.counts
    }

    /// Writes `request` together with the others of its kind that queue with it in its lane,
    /// and answers after the COMMIT. None: it was not written, and has to run alone.
    pub async fn write(self: &Arc<Self>, db: &Database, request: &Arc<R>) -> Option<Reply> {
        if !request.may_be_grouped() || request.scope().key().is_none() {
            return None;
        }
        let trail = Trail::current();
        let (reply, answer) = oneshot::channel();
        let seat = db.seat(request.community_id());
        let lane = seat.lane();
        let starts_group = {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            let queue = waiting.entry(lane).or_default();
            let pending = Pending { request: Arc::clone(request), trail: trail.clone(), reply };
            queue.push(Queued { pending, seat });
            // Every MAX_GROUP requests waiting need a write of their own to take them.
            (queue.len() - 1).is_multiple_of(MAX_GROUP)
        };
        if starts_group {
            let batches = Arc::clone(self);
            let group = GroupWrite { batches, lane, ran: AtomicBool::new(false), seats: Mutex::default() };
            let (group, db) = (Arc::new(group), db.clone());
            // A task of its own: the group must be written even if this request goes away.
            tokio::spawn(async move {
                let counts = group.batches.counts.clone();
                let running = Arc::clone(&group);
                // On an error, the requests it took went unanswered, and run alone.
                let Ok(answers) = db.write_in(lane, move |conn| running.run(conn)).await else {
                    counts.failed.inc();
                    return;
                };
                if !answers.is_empty() {
                    counts.groups.inc();
                    counts.requests.inc_by(answers.len() as u64);
                }
                for (reply, written) in answers {
                    // A caller that went away still had its request written.
                    let _ = reply.send(written);
                }
                // The seats go with the group, now that its requests are answered.
                drop(group);
            });
        }
        let written = answer.await.ok()?;
        if written.audited {
            trail.appended(written.reply.status());
        }
        Some(written.reply)
    }

    /// The next requests waiting in `lane`, but those whose callers went away.
    fn take(&self, lane: usize) -> Vec<Queued<R>> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(queue) = waiting.get_mut(&lane) else { return Vec::new() };
        let taken: Vec<Queued<R>> = queue.drain(..queue.len().min(MAX_GROUP)).collect();
        if queue.is_empty() {
            waiting.remove(&lane);
        }
        taken.into_iter().filter(|queued| !queued.pending.reply.is_closed()).collect()
    }
}

/// Writes the requests the group can vouch for; their answers are to be sent after the COMMIT.
/// The others are dropped here, and run alone.
fn write_group<R: Grouped>(
    conn: &mut DbConnection,
    requests: Vec<Pending<R>>,
) -> ApiResult<Vec<(oneshot::Sender<Written>, Written)>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    // A key answered already or sent twice: replays and reuses are the single path's to answer.
    let keys: Vec<(&str, &str)> = requests.iter().filter_map(|pending| pending.request.scope().key()).collect();
    let mut alone: HashSet<(String, String)> = IdempotencyRecord::existing(conn, &keys)?.into_iter().collect();
    let mut seen = HashSet::new();
    alone.extend(
        keys.iter().filter(|key| !seen.insert(**key)).map(|(user, key)| ((*user).to_owned(), (*key).to_owned())),
    );
    let mut by_community: BTreeMap<String, Vec<Pending<R>>> = BTreeMap::new();
    for pending in requests {
        let Some((user_id, key)) = pending.request.scope().key() else { continue };
        if !alone.contains(&(user_id.to_owned(), key.to_owned())) {
            by_community.entry(pending.request.community_id().to_owned()).or_default().push(pending);
        }
    }

    let mut group = Group::default();
    // No other lane holds these communities' locks (their requests' seats keep them in this one);
    // taking them in the order of their ids is one rule fewer to reason about.
    for (community_id, requests) in by_community {
        let Some(community) = Unit::find(conn, &community_id)?.filter(|unit| unit.kind() == UnitKind::Community) else {
            continue;
        };
        let lock = LedgerHead::lock(conn, &community.id)?;
        let mut head = lock.head().clone();
        R::gather(conn, &community, &mut head, requests, &mut group)?;
        if head.sequence != lock.head().sequence {
            group.heads.push((lock, head));
        }
        group.communities.push(community);
    }
    group.write(conn)
}

/// What a group write writes, gathered community by community.
pub struct Group<R: Grouped> {
    communities: Vec<Unit>,
    /// Each community's lock, with its chain head after the group's transactions.
    heads: Vec<(LedgerLock, LedgerHead)>,
    transactions: Vec<LedgerTransaction>,
    postings: Vec<Posting>,
    lots: Vec<Lot>,
    /// Account id → (points, of which earned), unguarded: credits, and what system accounts give.
    credits: BTreeMap<String, (i64, i64)>,
    /// Resident account id → (points taken from the balance, of which held for an order).
    debits: BTreeMap<String, (i64, i64)>,
    /// Lot id → points taken from it.
    lots_taken: BTreeMap<String, i64>,
    movements: Vec<LotMovement>,
    /// The kind's own rows.
    pub rows: R::Rows,
    answers: Vec<(Pending<R>, Reply)>,
}

impl<R: Grouped> Default for Group<R> {
    fn default() -> Self {
        Group {
            communities: Vec::new(),
            heads: Vec::new(),
            transactions: Vec::new(),
            postings: Vec::new(),
            lots: Vec::new(),
            credits: BTreeMap::new(),
            debits: BTreeMap::new(),
            lots_taken: BTreeMap::new(),
            movements: Vec::new(),
            rows: R::Rows::default(),
            answers: Vec::new(),
        }
    }
}

impl<R: Grouped> Group<R> {
    /// Adds a ledger transaction of `legs` after `head`, as [`crate::ledger::service::post`] writes
    /// one: the caller has checked that every debit is covered, and `taken` says from which lots.
    pub fn post(
        &mut self,
        head: &mut LedgerHead,
        new: NewTransaction,
        legs: &[Leg],
        taken: Vec<(String, i64)>,
    ) -> ApiResult<(LedgerTransaction, Vec<PostingResponse>)> {
        check_balanced(legs)?;
        // What `post` does and a group does not: lifetime spent figures, debits of earned points,
        // preferred lots, lots given back. A kind that needs them adds them here first.
        let is_debit = |leg: &Leg| leg.amount < 0 && leg.account.kind() == AccountKind::Resident;
        let debited: i64 = legs.iter().filter(|leg| is_debit(leg)).map(|leg| -leg.amount).sum();
        let unsupported = legs.iter().any(|leg| {
            leg.spent != 0
                || (is_debit(leg) && leg.earned != 0)
                || matches!(&leg.lots, Some(LotEffect::Restore(_)))
                || matches!(&leg.lots, Some(LotEffect::Consume { preferred }) if !preferred.is_empty())
                || is_debit(leg) != matches!(leg.lots, Some(LotEffect::Consume { .. }))
        });
        if unsupported || taken.iter().map(|(_, amount)| amount).sum::<i64>() != debited {
            return Err(ApiError::internal("a ledger transaction a group cannot write as `post` would"));
        }
        let (transaction, postings) = link(head, new, legs);
        head.sequence = transaction.sequence;
        head.hash = transaction.hash.clone();
        for leg in legs {
            // As `post`: only a resident's balance is guarded; system accounts (issuance) may go below zero.
            if is_debit(leg) {
                self.debits.entry(leg.account.id.clone()).or_default().0 += -leg.amount;
                continue;
            }
            let credit = self.credits.entry(leg.account.id.clone()).or_default();
            *credit = (credit.0 + leg.amount, credit.1 + leg.earned);
            if let Some(LotEffect::NewLot { expires_at }) = leg.lots {
                self.lots.push(Lot::new(&leg.account.id, &transaction, leg.amount, expires_at));
            }
        }
        for (lot_id, amount) in taken {
            *self.lots_taken.entry(lot_id.clone()).or_default() += amount;
            self.movements.push(LotMovement { transaction_id: transaction.id.clone(), lot_id, amount });
        }
        let responses =
            postings.iter().zip(legs).map(|(posting, leg)| PostingResponse::new(posting, &leg.account)).collect();
        self.transactions.push(transaction.clone());
        self.postings.extend(postings);
        Ok((transaction, responses))
    }

    /// Moves points of a resident's debit in this group to their held figure (an order's hold).
    pub fn hold(&mut self, account_id: &str, points: i64) {
        self.debits.entry(account_id.to_owned()).or_default().1 += points;
    }

    /// The request is written with the group, and answered with `reply` after the COMMIT.
    pub fn answer(&mut self, pending: Pending<R>, reply: Reply) {
        self.answers.push((pending, reply));
    }

    fn write(self, conn: &mut DbConnection) -> ApiResult<Vec<(oneshot::Sender<Written>, Written)>> {
        if self.answers.is_empty() {
            return Ok(Vec::new());
        }
        let debits: Vec<(&str, i64, i64)> =
            self.debits.iter().map(|(account_id, (amount, held))| (account_id.as_str(), *amount, *held)).collect();
        Account::debit_all(conn, &debits)?;
        let credits: Vec<(&str, i64, i64)> =
            self.credits.iter().map(|(account_id, (amount, earned))| (account_id.as_str(), *amount, *earned)).collect();
        Account::credit_all(conn, &credits)?;
        LedgerTransaction::insert_all(conn, &self.transactions, &self.postings)?;
        Lot::insert_all(conn, &self.lots)?;
        let lots_taken: Vec<(&str, i64)> = self.lots_taken.iter().map(|(id, amount)| (id.as_str(), *amount)).collect();
        Lot::take_all(conn, &lots_taken)?;
        LotMovement::insert_all(conn, &self.movements)?;
        LedgerHead::advance_all(conn, self.heads)?;
        R::write_rows(conn, self.rows)?;
        let mut stored: Vec<_> = self
            .answers
            .iter()
            .map(|(pending, reply)| (pending.request.scope(), pending.request.now(), reply))
            .collect();
        // A key sent to two communities at once may be written by two lanes: in one order, they
        // wait for each other instead of deadlocking.
        stored.sort_by(|a, b| a.0.key().cmp(&b.0.key()));
        idempotency::store_all(conn, &stored)?;
        let records: Vec<_> = self
            .answers
            .iter()
            .map(|(pending, reply)| pending.trail.new_record(reply.status(), reply.location()))
            .collect();
        let audited: Vec<bool> = records.iter().map(Option::is_some).collect();
        AuditRecord::insert_all_in(conn, &self.communities, records.into_iter().flatten().collect())?;
        Ok(self
            .answers
            .into_iter()
            .zip(audited)
            .map(|((pending, reply), audited)| (pending.reply, Written { reply, audited }))
            .collect())
    }
}

/// A resident's open lots as a group's debits use them up, soonest expiry first as
/// [`crate::ledger::service::post`] takes them, read a page at a time as needed.
pub struct OpenLots {
    account_id: String,
    /// The lots read so far, with what the group left in them.
    read: Vec<Lot>,
    /// The first of them with points left.
    next: usize,
    all_read: bool,
}

impl OpenLots {
    pub fn of(account_id: &str) -> Self {
        OpenLots { account_id: account_id.to_owned(), read: Vec::new(), next: 0, all_read: false }
    }

    /// Takes `points` from the lots: (lot id, points) for each lot used. The group writes
    /// nothing before all its checks are made, so every page read sees the lots as they were
    /// before the group, in the same order.
    pub fn take(&mut self, conn: &mut DbConnection, mut points: i64) -> ApiResult<Vec<(String, i64)>> {
        let mut taken = Vec::new();
        loop {
            while points > 0
                && let Some(lot) = self.read.get_mut(self.next)
            {
                let amount = points.min(lot.remaining);
                lot.remaining -= amount;
                points -= amount;
                taken.push((lot.id.clone(), amount));
                if lot.remaining == 0 {
                    self.next += 1;
                }
            }
            if points == 0 {
                return Ok(taken);
            }
            if self.all_read {
                return Err(ApiError::internal(format!(
                    "the lots of account {} do not cover its balance",
                    self.account_id
                )));
            }
            let limit = self.read.len() + if self.read.is_empty() { FIRST_LOTS_PAGE } else { LOTS_PER_PAGE };
            let page = Lot::open(conn, &self.account_id, limit)?;
            self.all_read = page.len() < limit;
            let already = self.read.len();
            self.read.extend(page.into_iter().skip(already));
        }
    }
}
