//! A community's point rules (积分细则): rows and their queries.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::DbConnection;
use crate::db::schema::rules;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleCategory {
    Volunteering,
    Environment,
    Culture,
    Safety,
    Civility,
    MutualAid,
    Other,
}

impl RuleCategory {
    const ALL: [RuleCategory; 7] = [
        RuleCategory::Volunteering,
        RuleCategory::Environment,
        RuleCategory::Culture,
        RuleCategory::Safety,
        RuleCategory::Civility,
        RuleCategory::MutualAid,
        RuleCategory::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleCategory::Volunteering => "volunteering",
            RuleCategory::Environment => "environment",
            RuleCategory::Culture => "culture",
            RuleCategory::Safety => "safety",
            RuleCategory::Civility => "civility",
            RuleCategory::MutualAid => "mutual_aid",
            RuleCategory::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|category| category.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleDirection {
    /// Points given for taking part (awards, activities, claims).
    Earn,
    /// Points taken for breaking the convention (deductions).
    Deduct,
}

impl RuleDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleDirection::Earn => "earn",
            RuleDirection::Deduct => "deduct",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = rules)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Rule {
    pub id: String,
    pub community_id: String,
    pub code: String,
    pub name: String,
    pub category: String,
    pub direction: String,
    pub default_points: i64,
    pub min_points: i64,
    pub max_points: i64,
    pub daily_cap: Option<i32>,
    pub weekly_cap: Option<i32>,
    pub monthly_cap: Option<i32>,
    pub active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = rules)]
pub struct RuleChanges {
    pub name: Option<String>,
    pub category: Option<String>,
    pub default_points: Option<i64>,
    pub min_points: Option<i64>,
    pub max_points: Option<i64>,
    pub daily_cap: Option<Option<i32>>,
    pub weekly_cap: Option<Option<i32>>,
    pub monthly_cap: Option<Option<i32>>,
    pub active: Option<bool>,
    pub updated_at: Option<NaiveDateTime>,
}

#[derive(Debug, Default)]
pub struct RuleFilter {
    pub active: Option<bool>,
    pub category: Option<RuleCategory>,
    pub direction: Option<RuleDirection>,
}

impl Rule {
    /// Whether it limits how often a resident may use it (and so each use must count the others).
    pub fn has_caps(&self) -> bool {
        self.daily_cap.is_some() || self.weekly_cap.is_some() || self.monthly_cap.is_some()
    }

    pub fn direction(&self) -> RuleDirection {
        if self.direction == RuleDirection::Deduct.as_str() { RuleDirection::Deduct } else { RuleDirection::Earn }
    }

    pub fn category(&self) -> RuleCategory {
        RuleCategory::parse(&self.category).unwrap_or(RuleCategory::Other)
    }

    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(rules::table).values(self).execute(conn).map(drop)
    }

    pub fn find(conn: &mut DbConnection, community_id: &str, id: &str) -> QueryResult<Option<Rule>> {
        rules::table
            .find(id)
            .filter(rules::community_id.eq(community_id))
            .select(Rule::as_select())
            .first(conn)
            .optional()
    }

    pub fn find_by_code(conn: &mut DbConnection, community_id: &str, code: &str) -> QueryResult<Option<Rule>> {
        crate::direct!(conn, |conn| rules::table
            .filter(rules::community_id.eq(community_id))
            .filter(rules::code.eq(code))
            .select(Rule::as_select())
            .first(conn)
            .optional())
    }

    pub fn update(conn: &mut DbConnection, id: &str, changes: &RuleChanges) -> QueryResult<Rule> {
        diesel::update(rules::table.find(id)).set(changes).execute(conn)?;
        rules::table.find(id).select(Rule::as_select()).first(conn)
    }

    /// In code order after `after`.
    pub fn list(
        conn: &mut DbConnection,
        community_id: &str,
        filter: &RuleFilter,
        after: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<Rule>> {
        let mut query =
            rules::table.filter(rules::community_id.eq(community_id.to_owned())).select(Rule::as_select()).into_boxed();
        if let Some(active) = filter.active {
            query = query.filter(rules::active.eq(active));
        }
        if let Some(category) = filter.category {
            query = query.filter(rules::category.eq(category.as_str()));
        }
        if let Some(direction) = filter.direction {
            query = query.filter(rules::direction.eq(direction.as_str()));
        }
        if let Some(after) = after {
            query = query.filter(rules::code.gt(after.to_owned()));
        }
        query.order(rules::code.asc()).limit(limit).load(conn)
    }
}
