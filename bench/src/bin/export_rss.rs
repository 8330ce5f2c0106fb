//! The memory of `GET /api/export` (issue 18): seeds an embedded store with `--messages`
//! messages (`--per-conversation` each, ~400 bytes of text), then exports everything as JSON and
//! as a Markdown zip through the real handler, draining the streamed body as a client would, and
//! prints the process's peak RSS growth during each export (VmHWM, reset before it through
//! `/proc/self/clear_refs`) and the bytes exported. Run it for 1,000 and 10,000 messages: flat
//! memory means the two peaks are about the same while the exports differ tenfold.
//!
//! `cargo run --release -p athena-bench --bin export-rss -- --messages 10000`

use std::sync::Arc;

use http_body_util::BodyExt;
use shared::api::{routes::Scope, ApiRequest, AppState};
use shared::config::Config;
use shared::domain::{Conversation, IdGenerator, Message, Role, UserId};
use shared::store::embedded::EmbeddedStore;
use shared::store::{Conversations, Store};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn flag(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total = flag("--messages", 10_000);
    let per = flag("--per-conversation", 100).max(1);
    let dir = std::env::temp_dir().join(format!("athena-export-rss-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(EmbeddedStore::open(dir.join("bench.db"))?);
    let owner = UserId::parse("local-user")?;
    let ids = IdGenerator::new();
    let text = "Press 2 hydraulic pressure dropped to 180 bar during the night shift; ".repeat(6);
    let mut seeded = 0;
    while seeded < total {
        let n = per.min(total - seeded);
        let mut c = Conversation::new(
            ids.conversation_id(),
            owner.clone(),
            "Press 2",
            "m",
            None,
            shared::domain::now(),
        );
        let mut messages: Vec<Message> = Vec::with_capacity(n);
        for i in 0..n {
            let role = if i % 2 == 0 { Role::User } else { Role::Assistant };
            let mut m = Message::text(
                ids.message_id(),
                c.id.clone(),
                role,
                format!("{i}: {text}"),
                c.created_at,
            );
            m.parent_id = messages.last().map(|p| p.id.clone());
            messages.push(m);
        }
        c.title = format!("Press 2, part {}", seeded / per);
        store.create_conversation(&c, &messages).await?;
        seeded += n;
    }
    let state = Arc::new(AppState::new(Config::local(), store as Arc<dyn Store>));
    println!("messages={total} per_conversation={per}");
    for format in ["json", "markdown"] {
        // Reset the peak to the current RSS, so the peak measured is this export's.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = status_kib("VmRSS:");
        let req = ApiRequest::get("/api/export", &[("format", format)], "bench");
        let response = shared::api::handle(&state, Scope::All, req).await;
        let mut body = response.into_body();
        let mut bytes = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                bytes += data.len();
            }
        }
        let peak = status_kib("VmHWM:");
        println!(
            "format={format} exported_bytes={bytes} rss_before_kib={before} peak_kib={peak} growth_kib={}",
            peak.saturating_sub(before)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
