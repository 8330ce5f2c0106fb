//! A store assembled from one implementation per capability. [`StoreParts::of`] takes every
//! capability from one store; `with_*` replaces one, so a wrapper that injects faults or observes
//! one capability implements that capability's few methods and nothing else:
//!
//! ```ignore
//! let store = StoreParts::of(inner).with_activity(Arc::new(FailingActivity));
//! ```

use std::sync::Arc;

use super::ports::{Activity, Conversations, Counters, Idempotency, Messages, Stats, Store, Streams, Turns};

/// One implementation per capability; itself a [`Store`].
#[derive(Clone)]
pub struct StoreParts {
    /// Conversations.
    pub conversations: Arc<dyn Conversations>,
    /// Folders and tags.
    pub organizer: Arc<dyn super::ports::Organizer>,
    /// Plans, usage and spend.
    pub accounting: Arc<dyn super::ports::Accounting>,
    /// A user's data as a whole (erasure).
    pub accounts: Arc<dyn super::ports::Accounts>,
    /// The trash's purge and retention.
    pub housekeeping: Arc<dyn super::ports::Housekeeping>,
    /// Projects.
    pub projects: Arc<dyn super::ports::Projects>,
    /// Saved prompts.
    pub prompts: Arc<dyn super::ports::Prompts>,
    /// Attached files.
    pub files: Arc<dyn super::ports::Files>,
    /// Messages.
    pub messages: Arc<dyn Messages>,
    /// Chat turns.
    pub turns: Arc<dyn Turns>,
    /// Running turns' checkpoints.
    pub streams: Arc<dyn Streams>,
    /// Events and audit.
    pub activity: Arc<dyn Activity>,
    /// Daily counters.
    pub stats: Arc<dyn Stats>,
    /// Windowed counters.
    pub counters: Arc<dyn Counters>,
    /// `Idempotency-Key` records.
    pub idempotency: Arc<dyn Idempotency>,
    /// The full-text index.
    pub search: Arc<dyn super::ports::Search>,
    /// Named-user sharing.
    pub sharing: Arc<dyn super::ports::Sharing>,
    /// Reactions and bookmarks.
    pub feedback: Arc<dyn super::ports::Feedback>,
    /// Share links.
    pub links: Arc<dyn super::links::Links>,
    /// Import jobs.
    pub import_jobs: Arc<dyn super::import_jobs::ImportJobs>,
}

impl std::fmt::Debug for StoreParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreParts")
    }
}

impl StoreParts {
    /// Every capability from `store`.
    pub fn of(store: Arc<dyn Store>) -> Self {
        Self {
            conversations: store.clone(),
            organizer: store.clone(),
            accounting: store.clone(),
            accounts: store.clone(),
            housekeeping: store.clone(),
            projects: store.clone(),
            prompts: store.clone(),
            files: store.clone(),
            messages: store.clone(),
            turns: store.clone(),
            streams: store.clone(),
            activity: store.clone(),
            stats: store.clone(),
            counters: store.clone(),
            idempotency: store.clone(),
            search: store.clone(),
            sharing: store.clone(),
            feedback: store.clone(),
            links: store.clone(),
            import_jobs: store,
        }
    }

    /// Replaces the conversations capability.
    pub fn with_conversations(mut self, part: Arc<dyn Conversations>) -> Self {
        self.conversations = part;
        self
    }

    /// Replaces the projects capability.
    pub fn with_projects(mut self, part: Arc<dyn super::ports::Projects>) -> Self {
        self.projects = part;
        self
    }

    /// Replaces the saved-prompts capability.
    pub fn with_prompts(mut self, part: Arc<dyn super::ports::Prompts>) -> Self {
        self.prompts = part;
        self
    }

    /// Replaces the full-text search capability.
    pub fn with_search(mut self, part: Arc<dyn super::ports::Search>) -> Self {
        self.search = part;
        self
    }

    /// Replaces the reactions-and-bookmarks capability.
    pub fn with_feedback(mut self, part: Arc<dyn super::ports::Feedback>) -> Self {
        self.feedback = part;
        self
    }

    /// Replaces the share-links capability.
    pub fn with_links(mut self, part: Arc<dyn super::links::Links>) -> Self {
        self.links = part;
        self
    }

    /// Replaces the import-jobs capability.
    pub fn with_import_jobs(mut self, part: Arc<dyn super::import_jobs::ImportJobs>) -> Self {
        self.import_jobs = part;
        self
    }

    /// Replaces the messages capability.
    pub fn with_messages(mut self, part: Arc<dyn Messages>) -> Self {
        self.messages = part;
        self
    }

    /// Replaces the turns capability.
    pub fn with_turns(mut self, part: Arc<dyn Turns>) -> Self {
        self.turns = part;
        self
    }

    /// Replaces the streams capability (checkpoints).
    pub fn with_streams(mut self, part: Arc<dyn Streams>) -> Self {
        self.streams = part;
        self
    }

    /// Replaces the activity capability (events and audit).
    pub fn with_activity(mut self, part: Arc<dyn Activity>) -> Self {
        self.activity = part;
        self
    }

    /// Replaces the stats capability.
    pub fn with_stats(mut self, part: Arc<dyn Stats>) -> Self {
        self.stats = part;
        self
    }

    /// Replaces the counters capability.
    pub fn with_counters(mut self, part: Arc<dyn Counters>) -> Self {
        self.counters = part;
        self
    }

    /// Replaces the idempotency capability.
    pub fn with_idempotency(mut self, part: Arc<dyn Idempotency>) -> Self {
        self.idempotency = part;
        self
    }
}

/// The port methods of [`StoreParts`]: each passes the call to the part holding its port.
macro_rules! to_the_part {
    ($( [$part:ident] $port:ident { $( $method:ident ( $($arg:ident : $ty:ty),* ) -> $ok:ty ; )* } )*) => {
        $(
            #[async_trait::async_trait]
            impl $port for StoreParts {
                $(
                    async fn $method(&self, $($arg: $ty),*) -> Result<$ok, StoreError> {
                        self.$part.$method($($arg),*).await
                    }
                )*
            }
        )*
    };
}

super::methods::for_each_port!(to_the_part);
