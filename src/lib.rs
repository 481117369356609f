//! jifen (积分): the points-and-rewards ledger for neighbourhood communities.

pub mod activities;
pub mod auth;
pub mod calendar;
pub mod claims;
pub mod clock;
pub mod codes;
pub mod config;
pub mod db;
pub mod error;
pub mod exports;
pub mod idempotency;
pub mod ledger;
pub mod maintenance;
pub mod openapi;
pub mod pagination;
pub mod redemptions;
pub mod rewards;
pub mod rules;
pub mod startup;
pub mod system;
pub mod telemetry;
pub mod units;
pub mod validation;
