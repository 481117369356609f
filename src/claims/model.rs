//! Residents' claims: rows and their queries.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::schema::{claims, rules};
use crate::db::{DbConnection, KeepPreparedDsl};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// Waiting for staff.
    Pending,
    /// Points awarded.
    Approved,
    Rejected,
}

impl ClaimStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimStatus::Pending => "pending",
            ClaimStatus::Approved => "approved",
            ClaimStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [ClaimStatus::Pending, ClaimStatus::Approved, ClaimStatus::Rejected]
            .into_iter()
            .find(|status| status.as_str() == s)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = claims)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Claim {
    pub id: String,
    pub community_id: String,
    pub user_id: String,
    pub rule_id: String,
    pub description: String,
    pub occurred_at: NaiveDateTime,
    /// A JSON array of strings.
    pub evidence: String,
    pub status: String,
    pub points: Option<i64>,
    pub decided_by: Option<String>,
    pub decided_at: Option<NaiveDateTime>,
    pub decision_reason: Option<String>,
    pub transaction_id: Option<String>,
    pub created_at: NaiveDateTime,
}

/// What staff decided.
pub struct Decision<'a> {
    pub status: ClaimStatus,
    pub points: Option<i64>,
    pub decided_by: &'a str,
    pub decided_at: NaiveDateTime,
    pub reason: Option<String>,
    pub transaction_id: Option<String>,
}

#[derive(Debug, Default)]
pub struct ClaimFilter {
    pub user_id: Option<String>,
    pub status: Option<ClaimStatus>,
    pub rule_code: Option<String>,
}

impl Claim {
    pub fn status(&self) -> ClaimStatus {
        ClaimStatus::parse(&self.status).unwrap_or(ClaimStatus::Pending)
    }

    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(claims::table).values(self).execute(conn).map(drop)
    }

    pub fn find(conn: &mut DbConnection, community_id: &str, id: &str) -> QueryResult<Option<Claim>> {
        claims::table
            .find(id)
            .filter(claims::community_id.eq(community_id))
            .select(Claim::as_select())
            .first(conn)
            .optional()
    }

    pub fn open_count(conn: &mut DbConnection, community_id: &str, user_id: &str) -> QueryResult<i64> {
        claims::table
            .filter(claims::community_id.eq(community_id))
            .filter(claims::user_id.eq(user_id))
            .filter(claims::status.eq(ClaimStatus::Pending.as_str()))
            .count()
            .get_result(conn)
    }

    /// Records the decision if the claim is still pending; false if someone decided first.
    pub fn decide(conn: &mut DbConnection, id: &str, decision: Decision<'_>) -> QueryResult<bool> {
        let updated = diesel::update(claims::table.find(id).filter(claims::status.eq(ClaimStatus::Pending.as_str())))
            .set((
                claims::status.eq(decision.status.as_str()),
                claims::points.eq(decision.points),
                claims::decided_by.eq(decision.decided_by),
                claims::decided_at.eq(decision.decided_at),
                claims::decision_reason.eq(decision.reason),
                claims::transaction_id.eq(decision.transaction_id),
            ))
            .returning(claims::id)
            .keep_prepared()
            .execute(conn)?;
        Ok(updated == 1)
    }

    /// Oldest first (a review queue), with each claim's rule code.
    pub fn list(
        conn: &mut DbConnection,
        community_id: &str,
        filter: &ClaimFilter,
        after: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<(Claim, String)>> {
        let mut query = claims::table
            .inner_join(rules::table)
            .filter(claims::community_id.eq(community_id.to_owned()))
            .select((Claim::as_select(), rules::code))
            .into_boxed();
        if let Some(user_id) = &filter.user_id {
            query = query.filter(claims::user_id.eq(user_id.clone()));
        }
        if let Some(status) = filter.status {
            query = query.filter(claims::status.eq(status.as_str()));
        }
        if let Some(code) = &filter.rule_code {
            query = query.filter(rules::code.eq(code.clone()));
        }
        if let Some(after) = after {
            query = query.filter(claims::id.gt(after.to_owned()));
        }
        query.order(claims::id.asc()).limit(limit).load(conn)
    }
}
