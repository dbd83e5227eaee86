//! `tls_server_config` of the web configuration, every key exporter-toolkit documents, made into
//! a rustls server configuration: certificates from files or inline, client certificates and
//! their allowed SANs, versions, cipher suites, curves. What rustls cannot do is refused with a
//! message that names the key and says why.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{aws_lc_rs, CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme, SupportedCipherSuite,
};
use serde::Deserialize;

use crate::files::{read_bounded, MAX_CONFIG_BYTES};
use crate::secret::{readable_by_others, Secret, EVERYONE};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsShape {
    cert: Option<String>,
    key: Option<Secret>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

/// Why `tls_server_config` cannot be used: a problem with the file's text, or with a file it
/// names (which field, which path).
pub enum TlsProblem {
    Invalid(String),
    File {
        field: &'static str,
        path: PathBuf,
        reason: String,
    },
}

fn invalid(reason: impl Into<String>) -> TlsProblem {
    TlsProblem::Invalid(reason.into())
}

/// PEM certificates from `inline` text or from the file `file` names (relative to `dir`).
fn certificates(
    (field, inline): (&'static str, Option<&str>),
    (file_field, file): (&'static str, Option<&Path>),
    dir: &Path,
) -> Result<Option<Vec<CertificateDer<'static>>>, TlsProblem> {
    let (certs, from) = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(invalid(format!(
            "tls_server_config.{field} and tls_server_config.{file_field} are both set; keep one"
        )))
        }
        (None, None) => return Ok(None),
        (Some(text), None) => (
            CertificateDer::pem_slice_iter(text.as_bytes()).collect::<Result<Vec<_>, _>>(),
            None,
        ),
        (None, Some(file)) => {
            let path = dir.join(file);
            let pem = read_bounded(&path, MAX_CONFIG_BYTES).map_err(|e| TlsProblem::File {
                field: file_field,
                path: path.clone(),
                reason: e.to_string(),
            })?;
            (
                CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>(),
                Some(path),
            )
        }
    };
    let problem = |reason: String| match &from {
        Some(path) => TlsProblem::File {
            field: file_field,
            path: path.clone(),
            reason,
        },
        None => invalid(format!("tls_server_config.{field}: {reason}")),
    };
    let certs = certs.map_err(|e| problem(e.to_string()))?;
    if certs.is_empty() {
        return Err(problem("it holds no PEM certificate".into()));
    }
    Ok(Some(certs))
}

/// Builds the rustls configuration; `warnings` gets what is worth saying (a key everyone can
/// read).
pub fn server_config(
    raw: TlsShape,
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<ServerConfig, TlsProblem> {
    let certs = certificates(
        ("cert", raw.cert.as_deref()),
        ("cert_file", raw.cert_file.as_deref()),
        dir,
    )?
    .ok_or_else(|| invalid("tls_server_config needs cert_file (or cert) and key_file (or key)"))?;
    let key = match (&raw.key, &raw.key_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "tls_server_config.key and tls_server_config.key_file are both set; keep one",
            ))
        }
        (Some(key), None) => PrivateKeyDer::from_pem_slice(key.expose().as_bytes())
            .map_err(|e| invalid(format!("tls_server_config.key: {e}")))?,
        (None, Some(file)) => {
            let path = dir.join(file);
            let problem = |reason: String| TlsProblem::File {
                field: "key_file",
                path: path.clone(),
                reason,
            };
            let pem = read_bounded(&path, MAX_CONFIG_BYTES).map_err(|e| problem(e.to_string()))?;
            let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| problem(e.to_string()))?;
            warnings.extend(readable_by_others(
                "tls_server_config.key_file of --web.config.file",
                &path,
                EVERYONE,
            ));
            key
        }
        (None, None) => {
            return Err(invalid(
                "tls_server_config needs cert_file (or cert) and key_file (or key)",
            ))
        }
    };

    let prefer_server = raw.prefer_server_cipher_suites.unwrap_or(true);
    let provider = Arc::new(CryptoProvider {
        cipher_suites: cipher_suites(raw.cipher_suites.as_deref())?,
        kx_groups: curves(raw.curve_preferences.as_deref())?,
        ..aws_lc_rs::default_provider()
    });
    let versions = versions(raw.min_version.as_deref(), raw.max_version.as_deref())?;
    let cas = certificates(
        ("client_ca", raw.client_ca.as_deref()),
        ("client_ca_file", raw.client_ca_file.as_deref()),
        dir,
    )?;
    let verifier = client_verifier(
        raw.client_auth_type.as_deref(),
        cas,
        raw.client_allowed_sans,
        &provider,
    )?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| invalid(format!("tls_server_config: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            invalid(format!(
                "the certificate and the key of tls_server_config do not fit together: {e}"
            ))
        })?;
    // exporter-toolkit's default: the server's order of preference, not the client's.
    config.ignore_client_order = prefer_server;
    Ok(config)
}

fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsProblem> {
    let rank = |key: &str, v: Option<&str>, default: usize| {
        match v {
        None => Ok(default),
        Some("TLS12") => Ok(0),
        Some("TLS13") => Ok(1),
        Some(old @ ("TLS10" | "TLS11")) => Err(invalid(format!(
            "tls_server_config.{key} {old} cannot be honoured: rustls implements TLS 1.2 and 1.3 only (1.0 and 1.1 are broken); use TLS12 or TLS13"
        ))),
        Some(other) => Err(invalid(format!(
            "tls_server_config.{key} {other:?} is not a TLS version; use TLS12 or TLS13"
        ))),
    }
    };
    let (min, max) = (rank("min_version", min, 0)?, rank("max_version", max, 1)?);
    if min > max {
        return Err(invalid(
            "tls_server_config.min_version is above max_version",
        ));
    }
    let all = [&rustls::version::TLS12, &rustls::version::TLS13];
    Ok(all[min..=max].to_vec())
}

/// Go's names of the TLS 1.2 suites rustls implements (and Go's short aliases).
fn tls12_suite(name: &str) -> Option<SupportedCipherSuite> {
    use aws_lc_rs::cipher_suite as s;
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => s::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            s::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => s::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => s::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            s::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

/// The suites offered: every TLS 1.3 suite (like Go, `cipher_suites` does not restrict 1.3),
/// then the listed TLS 1.2 suites in the listed order, or rustls' defaults.
fn cipher_suites(names: Option<&[String]>) -> Result<Vec<SupportedCipherSuite>, TlsProblem> {
    let Some(names) = names.filter(|n| !n.is_empty()) else {
        return Ok(aws_lc_rs::DEFAULT_CIPHER_SUITES.to_vec());
    };
    let mut suites: Vec<SupportedCipherSuite> = aws_lc_rs::DEFAULT_CIPHER_SUITES
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .copied()
        .collect();
    for name in names {
        if let Some(suite) = tls12_suite(name) {
            suites.push(suite);
        } else if [
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256",
        ]
        .contains(&name.as_str())
        {
            // A TLS 1.3 suite: always offered, as in Go.
        } else if name.starts_with("TLS_") {
            return Err(invalid(format!(
                "tls_server_config.cipher_suites: {name} cannot be honoured: rustls implements only suites with forward secrecy and authenticated encryption (ECDHE with AES-GCM or ChaCha20-Poly1305); remove it"
            )));
        } else {
            return Err(invalid(format!(
                "tls_server_config.cipher_suites: {name:?} is not a Go cipher suite name such as TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
            )));
        }
    }
    Ok(suites)
}

/// The key exchange groups, in the listed order (Go's names), or rustls' defaults.
fn curves(names: Option<&[String]>) -> Result<Vec<&'static dyn SupportedKxGroup>, TlsProblem> {
    use aws_lc_rs::kx_group as g;
    let Some(names) = names.filter(|n| !n.is_empty()) else {
        return Ok(aws_lc_rs::DEFAULT_KX_GROUPS.to_vec());
    };
    names
        .iter()
        .map(|name| match name.as_str() {
            "X25519" => Ok(g::X25519),
            "CurveP256" => Ok(g::SECP256R1),
            "CurveP384" => Ok(g::SECP384R1),
            "X25519MLKEM768" => Ok(g::X25519MLKEM768),
            "CurveP521" => Err(invalid(
                "tls_server_config.curve_preferences: CurveP521 cannot be honoured: rustls does not offer P-521; use CurveP384, CurveP256 or X25519",
            )),
            other => Err(invalid(format!(
                "tls_server_config.curve_preferences: {other:?} is not one of X25519, CurveP256, CurveP384, X25519MLKEM768"
            ))),
        })
        .collect()
}

fn client_verifier(
    auth_type: Option<&str>,
    cas: Option<Vec<CertificateDer<'static>>>,
    allowed_sans: Option<Vec<String>>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsProblem> {
    let roots = || -> Result<Arc<RootCertStore>, TlsProblem> {
        let cas = cas
            .clone()
            .ok_or_else(|| invalid("this client_auth_type needs client_ca_file (or client_ca)"))?;
        let mut store = RootCertStore::empty();
        for ca in cas {
            store
                .add(ca)
                .map_err(|e| invalid(format!("tls_server_config client CA: {e}")))?;
        }
        Ok(Arc::new(store))
    };
    let builder = |roots| WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    let verifier = match auth_type.unwrap_or("NoClientCert") {
        "NoClientCert" => {
            if allowed_sans.is_some() {
                return Err(invalid("tls_server_config.client_allowed_sans needs client_auth_type RequireAndVerifyClientCert (or VerifyClientCertIfGiven): there is no client certificate to check"));
            }
            return Ok(WebPkiClientVerifier::no_client_auth());
        }
        "VerifyClientCertIfGiven" => builder(roots()?).allow_unauthenticated().build(),
        "RequireAndVerifyClientCert" => builder(roots()?).build(),
        "RequestClientCert" | "RequireAnyClientCert" => {
            return Err(invalid("client_auth_type RequestClientCert and RequireAnyClientCert accept certificates nobody checked; use VerifyClientCertIfGiven or RequireAndVerifyClientCert"))
        }
        other => {
            return Err(invalid(format!(
                "client_auth_type {other:?} is not one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
            )))
        }
    }
    .map_err(|e| invalid(format!("tls_server_config client CA: {e}")))?;
    Ok(match allowed_sans {
        Some(allowed) => Arc::new(AllowedSans {
            inner: verifier,
            allowed,
        }),
        None => verifier,
    })
}

/// A verified client certificate must also carry one of `allowed` among its subject alternative
/// names (DNS, IP, e-mail or URI), compared exactly, as exporter-toolkit does.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

/// The subject alternative names of a certificate, as text (IP addresses as Go writes them).
fn subject_alt_names(der: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(sans)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    sans.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                Some(s.to_string())
            }
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| std::net::Ipv4Addr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| std::net::Ipv6Addr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

impl ClientCertVerifier for AllowedSans {
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
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if subject_alt_names(end_entity)
            .iter()
            .any(|san| self.allowed.contains(san))
        {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
