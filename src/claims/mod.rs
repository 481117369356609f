//! Residents' claims ("I did a good deed"), reviewed by staff.

pub mod api;
pub mod handlers;
pub mod model;
pub mod service;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(handlers::create_claim)
        .service(handlers::list_claims)
        .service(handlers::get_claim)
        .service(handlers::approve_claim)
        .service(handlers::reject_claim);
}
