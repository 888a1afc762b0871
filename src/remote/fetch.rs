//! One HTTPS GET for an identity provider's document (discovery or JWKS): rustls on the ring provider, one
//! connection per fetch (fetches are minutes apart; a pooled connection would mostly be found closed by the
//! server), a connect and a total timeout, a body limit, conditional requests, and redirects followed only
//! within the allowed schemes. No proxy is ever used (environment variables such as HTTPS_PROXY are ignored):
//! keys come from the URL the operator configured, and from nowhere else.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Uri;
use hyper::header::{self, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};

/// Most redirects followed for one fetch.
pub const MAX_REDIRECTS: usize = 3;

/// How to fetch.
#[derive(Debug, Clone)]
pub struct Options {
    /// Connect, and the whole fetch (connect, TLS, request, body), each bounded by this.
    pub timeout: Duration,
    /// Longest body accepted, in bytes.
    pub max_body: usize,
    /// Allow `http://` URLs whose host is a loopback address (tests, a local IdP). Never for other hosts.
    pub allow_http_loopback: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            timeout: Duration::from_secs(5),
            max_body: 1 << 20,
            allow_http_loopback: false,
        }
    }
}

/// The validators of the copy we hold, sent so an unchanged document costs a 304.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// What a fetch brought.
#[derive(Debug)]
pub enum Fetched {
    /// 304: the copy we hold is current.
    NotModified { cache_control: Option<String> },
    /// 200 and its body.
    Body {
        body: Bytes,
        validators: Validators,
        cache_control: Option<String>,
    },
}

/// Why a fetch failed. Display is the log line's reason.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("bad URL {url}: {why}")]
    BadUrl { url: String, why: String },
    #[error(
        "{url}: plain http is refused (use https; http is allowed only for loopback addresses with allow_http)"
    )]
    PlainHttp { url: String },
    #[error("{url}: cannot connect: {why}")]
    Connect { url: String, why: String },
    #[error("{url}: TLS: {why}")]
    Tls { url: String, why: String },
    #[error("{url}: no answer within {secs} s")]
    Timeout { url: String, secs: f64 },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: the body is over {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url}: redirect refused: {why}")]
    Redirect { url: String, why: String },
    #[error("{url}: {why}")]
    Protocol { url: String, why: String },
}

impl FetchError {
    /// A short stable label for metrics (`jwtd_jwks_fetches_total{outcome=…}`).
    pub fn label(&self) -> &'static str {
        match self {
            FetchError::BadUrl { .. } | FetchError::PlainHttp { .. } => "bad_url",
            FetchError::Connect { .. } => "connect",
            FetchError::Tls { .. } => "tls",
            FetchError::Timeout { .. } => "timeout",
            FetchError::Status { .. } => "status",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::Redirect { .. } => "redirect",
            FetchError::Protocol { .. } => "protocol",
        }
    }
}

/// Fetches documents over HTTPS. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    tls: TlsConnector,
    options: Options,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.options)
            .finish()
    }
}

/// Why the trust anchors could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("--ca-file {path}: {why}")]
    CaFile { path: String, why: String },
    #[error(
        "no trust anchors: the system has no CA certificates and none were given with --ca-file"
    )]
    NoRoots,
}

/// The trust anchors: the system's, or Mozilla's when the system has none, plus the certificates of
/// `ca_file` (PEM).
pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TrustError> {
    let mut store = RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    let (added, _) = store.add_parsable_certificates(system.certs);
    if added == 0 {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = ca_file {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let shown = path.display().to_string();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| TrustError::CaFile {
                path: shown.clone(),
                why: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TrustError::CaFile {
                path: shown,
                why: "no CERTIFICATE block".into(),
            });
        }
        for c in certs {
            store.add(c).map_err(|e| TrustError::CaFile {
                path: shown.clone(),
                why: e.to_string(),
            })?;
        }
    }
    if store.is_empty() {
        return Err(TrustError::NoRoots);
    }
    Ok(store)
}

impl Client {
    pub fn new(roots: RootCertStore, options: Options) -> Client {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Client {
            tls: TlsConnector::from(Arc::new(config)),
            options,
        }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// GETs `url`, following up to [`MAX_REDIRECTS`] redirects, within the total timeout.
    pub async fn get(&self, url: &str, held: &Validators) -> Result<Fetched, FetchError> {
        let secs = self.options.timeout.as_secs_f64();
        match tokio::time::timeout(self.options.timeout, self.follow(url, held)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout {
                url: url.to_string(),
                secs,
            }),
        }
    }

    async fn follow(&self, url: &str, held: &Validators) -> Result<Fetched, FetchError> {
        let mut current = self.check(url)?;
        let mut redirects = 0;
        loop {
            match self.once(&current, held).await? {
                Step::Done(f) => return Ok(f),
                Step::Redirect(location) => {
                    let shown = current.to_string();
                    if redirects == MAX_REDIRECTS {
                        return Err(FetchError::Redirect {
                            url: shown,
                            why: format!("more than {MAX_REDIRECTS} redirects"),
                        });
                    }
                    redirects += 1;
                    let next =
                        resolve(&current, &location).map_err(|why| FetchError::Redirect {
                            url: shown.clone(),
                            why,
                        })?;
                    if current.scheme_str() == Some("https") && next.scheme_str() != Some("https") {
                        return Err(FetchError::Redirect {
                            url: shown,
                            why: format!("from https to {next}"),
                        });
                    }
                    current = self
                        .check(&next.to_string())
                        .map_err(|e| FetchError::Redirect {
                            url: shown,
                            why: e.to_string(),
                        })?;
                }
            }
        }
    }

    /// Parses `url` and checks its scheme against the options.
    pub fn check(&self, url: &str) -> Result<Uri, FetchError> {
        let bad = |why: &str| FetchError::BadUrl {
            url: url.to_string(),
            why: why.to_string(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(bad("credentials in the URL are not supported"));
        }
        match uri.scheme_str() {
            Some("https") => Ok(uri),
            Some("http") if self.options.allow_http_loopback && is_loopback(host) => Ok(uri),
            Some("http") => Err(FetchError::PlainHttp {
                url: url.to_string(),
            }),
            _ => Err(bad("the scheme must be https")),
        }
    }

    async fn once(&self, uri: &Uri, held: &Validators) -> Result<Step, FetchError> {
        let url = uri.to_string();
        let host = uri.host().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let tls = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let connect = tokio::time::timeout(self.options.timeout, TcpStream::connect((bare, port)));
        let tcp = match connect.await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(FetchError::Connect {
                    url,
                    why: e.to_string(),
                });
            }
            Err(_) => {
                return Err(FetchError::Timeout {
                    url,
                    secs: self.options.timeout.as_secs_f64(),
                });
            }
        };
        let _ = tcp.set_nodelay(true);
        let request = self.request(uri, held)?;
        let response = if tls {
            let name = ServerName::try_from(bare.to_string()).map_err(|e| FetchError::BadUrl {
                url: url.clone(),
                why: e.to_string(),
            })?;
            let stream = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| FetchError::Tls {
                    url: url.clone(),
                    why: tls_reason(&e),
                })?;
            send(TokioIo::new(stream), request, &url, self.options.timeout).await?
        } else {
            send(TokioIo::new(tcp), request, &url, self.options.timeout).await?
        };
        let status = response.status();
        let headers = response.headers().clone();
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if status.is_redirection() && status != hyper::StatusCode::NOT_MODIFIED {
            let location = text(header::LOCATION).ok_or_else(|| FetchError::Redirect {
                url: url.clone(),
                why: format!("HTTP {} without a Location", status.as_u16()),
            })?;
            return Ok(Step::Redirect(location));
        }
        let cache_control = text(header::CACHE_CONTROL);
        if status == hyper::StatusCode::NOT_MODIFIED {
            return Ok(Step::Done(Fetched::NotModified { cache_control }));
        }
        if status != hyper::StatusCode::OK {
            return Err(FetchError::Status {
                url,
                status: status.as_u16(),
            });
        }
        let limit = self.options.max_body;
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    FetchError::TooLarge {
                        url: url.clone(),
                        limit,
                    }
                } else {
                    FetchError::Protocol {
                        url: url.clone(),
                        why: format!("reading the body: {e}"),
                    }
                }
            })?
            .to_bytes();
        Ok(Step::Done(Fetched::Body {
            body,
            validators: Validators {
                etag: text(header::ETAG),
                last_modified: text(header::LAST_MODIFIED),
            },
            cache_control,
        }))
    }

    fn request(
        &self,
        uri: &Uri,
        held: &Validators,
    ) -> Result<hyper::Request<Empty<Bytes>>, FetchError> {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut b = hyper::Request::get(path)
            .header(header::HOST, uri.authority().map_or("", |a| a.as_str()))
            .header(
                header::USER_AGENT,
                concat!("jwtd/", env!("CARGO_PKG_VERSION")),
            )
            .header(header::ACCEPT, "application/json, application/jwk-set+json")
            .header(header::CONNECTION, "close");
        for (name, value) in [
            (header::IF_NONE_MATCH, &held.etag),
            (header::IF_MODIFIED_SINCE, &held.last_modified),
        ] {
            if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                b = b.header(name, v);
            }
        }
        b.body(Empty::new()).map_err(|e| FetchError::BadUrl {
            url: uri.to_string(),
            why: e.to_string(),
        })
    }
}

enum Step {
    Done(Fetched),
    Redirect(String),
}

async fn send<I>(
    io: I,
    request: hyper::Request<Empty<Bytes>>,
    url: &str,
    limit: Duration,
) -> Result<hyper::Response<hyper::body::Incoming>, FetchError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let protocol = |why: String| FetchError::Protocol {
        url: url.to_string(),
        why,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| protocol(e.to_string()))?;
    // The connection task ends with the response (Connection: close), or at the limit: a server that
    // accepts and never answers must not keep a connection per abandoned fetch.
    tokio::spawn(async move {
        let _ = tokio::time::timeout(limit, conn).await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| protocol(e.to_string()))
}

/// A TLS failure in words an operator can act on.
fn tls_reason(e: &std::io::Error) -> String {
    use rustls::{CertificateError, Error as E};
    match e.get_ref().and_then(|inner| inner.downcast_ref::<E>()) {
        Some(E::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            "the server's certificate is not signed by a trusted CA (add the CA with --ca-file)"
                .into()
        }
        Some(E::InvalidCertificate(CertificateError::NotValidForName))
        | Some(E::InvalidCertificate(CertificateError::NotValidForNameContext { .. })) => {
            "the server's certificate is not valid for this host name".into()
        }
        Some(E::InvalidCertificate(CertificateError::Expired))
        | Some(E::InvalidCertificate(CertificateError::ExpiredContext { .. })) => {
            "the server's certificate has expired".into()
        }
        Some(other) => other.to_string(),
        None => e.to_string(),
    }
}

/// `location` resolved against `base` (absolute URLs, and absolute paths on the same origin).
fn resolve(base: &Uri, location: &str) -> Result<Uri, String> {
    if location.contains("://") {
        return location
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| e.to_string());
    }
    if !location.starts_with('/') || location.starts_with("//") {
        return Err(format!("unsupported Location {location:?}"));
    }
    Uri::builder()
        .scheme(base.scheme_str().unwrap_or("https"))
        .authority(base.authority().map_or("", |a| a.as_str()))
        .path_and_query(location)
        .build()
        .map_err(|e| e.to_string())
}

/// `localhost`, 127.0.0.0/8 or ::1.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(allow_http_loopback: bool) -> Client {
        Client::new(
            RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            Options {
                allow_http_loopback,
                ..Options::default()
            },
        )
    }

    #[test]
    fn only_https_or_loopback_http_when_allowed() {
        let c = client(false);
        assert!(c.check("https://idp.example/jwks").is_ok());
        assert!(matches!(
            c.check("http://127.0.0.1:8080/jwks"),
            Err(FetchError::PlainHttp { .. })
        ));
        let c = client(true);
        for ok in [
            "http://127.0.0.1:8080/jwks",
            "http://[::1]:9/x",
            "http://localhost/x",
        ] {
            assert!(c.check(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://10.0.0.1/jwks",
            "http://idp.example/jwks",
            "ftp://idp.example/jwks",
            "https://user:pw@idp.example/jwks",
            "/jwks",
            "https:///jwks",
        ] {
            assert!(c.check(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn redirects_resolve_absolute_urls_and_paths_only() {
        let base: Uri = "https://idp.example:8443/a/b".parse().unwrap();
        assert_eq!(
            resolve(&base, "/jwks?x=1").unwrap().to_string(),
            "https://idp.example:8443/jwks?x=1"
        );
        assert_eq!(
            resolve(&base, "https://other.example/k")
                .unwrap()
                .to_string(),
            "https://other.example/k"
        );
        assert!(resolve(&base, "relative").is_err());
        assert!(resolve(&base, "//evil.example/k").is_err());
    }
}
