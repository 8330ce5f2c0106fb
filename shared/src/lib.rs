//! # Athena's shared library
//!
//! Everything every Lambda function (and the local gateway) uses. Data flows one way:
//!
//! ## Layout
//! - [`domain`]: conversations, messages, analytics events, and the newtypes that parse raw input.
//! - [`error`]: typed errors of the inner layers (validation, storage).
//! - [`store`]: the `Store` port and its adapters: DynamoDB (production) and SQLite (embedded,
//!   the local default), held to the same semantics by one conformance suite.
#![warn(missing_docs)]

pub mod domain;
pub mod error;
pub mod store;
