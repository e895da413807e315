//! HTTP/1.1 on both sides of the proxy: pure framing (`codec`), the pure exchange core
//! (`core`), its environment in the proxy (`env`), the mio driver of a client connection
//! (`session`), zero-copy response bodies (`splice`), and the upstream connection pool.

pub mod buf;
pub mod codec;
pub mod compress;
pub mod core;
pub mod env;
pub mod ext_authz;
pub mod ext_authz_grpc;
pub(crate) mod fault;
pub(crate) mod filters;
#[doc(hidden)]
pub mod inmem;
pub mod local;
pub mod local_reply;
pub mod mirror;
pub(crate) mod rbac;
pub mod request;
pub mod session;
pub mod splice;
pub mod upgrade;
pub mod upstream;
