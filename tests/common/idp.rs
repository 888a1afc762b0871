//! A small identity provider for the failure cases of remote keys: HTTPS on loopback with a test CA (rcgen),
//! serving a discovery document and a JWKS that the test changes while it runs (rotation, outages, garbage,
//! huge bodies, hangs, redirects, ETags), and counting the requests it receives.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, header};
use hyper_util::rt::TokioIo;
use jwtd::Alg;
use jwtd::crypto::sign::SigningKey;
use serde_json::{Value, json};
use tokio_rustls::rustls;

/// What the provider answers (every path).
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Normal,
    Status(u16),
    Garbage,
    /// A 200 with a 10 MiB body.
    Huge,
    /// Accepts, reads the request, never answers.
    Hang,
    /// 302 to the same path over plain http.
    RedirectHttp,
}

pub struct State {
    pub keys: Vec<Value>,
    /// What the discovery document says its issuer is (default: the provider's own URL).
    pub discovery_issuer: Option<String>,
    pub mode: Mode,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub cache_control: Option<String>,
    /// Requests by path.
    pub hits: HashMap<String, usize>,
    /// Conditional requests (If-None-Match or If-Modified-Since) received on /jwks.
    pub conditional: usize,
}

pub struct Idp {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A test CA and a server certificate it signed for `names` (DNS names or IP addresses).
pub struct Pki {
    pub ca_pem: String,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn pki(names: &[&str]) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: with rcgen's default name on both, OpenSSL (curl) takes the leaf for self-signed.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "jwtd test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "jwtd test provider");
    let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_der: leaf.der().to_vec(),
        key_der: leaf_key.serialize_der(),
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    }
}

/// An ES256 signing key and its public JWK with `kid` and `alg`.
pub fn es256(kid: &str) -> (SigningKey, Value) {
    let (key, material) = SigningKey::generate(Alg::ES256).unwrap();
    let jwk = jwtd::keys::private::public_jwk(Alg::ES256, Some(kid), &material);
    (key, jwk)
}

/// A token signed by `key` with `kid`, for `iss`, audience `api`, valid until 2100.
pub fn token(key: &SigningKey, kid: &str, iss: &str, sub: &str) -> String {
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
    let claims = json!({"iss": iss, "sub": sub, "aud": "api", "exp": 4102444800u64});
    key.sign_compact(header.to_string().as_bytes(), claims.to_string().as_bytes())
        .unwrap()
}

impl Idp {
    /// A provider on a free loopback port with a certificate for 127.0.0.1 and localhost.
    pub fn start(keys: Vec<Value>) -> (Idp, Pki) {
        let pki = pki(&["127.0.0.1", "localhost"]);
        (Idp::start_with(&pki, keys), pki)
    }

    pub fn start_with(pki: &Pki, keys: Vec<Value>) -> Idp {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![pki.cert_der.clone().into()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(pki.key_der.clone().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            keys,
            discovery_issuer: None,
            mode: Mode::Normal,
            etag: None,
            last_modified: None,
            cache_control: None,
            hits: HashMap::new(),
            conditional: 0,
        }));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
                        _ = &mut stopped => return,
                    };
                    let (acceptor, state) = (acceptor.clone(), shared.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(move |req| {
                            let state = state.clone();
                            async move {
                                Ok::<_, std::convert::Infallible>(answer(req, &state, port).await)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            });
        });
        Idp {
            port,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The provider's issuer URL.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap());
    }

    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Writes the CA certificate to `dir/ca.pem` and returns its path.
    pub fn write_ca(pki: &Pki, dir: &Path) -> std::path::PathBuf {
        let p = dir.join("ca.pem");
        std::fs::write(&p, &pki.ca_pem).unwrap();
        p
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn answer(req: Request<Incoming>, state: &Mutex<State>, port: u16) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let (mode, body, etag, last_modified, cache_control) = {
        let mut st = state.lock().unwrap();
        *st.hits.entry(path.clone()).or_insert(0) += 1;
        let base = format!("https://127.0.0.1:{port}");
        let body = if path == "/.well-known/openid-configuration" {
            json!({
                "issuer": st.discovery_issuer.clone().unwrap_or(base.clone()),
                "jwks_uri": format!("{base}/jwks"),
                "id_token_signing_alg_values_supported": ["ES256"],
            })
            .to_string()
        } else {
            json!({"keys": st.keys}).to_string()
        };
        let text = |name| {
            req.headers()
                .get(name)
                .and_then(|v: &header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let (none_match, since) = (text(header::IF_NONE_MATCH), text(header::IF_MODIFIED_SINCE));
        if path == "/jwks" && (none_match.is_some() || since.is_some()) {
            st.conditional += 1;
        }
        let not_modified = path == "/jwks"
            && ((none_match.is_some() && none_match == st.etag)
                || (since.is_some() && since == st.last_modified));
        let mode = if not_modified && st.mode == Mode::Normal {
            Mode::Status(304)
        } else {
            st.mode.clone()
        };
        (
            mode,
            body,
            st.etag.clone(),
            st.last_modified.clone(),
            st.cache_control.clone(),
        )
    };
    let mut r = Response::new(Full::new(Bytes::new()));
    match mode {
        Mode::Normal => {
            *r.body_mut() = Full::new(Bytes::from(body));
            if let Some(e) = etag {
                r.headers_mut().insert(header::ETAG, e.parse().unwrap());
            }
            if let Some(l) = last_modified {
                r.headers_mut()
                    .insert(header::LAST_MODIFIED, l.parse().unwrap());
            }
            if let Some(c) = cache_control {
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, c.parse().unwrap());
            }
        }
        Mode::Status(code) => *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap(),
        Mode::Garbage => *r.body_mut() = Full::new(Bytes::from_static(b"<html>not json")),
        Mode::Huge => *r.body_mut() = Full::new(Bytes::from(vec![b' '; 10 << 20])),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Mode::RedirectHttp => {
            *r.status_mut() = hyper::StatusCode::FOUND;
            r.headers_mut().insert(
                header::LOCATION,
                format!("http://127.0.0.1:{port}{path}").parse().unwrap(),
            );
        }
    }
    r
}
