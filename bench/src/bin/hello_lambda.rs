//! The cold-start baseline: an empty `lambda_http` function (same crate versions, same profile as
//! Athena's functions) answering every event with `200 hello`.

use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_event: Request| async {
        Ok::<_, Error>(Response::new(Body::from("hello")))
    }))
    .await
}
