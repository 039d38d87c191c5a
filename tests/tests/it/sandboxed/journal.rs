//! The daily journal's pieces against the QuickBooks and Xero sandboxes: a
//! location-day drafted from its parts with the mapping in force, posted as
//! one balanced JournalEntry / ManualJournal that the sandbox (built to the
//! providers' definitions) accepts; a late refund updated in place (the same
//! entry, its SyncToken moved on); after the books close, the update refused
//! with the closed-period error and the difference posted as an adjustment
//! on the first open day, the books' balance per account then equal to the
//! day's new entry. The truth is the sandbox's own account totals.

use super::{Hub, token_credentials};
use crate::backends::{Backend, conformance};
use hub_sandboxes::quickbooks::{QuickBooksConfig, QuickBooksSandbox};
use hub_sandboxes::xero::{TRACKING_CATEGORY, XeroConfig, XeroSandbox, role_accounts};
use jiff::SignedDuration;
use jiff::civil::Date;
use rust_decimal::Decimal;
use shared::model::journal::{
    DayTotals, EntryLine, JournalMappings, difference, doc_number, draft, first_open_day,
};
use shared::model::{Part, Provider, parts};
use shared::providers::Endpoints;
use shared::providers::quickbooks::journal::{LocationRef, is_period_closed, journal_entry};
use shared::providers::xero::journal::{Tracking, is_lock_date_refusal, manual_journal};
use shared::providers::xero::{Collection, ItemResult};
use std::collections::BTreeMap;
use std::str::FromStr;

conformance!(
    a_quickbooks_day_is_one_entry_updated_in_place_then_adjusted_after_close,
    a_xero_day_is_one_manual_journal_updated_in_place_then_adjusted_after_the_lock,
    the_day_poster_posts_once_updates_in_place_adjusts_after_close_and_holds_unmapped_days,
    a_day_is_queued_when_final_and_posted_once_by_the_push_worker,
    a_late_refund_reposts_its_final_day_in_place_and_a_new_mapping_posts_only_the_held_day,
);

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn totals(parts: &[(&str, &str)]) -> DayTotals {
    let parts: Vec<Part> = parts
        .iter()
        .map(|(r, a)| Part {
            role: r.to_string(),
            amount: d(a),
        })
        .collect();
    DayTotals {
        parts: parts::sum_parts(&parts),
        records: parts.len(),
        held: Vec::new(),
    }
}

/// The books' net per account over `lines`, debit positive.
fn net(lines: &[EntryLine]) -> BTreeMap<String, Decimal> {
    let mut out = BTreeMap::new();
    for l in lines {
        *out.entry(l.account.clone()).or_default() += l.amount;
    }
    out.retain(|_, v: &mut Decimal| !v.is_zero());
    out
}

/// The sandbox's own net per account over every day, debit positive.
fn books(sandbox: &QuickBooksSandbox, realm: &str) -> BTreeMap<String, Decimal> {
    let mut out = BTreeMap::new();
    for ((_, account), amount) in sandbox.account_totals(realm) {
        *out.entry(account).or_default() += amount;
    }
    out.retain(|_, v: &mut Decimal| !v.is_zero());
    out
}

/// A QuickBooks sandbox (seeded with `seed`) and a hub with one tenant
/// whose `books` connection holds a token the sandbox issued, and clients
/// pointed at it.
async fn quickbooks_books(
    b: Backend,
    seed: u64,
) -> (
    QuickBooksSandbox,
    String,
    Hub,
    shared::model::Connection,
    shared::providers::ProviderClients,
) {
    let sandbox = QuickBooksSandbox::start(QuickBooksConfig::seeded(seed))
        .await
        .unwrap();
    let realm = sandbox.realm_id();
    let grant = sandbox.grant(&realm);
    let hub = Hub::new(b).await;
    hub.app(
        Provider::QuickBooks,
        sandbox.client_id(),
        sandbox.client_secret(),
    )
    .await;
    let c = hub
        .connect(
            "books",
            Provider::QuickBooks,
            &realm,
            "America/New_York",
            token_credentials(
                &grant.access_token,
                grant.refresh_token.as_deref(),
                SignedDuration::from_hours(1),
            ),
        )
        .await;
    let clients = hub.clients(Endpoints {
        quickbooks: sandbox.base_url(),
        quickbooks_token: format!("{}/oauth2/v1/tokens/bearer", sandbox.base_url()),
        ..Endpoints::default()
    });
    (sandbox, realm, hub, c, clients)
}

async fn a_quickbooks_day_is_one_entry_updated_in_place_then_adjusted_after_close(b: Backend) {
    let (sandbox, realm, _hub, c, clients) = quickbooks_books(b, 7).await;
    let client = clients.quickbooks(&c).await.unwrap();
    let account = |name: &str, kind: &str, sub: &str| {
        sandbox
            .add_account(&realm, name, kind, sub)
            .unwrap_or_else(|| panic!("add {name}"))
    };
    let mapping: BTreeMap<String, String> = [
        (
            "sales:*",
            account("Food Sales", "Income", "SalesOfProductIncome"),
        ),
        (
            "tax:*",
            account(
                "Sales Tax Payable",
                "Other Current Liability",
                "SalesTaxPayable",
            ),
        ),
        (
            "tips",
            account(
                "Tips Payable",
                "Other Current Liability",
                "OtherCurrentLiabilities",
            ),
        ),
        (
            "tender:card",
            account("Card Clearing", "Other Current Asset", "UndepositedFunds"),
        ),
        ("tender:cash", account("Cash on Hand", "Bank", "CashOnHand")),
        (
            "refunds",
            account("Refunds", "Income", "DiscountsRefundsGiven"),
        ),
        (
            "over_short",
            account("Over/Short", "Expense", "OtherMiscellaneousServiceCost"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut mappings = JournalMappings::default();
    let day: Date = "2026-03-02".parse().unwrap();
    mappings.set("2026-01-01".parse().unwrap(), mapping);
    let location = LocationRef::None;
    let doc = doc_number("Downtown", day);

    // The day as first posted.
    let first = draft(
        day,
        &totals(&[
            ("sales:food", "120.00"),
            ("tax:State", "9.60"),
            ("tips", "15.00"),
            ("tender:card", "104.60"),
            ("tender:cash", "40.01"),
        ]),
        &mappings,
    )
    .unwrap();
    assert_eq!(first.over_short, d("-0.01"), "a cent over, to over/short");
    let body = journal_entry(&doc, day, &first.lines, &location, "Daily sales").unwrap();
    let saved = client
        .create("JournalEntry", &body, "journal-downtown-20260302-v1")
        .await
        .unwrap();
    assert_eq!(sandbox.journal_entries(&realm).len(), 1);
    assert_eq!(books(&sandbox, &realm), net(&first.lines));

    // A late refund, period open: the same entry, updated in place.
    let second = draft(
        day,
        &totals(&[
            ("sales:food", "120.00"),
            ("tax:State", "9.60"),
            ("tips", "15.00"),
            ("tender:card", "104.60"),
            ("tender:cash", "40.01"),
            ("refunds", "20.00"),
            ("tax:State", "-1.60"),
            ("tender:card", "-21.60"),
        ]),
        &mappings,
    )
    .unwrap();
    let body = journal_entry(&doc, day, &second.lines, &location, "Daily sales").unwrap();
    let updated = client
        .sparse_update(
            "JournalEntry",
            &saved.id,
            &saved.sync_token,
            &body,
            "journal-downtown-20260302-v2",
        )
        .await
        .unwrap();
    assert_eq!(updated.id, saved.id);
    assert_ne!(updated.sync_token, saved.sync_token, "SyncToken moved on");
    let entries = sandbox.journal_entries(&realm);
    assert_eq!(entries.len(), 1, "never a second entry for the day");
    assert_eq!(entries[0].doc_number.as_deref(), Some(doc.as_str()));
    assert_eq!(books(&sandbox, &realm), net(&second.lines));

    // The books close through the day; a second late change.
    assert_eq!(client.book_close_date().await.unwrap(), None);
    assert!(sandbox.set_book_close_date(&realm, day));
    let third = draft(
        day,
        &totals(&[
            ("sales:food", "120.00"),
            ("tax:State", "9.60"),
            ("tips", "18.00"),
            ("tender:card", "107.60"),
            ("tender:cash", "40.01"),
            ("refunds", "20.00"),
            ("tax:State", "-1.60"),
            ("tender:card", "-21.60"),
        ]),
        &mappings,
    )
    .unwrap();
    let body = journal_entry(&doc, day, &third.lines, &location, "Daily sales").unwrap();
    let refused = client
        .sparse_update(
            "JournalEntry",
            &updated.id,
            &updated.sync_token,
            &body,
            "journal-downtown-20260302-v3",
        )
        .await
        .unwrap_err();
    assert!(is_period_closed(&refused), "{refused}");
    assert_eq!(
        books(&sandbox, &realm),
        net(&second.lines),
        "the original untouched"
    );

    // The difference alone, on the first open day, naming the original date.
    let adjustment = difference(&second.lines, &third.lines);
    assert_eq!(
        net(&adjustment).len(),
        2,
        "tips and card clearing only: {adjustment:?}"
    );
    let lock = client.book_close_date().await.unwrap();
    assert_eq!(lock, Some(day), "the closing date, read from the books");
    let open = first_open_day(day, lock);
    assert_eq!(open, day.tomorrow().unwrap());
    let body = journal_entry(
        &format!("{doc}-A1"),
        open,
        &adjustment,
        &location,
        &format!("Adjustment to the daily sales of {day} (books closed)"),
    )
    .unwrap();
    client
        .create("JournalEntry", &body, "journal-downtown-20260302-a1")
        .await
        .unwrap();
    let entries = sandbox.journal_entries(&realm);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].txn_date, open);
    assert_eq!(
        books(&sandbox, &realm),
        net(&third.lines),
        "the books per account equal the day as it stands"
    );
    for e in &entries {
        let (dr, cr) = e
            .lines
            .iter()
            .fold((Decimal::ZERO, Decimal::ZERO), |(dr, cr), l| {
                match l.posting {
                    hub_sandboxes::quickbooks::PostingType::Debit => (dr + l.amount, cr),
                    hub_sandboxes::quickbooks::PostingType::Credit => (dr, cr + l.amount),
                }
            });
        assert_eq!(dr, cr, "entry {} balances", e.id);
    }
}

/// The Xero sandbox's own net per account over every day, debit positive.
fn xero_books(sandbox: &XeroSandbox, tenant: &str) -> BTreeMap<String, Decimal> {
    let mut out = BTreeMap::new();
    for ((_, account), amount) in sandbox.account_totals(tenant) {
        *out.entry(account).or_default() += amount;
    }
    out.retain(|_, v: &mut Decimal| !v.is_zero());
    out
}

async fn a_xero_day_is_one_manual_journal_updated_in_place_then_adjusted_after_the_lock(
    b: Backend,
) {
    let sandbox = XeroSandbox::start(XeroConfig {
        limits: Vec::new(),
        ..XeroConfig::seeded(11)
    })
    .await
    .unwrap();
    let hub = Hub::new(b).await;
    hub.app(Provider::Xero, sandbox.client_id(), sandbox.client_secret())
        .await;
    let tenant = sandbox.tenant_id();
    let grant = sandbox.grant();
    let c = hub
        .connect(
            "books",
            Provider::Xero,
            &tenant,
            "America/Los_Angeles",
            token_credentials(
                &grant.access_token,
                grant.refresh_token.as_deref(),
                SignedDuration::from_hours(1),
            ),
        )
        .await;
    let clients = hub.clients(Endpoints {
        xero: sandbox.base_url(),
        xero_token: format!("{}/connect/token", sandbox.base_url()),
        ..Endpoints::default()
    });
    let client = clients.xero(&c).await.unwrap();
    let mut mappings = JournalMappings::default();
    mappings.set("2026-01-01".parse().unwrap(), role_accounts());
    let day: Date = "2026-03-02".parse().unwrap();
    let tracking = Tracking {
        name: TRACKING_CATEGORY.into(),
        option: "Uptown".into(),
    };
    let narration = format!("Daily sales, Uptown, {day}");
    let saved_id = |r: Vec<ItemResult>| match r.as_slice() {
        [ItemResult::Saved { id, .. }] => id.clone(),
        other => panic!("{other:?}"),
    };

    let first = draft(
        day,
        &totals(&[
            ("sales:food", "80.00"),
            ("tax:State", "6.40"),
            ("tender:card", "86.40"),
        ]),
        &mappings,
    )
    .unwrap();
    let body = manual_journal(&narration, day, &first.lines, Some(&tracking)).unwrap();
    let id = saved_id(
        client
            .save(
                Collection::ManualJournals,
                &[body],
                "journal-uptown-20260302-v1",
            )
            .await
            .unwrap(),
    );
    assert_eq!(sandbox.manual_journals(&tenant).len(), 1);
    assert_eq!(xero_books(&sandbox, &tenant), net(&first.lines));

    // A late refund, period open: the same journal, by its id, with POST.
    let second = draft(
        day,
        &totals(&[
            ("sales:food", "80.00"),
            ("tax:State", "6.40"),
            ("tender:card", "86.40"),
            ("refunds", "10.00"),
            ("tax:State", "-0.80"),
            ("tender:card", "-10.80"),
        ]),
        &mappings,
    )
    .unwrap();
    let mut body = manual_journal(&narration, day, &second.lines, Some(&tracking)).unwrap();
    body["ManualJournalID"] = id.clone().into();
    let again = saved_id(
        client
            .save(
                Collection::ManualJournals,
                &[body],
                "journal-uptown-20260302-v2",
            )
            .await
            .unwrap(),
    );
    assert_eq!(again, id);
    assert_eq!(
        sandbox.manual_journals(&tenant).len(),
        1,
        "never a second journal"
    );
    assert_eq!(xero_books(&sandbox, &tenant), net(&second.lines));

    // The period locks through the day; a tip adjustment arrives.
    assert_eq!(client.lock_date().await.unwrap(), None);
    assert!(sandbox.set_period_lock_date(&tenant, Some(day)));
    let third = draft(
        day,
        &totals(&[
            ("sales:food", "80.00"),
            ("tax:State", "6.40"),
            ("tips", "5.00"),
            ("tender:card", "91.40"),
            ("refunds", "10.00"),
            ("tax:State", "-0.80"),
            ("tender:card", "-10.80"),
        ]),
        &mappings,
    )
    .unwrap();
    let mut body = manual_journal(&narration, day, &third.lines, Some(&tracking)).unwrap();
    body["ManualJournalID"] = id.clone().into();
    let refused = client
        .save(
            Collection::ManualJournals,
            &[body],
            "journal-uptown-20260302-v3",
        )
        .await;
    let refused_by_lock = match &refused {
        Ok(r) => matches!(r.as_slice(), [ItemResult::Invalid(m)] if is_lock_date_refusal(m)),
        Err(shared::providers::ProviderError::Validation(m)) => is_lock_date_refusal(m),
        Err(_) => false,
    };
    assert!(refused_by_lock, "{refused:?}");
    assert_eq!(
        xero_books(&sandbox, &tenant),
        net(&second.lines),
        "the original untouched"
    );

    let adjustment = difference(&second.lines, &third.lines);
    let lock = client.lock_date().await.unwrap();
    assert_eq!(
        lock,
        Some(day),
        "the period lock, read from the organisation"
    );
    let open = first_open_day(day, lock);
    assert_eq!(open, day.tomorrow().unwrap());
    let body = manual_journal(
        &format!("Adjustment to the daily sales of {day} (period locked), Uptown"),
        open,
        &adjustment,
        Some(&tracking),
    )
    .unwrap();
    saved_id(
        client
            .save(
                Collection::ManualJournals,
                &[body],
                "journal-uptown-20260302-a1",
            )
            .await
            .unwrap(),
    );
    assert_eq!(sandbox.manual_journals(&tenant).len(), 2);
    assert_eq!(xero_books(&sandbox, &tenant), net(&third.lines));
}

/// A sale (or refund, by `direction`) of the day, its money in `parts`.
fn sale(
    source: &shared::model::Connection,
    id: &str,
    day: Date,
    direction: &str,
    parts: &[(&str, &str)],
) -> shared::model::Record {
    let t: shared::model::Transaction = serde_json::from_value(serde_json::json!({
        "tenant": source.tenant.as_str(), "connection": source.id.as_str(), "source": "toast",
        "external_id": id, "amount": parts[0].1, "currency": "USD",
        "direction": direction, "description": format!("Order {id}"), "business_date": day.to_string(),
        "occurred_at": "2026-03-02T23:00:00Z", "reference": id, "line_items": [],
        "parts": parts.iter().map(|(r, a)| serde_json::json!({"role": r, "amount": a})).collect::<Vec<_>>(),
    }))
    .unwrap();
    shared::model::Record::Transaction(t)
}

async fn the_day_poster_posts_once_updates_in_place_adjusts_after_close_and_holds_unmapped_days(
    b: Backend,
) {
    use shared::pipelines::journal::{DayLocation, DayOutcome, post_day};
    use shared::pipelines::records::ingest;

    let (sandbox, realm, hub, dest, clients) = quickbooks_books(b, 9).await;
    let pos = hub
        .connect(
            "downtown",
            Provider::Toast,
            "restaurant-downtown",
            "America/New_York",
            super::login(&[("client_id", "x"), ("client_secret", "y")]),
        )
        .await;
    let account =
        |name: &str, kind: &str, sub: &str| sandbox.add_account(&realm, name, kind, sub).unwrap();
    let mut mapping: BTreeMap<String, String> = [
        (
            "sales:food",
            account("Food Sales", "Income", "SalesOfProductIncome"),
        ),
        (
            "tax:*",
            account(
                "Sales Tax Payable",
                "Other Current Liability",
                "SalesTaxPayable",
            ),
        ),
        (
            "tips",
            account(
                "Tips Payable",
                "Other Current Liability",
                "OtherCurrentLiabilities",
            ),
        ),
        (
            "tender:card",
            account("Card Clearing", "Other Current Asset", "UndepositedFunds"),
        ),
        (
            "refunds",
            account("Refunds", "Income", "DiscountsRefundsGiven"),
        ),
        (
            "over_short",
            account("Over/Short", "Expense", "OtherMiscellaneousServiceCost"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut mappings = JournalMappings::default();
    mappings.set("2026-01-01".parse().unwrap(), mapping.clone());
    let day: Date = "2026-03-02".parse().unwrap();
    let department = sandbox.add_department(&realm, "Downtown").unwrap();
    let location = DayLocation {
        name: "Downtown".into(),
        quickbooks: LocationRef::Department(department.clone()),
        xero: None,
    };
    let add = |records: Vec<shared::model::Record>| {
        let stores = hub.stores.clone();
        let tenant = hub.tenant.clone();
        async move {
            ingest(&stores, &tenant, Provider::Toast, &[], records)
                .await
                .unwrap()
        }
    };
    let post = |m: &JournalMappings| {
        let m = m.clone();
        let (stores, clients, dest, pos, location) = (
            hub.stores.clone(),
            clients.clone(),
            dest.clone(),
            pos.clone(),
            location.clone(),
        );
        async move {
            post_day(&stores, &clients, &dest, &pos, &location, day, &m)
                .await
                .unwrap()
        }
    };

    assert_eq!(post(&mappings).await, DayOutcome::NothingToPost);
    add(vec![
        sale(
            &pos,
            "o1",
            day,
            "credit",
            &[
                ("sales:food", "60.00"),
                ("tax:State", "4.80"),
                ("tips", "9.00"),
                ("tender:card", "73.80"),
            ],
        ),
        sale(
            &pos,
            "o2",
            day,
            "credit",
            &[
                ("sales:food", "40.00"),
                ("tax:State", "3.20"),
                ("tender:card", "43.20"),
            ],
        ),
    ])
    .await;
    let DayOutcome::Posted { id } = post(&mappings).await else {
        panic!("not posted")
    };
    assert_eq!(
        post(&mappings).await,
        DayOutcome::Unchanged,
        "the same day posts nothing new"
    );
    let entries = sandbox.journal_entries(&realm);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].doc_number.as_deref(), Some("Downtown-20260302"));
    assert!(
        entries[0]
            .lines
            .iter()
            .all(|l| l.department.as_deref() == Some(department.as_str()))
    );
    let first_token = entries[0].sync_token.clone();

    // A late refund, period open: the same entry, its SyncToken moved on.
    add(vec![sale(
        &pos,
        "r1",
        day,
        "debit",
        &[
            ("refunds", "10.00"),
            ("tax:State", "-0.80"),
            ("tender:card", "-10.80"),
        ],
    )])
    .await;
    assert_eq!(
        post(&mappings).await,
        DayOutcome::Updated { id: id.clone() }
    );
    let entries = sandbox.journal_entries(&realm);
    assert_eq!(entries.len(), 1, "one entry in the books");
    assert_ne!(entries[0].sync_token, first_token);
    let updated_token = entries[0].sync_token.clone();
    let want = |parts: &[(&str, &str)]| net(&draft(day, &totals(parts), &mappings).unwrap().lines);
    let after_refund = [
        ("sales:food", "100.00"),
        ("tax:State", "8.00"),
        ("tips", "9.00"),
        ("tender:card", "117.00"),
        ("refunds", "10.00"),
        ("tax:State", "-0.80"),
        ("tender:card", "-10.80"),
    ];
    assert_eq!(books(&sandbox, &realm), want(&after_refund));

    // The books close; the same refund's tip comes back: one adjustment on
    // the first open day, the original untouched.
    assert!(sandbox.set_book_close_date(&realm, day));
    add(vec![sale(
        &pos,
        "o3",
        day,
        "credit",
        &[("tips", "2.00"), ("tender:card", "2.00")],
    )])
    .await;
    let DayOutcome::Adjusted { id: adj, on } = post(&mappings).await else {
        panic!("not adjusted")
    };
    assert_eq!(on, day.tomorrow().unwrap());
    let entries = sandbox.journal_entries(&realm);
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0].sync_token, updated_token,
        "the original untouched"
    );
    let adjustment = entries.iter().find(|e| e.id == adj).unwrap();
    assert_eq!(adjustment.txn_date, on);
    assert_eq!(
        adjustment.lines.len(),
        2,
        "only the difference: {:?}",
        adjustment.lines
    );
    let mut with_tip = after_refund.to_vec();
    with_tip.extend([("tips", "2.00"), ("tender:card", "2.00")]);
    assert_eq!(books(&sandbox, &realm), want(&with_tip));

    // A second change adjusts again, by the new difference only.
    add(vec![sale(
        &pos,
        "o4",
        day,
        "credit",
        &[("sales:food", "5.00"), ("tender:card", "5.00")],
    )])
    .await;
    let DayOutcome::Adjusted { .. } = post(&mappings).await else {
        panic!("not adjusted")
    };
    assert_eq!(sandbox.journal_entries(&realm).len(), 3);
    let third = sandbox.journal_entries(&realm).pop().unwrap();
    assert_eq!(third.lines.len(), 2);
    with_tip.extend([("sales:food", "5.00"), ("tender:card", "5.00")]);
    assert_eq!(books(&sandbox, &realm), want(&with_tip));

    // A new sales category on another day holds that day, naming the key;
    // mapping it posts the day.
    let next = "2026-03-05".parse::<Date>().unwrap();
    add(vec![sale(
        &pos,
        "o5",
        next,
        "credit",
        &[("sales:brunch", "30.00"), ("tender:card", "30.00")],
    )])
    .await;
    let post_next = |m: JournalMappings| {
        let (stores, clients, dest, pos, location) = (
            hub.stores.clone(),
            clients.clone(),
            dest.clone(),
            pos.clone(),
            location.clone(),
        );
        async move {
            post_day(&stores, &clients, &dest, &pos, &location, next, &m)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        post_next(mappings.clone()).await,
        DayOutcome::Held(vec!["sales:brunch".into()])
    );
    assert_eq!(
        sandbox.journal_entries(&realm).len(),
        3,
        "nothing sent for a held day"
    );
    mapping.insert(
        "sales:brunch".into(),
        account("Brunch Sales", "Income", "SalesOfProductIncome"),
    );
    mappings.set(next, mapping);
    let DayOutcome::Posted { .. } = post_next(mappings.clone()).await else {
        panic!("not posted")
    };
    assert_eq!(
        post(&mappings).await,
        DayOutcome::Unchanged,
        "the earlier day is not re-posted"
    );
    assert_eq!(sandbox.journal_entries(&realm).len(), 4);
}

/// A QuickBooks destination booking daily summaries of a Toast `downtown`
/// (New York, day closing at midnight, two hours to settle), its lines on
/// a Department, with a mapping from 2020 of the roles the sales below use.
async fn daily_quickbooks(
    b: Backend,
    seed: u64,
) -> (
    QuickBooksSandbox,
    String,
    Hub,
    shared::model::Connection,
    shared::model::Connection,
    shared::providers::ProviderClients,
) {
    use shared::model::journal::{DestinationBooks, LocationBooking};
    let (sandbox, realm, hub, mut dest, clients) = quickbooks_books(b, seed).await;
    let pos = hub
        .connect(
            "downtown",
            Provider::Toast,
            "restaurant-downtown",
            "America/New_York",
            super::login(&[("client_id", "x"), ("client_secret", "y")]),
        )
        .await;
    let account =
        |name: &str, kind: &str, sub: &str| sandbox.add_account(&realm, name, kind, sub).unwrap();
    let mapping: BTreeMap<String, String> = [
        (
            "sales:food",
            account("Food Sales", "Income", "SalesOfProductIncome"),
        ),
        (
            "tax:*",
            account(
                "Sales Tax Payable",
                "Other Current Liability",
                "SalesTaxPayable",
            ),
        ),
        (
            "tender:card",
            account("Card Clearing", "Other Current Asset", "UndepositedFunds"),
        ),
        (
            "refunds",
            account("Refunds", "Income", "DiscountsRefundsGiven"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let department = sandbox.add_department(&realm, "Downtown").unwrap();
    let mut books = DestinationBooks::new_connection();
    books.journal.set("2020-01-01".parse().unwrap(), mapping);
    books.locations.insert(
        "downtown".into(),
        LocationBooking {
            name: Some("Downtown".into()),
            department: Some(department),
            ..Default::default()
        },
    );
    dest.books = books;
    hub.stores.connections.register(&dest).await.unwrap();
    (sandbox, realm, hub, dest, pos, clients)
}

/// Drains the push queue with the push worker; every outcome.
async fn push_all(
    hub: &Hub,
    clients: &shared::providers::ProviderClients,
) -> Vec<shared::pipelines::push::PushOutcome> {
    let mut pusher = shared::pipelines::push::Pusher::new(hub.stores.clone(), clients.clone());
    pusher.retry_base = std::time::Duration::ZERO;
    pusher.drain(&*hub.stores.push_queue, 20).await.unwrap()
}

fn at(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

/// Sales of a day still to come are not posted as they arrive; the day is
/// queued only once its close and settling window have passed, then posted
/// once as one entry, and the next tick queues nothing.
async fn a_day_is_queued_when_final_and_posted_once_by_the_push_worker(b: Backend) {
    use shared::pipelines::days::close_due_days;
    use shared::pipelines::push::PushOutcome;
    use shared::pipelines::records::{destinations, ingest};

    let (sandbox, realm, hub, dest, pos, clients) = daily_quickbooks(b, 21).await;
    // A day after this machine's clock: nothing arriving for it is final.
    let day: Date = "2031-03-02".parse().unwrap();
    let dests = destinations(&hub.stores, &hub.tenant).await.unwrap();
    assert!(
        dests.is_empty(),
        "a daily destination takes no per-order pushes: {dests:?}"
    );
    let tally = ingest(
        &hub.stores,
        &hub.tenant,
        Provider::Toast,
        &dests,
        vec![
            sale(
                &pos,
                "o1",
                day,
                "credit",
                &[
                    ("sales:food", "60.00"),
                    ("tax:State", "4.80"),
                    ("tender:card", "64.80"),
                ],
            ),
            sale(
                &pos,
                "o2",
                day,
                "credit",
                &[
                    ("sales:food", "40.00"),
                    ("tax:State", "3.20"),
                    ("tender:card", "43.20"),
                ],
            ),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        (tally.created, tally.pushes),
        (2, 0),
        "nothing queued before the day is final"
    );

    // 01:30 in New York the next morning: closed, not settled.
    let early = close_due_days(&hub.stores, Provider::Toast, at("2031-03-03T06:30:00Z"))
        .await
        .unwrap();
    assert_eq!(early.len(), 7, "the week before the first final day");
    assert!(early.iter().all(|j| j.day < day), "{early:?}");
    assert!(
        push_all(&hub, &clients)
            .await
            .iter()
            .all(|o| matches!(o, PushOutcome::Skipped(_)))
    );
    assert!(sandbox.journal_entries(&realm).is_empty());

    // 02:30: settled. Only that day is queued, and posted once.
    let due = close_due_days(&hub.stores, Provider::Toast, at("2031-03-03T07:30:00Z"))
        .await
        .unwrap();
    assert_eq!(due.iter().map(|j| j.day).collect::<Vec<_>>(), vec![day]);
    let outcomes = push_all(&hub, &clients).await;
    assert!(
        matches!(outcomes.as_slice(), [PushOutcome::Posted(_)]),
        "{outcomes:?}"
    );
    let entries = sandbox.journal_entries(&realm);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].doc_number.as_deref(), Some("Downtown-20310302"));
    assert!(entries[0].lines.iter().all(|l| l.department.is_some()));
    let mappings = dest.books.journal.clone();
    let want = net(&draft(
        day,
        &totals(&[
            ("sales:food", "100.00"),
            ("tax:State", "8.00"),
            ("tender:card", "108.00"),
        ]),
        &mappings,
    )
    .unwrap()
    .lines);
    assert_eq!(
        books(&sandbox, &realm),
        want,
        "the books per account are the day"
    );
    let book = shared::pipelines::days::book(&hub.stores, &dest, &pos.id)
        .await
        .unwrap();
    assert_eq!(book.closed_through, Some(day));
    assert!(book.posted.contains(&day) && book.held.is_empty());

    // The next tick, the same hour: nothing new.
    let again = close_due_days(&hub.stores, Provider::Toast, at("2031-03-03T07:45:00Z"))
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(sandbox.journal_entries(&realm).len(), 1);
}

/// A refund for a day already final queues that day again as it arrives:
/// the same entry is updated (its SyncToken moved on). A new sales category
/// holds its day, listed in the book with its key; a mapping version from
/// that day posts it and leaves the earlier day alone.
async fn a_late_refund_reposts_its_final_day_in_place_and_a_new_mapping_posts_only_the_held_day(
    b: Backend,
) {
    use shared::pipelines::days::{book, remap_jobs};
    use shared::pipelines::push::PushOutcome;
    use shared::pipelines::records::ingest;

    let (sandbox, realm, hub, dest, pos, clients) = daily_quickbooks(b, 22).await;
    let day: Date = "2026-03-02".parse().unwrap();
    let add = |records: Vec<shared::model::Record>| {
        let stores = hub.stores.clone();
        let tenant = hub.tenant.clone();
        async move {
            ingest(&stores, &tenant, Provider::Toast, &[], records)
                .await
                .unwrap()
        }
    };
    let t = add(vec![sale(
        &pos,
        "o1",
        day,
        "credit",
        &[
            ("sales:food", "50.00"),
            ("tax:State", "4.00"),
            ("tender:card", "54.00"),
        ],
    )])
    .await;
    assert_eq!(t.pushes, 1, "a final day is queued as its sale arrives");
    assert!(matches!(
        push_all(&hub, &clients).await.as_slice(),
        [PushOutcome::Posted(_)]
    ));
    let first = sandbox.journal_entries(&realm);
    assert_eq!(first.len(), 1);

    add(vec![sale(
        &pos,
        "r1",
        day,
        "debit",
        &[
            ("refunds", "10.00"),
            ("tax:State", "-0.80"),
            ("tender:card", "-10.80"),
        ],
    )])
    .await;
    let outcomes = push_all(&hub, &clients).await;
    assert_eq!(
        outcomes,
        vec![PushOutcome::Posted(first[0].id.clone())],
        "the same entry"
    );
    let entries = sandbox.journal_entries(&realm);
    assert_eq!(entries.len(), 1, "one entry in the books");
    assert_ne!(entries[0].sync_token, first[0].sync_token);
    let updated = entries[0].sync_token.clone();

    // A new sales category, three days later: held, nothing sent.
    let next = "2026-03-05".parse::<Date>().unwrap();
    add(vec![sale(
        &pos,
        "o2",
        next,
        "credit",
        &[("sales:brunch", "30.00"), ("tender:card", "30.00")],
    )])
    .await;
    let outcomes = push_all(&hub, &clients).await;
    assert!(
        matches!(outcomes.as_slice(), [PushOutcome::Skipped(why)] if why.contains("sales:brunch")),
        "{outcomes:?}"
    );
    assert_eq!(sandbox.journal_entries(&realm).len(), 1);
    let held = book(&hub.stores, &dest, &pos.id).await.unwrap().held;
    assert_eq!(
        held,
        [(next, vec!["sales:brunch".to_string()])]
            .into_iter()
            .collect()
    );

    // Mapped from that day: only the held day is queued and posted.
    let mut dest = dest;
    let mut accounts = dest.books.journal.in_force(next).unwrap().accounts.clone();
    accounts.insert(
        "sales:brunch".into(),
        sandbox
            .add_account(&realm, "Brunch Sales", "Income", "SalesOfProductIncome")
            .unwrap(),
    );
    dest.books.journal.set(next, accounts);
    hub.stores.connections.register(&dest).await.unwrap();
    let jobs = remap_jobs(&hub.stores, &dest, next).await.unwrap();
    assert_eq!(jobs.iter().map(|j| j.day).collect::<Vec<_>>(), vec![next]);
    let msgs: Vec<_> = jobs.iter().map(|j| j.to_message()).collect();
    hub.stores.push_queue.send_batch(&msgs).await.unwrap();
    assert!(matches!(
        push_all(&hub, &clients).await.as_slice(),
        [PushOutcome::Posted(_)]
    ));
    let entries = sandbox.journal_entries(&realm);
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0].sync_token, updated,
        "the earlier day is not re-posted"
    );
    let b = book(&hub.stores, &dest, &pos.id).await.unwrap();
    assert!(b.held.is_empty() && b.posted.contains(&day) && b.posted.contains(&next));
}
