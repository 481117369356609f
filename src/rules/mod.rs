//! A community's point rules (积分细则): what earns or costs points, how many and how often.

pub mod api;
pub mod handlers;
pub mod model;
pub mod service;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(handlers::list_rules).service(handlers::create_rule).service(handlers::update_rule);
}
