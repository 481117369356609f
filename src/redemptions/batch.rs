//! Orders written in groups ([`crate::ledger::batch`]).
//!
//! An order a group cannot vouch for in memory runs alone on the usual path
//! ([`crate::redemptions::service::order`]), which answers it, refusals included: the caller's
//! rights, a resident who is not active or has no account yet, a reward not on offer or with a
//! limit per resident, not enough stock, not enough points.
//!
//! Such an order runs after its group is written, against what the group's orders left: so it
//! may lose the last item or points to an order that came after it. Requests in flight together
//! have no order of their own to keep; each is still checked against what is there when it is
//! applied.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::codes::random_code;
use crate::db::{DbConnection, new_id};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::idempotency::Scope;
use crate::ledger::batch::{Group, Grouped, OpenLots, Pending};
use crate::ledger::model::{Account, AccountKind, LedgerHead};
use crate::redemptions::model::Redemption;
use crate::redemptions::service::{
    ORDER_ACTION, OrderRequestChecked, PICKUP_CODE_LENGTH, hold_transaction, new_order, order_reply,
};
use crate::rewards::model::Reward;
use crate::units::model::Unit;

/// The rows of a group's orders beside the ledger's.
#[derive(Default)]
pub struct OrderRows {
    orders: Vec<Redemption>,
    /// Reward id → items taken from its stock (rewards with a stock only).
    stock_taken: BTreeMap<String, i32>,
}

impl Grouped for OrderRequestChecked {
    type Rows = OrderRows;

    const METRICS: (&'static str, &'static str) = ("redemptions", "order");

    fn community_id(&self) -> &str {
        &self.community_id
    }

    fn scope(&self) -> &Scope {
        &self.scope
    }

    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    fn gather(
        conn: &mut DbConnection,
        community: &Unit,
        head: &mut LedgerHead,
        orders: Vec<Pending<Self>>,
        group: &mut Group<Self>,
    ) -> ApiResult<()> {
        let users: HashSet<&str> = orders.iter().map(|order| order.request.user_id.as_str()).collect();
        let users: Vec<&str> = users.into_iter().collect();
        let mut residents: HashMap<String, Account> = Account::memberships_and_residents(conn, &community.id, &users)?
            .into_iter()
            .filter(|(membership, _)| membership.is_active_resident())
            .filter_map(|(membership, account)| Some((membership.user_id, account?)))
            .collect();
        let rewards: HashSet<&str> = orders.iter().map(|order| order.request.reward_id.as_str()).collect();
        let rewards: Vec<&str> = rewards.into_iter().collect();
        let mut rewards: HashMap<String, Reward> = Reward::find_all(conn, &community.id, &rewards)?
            .into_iter()
            .filter(|reward| reward.limit_per_resident.is_none())
            .map(|reward| (reward.id.clone(), reward))
            .collect();
        let hold_account = Account::system(conn, &community.id, AccountKind::Hold)?;
        let mut lots: HashMap<String, OpenLots> = HashMap::new();
        for order in orders {
            let request = &order.request;
            if request.principal.authorize(community, request.allowed(), ORDER_ACTION).is_err() {
                continue;
            }
            let (Some(resident), Some(reward)) =
                (residents.get_mut(&request.user_id), rewards.get_mut(&request.reward_id))
            else {
                continue;
            };
            let points = reward.cost * i64::from(request.quantity);
            let in_stock = reward.stock.is_none_or(|stock| stock >= request.quantity);
            if !reward.is_on_offer(request.now.naive_utc()) || !in_stock || resident.balance < points {
                continue;
            }
            let taken =
                lots.entry(resident.id.clone()).or_insert_with(|| OpenLots::of(&resident.id)).take(conn, points)?;
            resident.balance -= points;
            if let Some(stock) = reward.stock.as_mut() {
                *stock -= request.quantity;
                *group.rows.stock_taken.entry(reward.id.clone()).or_default() += request.quantity;
            }
            let id = new_id();
            let (new, legs) = hold_transaction(request, reward, &id, resident.clone(), hold_account.clone());
            let (hold, _) = group.post(head, new, &legs, taken)?;
            group.hold(&resident.id, points);
            let mut order_row = new_order(request, reward, id, hold.id);
            order_row.pickup_code = random_code(PICKUP_CODE_LENGTH);
            group.rows.orders.push(order_row.clone());
            let reply = order_reply(order_row, reward.name.clone(), &request.principal)?;
            group.answer(order, reply);
        }
        Ok(())
    }

    fn write_rows(conn: &mut DbConnection, rows: OrderRows) -> ApiResult<()> {
        let stock_taken: Vec<(&str, i32)> = rows.stock_taken.iter().map(|(id, items)| (id.as_str(), *items)).collect();
        Reward::take_stock_all(conn, &stock_taken)?;
        // A pickup code its community has already fails the group: its orders run alone, and
        // draw again. Rare: with 31^8 codes, one order in 850,000 after a million orders.
        if Redemption::insert_all_unless_code_taken(conn, &rows.orders)? < rows.orders.len() {
            return Err(ApiError::new(ErrorCode::Conflict, "a pickup code of the group was taken"));
        }
        Ok(())
    }
}
