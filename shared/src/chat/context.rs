//! Stored history to the model's context.

use crate::catalog::ModelInfo;
use crate::domain::{Message, Role};
use crate::llm::{ModelContent, ModelMessage, ModelRole};

/// Converts stored history into the model's context: user/assistant alternation (consecutive
/// messages of one role merged), starting with a user message, trimmed from the oldest end to
/// fit the model's window (estimated at 3 characters per token), the newest message always kept.
pub fn context_for(history: &[Message], model: &ModelInfo, system: &str) -> Vec<ModelMessage> {
    let budget_chars = (model.context_window as usize)
        .saturating_sub(model.max_output_tokens.min(16_000) as usize)
        .saturating_mul(3)
        .saturating_sub(system.len());
    let mut kept: Vec<&Message> = Vec::new();
    let mut used = 0usize;
    for m in history.iter().rev() {
        if !matches!(m.role, Role::User | Role::Assistant) {
            continue;
        }
        let size = m.content.len() + 16;
        if !kept.is_empty() && used + size > budget_chars {
            break;
        }
        used += size;
        kept.push(m);
    }
    kept.reverse();
    let mut out: Vec<ModelMessage> = Vec::new();
    for m in kept {
        let role = if m.role == Role::User {
            ModelRole::User
        } else {
            ModelRole::Assistant
        };
        if out.is_empty() && role == ModelRole::Assistant {
            continue;
        }
        let text = m.content.clone();
        match out.last_mut() {
            Some(last) if last.role == role => {
                if let Some(ModelContent::Text(t)) = last.content.last_mut() {
                    t.push_str("\n\n");
                    t.push_str(&text);
                } else {
                    last.content.push(ModelContent::Text(text));
                }
            }
            _ => out.push(ModelMessage {
                role,
                content: vec![ModelContent::Text(text)],
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::MODELS;
    use crate::domain::{self, ConversationId};

    fn msg(role: Role, text: &str) -> Message {
        let ids = crate::domain::IdGenerator::new();
        Message::text(
            ids.message_id(),
            ConversationId::parse("c").unwrap_or_else(|_| unreachable!()),
            role,
            text.to_owned(),
            domain::now(),
        )
    }

    #[test]
    fn context_alternates_starts_with_the_user_and_merges_runs() {
        let history = vec![
            msg(Role::Assistant, "hello"),
            msg(Role::User, "a"),
            msg(Role::User, "b"),
            msg(Role::Assistant, "c"),
            msg(Role::User, "d"),
        ];
        let context = context_for(&history, &MODELS[0], "sys");
        let roles: Vec<_> = context.iter().map(|m| m.role).collect();
        assert_eq!(roles, [ModelRole::User, ModelRole::Assistant, ModelRole::User]);
        assert_eq!(context[0].content, vec![ModelContent::Text("a\n\nb".to_owned())]);
    }

    #[test]
    fn context_is_trimmed_to_the_window_keeping_the_newest() {
        let mut small = MODELS[0].clone();
        small.context_window = 1_000;
        small.max_output_tokens = 100;
        let big = "x".repeat(1_500);
        let history = vec![
            msg(Role::User, &big),
            msg(Role::Assistant, &big),
            msg(Role::User, "newest"),
        ];
        let context = context_for(&history, &small, "");
        assert_eq!(context.len(), 1);
        assert_eq!(context[0].content, vec![ModelContent::Text("newest".to_owned())]);
    }
}
