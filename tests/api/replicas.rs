//! Several replicas on one database (and one Redis): changes announced at once, background
//! jobs run by one replica at a time, migrations applied once when replicas start together.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Options, fresh_database, safetensors, spawn_with, test_redis_url};

#[tokio::test]
async fn a_change_on_one_replica_shows_on_the_other_at_once() {
    let Some(_) = test_redis_url("a_change_on_one_replica_shows_on_the_other_at_once") else {
        return;
    };
    // Caches that keep answers for a minute: without announcements, the second replica would
    // go on showing the old list and admitting the disabled account for that long.
    let options = Options {
        redis_prefix: Some(format!("modelhub-test-{}", uuid::Uuid::new_v4())),
        response_cache_secs: 60,
        ..Options::default()
    };
    let first = spawn_with(options).await;
    let second = first.replica().await;
    let admin = first.admin("replica-admin").await;
    let user = first.register("replica-user").await;
    let me = "{ me { id } }";
    let models = "{ models(first: 5) { totalCount } }";
    // The second replica has the account and the (empty) list cached.
    let id = second.gql(Some(&user), me, json!({})).await.data()["me"]["id"].clone();
    for _ in 0..2 {
        assert_eq!(
            second.gql(Some(&admin), models, json!({})).await.data()["models"]["totalCount"],
            0
        );
        second.gql(Some(&user), me, json!({})).await.data();
    }

    // Bounded far below the caches' minute: the announcement crosses Redis in a millisecond.
    let until = |what: &'static str| {
        let started = std::time::Instant::now();
        move || {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{what} not seen by the other replica"
            );
        }
    };
    first
        .create_model(
            &admin,
            json!({ "name": "seen-everywhere", "version": "1.0.0", "framework": "PYTORCH" }),
            "w.safetensors",
            safetensors(4),
        )
        .await
        .data();
    let waited = until("the new model");
    while second.gql(Some(&admin), models, json!({})).await.data()["models"]["totalCount"] != 1 {
        waited();
        tokio::task::yield_now().await;
    }
    first
        .gql(
            Some(&admin),
            "mutation($id: ID!) { disableUser(userId: $id) { id } }",
            json!({ "id": id }),
        )
        .await
        .data();
    let waited = until("the disabled account");
    while second.gql(Some(&user), me, json!({})).await.code_or_ok() != "UNAUTHENTICATED" {
        waited();
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn one_replica_at_a_time_holds_a_lease() {
    use modelhub::services::leases;
    let first = spawn_with(Options::default()).await;
    let second = first.replica().await;
    let minute = Duration::from_secs(60);
    assert!(leases::take(&first.state, "gc", minute).await.unwrap());
    assert!(!leases::take(&second.state, "gc", minute).await.unwrap());
    // The holder renews it; other jobs have leases of their own.
    assert!(leases::take(&first.state, "gc", minute).await.unwrap());
    assert!(
        leases::take(&second.state, "reinspect", minute)
            .await
            .unwrap()
    );
    // Given back, or lapsed (its holder gone), the lease goes to whoever asks next.
    leases::release(&first.state, "gc").await.unwrap();
    assert!(
        leases::take(&second.state, "gc", Duration::ZERO)
            .await
            .unwrap()
    );
    assert!(leases::take(&first.state, "gc", minute).await.unwrap());
    assert!(!leases::take(&second.state, "gc", minute).await.unwrap());
}

#[tokio::test]
async fn replicas_starting_together_apply_migrations_once() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _postgres) = fresh_database(dir.path()).await;
    let url: secrecy::SecretString = url.into();
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(modelhub::db::connect(&url).await.unwrap());
    }
    let results =
        futures_util::future::join_all(connections.iter().map(modelhub::db::migrate)).await;
    for result in results {
        result.unwrap();
    }
    use migration::MigratorTrait;
    let applied = migration::Migrator::get_applied_migrations(&connections[0])
        .await
        .unwrap();
    assert_eq!(applied.len(), migration::Migrator::migrations().len());
}
