//! Stub HTTP servers on a free loopback port, for the services the gateway calls (a search API,
//! an issuer's JWKS).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;

/// Starts an HTTP/1 server that answers every request, whatever its method and path, with 200 and
/// `answer(request body)`; returns `http://127.0.0.1:PORT{path}`. It runs until the test's
/// runtime ends.
pub async fn stub_server<F>(path: &str, answer: F) -> String
where
    F: Fn(Bytes) -> String + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}{path}", listener.local_addr().expect("addr"));
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let answer = Arc::clone(&answer);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let answer = Arc::clone(&answer);
                    async move {
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(Bytes::from(
                            answer(body),
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}
