//! Integration tests: each spawns the real server on a loopback port with its own database
//! (an SQLite file, or a fresh PostgreSQL database when `MODELHUB_TEST_DATABASE_URL` is set)
//! and its own blob directory, and drives it over HTTP.

#![allow(
    clippy::unwrap_used,
    reason = "tests fail loudly on the first surprise"
)]

mod helpers;

mod accounts;
mod admin;
mod aliases;
mod apollo;
mod bad_input;
mod cache;
mod crash;
mod downloads;
mod drafts;
mod files;
mod gate;
mod hardening;
mod hf;
mod hf_uploads;
mod inference;
mod inspection;
mod lineage;
mod models;
mod playground;
mod rate_limits;
mod replicas;
mod rest;
mod resumable;
mod s3;
mod schema;
mod server;
mod subscriptions;
mod topology;
mod upload_policy;
mod uploads;
mod webhooks;
