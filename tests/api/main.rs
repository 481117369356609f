//! Black-box tests: the real server over HTTP, each scenario on SQLite and on PostgreSQL.

mod helpers;

mod activities;
mod audit;
mod auth;
mod claims;
mod cli;
mod errors;
mod exports;
mod hardening;
mod leaks;
mod ledger;
mod ledger_helpers;
mod members;
mod migrations;
mod openapi;
mod redemptions;
mod reports;
mod rewards;
mod rules;
mod system;
mod tokens;
mod units;
