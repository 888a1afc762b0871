//! `jwtd bench --keys-from remote`: the generated public keys served as a JWKS over loopback HTTP with
//! `Cache-Control: max-age=1`, so that the daemon under test refreshes them every second while it is
//! measured. Counts the fetches it answers.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, header};
use hyper_util::rt::TokioIo;

/// The server: stops when dropped.
pub(super) struct JwksServer {
    pub(super) url: String,
    pub(super) fetches: Arc<AtomicU64>,
    _runtime: tokio::runtime::Runtime,
}

impl JwksServer {
    /// Serves the keys of `sets` (JWK Sets, or single JWKs) as one JWK Set.
    pub(super) fn start(sets: &[&str]) -> Result<JwksServer, String> {
        let mut keys = Vec::new();
        for set in sets {
            let v: serde_json::Value =
                serde_json::from_str(set).map_err(|e| format!("generated JWKS: {e}"))?;
            match v["keys"].as_array() {
                Some(set) => keys.extend(set.iter().cloned()),
                None => keys.push(v),
            }
        }
        let body = Bytes::from(serde_json::json!({ "keys": keys }).to_string());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| format!("JWKS server: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let fetches = Arc::new(AtomicU64::new(0));
        let counted = fetches.clone();
        // The runtime's own worker thread serves: it keeps answering while the benchmark blocks.
        runtime.spawn(async move {
            {
                while let Ok((tcp, _)) = listener.accept().await {
                    let (body, counted) = (body.clone(), counted.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |_req| {
                            counted.fetch_add(1, Relaxed);
                            let mut r = Response::new(Full::new(body.clone()));
                            r.headers_mut()
                                .insert(header::CACHE_CONTROL, "max-age=1".parse().unwrap());
                            async move { Ok::<_, Infallible>(r) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), service)
                            .await;
                    });
                }
            }
        });
        Ok(JwksServer {
            url: format!("http://{addr}/jwks"),
            fetches,
            _runtime: runtime,
        })
    }
}
