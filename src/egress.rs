//! Egress: which certificate authorities outbound HTTPS trusts (`[tls]`) and the proxy it goes
//! through (`[proxy]`), applied to every outbound client — providers, the OAuth2 token endpoint,
//! the JWKS.
//!
//! Trust: the Mozilla roots built into the gateway (`tls.bundled_roots`, on by default: the same
//! trust on every host and image), plus the platform's CA bundle when one is given
//! (`tls.ca_file`), plus the operating system's store when asked (`tls.native_roots`; the
//! standard `SSL_CERT_FILE` and `SSL_CERT_DIR` variables are part of it, and trusted only then:
//! an image that sets `SSL_CERT_FILE` to its system bundle does not widen the trust). A CA is added, not substituted, so that adding the platform's CA for
//! one re-signing proxy or private provider does not break the calls to public ones; set
//! `tls.bundled_roots = false` to trust the given bundle alone.
//!
//! Proxy: `proxy.url` (with `proxy.no_proxy`), or else the standard `HTTPS_PROXY`,
//! `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` variables. A proxy URL may carry credentials: it is
//! a secret, shown only as `scheme://host:port`, and its credentials are scrubbed from anything
//! relayed.

use std::fmt;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

use crate::secret::{read_secret_file, SecretFileError};

/// Largest CA bundle read (a full public bundle is about 220 KiB).
pub const MAX_CA_FILE_BYTES: u64 = 4 << 20;

/// The variables a proxy is read from when `proxy.url` is not set (upper and lower case).
/// The proxy variables, by the scheme of the requests they serve, lower case first (as curl
/// reads them); `ALL_PROXY` serves both.
const PROXY_VARIABLES: [(&str, &str, ProxyFor); 3] = [
    ("https_proxy", "HTTPS_PROXY", ProxyFor::Https),
    ("http_proxy", "HTTP_PROXY", ProxyFor::Http),
    ("all_proxy", "ALL_PROXY", ProxyFor::All),
];

/// Which requests a proxy variable serves.
#[derive(Debug, Clone, Copy)]
enum ProxyFor {
    Https,
    Http,
    All,
}

/// `[tls]`: the certificate authorities outbound HTTPS trusts.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// A PEM bundle of CA certificates to trust as well (the platform's CA).
    #[schema(value_type = Option<String>)]
    pub ca_file: Option<PathBuf>,
    /// Trust the Mozilla roots built into the gateway.
    pub bundled_roots: bool,
    /// Trust the operating system's store (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`).
    pub native_roots: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            ca_file: None,
            bundled_roots: true,
            native_roots: false,
        }
    }
}

/// `[proxy]`: the egress proxy.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySettings {
    /// `http://[user:password@]proxy:3128` (or `https://`); absent: the `HTTPS_PROXY` family of
    /// variables.
    #[schema(value_type = Option<String>, format = Password, default = json!(null))]
    #[serde(serialize_with = "crate::secret::serialize_redacted")]
    pub url: Option<SecretString>,
    /// A file holding `url` (a mounted Kubernetes secret).
    #[schema(value_type = Option<String>)]
    pub url_file: Option<PathBuf>,
    /// Hosts reached directly: comma-separated names (a leading `.` or none matches subdomains
    /// too), IPs or CIDR ranges, `*` for all; absent: `NO_PROXY`.
    pub no_proxy: Option<String>,
}

impl ProxySettings {
    pub fn resolve_secret_files(&mut self) -> Result<(), SecretFileError> {
        read_secret_file("proxy.url", &mut self.url, &self.url_file)
    }
}

/// Reads a PEM bundle of CA certificates (at most [`MAX_CA_FILE_BYTES`]); `key` names the setting
/// in errors.
pub fn read_ca_file(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let at = |e: String| format!("{key} ({}): {e}", path.display());
    let pem = crate::secret::read_bounded(path, MAX_CA_FILE_BYTES).map_err(|e| match e {
        crate::secret::FileReadError::Io(e) => at(e.to_string()),
        crate::secret::FileReadError::TooLarge(limit) => at(format!("larger than {limit} bytes")),
    })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| at(format!("not a PEM certificate bundle: {e}")))?;
    if certificates.is_empty() {
        return Err(at("holds no PEM certificate".into()));
    }
    // Each must be usable as a trust anchor.
    let mut store = RootCertStore::empty();
    for certificate in &certificates {
        store
            .add(certificate.clone())
            .map_err(|e| at(format!("a certificate cannot be trusted: {e}")))?;
    }
    Ok(certificates)
}

/// A proxy variable's value as a proxy URL (`http://` when it names no scheme), or why it is
/// not one; the value is never shown.
fn proxy_variable(name: &str, value: &str) -> Result<Url, String> {
    let value = value.trim();
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    let unusable =
        |why: &str| format!("{name} is not a usable proxy URL ({why}); its value is not shown");
    let parsed = Url::parse(&with_scheme).map_err(|e| unusable(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(unusable("only http:// and https:// proxies are supported"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(unusable("no host"));
    }
    Ok(parsed)
}

/// A proxy URL as it may be shown: scheme, host and port, never credentials.
fn shown(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}://{}:{port}", url.scheme(), url.host_str().unwrap_or("")),
        None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or("")),
    }
}

/// The credentials in a proxy URL: user and password, percent-decoded and as written, and the
/// `Proxy-Authorization: Basic` credential they make (a proxy may echo its request headers).
fn credentials(url: &Url) -> Vec<SecretString> {
    use base64::Engine;
    let decoded = |raw: &str| {
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_or_else(|_| raw.to_owned(), |d| d.into_owned())
    };
    let mut out = Vec::new();
    for raw in [url.username(), url.password().unwrap_or("")] {
        if raw.is_empty() {
            continue;
        }
        out.push(SecretString::from(raw.to_owned()));
        if decoded(raw) != raw {
            out.push(SecretString::from(decoded(raw)));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        let pair = format!(
            "{}:{}",
            decoded(url.username()),
            decoded(url.password().unwrap_or(""))
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(pair);
        out.push(SecretString::from(basic));
    }
    out
}

/// What every outbound client is built with: trust and proxy.
#[derive(Clone)]
pub struct Egress {
    /// Every trusted root: bundled, system, the platform's bundle.
    roots: Arc<RootCertStore>,
    /// The trusted certificates outside the bundled roots (system store, `tls.ca_file`).
    certificates: Arc<Vec<CertificateDer<'static>>>,
    /// Whether the bundled roots are trusted.
    bundled: bool,
    /// What they are, for the start log.
    trust: String,
    /// The proxies (`proxy.url`, else the environment's variables, read here: what is used is
    /// what is scrubbed and shown); reqwest reads none itself.
    proxies: Vec<reqwest::Proxy>,
    /// The proxy as it may be shown, and where it came from.
    proxy_shown: Option<String>,
    /// Proxy credentials (configured or from the environment), never to be relayed.
    secrets: Vec<SecretString>,
}

impl fmt::Debug for Egress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The Mozilla roots built into the gateway (one list: what rustls verifies with, and what a
/// client given PEM certificates, Redis over TLS, gets).
fn bundled_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    roots
}

/// The crypto of every outbound TLS connection.
fn crypto() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What outbound TLS trusts (the bundled roots, the system store, the CA bundle of
/// `tls.ca_file`, as configured): the roots, the same as certificates outside the bundled ones
/// (for a client that takes PEM), and that in words.
fn trusted(
    tls: &TlsSettings,
) -> Result<(RootCertStore, Vec<CertificateDer<'static>>, String), String> {
    let mut roots = RootCertStore::empty();
    let mut certificates = Vec::new();
    let mut trust = Vec::new();
    if tls.bundled_roots {
        roots = bundled_roots();
        trust.push(format!("{} bundled roots", roots.len()));
    }
    if tls.native_roots {
        // rustls-native-certs reads SSL_CERT_FILE and SSL_CERT_DIR when they are set.
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs.iter().cloned());
        if added == 0 {
            return Err("tls.native_roots: the system store holds no usable certificate".into());
        }
        certificates.extend(native.certs);
        trust.push(format!("{added} from the system store"));
    }
    if let Some(path) = &tls.ca_file {
        let extra = read_ca_file("tls.ca_file", path)?;
        let (added, _) = roots.add_parsable_certificates(extra.iter().cloned());
        certificates.extend(extra);
        trust.push(format!("{added} CA(s) from {}", path.display()));
    }
    if roots.is_empty() {
        return Err("tls: nothing would be trusted: set tls.ca_file, or keep \
                    tls.bundled_roots or tls.native_roots on"
            .into());
    }
    Ok((roots, certificates, trust.join(" + ")))
}

/// `certificates` as one PEM bundle.
fn to_pem<'a>(certificates: impl Iterator<Item = &'a CertificateDer<'a>>) -> Vec<u8> {
    use base64::Engine as _;
    let mut pem = String::new();
    for certificate in certificates {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let text = base64::engine::general_purpose::STANDARD.encode(certificate.as_ref());
        for line in text.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem.into_bytes()
}

impl Egress {
    /// Reads the CA bundle and checks the proxy; errors name the key, never a credential.
    pub fn from_settings(tls: &TlsSettings, proxy: &ProxySettings) -> Result<Self, String> {
        let (roots, certificates, trust) = trusted(tls)?;
        let mut egress = Self {
            roots: Arc::new(roots),
            certificates: Arc::new(certificates),
            bundled: tls.bundled_roots,
            trust,
            proxies: Vec::new(),
            proxy_shown: None,
            secrets: Vec::new(),
        };
        match &proxy.url {
            Some(url) => egress.set_proxy(url, proxy.no_proxy.as_deref())?,
            None if proxy.no_proxy.is_some() => {
                return Err(
                    "proxy.no_proxy is set without proxy.url (with the HTTPS_PROXY \
                            variable, use NO_PROXY)"
                        .into(),
                );
            }
            None => egress.set_proxy_variables()?,
        }
        Ok(egress)
    }

    /// The configured proxy (`proxy.url`), and the hosts it does not serve.
    fn set_proxy(&mut self, url: &SecretString, no_proxy: Option<&str>) -> Result<(), String> {
        let parsed =
            Url::parse(url.expose_secret()).map_err(|e| format!("proxy.url is not a URL ({e})"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err("proxy.url must be an http:// or https:// URL with a host".into());
        }
        let reqwest_proxy = reqwest::Proxy::all(parsed.as_str())
            .map_err(|_| "proxy.url cannot be used as a proxy".to_owned())?;
        let no_proxy = match no_proxy {
            Some(list) => reqwest::NoProxy::from_string(list),
            None => reqwest::NoProxy::from_env(),
        };
        self.proxies = vec![reqwest_proxy.no_proxy(no_proxy)];
        self.proxy_shown = Some(format!("{} (proxy.url)", shown(&parsed)));
        self.secrets = credentials(&parsed);
        Ok(())
    }

    /// The proxy variables (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, lower case first;
    /// `NO_PROXY`), read as curl and reqwest read them (a value without a scheme is `http://`):
    /// a value that is not a usable proxy URL stops the start, naming the variable, never
    /// showing its value.
    fn set_proxy_variables(&mut self) -> Result<(), String> {
        let mut shown_all = Vec::new();
        for (lower, upper, serves) in PROXY_VARIABLES {
            let Some((name, value)) = [lower, upper].into_iter().find_map(|name| {
                std::env::var(name)
                    .ok()
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (name, v))
            }) else {
                continue;
            };
            let parsed = proxy_variable(name, &value)?;
            let proxy = match serves {
                ProxyFor::Https => reqwest::Proxy::https(parsed.as_str()),
                ProxyFor::Http => reqwest::Proxy::http(parsed.as_str()),
                ProxyFor::All => reqwest::Proxy::all(parsed.as_str()),
            }
            .map_err(|_| format!("{name} cannot be used as a proxy"))?;
            self.proxies
                .push(proxy.no_proxy(reqwest::NoProxy::from_env()));
            self.secrets.extend(credentials(&parsed));
            shown_all.push(format!("{} ({name})", shown(&parsed)));
        }
        if !shown_all.is_empty() {
            self.proxy_shown = Some(shown_all.join(", "));
        }
        Ok(())
    }

    /// The TLS configuration of one provider's clients: this trust plus `extra` (its own CAs),
    /// offering HTTP/2 and HTTP/1.1 or HTTP/1.1 alone. Clones share the verifier and the session
    /// cache, so every worker's client resumes the sessions of the others.
    pub fn tls_config(
        &self,
        extra: &[CertificateDer<'static>],
        http2: bool,
    ) -> Result<rustls::ClientConfig, String> {
        let roots = if extra.is_empty() {
            self.roots.clone()
        } else {
            let mut roots = (*self.roots).clone();
            for certificate in extra {
                roots
                    .add(certificate.clone())
                    .map_err(|e| format!("a CA certificate cannot be trusted: {e}"))?;
            }
            Arc::new(roots)
        };
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, crypto())
            .build()
            .map_err(|e| format!("cannot build the TLS verifier: {e}"))?;
        let mut config = rustls::ClientConfig::builder_with_provider(crypto())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot build the TLS configuration: {e}"))?
            .with_webpki_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(config)
    }

    /// A client builder with `tls` (from [`Egress::tls_config`]) and this proxy.
    pub fn builder(&self, tls: &rustls::ClientConfig) -> reqwest::ClientBuilder {
        // reqwest reads no proxy variable itself: the gateway's are the ones it uses.
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls.clone())
            .no_proxy();
        for proxy in &self.proxies {
            builder = builder.proxy(proxy.clone());
        }
        builder
    }

    /// A client for a service other than a provider (the JWKS): this trust and proxy.
    pub fn client(&self) -> Result<reqwest::ClientBuilder, String> {
        Ok(self.builder(&self.tls_config(&[], true)?))
    }

    /// The same trust as PEM certificates (the bundled roots as the certificates they come
    /// from), for a client that is given its roots so (Redis over TLS).
    pub fn roots_pem(&self) -> Vec<u8> {
        let bundled = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .filter(|_| self.bundled);
        to_pem(bundled.chain(self.certificates.iter()))
    }

    /// The proxy's credentials, to scrub from anything relayed.
    pub fn secrets(&self) -> &[SecretString] {
        &self.secrets
    }

    /// One line for the start log: what is trusted, which proxy (without credentials).
    pub fn describe(&self) -> String {
        let proxy = self.proxy_shown.as_deref().unwrap_or("none");
        format!("trust: {}; proxy: {proxy}", self.trust)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_is_shown_without_its_credentials() {
        let proxy = ProxySettings {
            url: Some(SecretString::from(
                "http://gw:s%40cret-pw@proxy.internal:3128",
            )),
            url_file: None,
            no_proxy: Some("localhost,.internal".into()),
        };
        let egress = Egress::from_settings(&TlsSettings::default(), &proxy).unwrap();
        let shown = format!("{egress:?} {}", egress.describe());
        assert!(shown.contains("http://proxy.internal:3128"), "{shown}");
        assert!(!shown.contains("cret") && !shown.contains("gw:"), "{shown}");
        let secrets: Vec<&str> = egress.secrets().iter().map(|s| s.expose_secret()).collect();
        assert!(secrets.contains(&"s%40cret-pw") && secrets.contains(&"s@cret-pw"));
        // base64("gw:s@cret-pw"): the Proxy-Authorization credential, as a proxy may echo it.
        assert!(secrets.contains(&"Z3c6c0BjcmV0LXB3"), "{secrets:?}");
        assert!(!format!("{proxy:?}").contains("s%40cret-pw"));
    }

    #[test]
    fn mistakes_name_the_key_and_never_the_url() {
        let bad = |url: &str| ProxySettings {
            url: Some(SecretString::from(url.to_owned())),
            ..Default::default()
        };
        for url in [
            "socks5://u:hunter22@proxy:1080",
            "not a url hunter22",
            "http://u:hunter22@",
        ] {
            let e = Egress::from_settings(&TlsSettings::default(), &bad(url)).unwrap_err();
            assert!(e.contains("proxy.url") && !e.contains("hunter22"), "{e}");
        }
        let e = Egress::from_settings(
            &TlsSettings::default(),
            &ProxySettings {
                no_proxy: Some("x".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.contains("proxy.no_proxy"), "{e}");
        let nothing = TlsSettings {
            bundled_roots: false,
            ..TlsSettings::default()
        };
        // SSL_CERT_FILE is part of the system store: without tls.native_roots it is not
        // trusted, set or not.
        let e = Egress::from_settings(&nothing, &ProxySettings::default()).unwrap_err();
        assert!(e.contains("nothing would be trusted"), "{e}");
    }

    #[test]
    fn redis_is_given_the_same_trust_as_pem() {
        use rustls_pki_types::pem::PemObject;
        let count = |egress: &Egress| {
            CertificateDer::pem_slice_iter(&egress.roots_pem())
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
                .len()
        };
        let bundled =
            Egress::from_settings(&TlsSettings::default(), &ProxySettings::default()).unwrap();
        assert_eq!(
            count(&bundled),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.len()
        );
        assert_eq!(count(&bundled), bundled.roots.len(), "the same roots");

        let dir = std::env::temp_dir().join(format!("cg-pem-{}", crate::ids::v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(
            &ca,
            to_pem(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().take(1)),
        )
        .unwrap();
        let alone = TlsSettings {
            ca_file: Some(ca),
            bundled_roots: false,
            native_roots: false,
        };
        let egress = Egress::from_settings(&alone, &ProxySettings::default()).unwrap();
        assert_eq!(count(&egress), 1, "the CA file alone");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_ca_file_must_hold_certificates_and_stay_small() {
        let dir = std::env::temp_dir().join(format!("cg-ca-{}", crate::ids::v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let e = read_ca_file("tls.ca_file", &empty).unwrap_err();
        assert!(
            e.contains("tls.ca_file") && e.contains("no PEM certificate"),
            "{e}"
        );
        let big = dir.join("big.pem");
        std::fs::write(&big, vec![b'a'; MAX_CA_FILE_BYTES as usize + 1]).unwrap();
        let e = read_ca_file("tls.ca_file", &big).unwrap_err();
        assert!(e.contains("larger than"), "{e}");
        let e = read_ca_file("tls.ca_file", &dir.join("absent.pem")).unwrap_err();
        assert!(e.contains("absent.pem"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
