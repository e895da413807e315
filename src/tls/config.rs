//! Builds rustls configurations from the checked model, once at load (to report errors with
//! the field path) and once at start-up. The crypto provider is `ring` (docs/dependencies.md).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, Error,
    InconsistentKeys, RootCertStore, ServerConfig, SignatureScheme, SupportedProtocolVersion,
};

use super::names::openssl_cipher_name;
use super::x509;
use crate::config::{
    CertKey, DownstreamTls, SanMatcher, TlsParams, TlsVersion, UpstreamTls, Validation,
};
use crate::route::matcher::string_matches;

/// The ring provider with the suites `p` allows.
fn provider(p: &TlsParams) -> Arc<CryptoProvider> {
    let mut prov = ring::default_provider();
    if !p.cipher_suites.is_empty() {
        let mut suites = Vec::new();
        // TLS 1.3 suites are not configurable (as in Envoy); 1.2 ones in the configured order.
        suites.extend(
            prov.cipher_suites
                .iter()
                .filter(|s| s.tls13().is_some())
                .copied(),
        );
        for name in &p.cipher_suites {
            let found = prov
                .cipher_suites
                .iter()
                .find(|s| openssl_cipher_name(s.suite()) == Some(name.as_str()));
            if let Some(s) = found {
                suites.push(*s);
            }
        }
        prov.cipher_suites = suites;
    }
    Arc::new(prov)
}

fn versions(p: &TlsParams) -> Vec<&'static SupportedProtocolVersion> {
    let mut v = Vec::new();
    if p.max >= TlsVersion::V1_3 {
        v.push(&rustls::version::TLS13);
    }
    if p.min <= TlsVersion::V1_2 {
        v.push(&rustls::version::TLS12);
    }
    v
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let list: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what}: invalid PEM: {e}"))?;
    if list.is_empty() {
        return Err(format!("{what}: no CERTIFICATE in PEM"));
    }
    Ok(list)
}

/// The certificate chain with its signing key. The key must belong to the certificate; a
/// certificate webpki cannot parse for that check (an X.509 v1 certificate, as in Envoy's
/// examples) is still served: the peer judges it, rustls only sends it.
fn cert_key(c: &CertKey, prov: &CryptoProvider) -> Result<Arc<SingleCertAndKey>, String> {
    let chain = certs(&c.chain_pem, "certificate_chain")?;
    let der = PrivateKeyDer::from_pem_slice(&c.key_pem)
        .map_err(|e| format!("private_key: no usable private key in PEM: {e}"))?;
    let key = prov
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("private_key: {e}"))?;
    let ck = CertifiedKey::new(chain, key);
    match ck.keys_match() {
        Err(Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err(
            "private_key: the key does not belong to the certificate_chain's first certificate"
                .into(),
        ),
        _ => Ok(Arc::new(SingleCertAndKey::from(ck))),
    }
}

fn roots(v: &Validation) -> Result<Arc<RootCertStore>, String> {
    let mut store = RootCertStore::empty();
    for c in certs(&v.trusted_ca_pem, "validation_context.trusted_ca")? {
        store
            .add(c)
            .map_err(|e| format!("validation_context.trusted_ca: {e}"))?;
    }
    Ok(Arc::new(store))
}

/// Whether a certificate carries a SAN one of `m` accepts (no matchers: any certificate).
fn san_ok(m: &[SanMatcher], cert: &CertificateDer<'_>) -> bool {
    if m.is_empty() {
        return true;
    }
    let sans = x509::sans(cert.as_ref());
    m.iter().any(|m| {
        sans.iter()
            .any(|(t, v)| *t == m.san_type && string_matches(&m.matcher, v))
    })
}

fn san_error() -> Error {
    Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        SanMismatch,
    ))))
}

#[derive(Debug)]
struct SanMismatch;

impl std::fmt::Display for SanMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no subject alternative name matches match_typed_subject_alt_names")
    }
}

impl std::error::Error for SanMismatch {}

/// A listener's TLS context.
pub fn server_config(d: &DownstreamTls) -> Result<Arc<ServerConfig>, String> {
    let prov = provider(&d.params);
    let b = ServerConfig::builder_with_provider(prov.clone())
        .with_protocol_versions(&versions(&d.params))
        .map_err(|e| format!("tls_params: {e}"))?;
    let b = match &d.validation {
        None => b.with_no_client_auth(),
        Some(v) => {
            let mut vb = WebPkiClientVerifier::builder_with_provider(roots(v)?, prov.clone());
            if !d.require_client_certificate {
                vb = vb.allow_unauthenticated();
            }
            let inner = vb.build().map_err(|e| format!("validation_context: {e}"))?;
            b.with_client_cert_verifier(Arc::new(ClientSan {
                inner,
                matchers: v.san_matchers.clone(),
            }))
        }
    };
    let mut cfg = b.with_cert_resolver(cert_key(&d.cert, &prov)?);
    if d.alpn_h2 {
        cfg.alpn_protocols.push(b"h2".to_vec());
    }
    if d.alpn_http11 {
        cfg.alpn_protocols.push(b"http/1.1".to_vec());
    }
    Ok(Arc::new(cfg))
}

/// A cluster's TLS context.
pub fn client_config(u: &UpstreamTls) -> Result<Arc<ClientConfig>, String> {
    let prov = provider(&u.params);
    let key_prov = prov.clone();
    let verifier: Arc<dyn ServerCertVerifier> = match &u.validation {
        Some(v) => Arc::new(ServerSan {
            inner: WebPkiServerVerifier::builder_with_provider(roots(v)?, prov.clone())
                .build()
                .map_err(|e| format!("validation_context: {e}"))?,
            matchers: v.san_matchers.clone(),
            verify_name: u.verify_name,
        }),
        None => Arc::new(Unverified(prov.clone())),
    };
    let b = ClientConfig::builder_with_provider(prov)
        .with_protocol_versions(&versions(&u.params))
        .map_err(|e| format!("tls_params: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match &u.cert {
        None => b.with_no_client_auth(),
        Some(c) => b.with_client_cert_resolver(cert_key(c, &key_prov)?),
    };
    if u.alpn_h2 {
        cfg.alpn_protocols.push(b"h2".to_vec());
    }
    if u.alpn_http11 {
        cfg.alpn_protocols.push(b"http/1.1".to_vec());
    }
    cfg.resumption = match u.max_session_keys {
        0 => Resumption::disabled(),
        n => Resumption::in_memory_sessions(n),
    };
    Ok(Arc::new(cfg))
}

/// The name a client connection verifies and sends: the request's under `auto_sni`, else
/// the configured SNI, else the address (rustls sends no SNI for an address, as Envoy sends
/// none without `sni`).
pub fn server_name(
    u: &UpstreamTls,
    auto: Option<&str>,
    addr: std::net::SocketAddr,
) -> ServerName<'static> {
    auto.and_then(|s| ServerName::try_from(s.to_string()).ok())
        .or_else(|| {
            u.sni
                .as_ref()
                .and_then(|s| ServerName::try_from(s.clone()).ok())
        })
        .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()))
}

/// The handshake-signature checks of a verifier that wraps another (`self.inner`): only the
/// certificate checks differ.
macro_rules! delegate_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// Client-certificate verification (chain to the trusted CA) plus the SAN match.
#[derive(Debug)]
struct ClientSan {
    inner: Arc<dyn ClientCertVerifier>,
    matchers: Vec<SanMatcher>,
}

impl ClientCertVerifier for ClientSan {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if san_ok(&self.matchers, end_entity) {
            Ok(ok)
        } else {
            Err(san_error())
        }
    }

    delegate_signatures!();
}

/// Server-certificate verification as Envoy does it: the chain must reach the trusted CA;
/// the host name is not compared with `sni` — `match_typed_subject_alt_names` says which
/// names are acceptable — unless `verify_name` (`auto_san_validation`) asks for the server
/// name (a DNS name) to be one of the certificate's.
#[derive(Debug)]
struct ServerSan {
    inner: Arc<WebPkiServerVerifier>,
    matchers: Vec<SanMatcher>,
    verify_name: bool,
}

impl ServerCertVerifier for ServerSan {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // webpki checks the chain before the name, so a name error means the chain is good.
        let name_checked = self.verify_name && matches!(server_name, ServerName::DnsName(_));
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(_) => {}
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !name_checked => {}
            Err(e) => return Err(e),
        }
        if san_ok(&self.matchers, end_entity) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(san_error())
        }
    }

    delegate_signatures!();
}

/// No `validation_context`: Envoy then accepts any server certificate. The handshake's
/// signatures are still checked, so the peer holds the key of the certificate it sent —
/// except for an X.509 v1 certificate (see `unchecked_v1`).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl Unverified {
    /// Whether `cert` is an X.509 v1 certificate that webpki refuses (`UnsupportedCertVersion`;
    /// Envoy's own quick-start certificate is one). Its signature checks need the parsed
    /// certificate, so they cannot run; BoringSSL, which Envoy uses, reads such a certificate
    /// and, not validating, accepts it. Without a trusted CA the certificate proves nothing
    /// anyway: anyone on the path can present one of their own, so skipping the signature
    /// check gives no attacker more than the missing verification already does. Anything else
    /// webpki cannot parse (bytes that are no certificate) still fails the handshake.
    fn unchecked_v1(cert: &CertificateDer<'_>) -> bool {
        if !x509_v1(cert) {
            return false;
        }
        match ParsedCertificate::try_from(cert) {
            Ok(_) => false,
            Err(e) => {
                log::debug!(
                    "upstream X.509 v1 certificate not parsed ({e}); accepted without a \
                     handshake signature check (no validation_context)"
                );
                true
            }
        }
    }
}

/// Whether DER `der` is shaped like an X.509 v1 certificate: a SEQUENCE whose first element,
/// the TBSCertificate SEQUENCE, starts with the serial number (INTEGER) instead of the
/// `[0]` version field that v2 and v3 certificates carry (RFC 5280 §4.1).
fn x509_v1(der: &[u8]) -> bool {
    /// The contents of the DER element at the start of `b` if its tag is `tag`.
    fn inner(b: &[u8], tag: u8) -> Option<&[u8]> {
        let (&t, rest) = b.split_first()?;
        let (&l, rest) = rest.split_first()?;
        if t != tag {
            return None;
        }
        let (len, rest) = if l < 0x80 {
            (usize::from(l), rest)
        } else {
            let n = usize::from(l & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let (bytes, rest) = (rest.get(..n)?, rest.get(n..)?);
            (
                bytes.iter().fold(0usize, |a, &b| a << 8 | usize::from(b)),
                rest,
            )
        };
        rest.get(..len)
    }
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    inner(der, SEQUENCE)
        .and_then(|c| inner(c, SEQUENCE))
        .and_then(|tbs| tbs.first())
        == Some(&INTEGER)
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        if Self::unchecked_v1(cert) {
            return Ok(HandshakeSignatureValid::assertion());
        }
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        if Self::unchecked_v1(cert) {
            return Ok(HandshakeSignatureValid::assertion());
        }
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{ClientConnection, ServerConnection};

    // Test-only material made with the openssl CLI (P-256, valid for a century; these checks
    // do not look at dates). `V3` is a self-signed X.509 v3 certificate with its key, `V1` an
    // X.509 v1 one (`openssl x509 -req` without extensions), `OTHER_KEY` belongs to neither.
    const V3_CERT: &str = "\
-----BEGIN CERTIFICATE-----
MIIBejCCASGgAwIBAgIUBPMkL+uQHtNN55UmPI2ZJKbPZp8wCgYIKoZIzj0EAwIw
EjEQMA4GA1UEAwwHdjMudGVzdDAgFw0yNjEyMDEwNDUxMzhaGA8yMTI2MTEwNzA0
NTEzOFowEjEQMA4GA1UEAwwHdjMudGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABHRpjn0NknIhS4IsxSiQHjvd2i1Q/NvszUrCY62D5p1zWfO3PiZyJDnXRiDq
7ehFvIi/yuw0r/YA+qm9PdP3YKmjUzBRMB0GA1UdDgQWBBQTq9u/TBe4F03UGJIk
hi5lQD8/EDAfBgNVHSMEGDAWgBQTq9u/TBe4F03UGJIkhi5lQD8/EDAPBgNVHRMB
Af8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIAoP94KsGgeWYemB6Y3zdCSvbyNG
ATbsWf67/2ly5I3cAiAjmLSzVyNnQ3quFn3pai/gRFqRXOWTDWHZ0XwZYiOoTg==
-----END CERTIFICATE-----
";
    const V3_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg8L7Z0smf4jP80UU1
k8P3Cipai1xRsZ0tA2FAKJ1Ex1ChRANCAAR0aY59DZJyIUuCLMUokB473dotUPzb
7M1KwmOtg+adc1nztz4mciQ510Yg6u3oRbyIv8rsNK/2APqpvT3T92Cp
-----END PRIVATE KEY-----
";
    const V1_CERT: &str = "\
-----BEGIN CERTIFICATE-----
MIIBIDCBxwIUBjkUN+gjKKp8GZUFPN7gWUVxPj8wCgYIKoZIzj0EAwIwEjEQMA4G
A1UEAwwHdjEudGVzdDAgFw0yNjEyMDEwNDUxMzlaGA8yMTI2MTEwNzA0NTEzOVow
EjEQMA4GA1UEAwwHdjEudGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABERO
K6Va+1+P4Gtv/+1BRIDeReMlhZZEVMeGn6a+tq+ElEEfbEunepSlL2Yl2MGhr2fU
HD4JStAnIPJQqeGGoKkwCgYIKoZIzj0EAwIDSAAwRQIgOelVlFVcOyZSFfMxXLxp
ByWjo0Ogw34vHd2HvBRcFS8CIQC9ZSZlZoGb8ra1MyxT0GHHE1ztfFBnIY9M6gye
DmSqTQ==
-----END CERTIFICATE-----
";
    const OTHER_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgCVcJ/55ojandaQlF
+p+fg2XLJHgjRFSlIOMaVHifjNihRANCAASO/qt3XZV8aEJ2BEs5N4a4IdPHZeQE
ljCGF7Ea1LjlH05sK8RKRp8NXMec/EQExL6/gl4Hfaqxz/GFguKnBsc+
-----END PRIVATE KEY-----
";

    fn params(max: TlsVersion) -> TlsParams {
        TlsParams {
            min: TlsVersion::V1_2,
            max,
            cipher_suites: Vec::new(),
        }
    }

    /// An in-memory handshake between a cluster's client config without a validation_context
    /// and a server that sends `cert` but signs with `key` (the certificate's own or not).
    fn handshake(cert: &str, key: &str, max: TlsVersion) -> Result<(), Error> {
        let prov = provider(&params(max));
        let chain = certs(cert.as_bytes(), "cert").map_err(Error::General)?;
        let der = PrivateKeyDer::from_pem_slice(key.as_bytes())
            .map_err(|e| Error::General(e.to_string()))?;
        let signer = prov.key_provider.load_private_key(der)?;
        let server = ServerConfig::builder_with_provider(prov.clone())
            .with_protocol_versions(&versions(&params(max)))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(CertifiedKey::new(
                chain, signer,
            ))));
        let client = client_config(&UpstreamTls {
            sni: Some("x.test".into()),
            cert: None,
            params: params(max),
            alpn_http11: false,
            alpn_h2: false,
            validation: None,
            max_session_keys: 0,
            verify_name: false,
        })
        .map_err(Error::General)?;
        let name = ServerName::try_from("x.test").map_err(|e| Error::General(e.to_string()))?;
        let mut c = ClientConnection::new(client, name)?;
        let mut s = ServerConnection::new(Arc::new(server))?;
        let io = |e: std::io::Error| Error::General(e.to_string());
        for _ in 0..8 {
            let mut wire = Vec::new();
            c.write_tls(&mut wire).map_err(io)?;
            s.read_tls(&mut wire.as_slice()).map_err(io)?;
            s.process_new_packets()?;
            wire.clear();
            s.write_tls(&mut wire).map_err(io)?;
            c.read_tls(&mut wire.as_slice()).map_err(io)?;
            c.process_new_packets()?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        Err(Error::General("handshake did not finish".into()))
    }

    #[test]
    fn unverified_checks_signatures_where_webpki_parses_the_certificate() {
        for max in [TlsVersion::V1_2, TlsVersion::V1_3] {
            assert_eq!(handshake(V3_CERT, V3_KEY, max), Ok(()), "{max:?}");
            // A server without the certificate's key is refused, validation_context or not.
            assert_eq!(
                handshake(V3_CERT, OTHER_KEY, max),
                Err(Error::InvalidCertificate(CertificateError::BadSignature)),
                "{max:?}"
            );
            // webpki cannot parse a v1 certificate, so its signatures go unchecked: accepted,
            // as Envoy (BoringSSL) accepts it when it does not validate.
            assert_eq!(handshake(V1_CERT, OTHER_KEY, max), Ok(()), "{max:?}");
        }
    }

    fn der(pem: &str) -> Vec<u8> {
        certs(pem.as_bytes(), "cert").unwrap()[0].to_vec()
    }

    #[test]
    fn only_x509_v1_certificates_skip_the_signature_check() {
        let (v1, v3) = (der(V1_CERT), der(V3_CERT));
        assert!(x509_v1(&v1));
        assert!(!x509_v1(&v3));
        assert!(Unverified::unchecked_v1(&CertificateDer::from(v1.clone())));
        assert!(!Unverified::unchecked_v1(&CertificateDer::from(v3)));
        // Bytes webpki cannot parse that are no v1 certificate are not let through, nor is any
        // truncation of the v1 one (every prefix is cut inside an element).
        for junk in [
            &b""[..],
            b"\x30",
            b"\x30\x00",
            b"\x30\x85\x01\x01\x01\x01\x01",
            b"not a cert",
        ] {
            assert!(!Unverified::unchecked_v1(&CertificateDer::from(
                junk.to_vec()
            )));
        }
        for n in 0..v1.len() {
            let cut = &v1[..n];
            assert!(
                !Unverified::unchecked_v1(&CertificateDer::from(cut.to_vec())),
                "{n}"
            );
        }
    }
}
