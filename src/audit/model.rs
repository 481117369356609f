//! Audit records: rows and their queries.

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::schema::{audit_records, units};
use crate::db::{DbConnection, MultiBackend};
use crate::units::model::Unit;

/// How a recorded request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The change was made (its record was written in the same transaction).
    Succeeded,
    /// A retry with the same `Idempotency-Key`, answered from the first request's record.
    Replayed,
    /// Refused with a 4xx; `code` says why. Nothing changed beyond counting a failed attempt.
    Refused,
    /// A server error.
    Failed,
}

impl Outcome {
    const ALL: [Outcome; 4] = [Outcome::Succeeded, Outcome::Replayed, Outcome::Refused, Outcome::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Replayed => "replayed",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|outcome| outcome.as_str() == s)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_records)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct AuditRecord {
    pub id: String,
    pub occurred_at: NaiveDateTime,
    pub actor_id: Option<String>,
    /// The operation id in the API contract, e.g. `award` or `login`.
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub unit_id: Option<String>,
    pub unit_path: Option<String>,
    pub request_id: String,
    pub client_ip: Option<String>,
    /// `succeeded`, `replayed`, `refused` or `failed`.
    pub outcome: String,
    /// The problem's `code` when the request was refused or failed.
    pub code: Option<String>,
}

/// Which records a reader may see: those of units at or below `roots` (unit
/// paths), and, for readers of the whole platform, those tied to no unit.
pub struct Visibility {
    pub roots: Vec<String>,
    pub unitless: bool,
}

#[derive(Debug, Default)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub action: Option<String>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

/// A record to be written; its unit's path is looked up by the INSERT itself.
pub struct NewAuditRecord {
    pub id: String,
    pub occurred_at: NaiveDateTime,
    pub actor_id: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub unit_id: Option<String>,
    pub request_id: String,
    pub client_ip: Option<String>,
    pub outcome: String,
    pub code: Option<String>,
}

impl NewAuditRecord {
    fn with_unit_path(self, path: &str) -> AuditRecord {
        AuditRecord {
            id: self.id,
            occurred_at: self.occurred_at,
            actor_id: self.actor_id,
            action: self.action,
            target_type: self.target_type,
            target_id: self.target_id,
            unit_id: self.unit_id,
            unit_path: Some(path.to_owned()),
            request_id: self.request_id,
            client_ip: self.client_ip,
            outcome: self.outcome,
            code: self.code,
        }
    }

    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        use audit_records::*;
        let path_of_unit =
            units::table.filter(units::id.nullable().eq(&self.unit_id)).select(units::path.nullable()).single_value();
        crate::direct!(conn, |conn| diesel::insert_into(audit_records::table)
            .values((
                id.eq(&self.id),
                occurred_at.eq(self.occurred_at),
                actor_id.eq(&self.actor_id),
                action.eq(&self.action),
                target_type.eq(&self.target_type),
                target_id.eq(&self.target_id),
                unit_id.eq(&self.unit_id),
                unit_path.eq(path_of_unit),
                request_id.eq(&self.request_id),
                client_ip.eq(&self.client_ip),
                outcome.eq(&self.outcome),
                code.eq(&self.code),
            ))
            .execute(conn)
            .map(drop))
    }
}

impl AuditRecord {
    /// Writes records of requests that concern these units, whose paths are at hand (writes
    /// applied together), in one INSERT.
    pub fn insert_all_in(conn: &mut DbConnection, units: &[Unit], records: Vec<NewAuditRecord>) -> QueryResult<()> {
        let mut rows = Vec::with_capacity(records.len());
        for record in records {
            match units.iter().find(|unit| record.unit_id.as_deref() == Some(&unit.id)) {
                Some(unit) => rows.push(record.with_unit_path(&unit.path)),
                None => record.insert(conn)?,
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        crate::insert_all!(conn, audit_records::table, &rows, audit_records::id).map(drop)
    }

    /// Newest first (record ids are UUIDv7), after the record `before`.
    pub fn list(
        conn: &mut DbConnection,
        visibility: &Visibility,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<AuditRecord>> {
        let mut query = audit_records::table.filter(visible(visibility)).select(AuditRecord::as_select()).into_boxed();
        if let Some(actor_id) = &filter.actor_id {
            query = query.filter(audit_records::actor_id.eq(actor_id.clone()));
        }
        if let Some(action) = &filter.action {
            query = query.filter(audit_records::action.eq(action.clone()));
        }
        if let Some(from) = filter.from {
            query = query.filter(audit_records::occurred_at.ge(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(audit_records::occurred_at.lt(to));
        }
        if let Some(before) = before {
            query = query.filter(audit_records::id.lt(before.to_owned()));
        }
        query.order(audit_records::id.desc()).limit(limit).load(conn)
    }
}

type VisibleExpression = Box<dyn BoxableExpression<audit_records::table, MultiBackend, SqlType = Nullable<Bool>>>;

/// `unit_path LIKE root1% OR ...`; paths hold only UUIDs and slashes, so no escaping is needed.
fn visible(visibility: &Visibility) -> VisibleExpression {
    let unitless: VisibleExpression = if visibility.unitless {
        Box::new(audit_records::unit_path.is_null().nullable())
    } else {
        Box::new(sql::<Nullable<Bool>>("1 = 0"))
    };
    visibility
        .roots
        .iter()
        .fold(unitless, |acc, root| Box::new(acc.or(audit_records::unit_path.like(format!("{root}%")))))
}

/// The username and display name of each of `user_ids`, to name the actors of a page of records.
pub fn actor_names(conn: &mut DbConnection, user_ids: &[String]) -> QueryResult<Vec<(String, String, String)>> {
    use crate::db::schema::users;
    users::table.filter(users::id.eq_any(user_ids)).select((users::id, users::username, users::display_name)).load(conn)
}
