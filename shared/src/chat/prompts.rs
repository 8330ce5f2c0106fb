//! The solutions' expert system prompts and capability lists, compiled in from `shared/prompts/`.

use serde_json::Value;

use crate::domain::Solution;

/// The system prompt of a solution (general chat: `None`). One file per prompt, compiled in.
pub fn system_prompt(solution: Option<Solution>) -> &'static str {
    match solution {
        None => include_str!("../../prompts/general.md"),
        Some(Solution::Manufacturing) => include_str!("../../prompts/manufacturing.md"),
        Some(Solution::Maintenance) => include_str!("../../prompts/maintenance.md"),
        Some(Solution::Support) => include_str!("../../prompts/support.md"),
        Some(Solution::ChangeManagement) => include_str!("../../prompts/change-management.md"),
        Some(Solution::ImpactAnalysis) => include_str!("../../prompts/impact-analysis.md"),
        Some(Solution::Requirements) => include_str!("../../prompts/requirements.md"),
    }
}

/// The system prompt of a turn in a project's conversation: the solution's prompt, then the
/// project's instructions in a `<project_instructions>` block (unchanged when they are empty).
pub fn with_project_instructions(system: &str, instructions: &str) -> String {
    let instructions = instructions.trim();
    if instructions.is_empty() {
        return system.to_owned();
    }
    format!(
        "{}\n\nThe user's project adds these instructions; follow them where they do not conflict with the above.\n<project_instructions>\n{instructions}\n</project_instructions>",
        system.trim_end()
    )
}

/// The capabilities a solution's GET lists.
pub fn capabilities(solution: Option<Solution>) -> Vec<String> {
    static ALL: std::sync::OnceLock<serde_json::Map<String, Value>> = std::sync::OnceLock::new();
    let all =
        ALL.get_or_init(|| serde_json::from_str(include_str!("../../prompts/capabilities.json")).unwrap_or_default());
    let key = solution.map_or("general", Solution::as_str);
    all.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_solution_has_a_prompt_and_capabilities() {
        for s in std::iter::once(None).chain(Solution::ALL.into_iter().map(Some)) {
            assert!(system_prompt(s).len() > 200, "{s:?}");
            assert!(!capabilities(s).is_empty(), "{s:?}");
        }
    }

    #[test]
    fn project_instructions_follow_the_expert_prompt_in_their_own_block() {
        let system = with_project_instructions("Expert prompt.", " Answer in French. ");
        assert!(system.starts_with("Expert prompt."));
        assert!(system.ends_with("<project_instructions>\nAnswer in French.\n</project_instructions>"));
        assert_eq!(with_project_instructions("Expert prompt.", "  "), "Expert prompt.");
    }
}
