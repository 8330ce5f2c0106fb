//! The second cold-start baseline: the empty `lambda_http` function plus what any DynamoDB-backed
//! function builds at init, Athena's DynamoDB client (`shared::store::dynamo::client_from_env`:
//! aws-config's environment chain, rustls, retry and timeout settings). No call is made.

use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let client = shared::store::dynamo::client_from_env().await;
    lambda_http::run(service_fn(move |_event: Request| {
        let _client = client.clone();
        async { Ok::<_, Error>(Response::new(Body::from("hello"))) }
    }))
    .await
}
