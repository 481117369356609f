//! Organisation units (platform → district → street → community) and the role
//! grants (memberships) users hold on them.

pub mod api;
pub mod handlers;
pub mod model;
pub mod service;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(handlers::create_unit)
        .service(handlers::list_units)
        .service(handlers::get_unit)
        .service(handlers::update_unit)
        .service(handlers::add_member)
        .service(handlers::list_members)
        .service(handlers::update_member);
}
