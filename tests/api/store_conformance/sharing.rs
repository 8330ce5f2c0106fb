//! Named-user sharing ([`shared::store::Sharing`]) on both stores: a grant found by the grantee's
//! key lookup and listed for the owner and the grantee, its role changed in place, revoked, the
//! limit per conversation, one owner per id for one grantee, and grants gone with their
//! conversation (deleted for good) or the grantee's erasure. A trashed conversation takes none.

use super::*;
use shared::store::{Grant, GrantRole, Grantee};

fn grant(c: &Conversation, to: Grantee, role: GrantRole, when: i64) -> Grant {
    Grant {
        conversation_id: c.id.clone(),
        owner: c.owner.clone(),
        grantee: to,
        role,
        created_at: at(when),
        updated_at: at(when),
    }
}

async fn a_grant_is_found_by_its_grantee_only_and_listed_both_ways(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let (alice, bob, carol) = (user(&unique("alice")), user(&unique("bob")), user(&unique("carol")));
    let c = created(h, &ids, &alice).await;
    let to_bob = Grantee::User(bob.clone());
    store
        .put_grant(&grant(&c, to_bob.clone(), GrantRole::Viewer, 10), 50)
        .await
        .expect("share");
    let found = store
        .grant_for(std::slice::from_ref(&to_bob), &c.id)
        .await
        .expect("lookup");
    assert_eq!(
        found.as_ref().map(|g| (&g.owner, g.role)),
        Some((&alice, GrantRole::Viewer))
    );
    assert_eq!(
        store
            .grant_for(&[Grantee::User(carol.clone())], &c.id)
            .await
            .expect("lookup"),
        None,
        "not carol's"
    );
    // The role changes in place: one grant, first granted at 10, changed at 20.
    store
        .put_grant(&grant(&c, to_bob.clone(), GrantRole::Collaborator, 20), 50)
        .await
        .expect("change");
    let listed = store.grants_of(&alice, &c.id).await.expect("owner's list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].role, listed[0].created_at, listed[0].updated_at),
        (GrantRole::Collaborator, at(10), at(20))
    );
    assert!(store.grants_of(&bob, &c.id).await.expect("not his").is_empty());
    let mine = store
        .shared_with(std::slice::from_ref(&to_bob))
        .await
        .expect("shared with bob");
    assert_eq!(mine.iter().map(|g| &g.conversation_id).collect::<Vec<_>>(), vec![&c.id]);
    // An address grant too, found for a caller who has both keys (the stronger role wins).
    let email = Grantee::Email(format!("{}@example.com", unique("carol")));
    store
        .put_grant(&grant(&c, email.clone(), GrantRole::Viewer, 30), 50)
        .await
        .expect("by address");
    let both = store
        .grant_for(&[Grantee::User(carol.clone()), email.clone()], &c.id)
        .await
        .expect("lookup");
    assert_eq!(both.map(|g| g.role), Some(GrantRole::Viewer));
    // Revoked at once; a second revoke finds nothing.
    store.delete_grant(&alice, &c.id, &to_bob).await.expect("revoke");
    assert_eq!(
        store
            .grant_for(std::slice::from_ref(&to_bob), &c.id)
            .await
            .expect("lookup"),
        None
    );
    assert!(store
        .shared_with(std::slice::from_ref(&to_bob))
        .await
        .expect("list")
        .is_empty());
    assert!(matches!(
        store.delete_grant(&alice, &c.id, &to_bob).await,
        Err(StoreError::NotFound)
    ));
}

async fn only_the_owner_of_a_live_conversation_can_grant_within_the_limit(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let (alice, mallory) = (user(&unique("alice")), user(&unique("mallory")));
    let c = created(h, &ids, &alice).await;
    // Mallory granting Alice's conversation: not found, nothing written.
    let forged = Grant {
        owner: mallory.clone(),
        ..grant(&c, Grantee::User(mallory.clone()), GrantRole::Collaborator, 1)
    };
    assert!(matches!(store.put_grant(&forged, 50).await, Err(StoreError::NotFound)));
    assert_eq!(
        store
            .grant_for(&[Grantee::User(mallory.clone())], &c.id)
            .await
            .expect("lookup"),
        None
    );
    // The limit counts grantees, not changes of role.
    for n in 0..3 {
        let to = Grantee::User(user(&format!("{}-{n}", unique("g"))));
        store
            .put_grant(&grant(&c, to, GrantRole::Viewer, n), 3)
            .await
            .expect("within the limit");
    }
    let fourth = Grantee::User(user(&unique("fourth")));
    assert!(matches!(
        store.put_grant(&grant(&c, fourth, GrantRole::Viewer, 9), 3).await,
        Err(StoreError::Conflict(_))
    ));
    let first = store.grants_of(&alice, &c.id).await.expect("list")[0].clone();
    store
        .put_grant(
            &Grant {
                role: GrantRole::Collaborator,
                ..first
            },
            3,
        )
        .await
        .expect("changing a role is not a new grant");
    // A trashed conversation takes no grant.
    let t = created(h, &ids, &alice).await;
    store.trash_conversation(&alice, &t.id, at(50)).await.expect("trash");
    assert!(matches!(
        store
            .put_grant(&grant(&t, Grantee::User(mallory.clone()), GrantRole::Viewer, 51), 50)
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn one_grantee_never_holds_two_owners_conversations_under_one_id(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let (alice, eve, bob) = (user(&unique("alice")), user(&unique("eve")), user(&unique("bob")));
    let c = created(h, &ids, &alice).await;
    // Eve makes a conversation with Alice's id (ids are scoped to their owner).
    let mut twin = conversation(&ids, &eve, at(1));
    twin.id = c.id.clone();
    store.create_conversation(&twin, &[]).await.expect("eve's own");
    let to_bob = Grantee::User(bob.clone());
    store
        .put_grant(&grant(&c, to_bob.clone(), GrantRole::Viewer, 2), 50)
        .await
        .expect("alice shares");
    assert!(matches!(
        store
            .put_grant(&grant(&twin, to_bob.clone(), GrantRole::Collaborator, 3), 50)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let found = store
        .grant_for(&[to_bob], &c.id)
        .await
        .expect("lookup")
        .expect("a grant");
    assert_eq!((found.owner, found.role), (alice, GrantRole::Viewer), "still alice's");
}

async fn grants_go_with_their_conversation_and_with_the_grantees_erasure(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let to_bob = Grantee::User(bob.clone());
    let gone = created(h, &ids, &alice).await;
    let kept = created(h, &ids, &alice).await;
    for c in [&gone, &kept] {
        store
            .put_grant(&grant(c, to_bob.clone(), GrantRole::Viewer, 5), 50)
            .await
            .expect("share");
    }
    store
        .delete_conversation(&alice, &gone.id)
        .await
        .expect("delete for good");
    assert_eq!(
        store
            .grant_for(std::slice::from_ref(&to_bob), &gone.id)
            .await
            .expect("lookup"),
        None
    );
    let left = store.shared_with(std::slice::from_ref(&to_bob)).await.expect("list");
    assert_eq!(
        left.iter().map(|g| &g.conversation_id).collect::<Vec<_>>(),
        vec![&kept.id]
    );
    assert_eq!(
        store.erase_grants(std::slice::from_ref(&to_bob)).await.expect("erase"),
        1
    );
    assert!(store
        .shared_with(std::slice::from_ref(&to_bob))
        .await
        .expect("list")
        .is_empty());
    assert!(store
        .grants_of(&alice, &kept.id)
        .await
        .expect("owner's list")
        .is_empty());
    assert_eq!(h.raw_count(&kept).await, 1, "only the conversation's own item is left");
}

/// Shares racing at the cap: exactly the cap's worth are stored, the others are 409; the same
/// grantee shared twice at once is one grant.
async fn shares_racing_at_the_limit_cannot_pass_it_together(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let c = created(h, &ids, &alice).await;
    let grants: Vec<Grant> = (0..8)
        .map(|i| grant(&c, Grantee::User(user(&unique(&format!("g{i}")))), GrantRole::Viewer, i))
        .collect();
    let results = futures::future::join_all(grants.iter().map(|g| store.put_grant(g, 3))).await;
    for r in &results {
        assert!(matches!(r, Ok(()) | Err(StoreError::Conflict(_))), "{r:?}");
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3, "{results:?}");
    assert_eq!(store.grants_of(&alice, &c.id).await.expect("grants").len(), 3);
    let d = created(h, &ids, &alice).await;
    let twice = grant(&d, Grantee::User(user(&unique("twice"))), GrantRole::Collaborator, 1);
    let (a, b) = futures::future::join(store.put_grant(&twice, 3), store.put_grant(&twice, 3)).await;
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    assert_eq!(store.grants_of(&alice, &d.id).await.expect("grants").len(), 1);
}

athena_tests::on_both_stores!(
    |store| &Arc::new(store),
    [
        a_grant_is_found_by_its_grantee_only_and_listed_both_ways,
        only_the_owner_of_a_live_conversation_can_grant_within_the_limit,
        one_grantee_never_holds_two_owners_conversations_under_one_id,
        grants_go_with_their_conversation_and_with_the_grantees_erasure,
        shares_racing_at_the_limit_cannot_pass_it_together,
    ]
);
