//! Lambda function serving `/api/conversations/{id}/messages`.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run("messages").await
}
