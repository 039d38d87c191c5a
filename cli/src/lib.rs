//! `hub`: the operator's command and the local runner. `hub serve` mounts the
//! hub's HTTP routes on one axum server with the configured stores; the other
//! commands act on the same stores (embedded or AWS) for operators. `hub
//! demo` runs the whole hub against the provider sandboxes.

pub mod commands;
pub mod console;
pub mod demo;
pub mod mappings;
pub mod sandboxes;
pub mod serve;
pub mod table;
