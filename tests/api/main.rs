//! Black-box tests: the real server over HTTP, each scenario on SQLite and on PostgreSQL.

mod helpers;

mod activities;
mod auth;
mod claims;
mod cli;
mod errors;
mod exports;
mod ledger;
mod ledger_helpers;
mod members;
mod migrations;
mod openapi;
mod redemptions;
mod rewards;
mod rules;
mod system;
mod tokens;
mod units;
