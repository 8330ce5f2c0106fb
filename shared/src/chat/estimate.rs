//! What a turn is estimated to cost in tokens, written once: the reservation made when the turn
//! is admitted, and the charge of a model call that ended without reported usage.
//!
//! - **Input** of a model call: the characters of the request as sent (system prompt, every
//!   message's text, tool calls and results as JSON, the offered tools' names, descriptions and
//!   schemas) plus [`MESSAGE_OVERHEAD_CHARS`] per message, divided by [`CHARS_PER_TOKEN`] and
//!   rounded up. Three characters a token is conservative for the models of the catalog (Anthropic
//!   documents about 3.5 characters of English a token; code and non-Latin text run lower), and it
//!   is the figure the context trimming already uses (`context_for`).
//! - **Reservation** of a turn: the input of its first model call plus the output cap sent with
//!   it (`max_tokens`), and the same for the title request when one is made beside the reply.
//!   Later tool-loop steps are not reserved: their cost is settled at the end like the rest.
//! - **Charge of a call without reported usage** (the client went away, the provider broke the
//!   stream, the reply timed out): its input as above plus the characters it streamed (text, and
//!   tool calls as JSON) divided by [`CHARS_PER_TOKEN`], rounded up, so never zero once anything
//!   was streamed. A call that failed before its first event (refused, throttled, no first token
//!   in time) is charged nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::catalog::ModelInfo;
use crate::config::ChatConfig;
use crate::llm::{ModelContent, ModelMessage, ToolSpec};

/// Characters counted as one token.
pub const CHARS_PER_TOKEN: u64 = 3;
/// Characters added per message for its role and framing (as `context_for` counts them).
pub const MESSAGE_OVERHEAD_CHARS: u64 = 16;

/// Tokens of `chars` characters: `chars / 3`, rounded up (1 for a single character).
pub fn tokens_for_chars(chars: u64) -> u64 {
    chars.div_ceil(CHARS_PER_TOKEN)
}

/// Estimated input tokens of a model request with this system prompt, messages and tools.
pub fn input_tokens(system: &str, messages: &[ModelMessage], tools: &[ToolSpec]) -> u64 {
    let count = |s: &str| s.chars().count() as u64;
    let mut chars = count(system);
    for m in messages {
        chars += MESSAGE_OVERHEAD_CHARS;
        for c in &m.content {
            chars += match c {
                ModelContent::Text(t) => count(t),
                ModelContent::ToolUse { name, input, .. } => count(name) + count(&input.to_string()),
                ModelContent::ToolResult { content, .. } => count(&content.to_string()),
                // A file's own estimate (`domain::file::estimate_tokens`), in characters.
                ModelContent::FileRef { tokens, .. } => tokens.saturating_mul(CHARS_PER_TOKEN),
                ModelContent::File { format, bytes, .. } => {
                    crate::domain::file::estimate_tokens(*format, bytes).saturating_mul(CHARS_PER_TOKEN)
                }
            };
        }
    }
    for t in tools {
        chars += count(&t.name) + count(&t.description) + count(&t.input_schema.to_string());
    }
    tokens_for_chars(chars)
}

/// The output cap (`max_tokens`) sent with a turn's model calls: the deployment's cap, bounded
/// by the model's own.
pub fn output_cap(chat: &ChatConfig, model: &ModelInfo) -> u32 {
    chat.max_output_tokens.min(model.max_output_tokens)
}

/// What a model call may cost at most, as reserved: its estimated input plus its output cap.
pub fn reservation(input_tokens: u64, max_tokens: u32) -> u64 {
    input_tokens.saturating_add(u64::from(max_tokens))
}

/// The charge of a model call that reported no usage: its input estimate and the tokens of the
/// characters it streamed.
pub fn unreported_call(input_tokens: u64, streamed_chars: u64) -> u64 {
    input_tokens.saturating_add(tokens_for_chars(streamed_chars))
}

/// What a running turn has sent and streamed, shared with the guard that settles the turn if its
/// task dies before the finishing write (then only the estimate is known).
#[derive(Debug, Default)]
pub struct Progress {
    input: AtomicU64,
    streamed_chars: AtomicU64,
}

impl Progress {
    /// A model call with this input estimate started streaming.
    pub fn sent(&self, input_tokens: u64) {
        self.input.fetch_add(input_tokens, Ordering::Relaxed);
    }

    /// `chars` more characters were streamed.
    pub fn streamed(&self, chars: u64) {
        self.streamed_chars.fetch_add(chars, Ordering::Relaxed);
    }

    /// The estimated cost of everything so far, as if no call had reported usage.
    pub fn estimate(&self) -> u64 {
        unreported_call(
            self.input.load(Ordering::Relaxed),
            self.streamed_chars.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::MODELS;
    use crate::llm::ModelRole;
    use serde_json::json;

    fn user(text: &str) -> ModelMessage {
        ModelMessage {
            role: ModelRole::User,
            content: vec![ModelContent::Text(text.to_owned())],
        }
    }

    #[test]
    fn three_characters_a_token_rounded_up() {
        assert_eq!(tokens_for_chars(0), 0);
        assert_eq!(tokens_for_chars(1), 1, "never zero once something was produced");
        assert_eq!(tokens_for_chars(3), 1);
        assert_eq!(tokens_for_chars(4), 2);
        // Characters, not bytes: three multi-byte characters are one token.
        assert_eq!(input_tokens("äöü", &[], &[]), 1);
    }

    #[test]
    fn the_input_counts_the_system_prompt_every_message_and_the_tools() {
        // 2 messages: (16 + 5) + (16 + 4), plus 9 of system: 50 characters, 17 tokens.
        assert_eq!(input_tokens("123456789", &[user("hello"), user("abcd")], &[]), 17);
        let tool = ToolSpec {
            name: "t".to_owned(),
            description: "dd".to_owned(),
            input_schema: json!({}),
        };
        // + 1 + 2 + 2 ("{}") = 55 characters, 19 tokens.
        assert_eq!(input_tokens("123456789", &[user("hello"), user("abcd")], &[tool]), 19);
        let tool_round = ModelMessage {
            role: ModelRole::User,
            content: vec![ModelContent::ToolResult {
                id: "x".to_owned(),
                content: json!("ab"),
                is_error: false,
            }],
        };
        // 16 + 4 (`"ab"`): 20 characters, 7 tokens.
        assert_eq!(input_tokens("", &[tool_round], &[]), 7);
    }

    #[test]
    fn a_reservation_is_the_input_and_the_output_cap() {
        let mut chat = ChatConfig {
            max_output_tokens: 200,
            ..ChatConfig::default()
        };
        assert_eq!(output_cap(&chat, &MODELS[0]), 200);
        chat.max_output_tokens = u32::MAX;
        assert_eq!(output_cap(&chat, &MODELS[0]), MODELS[0].max_output_tokens);
        assert_eq!(reservation(17, 200), 217);
        // A long history reserves its whole input: 30,000 characters are 10,000 tokens.
        let long = "x".repeat(30_000 - 16);
        assert_eq!(reservation(input_tokens("", &[user(&long)], &[]), 100), 10_100);
    }

    #[test]
    fn a_call_without_usage_is_charged_what_was_sent_and_streamed() {
        assert_eq!(unreported_call(100, 0), 100);
        assert_eq!(unreported_call(100, 10), 104);
        assert_eq!(unreported_call(0, 1), 1);
        let progress = Progress::default();
        assert_eq!(progress.estimate(), 0);
        progress.sent(50);
        progress.streamed(4);
        progress.streamed(3);
        progress.sent(60);
        assert_eq!(progress.estimate(), 113, "110 sent + 7 characters streamed (3 tokens)");
    }
}
