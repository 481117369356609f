//! The points ledger: double-entry, append-only, hash-chained per community,
//! with lots for expiry.

pub mod api;
pub mod award_batch;
pub mod batch;
pub mod chain;
pub mod expiry;
pub mod handlers;
pub mod model;
pub mod service;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(handlers::award)
        .service(handlers::deduct)
        .service(handlers::reverse)
        .service(handlers::list_transactions)
        .service(handlers::get_transaction)
        // Before `account`, so that "me" is not taken for a user id.
        .service(handlers::my_account)
        .service(handlers::account)
        .service(handlers::verify);
}
