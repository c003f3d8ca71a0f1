//! Integration tests: the real server on 127.0.0.1, port 0, a fresh SQLite file per test,
//! spoken to over HTTP.

mod api_keys;
mod audit;
mod bad_input;
mod browser;
mod connections;
mod dashboard;
mod disk_full;
mod docs;
mod forward_auth;
mod gateways;
mod github;
mod helpers;
mod idempotency;
mod instances;
mod introspect;
mod layers;
mod leaks;
mod matrix;
mod members;
mod metadata;
mod networks;
mod openapi;
mod password_work;
mod platform;
mod platform_scopes;
mod policy;
mod postgres;
mod projects;
mod rotation;
mod rules;
mod storage;
mod tokens;
mod verification;
mod webhook_isolation;
mod webhooks;
