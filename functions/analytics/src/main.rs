//! Lambda function serving `/api/analytics/summary` (admins only) and the `/dashboard` page.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run("analytics").await
}
