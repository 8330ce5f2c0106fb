//! Outbound HTTP (JWKS fetches, OpenAI-compatible providers, web search, MCP tool servers, and the
//! AWS SDK's clients for DynamoDB and Bedrock): one way to build each kind of client. TLS is
//! rustls with the AWS SDK's own crypto provider (aws-lc-rs), so the binaries carry one TLS
//! implementation, and the Mozilla root set compiled in (`webpki-root-certs`: reqwest's only
//! roots, and the SDK's trust store), so building a client at cold start reads no certificate
//! files.

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

/// A client builder with the crypto provider in place (reqwest needs one before `build`) and the
/// compiled-in Mozilla roots as its only trust anchors (no platform verifier, no files read).
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder().tls_certs_only(mozilla_roots())
}

/// The Mozilla root set as reqwest certificates (parsed from memory, once per process).
fn mozilla_roots() -> Vec<reqwest::Certificate> {
    static ROOTS: std::sync::OnceLock<Vec<reqwest::Certificate>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .filter_map(|der| reqwest::Certificate::from_der(der.as_ref()).ok())
                .collect()
        })
        .clone()
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
            install_crypto_provider();
            with_timeout(reqwest::Client::builder().tls_certs_only(Vec::new()))
                .build()
                .unwrap_or_default()
        }
    }
}

/// The HTTP client for the AWS SDK's service clients (`aws_config::defaults(..).http_client(..)`):
/// the SDK's default client (hyper 1, rustls on aws-lc-rs, its cipher suites, proxies from
/// `HTTP(S)_PROXY`/`NO_PROXY` as the current behavior version does) with one difference: its
/// trust store is the compiled-in Mozilla set instead of the system's root certificates. The
/// default loads those with `rustls-native-certs` when a service client is built, which reads
/// every file of `/etc/ssl/certs` (or the bundles `SSL_CERT_FILE`/`SSL_CERT_DIR` name): most of a
/// cold start's cost (docs/performance.md, §1). AWS endpoints chain to Amazon Trust Services
/// roots (Amazon Root CA 1-4, Starfield Services Root G2), which the set includes (a test checks
/// them against the keys Amazon publishes); the rest of the set stays, so an endpoint served
/// under another public CA keeps working, as with the system store. What is lost: a root added
/// to the system store only (a TLS-inspecting proxy's), which Lambda does not have.
pub fn sdk_http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};

    let trust_store = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(mozilla_roots_pem());
    let tls_context = match TlsContext::builder().with_trust_store(trust_store).build() {
        Ok(context) => context,
        // Building a context only stores the trust store today; should it ever fail, the SDK's
        // default context (the system's roots) is the safe way to keep working.
        Err(e) => {
            tracing::warn!(error = %e, "TLS context with the compiled-in roots refused; using the system's roots");
            TlsContext::default()
        }
    };
    // As `aws_smithy_runtime::client::http::default_https_client` builds the SDK's default client
    // (one connector per distinct connector settings, cached by the client), with the TLS context
    // added. `build_with_connector_fn` is `#[doc(hidden)]` in aws-smithy-http-client 1.5, but it is
    // what the SDK's runtime itself calls; the documented `tls_provider(..).build_https()` would
    // drop the proxy configuration from the environment. A change to it fails the build, not a call.
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut builder = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(tls_context.clone());
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        builder.build()
    })
}

/// The Mozilla root set (`webpki-root-certs`, ~120 certificates) as one PEM document, the form
/// the SDK's trust store takes; encoded once per process, from memory. The SDK decodes and parses
/// it again for each connector it builds (docs/performance.md §1 measures what that costs and
/// what keeping only the Amazon Trust Services roots would save).
fn mozilla_roots_pem() -> Vec<u8> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    static PEM: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PEM.get_or_init(|| {
        let mut pem = Vec::with_capacity(256 * 1024);
        for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
            // One line per certificate: the PEM reader takes base64 lines of any length.
            pem.extend_from_slice(STANDARD.encode(cert.as_ref()).as_bytes());
            pem.extend_from_slice(b"\n-----END CERTIFICATE-----\n");
        }
        pem
    })
    .clone()
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

    /// The five roots Amazon Trust Services publishes (https://www.amazontrust.com/repository/,
    /// "Root CAs"): the SHA-256 of each root's SubjectPublicKeyInfo, as listed there.
    const AMAZON_TRUST_SERVICES_ROOTS: [(&str, &str); 5] = [
        (
            "Amazon Root CA 1",
            "fbe3018031f9586bcbf41727e417b7d1c45c2f47f93be372a17b96b50757d5a2",
        ),
        (
            "Amazon Root CA 2",
            "7f4296fc5b6a4e3b35d3c369623e364ab1af381d8fa7121533c9d6c633ea2461",
        ),
        (
            "Amazon Root CA 3",
            "36abc32656acfc645c61b71613c4bf21c787f5cabbee48348d58597803d7abc9",
        ),
        (
            "Amazon Root CA 4",
            "f7ecded5c66047d28ed6466b543c40e0743abe81d109254dcf845d4c2c7853c5",
        ),
        (
            "Starfield Services Root Certificate Authority - G2",
            "2b071c59a0a0ae76b0eadb2bad23bad4580b69c3601b630c2eaf0613afa83f92",
        ),
    ];

    /// The trust store the SDK builds from `mozilla_roots_pem`, parsed the way the SDK parses it
    /// (PEM sections, then `RootCertStore::add`, which the SDK `expect`s to succeed).
    fn sdk_trust_anchors() -> rustls::RootCertStore {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let pem = super::mozilla_roots_pem();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.expect("a PEM section of the compiled-in roots");
            roots.add(cert).expect("a root the SDK can parse");
        }
        roots
    }

    /// DER of a SubjectPublicKeyInfo from its contents (a trust anchor keeps the contents only).
    fn spki_der(contents: &[u8]) -> Vec<u8> {
        let len = contents.len();
        let mut der = vec![0x30];
        if len < 0x80 {
            der.push(len as u8);
        } else {
            let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
            der.push(0x80 | bytes.len() as u8);
            der.extend(bytes);
        }
        der.extend_from_slice(contents);
        der
    }

    #[test]
    fn the_sdk_trust_store_is_the_whole_mozilla_set_and_parses() {
        let roots = sdk_trust_anchors();
        assert_eq!(roots.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        // The same set as reqwest's roots: every certificate parses for both.
        assert!(roots.len() > 100, "{} roots", roots.len());
        assert_eq!(super::mozilla_roots().len(), roots.len());
    }

    #[test]
    fn the_sdk_trust_store_has_every_amazon_trust_services_root() {
        use sha2::{Digest, Sha256};
        let roots = sdk_trust_anchors();
        let keys: Vec<String> = roots
            .roots
            .iter()
            .map(|anchor| {
                Sha256::digest(spki_der(anchor.subject_public_key_info.as_ref()))
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .collect();
        for (name, published) in AMAZON_TRUST_SERVICES_ROOTS {
            assert!(keys.iter().any(|k| k == published), "{name} ({published}) is missing");
        }
        // And the key hash is computed the way Amazon computes it: a root absent from the set
        // (a made-up key) is not found.
        assert!(!keys.iter().any(|k| k == &"00".repeat(32)));
    }

    #[tokio::test]
    async fn an_sdk_client_with_the_compiled_in_roots_builds_and_fails_only_to_connect() {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            // Nothing listens on port 9: the TLS connector is built, the connection refused.
            .endpoint_url("https://127.0.0.1:9")
            .http_client(super::sdk_http_client())
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let err = client.list_tables().send().await.expect_err("nothing listens there");
        // A connection refused (an I/O dispatch failure), not a TLS configuration error.
        let io = matches!(&err, aws_sdk_dynamodb::error::SdkError::DispatchFailure(f) if f.is_io());
        assert!(io, "{:?}", aws_sdk_dynamodb::error::DisplayErrorContext(&err));
    }
}
