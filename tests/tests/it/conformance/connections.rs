use crate::backends::{Backend, conformance};
use shared::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
use shared::model::{AccountMapping, Connection, Provider, Tenant, TimeZoneName};
use shared::ports::StoreError;
use std::collections::BTreeMap;

conformance!(
    connections_are_found_by_tenant_and_by_provider_account,
    a_provider_account_belongs_to_one_connection,
    a_connection_needs_its_tenant,
);

fn uid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn tenant(b: &Backend) -> TenantId {
    let t = Tenant {
        id: TenantId::new(format!("t-{}", uid())).unwrap(),
        name: "Bistro Group".into(),
    };
    b.connections.put_tenant(&t).await.unwrap();
    t.id
}

fn connection(tenant: &TenantId, id: &str, provider: Provider, account: &str) -> Connection {
    let mut mappings = BTreeMap::new();
    mappings.insert(
        Provider::QuickBooks,
        AccountMapping {
            sales_account: Some("79".into()),
            deposit_account: Some("4".into()),
            ..AccountMapping::default()
        },
    );
    Connection {
        id: ConnectionId::new(id).unwrap(),
        tenant: tenant.clone(),
        provider,
        account_id: ProviderAccountId::new(account).unwrap(),
        time_zone: TimeZoneName::new("America/Chicago").unwrap(),
        business_day_close: Default::default(),
        credentials: SecretName::new(format!("{tenant}/{id}")).unwrap(),
        mappings,
        codes: Default::default(),
        currency: None,
        books: Default::default(),
    }
}

async fn connections_are_found_by_tenant_and_by_provider_account(b: Backend) {
    let t = tenant(&b).await;
    let (guid, realm) = (format!("rest-{}", uid()), format!("realm-{}", uid()));
    let toast = connection(&t, "toast-main", Provider::Toast, &guid);
    let qbo = connection(&t, "books", Provider::QuickBooks, &realm);
    b.connections.register(&toast).await.unwrap();
    b.connections.register(&qbo).await.unwrap();

    let found = b
        .connections
        .find_by_account(Provider::Toast, &ProviderAccountId::new(&guid).unwrap())
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&toast));
    // The same account id under another provider is someone else's.
    assert_eq!(
        b.connections
            .find_by_account(Provider::Square, &ProviderAccountId::new(&guid).unwrap())
            .await
            .unwrap(),
        None
    );
    let list = b.connections.list_for_tenant(&t).await.unwrap();
    assert_eq!(list, vec![qbo.clone(), toast.clone()]);
    assert_eq!(
        b.connections.get(&t, &toast.id).await.unwrap(),
        Some(toast.clone())
    );
    let all = b.connections.list_all().await.unwrap();
    assert!(all.contains(&toast) && all.contains(&qbo));
    let tenants = b.connections.list_tenants().await.unwrap();
    assert!(tenants.iter().any(|x| x.id == t));
    assert_eq!(
        b.connections.get_tenant(&t).await.unwrap().unwrap().name,
        "Bistro Group"
    );
}

async fn a_provider_account_belongs_to_one_connection(b: Backend) {
    let (t1, t2) = (tenant(&b).await, tenant(&b).await);
    let merchant = format!("merchant-{}", uid());
    let mine = connection(&t1, "square", Provider::Square, &merchant);
    b.connections.register(&mine).await.unwrap();
    let theirs = connection(&t2, "square", Provider::Square, &merchant);
    assert!(matches!(
        b.connections.register(&theirs).await,
        Err(StoreError::Conflict(_))
    ));
    // Re-registering the owner (a changed time zone) is an update.
    let mut updated = mine.clone();
    updated.time_zone = TimeZoneName::new("America/Denver").unwrap();
    b.connections.register(&updated).await.unwrap();
    let acct = ProviderAccountId::new(&merchant).unwrap();
    let found = b
        .connections
        .find_by_account(Provider::Square, &acct)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.time_zone.as_str(), "America/Denver");
    // Moving the owner to another account frees the old one.
    let mut moved = updated.clone();
    moved.account_id = ProviderAccountId::new(format!("merchant-{}", uid())).unwrap();
    b.connections.register(&moved).await.unwrap();
    assert_eq!(
        b.connections
            .find_by_account(Provider::Square, &acct)
            .await
            .unwrap(),
        None
    );
    b.connections.register(&theirs).await.unwrap();
    assert_eq!(
        b.connections
            .find_by_account(Provider::Square, &acct)
            .await
            .unwrap()
            .unwrap()
            .tenant,
        t2
    );
}

async fn a_connection_needs_its_tenant(b: Backend) {
    let ghost = TenantId::new(format!("ghost-{}", uid())).unwrap();
    let c = connection(&ghost, "toast", Provider::Toast, &format!("g-{}", uid()));
    assert!(matches!(
        b.connections.register(&c).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(b.connections.list_for_tenant(&ghost).await.unwrap(), vec![]);
    assert!(b.connections.get_tenant(&ghost).await.unwrap().is_none());
}
