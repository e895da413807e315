//! baton-bench: the tools that prove baton's behaviour end to end — a fast origin server
//! (`baton-upstream`), a strict load client (`baton-load`) and the HTTP/1.1 wire reading they
//! share with the end-to-end tests, so every side frames messages the same strict way.

pub mod load;
pub mod origin;
pub mod pattern;
pub mod wire;
pub mod ws;
