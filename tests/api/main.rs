//! Athena's integration tests, in one test binary (each binary links the whole AWS SDK, so one
//! binary instead of ten saves most of the link time). One module per suite; a test's path names
//! its suite, e.g. `store_conformance::dynamodb::listing_puts_pinned_first_then_newest` or
//! `chat::embedded::regenerate_replaces_the_last_reply` (`cargo test -p athena-tests --test api
//! chat::` runs one suite). The helpers they share are `athena_tests`' (`tests/src`).
//!
//! `bedrock_env` is the one suite kept apart (`tests/bedrock_env/main.rs`): it sets process
//! environment variables, which must not race with the tests here.

mod account;
mod ai_sdk;
mod analytics;
mod auth;
mod bedrock_provider;
mod chat;
mod durable;
mod events;
mod export;
mod export_all;
mod faults;
mod feedback;
mod files;
mod gateway;
mod http_api;
mod import;
mod imports;
mod limits;
mod links;
mod mcp;
mod metrics;
mod migrate;
mod organize;
mod plans;
mod projects;
mod prompts;
mod reindex;
mod resume;
mod search;
mod sharing;
mod store_conformance;
mod template;
