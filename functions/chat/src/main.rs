//! Lambda function serving `/api/chat` and `/api/chat/{solution}` with response streaming.
//! One binary, deployed once per solution; `ATHENA_SOLUTION` says which.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_chat().await
}
