//! autoresearch: the research loop in code. The LLM (or the built-in search) only proposes
//! edits; this library owns git, the time budget, the process tree, the metric, the
//! keep/discard decision, the records and the reports.

pub mod agent;
pub mod chaos;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod decision;
pub mod engine;
pub mod experiment;
pub mod metric;
pub mod platform;
pub mod report;
pub mod runner;
pub mod session;
pub mod store;
pub mod text;
pub mod workspace;
