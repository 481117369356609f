//! The points shop (积分超市): its catalogue of rewards.

pub mod api;
pub mod handlers;
pub mod model;
pub mod service;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(handlers::list_rewards)
        .service(handlers::create_reward)
        .service(handlers::get_reward)
        .service(handlers::update_reward);
}
