//! The fault suite (issue #15): ordinary faults against the real services,
//! each asserting no false restart, no false ready, nothing lost and nothing
//! leaked. Runs alone with `bash scripts/test.sh --test faults`; the README's
//! Limits section has the table of what each fault does and what is not
//! covered yet.

#[path = "../support/mod.rs"]
mod support;

mod exits;
mod foreign;
mod nats;
mod redis;
mod replicas;
mod secrets;
mod sigkill;
mod stack_down;
