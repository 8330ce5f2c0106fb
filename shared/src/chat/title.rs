//! A short title for a new conversation, written by a small model (`ATHENA_TITLE_MODEL`) while
//! the first reply streams, as ai-chatbot does: off the hot path (it runs beside the reply and
//! is stored in the reply's own write), bounded in time, and never failing the turn.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::TITLE_CHARS;
use crate::domain::Title;
use crate::llm::{ChatModel, ModelContent, ModelEvent, ModelMessage, ModelRequest, ModelRole, TITLE_SYSTEM_PROMPT};

/// Longest a title request may take.
pub(super) const TIMEOUT: Duration = Duration::from_secs(10);
/// How much of the first message the title model reads, characters.
const CONTEXT_CHARS: usize = 2_000;

/// A title and the tokens it cost (charged with the turn).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Named {
    pub(super) title: String,
    pub(super) tokens: u64,
}

/// Starts writing a title for a conversation that begins with `first_message`.
pub(super) fn spawn(
    model_port: Arc<dyn ChatModel>,
    model: String,
    first_message: &str,
) -> tokio::task::JoinHandle<Option<Named>> {
    let request = request(model, first_message);
    let task = async move {
        match tokio::time::timeout(TIMEOUT, write(model_port.as_ref(), request)).await {
            Ok(named) => named,
            Err(_) => {
                tracing::warn!("the title model did not answer in time");
                None
            }
        }
    };
    tokio::spawn(tracing::Instrument::instrument(task, tracing::Span::current()))
}

/// The title request for a conversation that begins with `first_message`.
fn request(model: String, first_message: &str) -> ModelRequest {
    let text: String = first_message.chars().take(CONTEXT_CHARS).collect();
    ModelRequest {
        model,
        system: TITLE_SYSTEM_PROMPT.to_owned(),
        messages: vec![ModelMessage {
            role: ModelRole::User,
            content: vec![ModelContent::Text(text)],
        }],
        max_tokens: 32,
        tools: Vec::new(),
    }
}

/// The tokens reserved for the title request of a conversation that begins with `first_message`.
pub(super) fn reservation(first_message: &str) -> u64 {
    let r = request(String::new(), first_message);
    super::estimate::reservation(
        super::estimate::input_tokens(&r.system, &r.messages, &r.tools),
        r.max_tokens,
    )
}

#[tracing::instrument(name = "chat.title", skip_all, fields(model = %request.model))]
async fn write(model_port: &dyn ChatModel, request: ModelRequest) -> Option<Named> {
    let mut stream = match model_port.stream(request).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "the title model failed");
            return None;
        }
    };
    let (mut out, mut tokens) = (String::new(), 0u64);
    while let Some(event) = stream.next().await {
        match event {
            Ok(ModelEvent::TextDelta(d)) => out.push_str(&d),
            Ok(ModelEvent::Usage(u)) => tokens += u.input_tokens + u.output_tokens,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the title model failed mid-answer");
                return None;
            }
        }
    }
    clean(&out).map(|title| Named { title, tokens })
}

/// The model's answer as a title: one line, quotes and a leading `Title:` and final
/// punctuation dropped, at most [`TITLE_CHARS`] characters at a word boundary; `None` when
/// nothing usable is left.
pub(super) fn clean(answer: &str) -> Option<String> {
    let line = answer.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line
        .strip_prefix("Title:")
        .or_else(|| line.strip_prefix("title:"))
        .unwrap_or(line)
        .trim()
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '*' || c == '`')
        .trim_end_matches(['.', '!', '?', ':', ';', ','])
        .trim();
    let title = Title::from_first_message(line, TITLE_CHARS);
    (!Title::is_default(title.as_str()) && Title::parse(title.as_str()).is_ok()).then(|| title.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_models_answer_is_cleaned_into_a_title() {
        assert_eq!(
            clean("\"Press 2 Pressure Alarms.\"").as_deref(),
            Some("Press 2 Pressure Alarms")
        );
        assert_eq!(
            clean("Title: MTBF for line 2\nmore").as_deref(),
            Some("MTBF for line 2")
        );
        assert_eq!(clean("   \n  "), None);
        assert_eq!(clean("\"\""), None);
        let long = clean(&"word ".repeat(30)).unwrap_or_default();
        assert!(long.chars().count() <= TITLE_CHARS && !long.ends_with(' '));
    }
}
