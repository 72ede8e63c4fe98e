//! TLS to the PostgreSQL server, with libpq's `sslmode` meanings: `disable` never encrypts;
//! `allow`, `prefer` (the default) and `require` encrypt when (or, for `require`, only if) the
//! server offers it, without checking its certificate; `verify-ca` and `verify-full` check the
//! certificate against `sslrootcert` (a PEM file) or the system's roots, and the host name.
//! (`verify-ca` checks the host name too: stricter than libpq, never weaker.)
//!
//! tokio-postgres knows only `disable`, `prefer` and `require`, and no `sslrootcert`, so
//! [`split`] takes those two options out of the string before it is parsed.

use std::sync::Arc;

use postgres::config::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Whether and how the server's certificate is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Encrypt (when the mode asks for it) but accept any certificate, as libpq's `require`.
    No,
    /// Check the chain and the host name, against this PEM file or the system's roots.
    Full { root_cert: Option<String> },
}

/// The TLS part of a connection string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    pub verify: Verify,
}

/// Takes `sslmode` and `sslrootcert` out of a URL or `key=value` string; returns the rest and
/// what they said (`env_mode` is `PGSSLMODE`, used when the string has no `sslmode`).
pub fn split(conn: &str, env_mode: Option<&str>) -> Result<(String, Tls), String> {
    let mut mode: Option<String> = None;
    let mut root_cert: Option<String> = None;
    let mut take = |key: &str, value: &str| match key {
        "sslmode" => {
            mode = Some(value.to_string());
            true
        }
        "sslrootcert" => {
            root_cert = Some(value.to_string());
            true
        }
        _ => false,
    };
    let rest = if let Some((base, query)) = conn.split_once('?').filter(|_| conn.contains("://")) {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|kv| kv.split_once('=').is_none_or(|(k, v)| !take(k, v)))
            .collect();
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        conn.split_whitespace()
            .filter(|kv| kv.split_once('=').is_none_or(|(k, v)| !take(k, v)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mode = mode.or(env_mode.map(str::to_string));
    let tls = match mode.as_deref().unwrap_or("prefer") {
        "disable" => Tls {
            mode: SslMode::Disable,
            verify: Verify::No,
        },
        "allow" | "prefer" => Tls {
            mode: SslMode::Prefer,
            verify: Verify::No,
        },
        "require" => Tls {
            mode: SslMode::Require,
            verify: Verify::No,
        },
        "verify-ca" | "verify-full" => Tls {
            mode: SslMode::Require,
            verify: Verify::Full { root_cert },
        },
        other => {
            return Err(format!(
                "sslmode={other} is not a TLS mode (disable, allow, prefer, require, verify-ca, verify-full)"
            ));
        }
    };
    Ok((rest, tls))
}

/// The connector for `tls`.
pub fn connector(tls: &Tls) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = match &tls.verify {
        Verify::No => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        Verify::Full { root_cert } => {
            let mut roots = RootCertStore::empty();
            match root_cert {
                Some(path) => {
                    for cert in CertificateDer::pem_file_iter(path)
                        .map_err(|e| format!("sslrootcert={path}: {e}"))?
                    {
                        let cert = cert.map_err(|e| format!("sslrootcert={path}: {e}"))?;
                        roots
                            .add(cert)
                            .map_err(|e| format!("sslrootcert={path}: {e}"))?;
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    roots.add_parsable_certificates(found.certs);
                    if roots.is_empty() {
                        return Err("sslmode=verify-full: the system has no root certificates; \
                                    give sslrootcert=FILE"
                            .to_string());
                    }
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// Accepts any certificate (libpq's `require`): the connection is encrypted, not authenticated.
/// Signatures are still checked, so the handshake itself stays sound.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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

    #[test]
    fn libpq_modes_are_taken_out_of_a_url_and_a_key_value_string() {
        let (rest, tls) = split(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=5",
            None,
        )
        .unwrap();
        assert_eq!(rest, "postgres://u@h/db?connect_timeout=5");
        assert_eq!(tls.mode, SslMode::Require);
        assert_eq!(
            tls.verify,
            Verify::Full {
                root_cert: Some("/ca.pem".into())
            }
        );
        let (rest, tls) = split("host=h sslmode=disable dbname=x", None).unwrap();
        assert_eq!(rest, "host=h dbname=x");
        assert_eq!(tls.mode, SslMode::Disable);
        let (rest, tls) = split("postgres://u@h/db", Some("require")).unwrap();
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!((tls.mode, tls.verify), (SslMode::Require, Verify::No));
        let (_, tls) = split("postgres://u@h/db", None).unwrap();
        assert_eq!(tls.mode, SslMode::Prefer, "libpq's default");
        let err = split("postgres://u@h/db?sslmode=sideways", None).unwrap_err();
        assert!(err.contains("sslmode=sideways"), "{err}");
    }

    #[test]
    fn a_missing_root_certificate_file_is_named() {
        let tls = Tls {
            mode: SslMode::Require,
            verify: Verify::Full {
                root_cert: Some("/no/such/ca.pem".into()),
            },
        };
        let err = connector(&tls).err().unwrap();
        assert!(err.contains("/no/such/ca.pem"), "{err}");
    }
}
