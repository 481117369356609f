//! Orders in the points shop: hold, hand over, or cancel.

pub mod api;
pub mod batch;
pub mod handlers;
pub mod model;
pub mod service;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(handlers::order)
        .service(handlers::list_redemptions)
        .service(handlers::get_redemption)
        .service(handlers::fulfil)
        .service(handlers::cancel);
}
