//! HTTP/1.1 on both sides of the proxy: pure framing (`codec`), buffers, local replies, and
//! the two connection kinds.

pub mod attempt;
pub mod buf;
pub mod codec;
pub mod downstream;
pub mod exchange;
pub mod local;
pub mod relay;
pub mod request;
pub mod retry;
pub mod upstream;
