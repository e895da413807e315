//! TLS with rustls: the byte stream the connection drivers read and write through (plain TCP
//! or rustls over TCP), the filter chain choice by SNI, and the rustls configurations built
//! from Envoy's TLS contexts. Without the `tls` cargo feature only plain streams exist (and
//! the config loader refuses `transport_socket`).

pub mod names;

#[cfg(feature = "tls")]
mod config;
#[cfg(feature = "tls")]
mod stream;
#[cfg(feature = "tls")]
mod x509;

#[cfg(feature = "tls")]
pub use config::{client_config, server_config, server_name};
#[cfg(feature = "tls")]
pub use stream::{ListenerTls, News, Stream};

#[cfg(not(feature = "tls"))]
mod plain;
#[cfg(not(feature = "tls"))]
pub use plain::{ListenerTls, News, Stream};

/// A cluster's client TLS configuration (uninhabited in a build without TLS).
#[cfg(feature = "tls")]
pub type ClientTls = std::sync::Arc<rustls::ClientConfig>;
#[cfg(not(feature = "tls"))]
#[derive(Debug)]
pub enum ClientTls {}

/// Builds a cluster's client TLS configuration.
pub fn client_tls(u: &crate::config::UpstreamTls) -> Result<ClientTls, String> {
    #[cfg(feature = "tls")]
    return client_config(u);
    #[cfg(not(feature = "tls"))]
    {
        let _ = u;
        Err("TLS is not compiled into this build".into())
    }
}

/// Writes bytes a FIN follows at once (shutdown or close): `MSG_MORE` holds a short tail in
/// the kernel so the FIN rides on the same segment, one packet less per closed connection.
fn send_before_fin(sock: &mio::net::TcpStream, buf: &[u8]) -> std::io::Result<usize> {
    use nix::sys::socket::MsgFlags;
    use std::os::fd::AsRawFd;
    // nix names no MSG_MORE; the bit is Linux's.
    let flags = MsgFlags::from_bits_retain(nix::libc::MSG_MORE) | MsgFlags::MSG_NOSIGNAL;
    nix::sys::socket::send(sock.as_raw_fd(), buf, flags).map_err(std::io::Error::from)
}

/// Whether nothing waits on a socket: a one-byte `MSG_PEEK` finds neither bytes nor EOF.
fn socket_quiet(sock: &mio::net::TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut b = [0u8; 1];
    let flags = nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT;
    matches!(
        nix::sys::socket::recv(sock.as_raw_fd(), &mut b, flags),
        Err(nix::errno::Errno::EAGAIN)
    )
}
