//! One test, run on both stores: [`on_both_stores!`](crate::on_both_stores).

/// Declares each named test twice: in a module `embedded` (on an in-memory SQLite store) and in a
/// module `dynamodb` (on fresh tables of the test process's moto server), so a test's path names
/// the store it ran on (`chat::dynamodb::regenerate_replaces_the_last_reply`). Each test is an
/// `async fn` of the calling module taking one argument; it runs on a two-worker multi-threaded
/// Tokio runtime.
///
/// - `on_both_stores!([a, b])`: `a` and `b` take the store as an `Arc<dyn Store>`.
/// - `on_both_stores!(|store| EXPR, [a, b])`: they take `EXPR`, evaluated inside the async test
///   with `store` bound to the concrete store (`EmbeddedStore` or `DynamoStore`); `EXPR` may
///   `.await`, and its temporaries live until the test returns. For example
///   `on_both_stores!(|store| spawn_app(Arc::new(store), Config::local()).await, [a, b])` hands
///   each test a running gateway.
///
/// The generated modules glob-import the calling module (`use super::*`), so `EXPR` may name
/// anything the calling module imports.
#[macro_export]
macro_rules! on_both_stores {
    ([$($name:ident),* $(,)?]) => {
        $crate::on_both_stores!(|store| ::std::sync::Arc::new(store), [$($name),*]);
    };
    (|$store:ident| $arg:expr, [$($name:ident),* $(,)?]) => {
        /// The tests on the embedded store (SQLite in memory).
        mod embedded {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $store = $crate::embedded_store();
                    super::$name($arg).await;
                }
            )*
        }
        /// The tests on the DynamoDB store (fresh tables on moto's server).
        mod dynamodb {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $store = $crate::dynamo_store().await;
                    super::$name($arg).await;
                }
            )*
        }
    };
}
