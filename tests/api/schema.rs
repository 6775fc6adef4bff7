//! The committed `schema.graphql` is what the code serves.

#[test]
fn committed_schema_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let current = modelhub::graphql::sdl();
    assert!(
        committed == current,
        "schema.graphql is out of date with the code; regenerate it with:\n    cargo run -- schema > schema.graphql"
    );
}

#[tokio::test]
async fn migrations_go_down_and_up_again() {
    use migration::MigratorTrait;
    let app = crate::helpers::spawn_app().await;
    app.register("before").await;
    // One connection for the whole cycle, so that no pooled connection works midway on a
    // schema another one is changing.
    let url = secrecy::ExposeSecret::expose_secret(&app.state.config.database_url).to_owned();
    let mut options = sea_orm::ConnectOptions::new(url);
    options.max_connections(1).sqlx_logging(false);
    let db = sea_orm::Database::connect(options).await.unwrap();
    migration::Migrator::down(&db, None).await.unwrap();
    migration::Migrator::up(&db, None).await.unwrap();
    db.close().await.unwrap();
    assert_eq!(app.count_rows("users").await, 0, "down dropped the tables");
    app.register("after").await;
    assert_eq!(app.count_rows("users").await, 1);
}

#[test]
fn every_mutation_in_the_schema_has_an_access_rule() {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let sdl = modelhub::graphql::sdl();
    let document = async_graphql::parser::parse_schema(&sdl).unwrap();
    let mut mutations = Vec::new();
    for definition in &document.definitions {
        if let TypeSystemDefinition::Type(ty) = definition
            && ty.node.name.node == "Mutation"
            && let TypeKind::Object(object) = &ty.node.kind
        {
            mutations.extend(object.fields.iter().map(|f| f.node.name.node.to_string()));
        }
    }
    assert!(mutations.len() >= 19, "{mutations:?}");
    let missing: Vec<&String> = mutations
        .iter()
        .filter(|m| modelhub::services::access::mutation_requirement(m).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "mutations without an access rule: {missing:?}"
    );
}
