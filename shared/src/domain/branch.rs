//! Branches: a conversation's messages form a tree (each message's parent is the message it
//! answers or follows), and the conversation shows one path through it, from the first message
//! to its active leaf. Editing a user message or regenerating a reply adds a sibling (a new
//! version with the same parent) instead of replacing anything.

use super::{Message, MessageId};

/// The tree of a conversation's messages (given in id order, as every store returns them).
#[derive(Debug)]
pub struct Tree<'a> {
    messages: &'a [Message],
    parents: Vec<Option<usize>>,
    /// The children of each message, oldest first; `roots` for the messages without a parent.
    children: Vec<Vec<usize>>,
    roots: Vec<usize>,
    /// Message id to index (built once: a turn reads the tree of its whole conversation).
    index: std::collections::HashMap<&'a str, usize>,
}

impl<'a> Tree<'a> {
    /// The tree of `messages` (id order). A message without a parent id follows the one before
    /// it; a parent id that is not among the messages makes it a root.
    pub fn new(messages: &'a [Message]) -> Self {
        let mut index = std::collections::HashMap::with_capacity(messages.len());
        let mut parents = Vec::with_capacity(messages.len());
        let mut children = vec![Vec::new(); messages.len()];
        let mut roots = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            // Only an earlier message can be a parent (ids grow along a branch).
            let parent = match &m.parent_id {
                Some(parent) => index.get(parent.as_str()).copied(),
                None => i.checked_sub(1),
            };
            match parent {
                Some(p) => children[p].push(i),
                None => roots.push(i),
            }
            parents.push(parent);
            index.insert(m.id.as_str(), i);
        }
        Self {
            messages,
            parents,
            children,
            roots,
            index,
        }
    }

    /// The messages, in id order.
    pub fn messages(&self) -> &'a [Message] {
        self.messages
    }

    /// The index of a message id.
    pub fn index(&self, id: &MessageId) -> Option<usize> {
        self.index.get(id.as_str()).copied()
    }

    /// The index of the newest version of the client's message id.
    pub fn by_client_id(&self, client_id: &str) -> Option<usize> {
        self.messages
            .iter()
            .rposition(|m| m.client_id.as_ref().is_some_and(|c| c.as_str() == client_id))
    }

    /// The parent of message `i`.
    pub fn parent(&self, i: usize) -> Option<usize> {
        self.parents.get(i).copied().flatten()
    }

    /// The children of message `i` (or the roots, for `None`), oldest first.
    pub fn children(&self, i: Option<usize>) -> Vec<usize> {
        match i {
            Some(i) => self.children.get(i).cloned().unwrap_or_default(),
            None => self.roots.clone(),
        }
    }

    /// The versions of message `i`: the children of its parent, oldest first (itself included).
    pub fn siblings(&self, i: usize) -> Vec<usize> {
        self.children(self.parent(i))
    }

    /// The path from the first message to `i`, in order.
    pub fn path_to(&self, i: usize) -> Vec<usize> {
        let mut path = vec![i];
        let mut at = i;
        while let Some(parent) = self.parent(at) {
            // Parents always come earlier in id order, so this ends.
            path.push(parent);
            at = parent;
        }
        path.reverse();
        path
    }

    /// The active leaf: `leaf` when it is among the messages, else the newest message.
    pub fn leaf(&self, leaf: Option<&MessageId>) -> Option<usize> {
        leaf.and_then(|id| self.index(id))
            .or_else(|| self.messages.len().checked_sub(1))
    }

    /// The active path: from the first message to the active leaf.
    pub fn active_path(&self, leaf: Option<&MessageId>) -> Vec<usize> {
        self.leaf(leaf).map(|i| self.path_to(i)).unwrap_or_default()
    }

    /// The newest leaf below message `i` (following the newest child at every step): where a
    /// client switching to version `i` lands.
    pub fn newest_leaf_under(&self, i: usize) -> usize {
        let mut at = i;
        while let Some(newest) = self.children.get(at).and_then(|c| c.last()) {
            at = *newest;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConversationId, IdGenerator, Role};

    fn message(ids: &IdGenerator, role: Role, text: &str, parent: Option<&Message>) -> Message {
        let mut m = Message::text(
            ids.message_id(),
            ConversationId::parse("c").unwrap_or_else(|_| unreachable!()),
            role,
            text.to_owned(),
            crate::domain::now(),
        );
        m.parent_id = parent.map(|p| p.id.clone());
        m
    }

    fn texts(tree: &Tree<'_>, path: &[usize]) -> Vec<String> {
        path.iter().map(|i| tree.messages()[*i].content.clone()).collect()
    }

    #[test]
    fn messages_without_parents_form_one_line() {
        let ids = IdGenerator::new();
        let a = message(&ids, Role::User, "q1", None);
        let b = message(&ids, Role::Assistant, "a1", None);
        let c = message(&ids, Role::User, "q2", None);
        let all = vec![a, b, c];
        let tree = Tree::new(&all);
        assert_eq!(texts(&tree, &tree.active_path(None)), ["q1", "a1", "q2"]);
        assert_eq!(tree.siblings(1), [1]);
    }

    #[test]
    fn an_edit_and_a_regenerate_are_siblings_and_the_leaf_picks_the_path() {
        let ids = IdGenerator::new();
        let q1 = message(&ids, Role::User, "q1", None);
        let a1 = message(&ids, Role::Assistant, "a1", Some(&q1));
        let a1b = message(&ids, Role::Assistant, "a1 again", Some(&q1));
        let q2 = message(&ids, Role::User, "q2", Some(&a1b));
        let q2b = message(&ids, Role::User, "q2 edited", Some(&a1b));
        let a2b = message(&ids, Role::Assistant, "a2", Some(&q2b));
        let all = vec![q1, a1.clone(), a1b, q2.clone(), q2b.clone(), a2b];
        let tree = Tree::new(&all);
        assert_eq!(
            texts(&tree, &tree.active_path(None)),
            ["q1", "a1 again", "q2 edited", "a2"]
        );
        assert_eq!(texts(&tree, &tree.active_path(Some(&q2.id))), ["q1", "a1 again", "q2"]);
        assert_eq!(texts(&tree, &tree.active_path(Some(&a1.id))), ["q1", "a1"]);
        assert_eq!(tree.siblings(1), [1, 2], "two versions of the reply");
        assert_eq!(tree.siblings(4), [3, 4], "two versions of the question");
        let q2b_index = tree.index(&q2b.id).unwrap_or_default();
        assert_eq!(tree.newest_leaf_under(q2b_index), 5);
        assert_eq!(tree.newest_leaf_under(0), 5, "the newest child at every step");
        assert_eq!(tree.newest_leaf_under(1), 1);
    }
}
