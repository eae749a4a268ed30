//! The private cluster `cargo test` starts when no server answers (and `botfleet serve` runs
//! without DATABASE_URL): forced here, since this machine's own server usually answers.

use botfleet::embedded_db::Cluster;

use crate::helpers::{
    answers, database_url_on, random_token_key, server_of, start_private_cluster, token, TestApp,
    TestDb,
};

#[tokio::test]
async fn a_private_cluster_runs_the_application_and_is_gone_once_stopped() {
    let cluster: Cluster = start_private_cluster().await;
    let server = server_of(&cluster);
    assert!(answers(&server).await, "it answers on its socket: {server}");
    let dir = cluster.settings().cluster_dir.clone();
    assert!(
        !server.contains(":5432/") && server.contains("host="),
        "a socket of its own, not a port: {server}"
    );

    // What TEST_DATABASE_SERVER pointing at it gives a test: a database of its own, the app.
    let name = format!("botfleet_test_{}", uuid::Uuid::new_v4().simple());
    let db = TestDb {
        url: database_url_on(&server, &name),
        name,
    };
    let app = TestApp::spawn_on(db, random_token_key()).await;
    let created = app.create_bot("Private", &token(1)).await;
    assert_eq!(created["name"], "Private");
    app.stop().await;

    cluster.stop().await.unwrap();
    assert!(
        !dir.exists(),
        "a throwaway cluster is deleted when it stops"
    );
}
