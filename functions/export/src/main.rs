//! Lambda function serving `GET /api/export`: every conversation of the caller, streamed with
//! Lambda response streaming (a buffered function's answer is limited to 6 MB and API Gateway's
//! 29 s; a streamed one is not), as JSON or as a zip of Markdown files (`docs/export.md`).

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_streaming("export").await
}
