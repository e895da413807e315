//! A small gRPC client of baton's own for the out-of-band calls its filters make (ext_authz's
//! `envoy.service.auth.v3.Authorization/Check`): `proto` reads and writes the protobuf wire
//! format, `call` runs one unary call over HTTP/2 on the `h2::frame` and `h2::hpack` codecs.
//! The proxied-request transcoder (`h2::client`) is not used: it maps HTTP/2 to HTTP/1 for the
//! exchange core and drops trailers, where gRPC's status lives.

pub mod call;
pub mod proto;
