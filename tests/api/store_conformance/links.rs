//! Share links: created with a snapshot, read by the token's hash alone (counting views),
//! listed, refreshed (a snapshot over DynamoDB's item size included), expired, revoked, gone
//! with their conversation, the conversation's `sharedUntil` kept, and every management call
//! scoped to the owner.

use super::*;
use shared::domain::link::{forever, token_hash};
use shared::domain::{LinkId, ShareLink};
use shared::store::LinkUpdate;

fn link(ids: &IdGenerator, c: &Conversation, token: &str, now: Timestamp, expires_at: Option<Timestamp>) -> ShareLink {
    ShareLink {
        id: LinkId::parse(&ids.next_ulid()).expect("id"),
        owner: c.owner.clone(),
        conversation_id: c.id.clone(),
        token_hash: token_hash(token),
        created_at: now,
        updated_at: now,
        expires_at,
        views: 0,
        snapshot_at: now,
        message_count: 2,
    }
}

async fn a_link_is_read_by_its_token_hash_counted_refreshed_and_revoked(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let c = created(h, &ids, &alice).await;
    let now = shared::domain::now();
    let token = unique("token");
    let l = link(&ids, &c, &token, now, None);
    store.create_link(&l, r#"{"v":1}"#, 20, now).await.expect("create");
    // The conversation is shared, for ever.
    let stored = store.get_conversation(&alice, &c.id).await.expect("get");
    assert_eq!(stored.shared_until, Some(forever()));
    // Read by the hash: each read counts.
    let first = store.read_link(&token_hash(&token), now).await.expect("read");
    assert_eq!((first.snapshot.as_str(), first.link.views), (r#"{"v":1}"#, 1));
    let second = store.read_link(&token_hash(&token), now).await.expect("read");
    assert_eq!(second.link.views, 2);
    assert_eq!(store.list_links(&alice, &c.id).await.expect("list")[0].views, 2);
    // A wrong token, and the token itself instead of its hash, find nothing.
    for wrong in [token_hash("wrong"), token.clone()] {
        let err = store.read_link(&wrong, now).await.expect_err("wrong");
        assert!(matches!(err, StoreError::NotFound), "{err:?}");
    }
    // Another owner manages nothing of it.
    let update = LinkUpdate {
        expires_at: Some(Some(now + Duration::days(1))),
        ..LinkUpdate::default()
    };
    assert!(store.list_links(&bob, &c.id).await.expect("list").is_empty());
    let err = store
        .update_link(&bob, &c.id, &l.id, &update, now)
        .await
        .expect_err("bob");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let err = store.delete_link(&bob, &c.id, &l.id, now).await.expect_err("bob");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    // A refresh keeps the token and the views; the expiry moves `sharedUntil`.
    let refreshed = LinkUpdate {
        snapshot: Some((r#"{"v":2}"#.to_owned(), now + Duration::seconds(1), 3)),
        expires_at: Some(Some(now + Duration::days(1))),
    };
    let after = store
        .update_link(&alice, &c.id, &l.id, &refreshed, now + Duration::seconds(1))
        .await
        .expect("refresh");
    assert_eq!((after.views, after.message_count), (2, 3));
    assert_eq!(after.expires_at, Some(now + Duration::days(1)));
    let read = store.read_link(&token_hash(&token), now).await.expect("read");
    assert_eq!(read.snapshot, r#"{"v":2}"#);
    let stored = store.get_conversation(&alice, &c.id).await.expect("get");
    assert_eq!(stored.shared_until, Some(now + Duration::days(1)));
    // Expired: not found, still listed.
    let err = store
        .read_link(&token_hash(&token), now + Duration::days(2))
        .await
        .expect_err("expired");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(store.list_links(&alice, &c.id).await.expect("list").len(), 1);
    // Revoked: gone at once, and the conversation is no longer shared.
    store.delete_link(&alice, &c.id, &l.id, now).await.expect("revoke");
    let err = store.read_link(&token_hash(&token), now).await.expect_err("revoked");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(store.list_links(&alice, &c.id).await.expect("list").is_empty());
    let stored = store.get_conversation(&alice, &c.id).await.expect("get");
    assert_eq!(stored.shared_until, None);
    let err = store.delete_link(&alice, &c.id, &l.id, now).await.expect_err("twice");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn a_snapshot_larger_than_an_item_round_trips_and_is_replaced_whole(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let c = created(h, &ids, &alice).await;
    let now = shared::domain::now();
    let token = unique("token");
    // 1.1 MB, multi-byte characters across every piece boundary.
    let big: String = "Ünïcødé 🚀 snapshot ".repeat(50_000);
    assert!(big.len() > 1_000_000);
    let l = link(&ids, &c, &token, now, None);
    store.create_link(&l, &big, 20, now).await.expect("create");
    assert_eq!(
        store.read_link(&token_hash(&token), now).await.expect("read").snapshot,
        big
    );
    let bigger = format!("{big}{big}");
    let update = LinkUpdate {
        snapshot: Some((bigger.clone(), now, 9)),
        ..LinkUpdate::default()
    };
    store
        .update_link(&alice, &c.id, &l.id, &update, now)
        .await
        .expect("refresh");
    assert_eq!(
        store.read_link(&token_hash(&token), now).await.expect("read").snapshot,
        bigger
    );
    let small = LinkUpdate {
        snapshot: Some(("small".to_owned(), now, 1)),
        ..LinkUpdate::default()
    };
    store
        .update_link(&alice, &c.id, &l.id, &small, now)
        .await
        .expect("refresh");
    assert_eq!(
        store.read_link(&token_hash(&token), now).await.expect("read").snapshot,
        "small"
    );
}

async fn links_go_with_their_conversation_and_the_trash_silences_them(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let now = shared::domain::now();
    let (kept, trashed) = (created(h, &ids, &alice).await, created(h, &ids, &alice).await);
    let (t1, t2) = (unique("token"), unique("token"));
    store
        .create_link(&link(&ids, &kept, &t1, now, None), "{}", 20, now)
        .await
        .expect("create");
    store
        .create_link(&link(&ids, &trashed, &t2, now, None), "{}", 20, now)
        .await
        .expect("create");
    store.trash_conversation(&alice, &trashed.id, now).await.expect("trash");
    let err = store.read_link(&token_hash(&t2), now).await.expect_err("trashed");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    // A trashed conversation takes no new link.
    let err = store
        .create_link(&link(&ids, &trashed, &unique("token"), now, None), "{}", 20, now)
        .await
        .expect_err("trashed");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    store.delete_conversation(&alice, &kept.id).await.expect("delete");
    let err = store.read_link(&token_hash(&t1), now).await.expect_err("deleted");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(store.list_links(&alice, &kept.id).await.expect("list").is_empty());
    assert_eq!(
        store
            .delete_conversation_links(&alice, &trashed.id)
            .await
            .expect("revoke"),
        1
    );
    assert!(store.list_links(&alice, &trashed.id).await.expect("list").is_empty());
}

async fn the_link_cap_counts_live_links_only(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let c = created(h, &ids, &alice).await;
    let now = shared::domain::now();
    let expired = link(
        &ids,
        &c,
        &unique("token"),
        now - Duration::days(2),
        Some(now - Duration::days(1)),
    );
    store
        .create_link(&expired, "{}", 2, now)
        .await
        .expect("an expired link");
    for _ in 0..2 {
        store
            .create_link(
                &link(&ids, &c, &unique("token"), now, Some(now + Duration::days(3))),
                "{}",
                2,
                now,
            )
            .await
            .expect("under the cap");
    }
    let err = store
        .create_link(&link(&ids, &c, &unique("token"), now, None), "{}", 2, now)
        .await
        .expect_err("at the cap");
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("at most 2")),
        "{err:?}"
    );
    assert_eq!(store.list_links(&alice, &c.id).await.expect("list").len(), 3);
    let stored = store.get_conversation(&alice, &c.id).await.expect("get");
    assert_eq!(stored.shared_until, Some(now + Duration::days(3)));
}

/// Creates racing at the cap: exactly the cap's worth succeed, the others are 409, and after
/// concurrent revocations racing with creates, `sharedUntil` follows the links that are left.
async fn concurrent_link_changes_keep_the_cap_and_shared_until(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let c = created(h, &ids, &alice).await;
    let now = shared::domain::now();
    let links: Vec<ShareLink> = (0..8)
        .map(|i| {
            link(
                &ids,
                &c,
                &unique(&format!("race{i}")),
                now,
                Some(now + Duration::days(i + 1)),
            )
        })
        .collect();
    let results = futures::future::join_all(links.iter().map(|l| store.create_link(l, "{}", 3, now))).await;
    let created: Vec<&ShareLink> = links
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(l, _)| l)
        .collect();
    for r in &results {
        assert!(matches!(r, Ok(()) | Err(StoreError::Conflict(_))), "{r:?}");
    }
    assert_eq!(created.len(), 3, "{results:?}");
    let listed = store.list_links(&alice, &c.id).await.expect("list");
    assert_eq!(listed.len(), 3);
    let latest = created.iter().filter_map(|l| l.expires_at).max();
    let stored = store.get_conversation(&alice, &c.id).await.expect("get");
    assert_eq!(stored.shared_until, latest);
    // Revoke every link while two more are created (one fits after the first revocation).
    let extra: Vec<ShareLink> = (0..2)
        .map(|i| {
            link(
                &ids,
                &c,
                &unique(&format!("late{i}")),
                now,
                Some(now + Duration::days(20 + i)),
            )
        })
        .collect();
    let revoke = futures::future::join_all(created.iter().map(|l| store.delete_link(&alice, &c.id, &l.id, now)));
    let add = futures::future::join_all(extra.iter().map(|l| store.create_link(l, "{}", 3, now)));
    let (revoked, added) = futures::future::join(revoke, add).await;
    assert!(revoked.iter().all(Result::is_ok), "{revoked:?}");
    let left = store.list_links(&alice, &c.id).await.expect("list");
    let kept: Vec<&ShareLink> = extra
        .iter()
        .zip(&added)
        .filter(|(_, r)| r.is_ok())
        .map(|(l, _)| l)
        .collect();
    assert_eq!(left.len(), kept.len());
    let stored = store.get_conversation(&alice, &c.id).await.expect("get");
    assert_eq!(stored.shared_until, kept.iter().filter_map(|l| l.expires_at).max());
}

athena_tests::on_both_stores!(
    |store| &Arc::new(store),
    [
        a_link_is_read_by_its_token_hash_counted_refreshed_and_revoked,
        a_snapshot_larger_than_an_item_round_trips_and_is_replaced_whole,
        links_go_with_their_conversation_and_the_trash_silences_them,
        the_link_cap_counts_live_links_only,
        concurrent_link_changes_keep_the_cap_and_shared_until,
    ]
);
