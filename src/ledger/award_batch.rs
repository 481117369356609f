//! Awards written in groups ([`crate::ledger::batch`]).
//!
//! An award a group cannot vouch for in memory runs alone on the usual path
//! ([`crate::ledger::service::award`]): the caller's rights, a rule with caps or not for earning,
//! points out of the rule's range, a beneficiary who is not an active resident with an account,
//! a possible conflict of interest, or more lines than [`MAX_LINES`].

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::db::DbConnection;
use crate::error::ApiResult;
use crate::idempotency::Scope;
use crate::ledger::batch::{Group, Grouped, Pending};
use crate::ledger::model::{Account, AccountKind, LedgerHead};
use crate::ledger::service::{
    Award, AwardRequestChecked, award_transaction, created, is_conflict_of_interest, is_staff,
};
use crate::rules::model::{Rule, RuleDirection};
use crate::rules::service::{check_range, resolve};
use crate::units::model::{Membership, Unit};

/// Awards to more residents than this run alone: they are set-shaped already (one transaction,
/// a posting per resident), and a group of them would make statements of thousands of rows.
const MAX_LINES: usize = 16;

impl Grouped for AwardRequestChecked {
    type Rows = ();

    const METRICS: (&'static str, &'static str) = ("ledger", "award");

    fn community_id(&self) -> &str {
        &self.community_id
    }

    fn scope(&self) -> &Scope {
        &self.scope
    }

    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    fn may_be_grouped(&self) -> bool {
        self.lines.len() <= MAX_LINES
    }

    fn gather(
        conn: &mut DbConnection,
        community: &Unit,
        head: &mut LedgerHead,
        awards: Vec<Pending<Self>>,
        group: &mut Group<Self>,
    ) -> ApiResult<()> {
        let checks = Checks::read(conn, community, &awards)?;
        let issuance = Account::system(conn, &community.id, AccountKind::Issuance)?;
        for award in awards {
            let Some((rule, residents)) = checks.vouch_for(&award.request) else { continue };
            let request = &award.request;
            let checked =
                Award { memo: request.memo.clone(), actor: &request.principal, cause: None, lines: residents };
            let (new, legs) = award_transaction(community, rule, checked, issuance.clone(), request.now);
            let (transaction, postings) = group.post(head, new, &legs, Vec::new())?;
            let reply = created(transaction, postings)?;
            group.answer(award, reply);
        }
        Ok(())
    }

    fn write_rows(_: &mut DbConnection, (): ()) -> ApiResult<()> {
        Ok(())
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
    fn read(conn: &mut DbConnection, community: &'a Unit, awards: &[Pending<AwardRequestChecked>]) -> ApiResult<Self> {
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
