//! Plans, usage and spend ([`shared::store::Accounting`]) on both stores: a user's plan override,
//! the dollar budget reserved and settled like the token budgets, the usage rows and the month's
//! spend added by a finished turn, and all of it (with `athena-migrate`'s id claims) gone with
//! the user's data.

use super::*;
use shared::analytics::StatsDelta;
use shared::store::{BudgetLevels, PlanOverride, StatsUpdate};

fn dollars(nano: u64) -> TurnLimits {
    TurnLimits {
        nano_usd_per_month: nano,
        ..TurnLimits::none()
    }
}

fn reserving_usd(ids: &IdGenerator, c: &Conversation, nano: u64, budget: u64) -> TurnStart {
    TurnStart {
        reservation_nano_usd: nano,
        ..turn(ids, c, TurnWrite::Check, dollars(budget))
    }
}

fn settle_usd(c: &Conversation, reserved: u64, actual: u64) -> TurnFinish {
    settle(
        c,
        None,
        Settlement {
            reserved_nano_usd: reserved,
            actual_nano_usd: actual,
            ..Settlement::default()
        },
    )
}

async fn levels(h: &dyn Harness, owner: &UserId) -> BudgetLevels {
    h.store()
        .budget_levels(owner, shared::domain::now())
        .await
        .expect("levels")
}

async fn a_plan_override_is_the_users_alone_and_can_be_removed(h: &dyn Harness) {
    let store = h.store();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    assert_eq!(store.plan_override(&alice).await.expect("read"), None);
    let value = PlanOverride {
        plan: "pro".to_owned(),
        set_by: user("admin-1"),
        set_at: at(5),
    };
    store.set_plan_override(&alice, Some(&value)).await.expect("set");
    assert_eq!(store.plan_override(&alice).await.expect("read"), Some(value.clone()));
    assert_eq!(store.plan_override(&bob).await.expect("read"), None, "not bob's");
    let changed = PlanOverride {
        plan: "team".to_owned(),
        ..value
    };
    store.set_plan_override(&alice, Some(&changed)).await.expect("replace");
    assert_eq!(store.plan_override(&alice).await.expect("read"), Some(changed));
    store.set_plan_override(&alice, None).await.expect("clear");
    assert_eq!(store.plan_override(&alice).await.expect("read"), None);
    store
        .set_plan_override(&alice, None)
        .await
        .expect("clearing nothing is fine");
}

async fn the_dollar_budget_is_reserved_settled_and_refuses_what_does_not_fit(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let c = created(h, &ids, &user(&unique("usd"))).await;
    let store = h.store();
    // A reservation alone over the budget is refused without writing anything.
    let over = store.begin_turn(&reserving_usd(&ids, &c, 1_200, 1_000)).await;
    assert!(
        matches!(&over, Err(StoreError::BudgetExceeded { window, .. }) if *window == rules::DOLLAR_WINDOW),
        "{over:?}"
    );
    assert_eq!(levels(h, &c.owner).await.nano_usd_month, 0);
    store
        .begin_turn(&reserving_usd(&ids, &c, 600, 1_000))
        .await
        .expect("fits");
    assert_eq!(levels(h, &c.owner).await.nano_usd_month, 600, "reserved");
    store.finish_turn(&settle_usd(&c, 600, 250)).await.expect("settle");
    assert_eq!(
        levels(h, &c.owner).await.nano_usd_month,
        250,
        "settled down to the cost"
    );
    // 250 spent: 800 more does not fit in 1,000, 700 does.
    let refused = store.begin_turn(&reserving_usd(&ids, &c, 800, 1_000)).await;
    assert!(
        matches!(&refused, Err(StoreError::BudgetExceeded { window, .. }) if *window == rules::DOLLAR_WINDOW),
        "{refused:?}"
    );
    assert_eq!(
        levels(h, &c.owner).await.nano_usd_month,
        250,
        "a refusal reserves nothing"
    );
    store
        .begin_turn(&reserving_usd(&ids, &c, 700, 1_000))
        .await
        .expect("fits exactly");
    assert_eq!(levels(h, &c.owner).await.nano_usd_month, 950);
    // The token budgets are untouched by dollars.
    let l = levels(h, &c.owner).await;
    assert_eq!((l.tokens_day, l.tokens_month), (0, 0));
}

fn stats(day: &str, solution: &str, model: &str, input: u64, output: u64, cost: u64) -> StatsUpdate {
    StatsUpdate {
        day: day.to_owned(),
        solution: solution.to_owned(),
        model: model.to_owned(),
        delta: StatsDelta {
            requests: 1,
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: 3,
            cost_nano_usd: cost,
            ..StatsDelta::default()
        },
    }
}

/// A usage row as (day, solution, model, requests, input, output, cache read, cost).
type UsageView<'a> = (&'a str, &'a str, &'a str, u64, u64, u64, u64, u64);

async fn a_finished_turn_adds_to_its_users_usage_and_the_months_spend(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let (ca, cb) = (created(h, &ids, &alice).await, created(h, &ids, &bob).await);
    let store = h.store();
    let finishes = [
        (&ca, stats("2026-11-02", "general", "m-a", 10, 20, 1_000)),
        (&ca, stats("2026-11-02", "general", "m-a", 5, 5, 500)),
        (&ca, stats("2026-11-03", "support", "m-b", 1, 2, 30)),
        (&ca, stats("2026-10-31", "general", "m-a", 7, 7, 70)),
        (&cb, stats("2026-11-02", "general", "m-a", 100, 100, 9_000)),
    ];
    for (c, s) in finishes {
        let mut f = settle(c, None, Settlement::default());
        f.stats = Some(s);
        store.finish_turn(&f).await.expect("finish");
    }
    let rows = store
        .usage_between(&alice, "2026-11-01", "2026-11-30")
        .await
        .expect("usage");
    let view: Vec<UsageView<'_>> = rows
        .iter()
        .map(|r| {
            (
                r.day.as_str(),
                r.solution.as_str(),
                r.model.as_str(),
                r.requests,
                r.input_tokens,
                r.output_tokens,
                r.cache_read_tokens,
                r.cost_nano_usd,
            )
        })
        .collect();
    assert_eq!(
        view,
        vec![
            ("2026-11-02", "general", "m-a", 2, 15, 25, 6, 1_500),
            ("2026-11-03", "support", "m-b", 1, 1, 2, 3, 30),
        ],
        "summed per day, solution and model; October and bob left out"
    );
    let one_day = store
        .usage_between(&alice, "2026-11-03", "2026-11-03")
        .await
        .expect("usage");
    assert_eq!(one_day.len(), 1);
    assert_eq!(
        store
            .usage_between(&bob, "2026-11-01", "2026-11-30")
            .await
            .expect("usage")
            .len(),
        1
    );
    assert_eq!(store.month_spend("2026-11").await.expect("spend"), 1_500 + 30 + 9_000);
    assert_eq!(store.month_spend("2026-10").await.expect("spend"), 70);
    assert_eq!(store.month_spend("2026-09").await.expect("spend"), 0);
    // Erasing alice takes her usage, her override and her dollar budget; bob's stay.
    store
        .set_plan_override(
            &alice,
            Some(&PlanOverride {
                plan: "pro".to_owned(),
                set_by: user("admin-1"),
                set_at: at(1),
            }),
        )
        .await
        .expect("override");
    store
        .begin_turn(&reserving_usd(&ids, &ca, 40, 1_000))
        .await
        .expect("reserve");
    assert_eq!(levels(h, &alice).await.nano_usd_month, 40);
    store
        .claim_conversation_id(&alice, &ca.id)
        .await
        .expect("alice claims her id");
    assert!(
        matches!(
            store.claim_conversation_id(&bob, &ca.id).await,
            Err(StoreError::Conflict(_))
        ),
        "the id is alice's"
    );
    store.erase_user(&alice, shared::domain::now()).await.expect("erase");
    // Her id claims went too: the id is free again.
    store
        .claim_conversation_id(&bob, &ca.id)
        .await
        .expect("free after the erasure");
    assert!(store
        .usage_between(&alice, "2026-10-01", "2026-11-30")
        .await
        .expect("usage")
        .is_empty());
    assert_eq!(store.plan_override(&alice).await.expect("override"), None);
    assert_eq!(levels(h, &alice).await, BudgetLevels::default());
    assert_eq!(
        store
            .usage_between(&bob, "2026-11-01", "2026-11-30")
            .await
            .expect("usage")
            .len(),
        1
    );
}

athena_tests::on_both_stores!(
    |store| &Arc::new(store),
    [
        a_plan_override_is_the_users_alone_and_can_be_removed,
        the_dollar_budget_is_reserved_settled_and_refuses_what_does_not_fit,
        a_finished_turn_adds_to_its_users_usage_and_the_months_spend,
    ]
);
