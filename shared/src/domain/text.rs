//! Full-text search's words, written once for both stores: how a text is cut into terms (what the
//! DynamoDB index stores and what a query looks for; SQLite's FTS5 `unicode61` tokenizer, set
//! up without diacritic folding, cuts text the same way), what a query may hold, and the snippet
//! a hit shows.
//!
//! A word is a maximal run of letters and digits (Unicode `Alphabetic` or `Numeric`), lowercased
//! (Unicode lowercase mapping). Everything else (spaces, punctuation, symbols, emoji) separates
//! words: `don't` is `don` and `t`, `e-mail` is `e` and `mail`, `Straße` is `straße`, `3.14` is
//! `3` and `14`. Scripts written without spaces (Chinese, Japanese) are one word per run. Only
//! the first [`INDEXED_CHARS`] characters of a text are indexed.

use std::collections::BTreeMap;

/// Characters of a message (or title) that are indexed; the rest is not searchable.
pub const INDEXED_CHARS: usize = 20_000;
/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most words a query may hold (every one must match: the words are AND-ed).
pub const MAX_QUERY_TERMS: usize = 8;
/// Longest word, in characters: longer words are not indexed, and a query holding one is refused.
pub const MAX_TERM_CHARS: usize = 64;
/// Characters of text a snippet shows around its first match.
pub const SNIPPET_CHARS: usize = 160;

/// The words of `text` with their byte ranges, lowercased, in order (repeats included).
pub fn words(text: &str) -> impl Iterator<Item = (usize, usize, String)> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        while let Some(&(_, c)) = chars.peek() {
            if c.is_alphanumeric() {
                break;
            }
            chars.next();
        }
        let (start, _) = *chars.peek()?;
        let mut end = start;
        let mut word = String::new();
        while let Some(&(at, c)) = chars.peek() {
            if !c.is_alphanumeric() {
                break;
            }
            word.extend(c.to_lowercase());
            end = at + c.len_utf8();
            chars.next();
        }
        Some((start, end, word))
    })
}

/// The indexed part of a text: its first [`INDEXED_CHARS`] characters.
pub fn indexed_part(text: &str) -> &str {
    match text.char_indices().nth(INDEXED_CHARS) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// What a text is indexed under: each distinct word of its indexed part (at most
/// [`MAX_TERM_CHARS`] characters) with how often it occurs, and the number of words (the
/// document's length, which relevance weighs).
pub fn index_terms(text: &str) -> (BTreeMap<String, u32>, u32) {
    let mut terms = BTreeMap::new();
    let mut len = 0u32;
    for (_, _, word) in words(indexed_part(text)) {
        len = len.saturating_add(1);
        if word.chars().count() <= MAX_TERM_CHARS {
            *terms.entry(word).or_insert(0u32) += 1;
        }
    }
    (terms, len)
}

/// Why a query is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No `q`, or one without any word.
    #[error("must contain at least one word (letters or digits)")]
    Empty,
    /// Over [`MAX_QUERY_CHARS`] characters.
    #[error("must be at most {MAX_QUERY_CHARS} characters")]
    TooLong,
    /// More than [`MAX_QUERY_TERMS`] distinct words.
    #[error("must contain at most {MAX_QUERY_TERMS} words")]
    TooManyWords,
    /// A word over [`MAX_TERM_CHARS`] characters (no such word is indexed).
    #[error("must not contain a word of more than {MAX_TERM_CHARS} characters")]
    WordTooLong,
    /// Control characters.
    #[error("must not contain control characters")]
    Control,
}

/// A query's distinct words, in the order given: every one must occur in a hit.
pub fn query_terms(q: &str) -> Result<Vec<String>, QueryError> {
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(QueryError::TooLong);
    }
    if q.chars().any(char::is_control) {
        return Err(QueryError::Control);
    }
    let mut terms: Vec<String> = Vec::new();
    for (_, _, word) in words(q) {
        if word.chars().count() > MAX_TERM_CHARS {
            return Err(QueryError::WordTooLong);
        }
        if !terms.contains(&word) {
            terms.push(word);
        }
    }
    match terms.len() {
        0 => Err(QueryError::Empty),
        n if n > MAX_QUERY_TERMS => Err(QueryError::TooManyWords),
        _ => Ok(terms),
    }
}

/// A hit's snippet: plain text (never markup) and the ranges of it that matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snippet {
    /// Up to [`SNIPPET_CHARS`] characters of the text around its first match, verbatim, with `…`
    /// where it was cut.
    pub text: String,
    /// The matched words in `text` as `[start, end)` offsets in UTF-16 code units (what
    /// JavaScript's `String.prototype.slice` takes), in order, not overlapping.
    pub highlights: Vec<(usize, usize)>,
}

/// The snippet of `text` for the query `terms`: the window of [`SNIPPET_CHARS`] characters that
/// starts a little before the first word matching a term, with every matching word in it.
pub fn snippet(text: &str, terms: &[String]) -> Snippet {
    let matches: Vec<(usize, usize)> = words(text)
        .filter(|(_, _, w)| terms.iter().any(|t| t == w))
        .map(|(s, e, _)| (s, e))
        .collect();
    let first = matches.first().map_or(0, |m| m.0);
    // Start up to a fifth of the window before the first match, on a word boundary when one is near.
    let lead = SNIPPET_CHARS / 5;
    let before: Vec<(usize, char)> = text[..first].char_indices().collect();
    let mut start = before.len().checked_sub(lead).map_or(0, |i| before[i].0);
    if start > 0 {
        if let Some(space) = text[start..first].find(char::is_whitespace) {
            start += space + 1;
        }
    }
    let end = text[start..]
        .char_indices()
        .nth(SNIPPET_CHARS)
        .map_or(text.len(), |(at, _)| start + at);
    let (lead_mark, tail_mark) = (start > 0, end < text.len());
    let body = text[start..end].trim_end();
    let mut out = String::new();
    if lead_mark {
        out.push('…');
    }
    let offset = out.encode_utf16().count();
    out.push_str(body);
    if tail_mark {
        out.push('…');
    }
    let utf16 = |from: usize, to: usize| text[from..to].encode_utf16().count();
    let highlights = matches
        .into_iter()
        .filter(|&(s, e)| s >= start && e <= start + body.len())
        .map(|(s, e)| {
            let at = offset + utf16(start, s);
            (at, at + utf16(s, e))
        })
        .collect();
    Snippet { text: out, highlights }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(text: &str) -> Vec<String> {
        words(text).map(|(_, _, w)| w).collect()
    }

    #[test]
    fn words_are_lowercased_runs_of_letters_and_digits() {
        assert_eq!(
            ws("Don't e-mail  Straße, 3.14!"),
            ["don", "t", "e", "mail", "straße", "3", "14"]
        );
        assert_eq!(ws("ÉCOLE été 東京タワー 🚀ok"), ["école", "été", "東京タワー", "ok"]);
        assert!(ws(" ,.- ").is_empty());
    }

    #[test]
    fn index_terms_count_occurrences_and_skip_overlong_words() {
        let long = "x".repeat(MAX_TERM_CHARS + 1);
        let (terms, len) = index_terms(&format!("a B a {long}"));
        assert_eq!(len, 4);
        assert_eq!(terms.get("a"), Some(&2));
        assert_eq!(terms.get("b"), Some(&1));
        assert_eq!(terms.len(), 2);
        let (cut, _) = index_terms(&format!("{} tail", "y ".repeat(INDEXED_CHARS / 2)));
        assert!(!cut.contains_key("tail"));
    }

    #[test]
    fn queries_are_checked() {
        assert_eq!(
            query_terms("Hello, hello WORLD"),
            Ok(vec!["hello".to_owned(), "world".to_owned()])
        );
        assert_eq!(query_terms("  ?! "), Err(QueryError::Empty));
        assert_eq!(query_terms(&"a".repeat(MAX_QUERY_CHARS + 1)), Err(QueryError::TooLong));
        assert_eq!(query_terms("a b c d e f g h i"), Err(QueryError::TooManyWords));
        assert_eq!(
            query_terms(&"z".repeat(MAX_TERM_CHARS + 1)),
            Err(QueryError::WordTooLong)
        );
        assert_eq!(query_terms("a\u{0}b"), Err(QueryError::Control));
    }

    #[test]
    fn a_snippet_is_plain_text_with_utf16_ranges_of_the_matches() {
        let s = snippet("<b>Ünïcode</b> 🚀 rocket and Rocket", &["rocket".to_owned()]);
        assert_eq!(s.text, "<b>Ünïcode</b> 🚀 rocket and Rocket");
        let utf16: Vec<u16> = s.text.encode_utf16().collect();
        let marked: Vec<String> = s
            .highlights
            .iter()
            .map(|&(a, b)| String::from_utf16_lossy(&utf16[a..b]))
            .collect();
        assert_eq!(marked, ["rocket", "Rocket"]);
    }

    #[test]
    fn a_long_text_is_cut_around_its_first_match() {
        let text = format!("{} needle {}", "word ".repeat(200), "tail ".repeat(200));
        let s = snippet(&text, &["needle".to_owned()]);
        assert!(s.text.starts_with('…') && s.text.ends_with('…'), "{}", s.text);
        assert!(s.text.chars().count() <= SNIPPET_CHARS + 2);
        let utf16: Vec<u16> = s.text.encode_utf16().collect();
        let [(a, b)] = s.highlights[..] else {
            panic!("one match expected: {:?}", s.highlights)
        };
        assert_eq!(String::from_utf16_lossy(&utf16[a..b]), "needle");
    }
}
