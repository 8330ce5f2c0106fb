//! Lambda function run hourly by an EventBridge schedule: conversations untouched for
//! `ATHENA_RETENTION_DAYS` go to the trash, and conversations 30 days in the trash are deleted
//! for good with their files; the day's cost against the trailing week is written as the EMF
//! metric `CostGrowthRatio` (docs/operations.md).

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_housekeeping().await
}
