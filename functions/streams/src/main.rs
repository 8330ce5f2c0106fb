//! Lambda function consuming the conversations table's DynamoDB stream: each record goes to the
//! reactions that follow it (`shared::reactions`; today the full-text search index).

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_stream_consumer().await
}
