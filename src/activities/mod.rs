//! Activities (活动): sign-up, check-in and completion that pays the attendees.

pub mod api;
pub mod handlers;
pub mod model;
pub mod service;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(handlers::list_activities)
        .service(handlers::create_activity)
        .service(handlers::get_activity)
        .service(handlers::update_activity)
        .service(handlers::sign_up)
        .service(handlers::withdraw)
        .service(handlers::check_in_code)
        .service(handlers::check_in)
        .service(handlers::complete)
        .service(handlers::participants);
}
