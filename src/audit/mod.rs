//! The audit log: who did what, where, from which address, and how it ended.
//! Append-only; the database refuses UPDATE and DELETE.

pub mod api;
pub mod handlers;
pub mod model;
pub mod service;
mod trail;

pub use trail::{Trail, record};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(handlers::audit_log);
}
