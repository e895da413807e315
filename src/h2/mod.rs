//! HTTP/2 (RFC 9113) as a transcoding layer under the HTTP/1.1 exchange core: the wire format
//! (frames, HPACK) here, the client and server transcoders beside it.

pub mod frame;
pub mod hpack;
pub mod huffman;
