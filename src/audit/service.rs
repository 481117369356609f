//! Reading the audit log.

use std::collections::HashMap;

use uuid::Uuid;

use crate::audit::api::{ActorResponse, AuditLogQuery, AuditRecordResponse};
use crate::audit::model::{AuditFilter, AuditRecord, Visibility, actor_names};
use crate::auth::principal::Principal;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Page, PageRequest};
use crate::startup::AppState;
use crate::units::model::{Roles, Unit, UnitKind};

fn reads_audit_log(roles: Roles) -> bool {
    roles.auditor || roles.admin
}

/// Auditors and admins see the records of their units and the units below; those
/// of the whole platform also see records tied to no unit (sign-ins, own accounts).
fn visibility(principal: &Principal) -> ApiResult<Visibility> {
    let units: Vec<&Unit> = principal.units_where(reads_audit_log).collect();
    if units.is_empty() {
        return Err(ApiError::forbidden("only auditors and admins may read the audit log"));
    }
    Ok(Visibility {
        roots: units.iter().map(|unit| unit.path.clone()).collect(),
        unitless: units.iter().any(|unit| unit.kind() == UnitKind::Platform),
    })
}

pub async fn list(
    state: &AppState,
    principal: Principal,
    query: AuditLogQuery,
) -> ApiResult<Page<AuditRecordResponse>> {
    let page = PageRequest::<Uuid>::parse(query.limit, query.cursor.as_deref())?;
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from > to
    {
        return Err(ApiError::validation("from must not be after to"));
    }
    let filter = AuditFilter {
        actor_id: query.actor.map(|id| id.to_string()),
        action: query.action,
        from: query.from.map(|from| from.naive_utc()),
        to: query.to.map(|to| to.naive_utc()),
    };
    let (fetch, before) = (page.fetch_limit(), page.after.map(|id| id.to_string()));
    let unit_id = query.unit.map(|id| id.to_string());
    let (records, names) = state
        .db
        .read(move |conn| {
            let visibility = match unit_id {
                Some(unit_id) => {
                    let unit = Unit::find(conn, &unit_id)?.ok_or_else(|| ApiError::not_found("unit"))?;
                    principal.authorize(&unit, reads_audit_log, "read the audit log")?;
                    Visibility { roots: vec![unit.path], unitless: false }
                }
                None => visibility(&principal)?,
            };
            let records = AuditRecord::list(conn, &visibility, &filter, before.as_deref(), fetch)?;
            let mut actor_ids: Vec<String> = records.iter().filter_map(|record| record.actor_id.clone()).collect();
            actor_ids.sort();
            actor_ids.dedup();
            let names: HashMap<String, (String, String)> = actor_names(conn, &actor_ids)?
                .into_iter()
                .map(|(id, username, display_name)| (id, (username, display_name)))
                .collect();
            Ok((records, names))
        })
        .await?;
    Ok(Page::from_rows(
        records,
        &page,
        |record| record.id.clone(),
        |record| {
            let actor = record.actor_id.clone().map(|id| {
                let (username, display_name) = names.get(&id).cloned().unzip();
                ActorResponse { id, username, display_name }
            });
            AuditRecordResponse::new(record, actor)
        },
    ))
}
