//! Outbound HTTP (JWKS fetches, OpenAI-compatible providers, web search): one way to build a
//! client. TLS is rustls with the AWS SDK's own crypto provider (aws-lc-rs), so the binaries carry
//! one TLS implementation, and the Mozilla root set compiled in (`webpki-roots`), so building a
//! client at cold start reads no certificate files.

use std::time::Duration;

/// Makes aws-lc-rs the process's default rustls provider (once; a provider installed earlier by
/// anyone else stays).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only means a default is already installed, which is as good.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// A client builder with the crypto provider in place (reqwest needs one before `build`).
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

/// A client with an overall per-request `timeout` (`None`: none beyond the caller's own).
///
/// Building does not fail with the compiled-in roots; should it ever, the client trusts no
/// built-in root (TLS calls then fail with an unknown-issuer error, which callers report) rather
/// than taking the process down.
pub fn client(timeout: Option<Duration>) -> reqwest::Client {
    let with_timeout = |b: reqwest::ClientBuilder| match timeout {
        Some(t) => b.timeout(t),
        None => b,
    };
    match with_timeout(client_builder()).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, "building the HTTP client with its root certificates failed");
            with_timeout(client_builder().tls_built_in_root_certs(false))
                .build()
                .unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_client_builds_without_a_second_crypto_provider() {
        // Without the provider reqwest (built without ring) would panic here.
        let client = super::client(Some(std::time::Duration::from_secs(1)));
        // An https URL that cannot connect exercises the TLS configuration path without the network.
        let err = client.get("https://127.0.0.1:9/").send().await;
        assert!(err.is_err());
    }
}
