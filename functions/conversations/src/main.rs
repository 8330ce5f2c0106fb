//! Lambda function serving `/api/conversations` and `/api/conversations/{id}`.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run("conversations").await
}
