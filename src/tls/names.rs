//! Envoy's names for TLS versions and cipher suites (OpenSSL's), for stats and access logs.

/// `ssl.versions.<name>`, by `TlsVersion` order (1.2, 1.3).
pub const VERSION_NAMES: [&str; 2] = ["TLSv1.2", "TLSv1.3"];

/// `ssl.ciphers.<name>`: every suite rustls (ring provider) can negotiate.
pub const CIPHER_NAMES: [&str; 9] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

/// The TLS 1.2 part of `CIPHER_NAMES`.
pub const TLS12_NAMES: &[&str] = CIPHER_NAMES.split_at(3).1;

/// The OpenSSL name of a suite rustls negotiated.
#[cfg(feature = "tls")]
pub fn openssl_cipher_name(s: rustls::CipherSuite) -> Option<&'static str> {
    use rustls::CipherSuite as C;
    let i = match s {
        C::TLS13_AES_128_GCM_SHA256 => 0,
        C::TLS13_AES_256_GCM_SHA384 => 1,
        C::TLS13_CHACHA20_POLY1305_SHA256 => 2,
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => 3,
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => 4,
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => 5,
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 6,
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 7,
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => 8,
        _ => return None,
    };
    CIPHER_NAMES.get(i).copied()
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    #[test]
    fn every_ring_suite_has_a_name() {
        for s in rustls::crypto::ring::default_provider().cipher_suites {
            assert!(
                super::openssl_cipher_name(s.suite()).is_some(),
                "{:?}",
                s.suite()
            );
        }
    }
}
