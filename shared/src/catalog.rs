//! The model catalog: the seed's four Claude models on Bedrock (cross-region inference profile
//! ids), with context window, output limit and prices, and the deployment's allowlist and default.
//!
//! Prices are integer micro-dollars (1e-6 USD) per million tokens, so cost arithmetic never
//! touches floating point: a token of Claude Sonnet 4.5 input costs exactly 3 micro-dollars.

use serde::Serialize;

use crate::error::ValidationError;

/// One model Athena can call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    /// Bedrock model or inference-profile id.
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// What it is good at.
    pub description: &'static str,
    /// Context window, tokens.
    pub context_window: u32,
    /// Most output tokens per reply.
    pub max_output_tokens: u32,
    /// Price of a million input tokens, micro-dollars.
    pub input_micro_usd_per_mtok: u64,
    /// Price of a million output tokens, micro-dollars.
    pub output_micro_usd_per_mtok: u64,
    /// Price of a million cache-read input tokens, micro-dollars.
    pub cache_read_micro_usd_per_mtok: u64,
    /// Price of a million cache-write input tokens, micro-dollars.
    pub cache_write_micro_usd_per_mtok: u64,
}

/// The seed's models, in the seed's order (the first is the default).
pub const MODELS: [ModelInfo; 4] = [
    ModelInfo {
        id: "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        name: "Claude 4.5 Sonnet",
        description: "Most intelligent model, best for complex tasks",
        context_window: 200_000,
        max_output_tokens: 64_000,
        input_micro_usd_per_mtok: 3_000_000,
        output_micro_usd_per_mtok: 15_000_000,
        cache_read_micro_usd_per_mtok: 300_000,
        cache_write_micro_usd_per_mtok: 3_750_000,
    },
    ModelInfo {
        id: "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        name: "Claude 4.5 Haiku",
        description: "Fastest model, best for quick answers",
        context_window: 200_000,
        max_output_tokens: 64_000,
        input_micro_usd_per_mtok: 1_000_000,
        output_micro_usd_per_mtok: 5_000_000,
        cache_read_micro_usd_per_mtok: 100_000,
        cache_write_micro_usd_per_mtok: 1_250_000,
    },
    ModelInfo {
        id: "us.anthropic.claude-opus-4-5-20251101-v1:0",
        name: "Claude 4.5 Opus",
        description: "Most capable model for the hardest analysis",
        context_window: 200_000,
        max_output_tokens: 64_000,
        input_micro_usd_per_mtok: 5_000_000,
        output_micro_usd_per_mtok: 25_000_000,
        cache_read_micro_usd_per_mtok: 500_000,
        cache_write_micro_usd_per_mtok: 6_250_000,
    },
    ModelInfo {
        id: "us.anthropic.claude-sonnet-4-20250514-v1:0",
        name: "Claude 4 Sonnet",
        description: "Previous generation, balanced speed and quality",
        context_window: 200_000,
        max_output_tokens: 64_000,
        input_micro_usd_per_mtok: 3_000_000,
        output_micro_usd_per_mtok: 15_000_000,
        cache_read_micro_usd_per_mtok: 300_000,
        cache_write_micro_usd_per_mtok: 3_750_000,
    },
];

/// The models a deployment allows, and its default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    allowed: Vec<&'static ModelInfo>,
}

impl Catalog {
    /// Every model of [`MODELS`], the first as default.
    pub fn all() -> Self {
        Self {
            allowed: MODELS.iter().collect(),
        }
    }

    /// An allowlist (comma-separated ids, as in `ATHENA_MODELS`) and an optional default id.
    /// Unknown ids are configuration errors, reported at cold start.
    pub fn from_config(allowlist: Option<&str>, default: Option<&str>) -> Result<Self, String> {
        let mut allowed: Vec<&'static ModelInfo> = match allowlist.map(str::trim).filter(|s| !s.is_empty()) {
            None => MODELS.iter().collect(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|id| {
                    MODELS
                        .iter()
                        .find(|m| m.id == id)
                        .ok_or_else(|| format!("ATHENA_MODELS names an unknown model: {id}"))
                })
                .collect::<Result<_, _>>()?,
        };
        allowed.dedup_by_key(|m| m.id);
        if allowed.is_empty() {
            return Err("ATHENA_MODELS allows no model".to_owned());
        }
        if let Some(default) = default.map(str::trim).filter(|s| !s.is_empty()) {
            let pos = allowed
                .iter()
                .position(|m| m.id == default)
                .ok_or_else(|| format!("ATHENA_DEFAULT_MODEL is not in the allowlist: {default}"))?;
            let chosen = allowed.remove(pos);
            allowed.insert(0, chosen);
        }
        Ok(Self { allowed })
    }

    /// The default model.
    pub fn default_model(&self) -> &'static ModelInfo {
        // `from_config` and `all` never build an empty catalog.
        self.allowed.first().copied().unwrap_or(&MODELS[0])
    }

    /// The allowed models, default first.
    pub fn models(&self) -> &[&'static ModelInfo] {
        &self.allowed
    }

    /// Looks up an allowed model by its id or one of its [`aliases`](Catalog::aliases).
    pub fn get(&self, id: &str) -> Option<&'static ModelInfo> {
        self.allowed.iter().copied().find(|m| m.id == id).or_else(|| {
            self.aliases()
                .into_iter()
                .find(|(alias, _)| alias == id)
                .map(|(_, m)| m)
        })
    }

    /// Parses a model id (or alias) from a request: it must be allowed here. Answers the
    /// catalog's model, whose canonical id is what gets stored.
    pub fn parse(&self, field: &str, id: &str) -> Result<&'static ModelInfo, ValidationError> {
        self.get(id).ok_or_else(|| {
            let ids: Vec<&str> = self.allowed.iter().map(|m| m.id).collect();
            ValidationError::field(
                field,
                format!(
                    "must be one of: {} (or an alias such as claude-sonnet, listed by GET /api/chat)",
                    ids.join(", ")
                ),
            )
        })
    }

    /// Other names clients use for the allowed models, each with the model it stands for:
    /// the id without its region prefix (`anthropic.claude-...-v1:0`), without the provider
    /// (`claude-sonnet-4-5-20250929-v1:0`), without the version suffix
    /// (`claude-sonnet-4-5-20250929`), the short name (`claude-sonnet-4-5`, as seed 000's client
    /// code writes it), and the family (`claude-sonnet`, `claude-haiku`, `claude-opus`) for the
    /// newest allowed model of that family (by the release date in its id).
    pub fn aliases(&self) -> Vec<(String, &'static ModelInfo)> {
        let mut out: Vec<(String, &'static ModelInfo)> = Vec::new();
        let mut push = |alias: String, m: &'static ModelInfo| {
            if alias != m.id && !out.iter().any(|(a, _)| *a == alias) {
                out.push((alias, m));
            }
        };
        for m in &self.allowed {
            let parts = NameParts::of(m.id);
            push(parts.without_region.to_owned(), m);
            push(parts.bare.to_owned(), m);
            push(parts.dated.to_owned(), m);
            push(parts.short.to_owned(), m);
        }
        let mut families: Vec<(&str, &'static ModelInfo)> = Vec::new();
        for m in &self.allowed {
            let parts = NameParts::of(m.id);
            match families.iter_mut().find(|(family, _)| *family == parts.family) {
                Some(entry) if NameParts::of(entry.1.id).date < parts.date => entry.1 = m,
                Some(_) => {}
                None => families.push((parts.family, m)),
            }
        }
        for (family, m) in families {
            push(family.to_owned(), m);
        }
        out
    }
}

/// The pieces of a Bedrock inference-profile id such as
/// `us.anthropic.claude-sonnet-4-5-20250929-v1:0`.
struct NameParts<'a> {
    /// `anthropic.claude-sonnet-4-5-20250929-v1:0`
    without_region: &'a str,
    /// `claude-sonnet-4-5-20250929-v1:0`
    bare: &'a str,
    /// `claude-sonnet-4-5-20250929`
    dated: &'a str,
    /// `claude-sonnet-4-5`
    short: &'a str,
    /// `claude-sonnet`
    family: &'a str,
    /// `20250929`
    date: &'a str,
}

impl<'a> NameParts<'a> {
    fn of(id: &'a str) -> Self {
        let without_region = id
            .split_once('.')
            .filter(|(r, _)| r.len() <= 4)
            .map_or(id, |(_, rest)| rest);
        let bare = without_region.split_once('.').map_or(without_region, |(_, rest)| rest);
        let dated = bare.rsplit_once("-v").map_or(bare, |(head, _)| head);
        let (short, date) = match dated.rsplit_once('-') {
            Some((head, tail)) if tail.len() == 8 && tail.bytes().all(|b| b.is_ascii_digit()) => (head, tail),
            _ => (dated, ""),
        };
        let family_end = short
            .char_indices()
            .find(|(i, c)| c.is_ascii_digit() && short[..*i].ends_with('-'))
            .map_or(short.len(), |(i, _)| i - 1);
        Self {
            without_region,
            bare,
            dated,
            short,
            family: &short[..family_end],
            date,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowlist_restricts_and_orders_the_catalog() {
        let c = Catalog::from_config(
            Some("us.anthropic.claude-haiku-4-5-20251001-v1:0, us.anthropic.claude-opus-4-5-20251101-v1:0"),
            Some("us.anthropic.claude-opus-4-5-20251101-v1:0"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.default_model().name, "Claude 4.5 Opus");
        assert_eq!(c.models().len(), 2);
        assert!(c
            .parse("model", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
            .is_err());
    }

    #[test]
    fn aliases_name_the_newest_model_of_a_family_and_the_seeds_short_names() {
        let c = Catalog::all();
        let id = |alias: &str| c.get(alias).map(|m| m.id);
        assert_eq!(
            id("claude-sonnet"),
            Some("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
        );
        assert_eq!(id("claude-haiku"), Some("us.anthropic.claude-haiku-4-5-20251001-v1:0"));
        assert_eq!(id("claude-opus"), Some("us.anthropic.claude-opus-4-5-20251101-v1:0"));
        assert_eq!(
            id("claude-sonnet-4-5"),
            Some("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
        );
        assert_eq!(
            id("claude-sonnet-4"),
            Some("us.anthropic.claude-sonnet-4-20250514-v1:0")
        );
        assert_eq!(
            id("anthropic.claude-sonnet-4-20250514-v1:0"),
            Some("us.anthropic.claude-sonnet-4-20250514-v1:0")
        );
        assert_eq!(
            id("claude-haiku-4-5-20251001"),
            Some("us.anthropic.claude-haiku-4-5-20251001-v1:0")
        );
        assert_eq!(id("claude"), None);
        assert_eq!(id("gpt-4"), None);
        // Only allowed models have aliases: the family names the newest one still allowed.
        let older = Catalog::from_config(Some("us.anthropic.claude-sonnet-4-20250514-v1:0"), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            older.get("claude-sonnet").map(|m| m.id),
            Some("us.anthropic.claude-sonnet-4-20250514-v1:0")
        );
        assert!(older.get("claude-sonnet-4-5").is_none());
    }

    #[test]
    fn unknown_models_in_configuration_are_refused() {
        assert!(Catalog::from_config(Some("gpt-4"), None).is_err());
        assert!(Catalog::from_config(None, Some("gpt-4")).is_err());
        assert_eq!(Catalog::from_config(None, None).map(|c| c.models().len()), Ok(4));
    }
}
