//! Projects (seed 004's users -> projects): a user's folder of conversations with shared
//! instructions (added to the system prompt of its conversations' chat turns) and defaults
//! (model, solution) for the conversations created in it.

use serde::{Deserialize, Serialize};

use super::{ProjectId, Solution, Timestamp, UserId};
use crate::error::ValidationError;

/// Longest project name (characters).
pub const MAX_PROJECT_NAME_CHARS: usize = 100;
/// Longest project description (characters).
pub const MAX_PROJECT_DESCRIPTION_CHARS: usize = 1000;
/// Longest project instructions (characters).
pub const MAX_PROJECT_INSTRUCTIONS_CHARS: usize = 8000;
/// Most projects one user may have.
pub const MAX_PROJECTS_PER_USER: usize = 100;

/// A user's project.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// Its id.
    pub id: ProjectId,
    /// Who owns it; every read and write is scoped to the owner.
    pub owner: UserId,
    /// Its name, 1..=[`MAX_PROJECT_NAME_CHARS`] characters.
    pub name: String,
    /// A description, at most [`MAX_PROJECT_DESCRIPTION_CHARS`] characters.
    pub description: String,
    /// Instructions added to the system prompt of its conversations, at most
    /// [`MAX_PROJECT_INSTRUCTIONS_CHARS`] characters.
    pub instructions: String,
    /// The model of conversations created in it without one.
    pub default_model: Option<String>,
    /// The solution of conversations created in it without one.
    pub default_solution: Option<Solution>,
    /// When it was created.
    #[serde(with = "super::ts")]
    pub created_at: Timestamp,
    /// When it last changed.
    #[serde(with = "super::ts")]
    pub updated_at: Timestamp,
}

impl Project {
    /// Checks a name: trimmed, 1..=100 characters, no control characters.
    pub fn parse_name(raw: &str) -> Result<String, ValidationError> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err(ValidationError::field("name", "must not be empty"));
        }
        if chars > MAX_PROJECT_NAME_CHARS {
            return Err(ValidationError::field("name", "must be at most 100 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ValidationError::field("name", "must not contain control characters"));
        }
        Ok(trimmed.to_owned())
    }

    /// Checks a description: at most 1000 characters.
    pub fn parse_description(raw: &str) -> Result<String, ValidationError> {
        if raw.chars().count() > MAX_PROJECT_DESCRIPTION_CHARS {
            return Err(ValidationError::field("description", "must be at most 1000 characters"));
        }
        Ok(raw.to_owned())
    }

    /// Checks instructions: at most 8000 characters.
    pub fn parse_instructions(raw: &str) -> Result<String, ValidationError> {
        if raw.chars().count() > MAX_PROJECT_INSTRUCTIONS_CHARS {
            return Err(ValidationError::field(
                "instructions",
                "must be at most 8000 characters",
            ));
        }
        Ok(raw.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked_in_characters() {
        assert_eq!(Project::parse_name("  a  ").ok().as_deref(), Some("a"));
        assert!(Project::parse_name(" ").is_err());
        assert!(Project::parse_name(&"é".repeat(100)).is_ok());
        assert!(Project::parse_name(&"é".repeat(101)).is_err());
        assert!(Project::parse_description(&"é".repeat(1000)).is_ok());
        assert!(Project::parse_description(&"é".repeat(1001)).is_err());
        assert!(Project::parse_instructions(&"x".repeat(8000)).is_ok());
        assert!(Project::parse_instructions(&"x".repeat(8001)).is_err());
    }
}
