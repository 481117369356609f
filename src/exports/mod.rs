//! CSV exports for auditors and staff: the ledger (per community, or for every community
//! below a street or district), orders in the points shop and activity participation.

pub mod api;
pub mod handlers;
pub mod model;
pub mod service;
pub mod stream;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(handlers::export_community_ledger)
        .service(handlers::export_redemptions)
        .service(handlers::export_participation)
        .service(handlers::export_unit_ledger);
}
