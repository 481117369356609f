//! Users, sign-in (argon2 + JWT access tokens + rotating refresh tokens) and authorisation.

pub mod api;
pub mod handlers;
pub mod model;
pub mod password;
pub mod principal;
pub mod service;
pub mod tokens;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(handlers::login)
        .service(handlers::refresh)
        .service(handlers::logout)
        .service(handlers::register)
        .service(handlers::me)
        .service(handlers::update_me)
        .service(handlers::change_password);
}
