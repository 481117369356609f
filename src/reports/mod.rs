//! Leaderboards (评比) for residents and statistics for the staff dashboard: read-only views
//! of the ledger, activities, claims and the points shop, in the local calendar.

pub mod api;
pub mod handlers;
pub mod model;
pub mod service;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(handlers::leaderboard).service(handlers::community_stats).service(handlers::unit_stats);
}
