//! From a fresh machine to a running fleet: the real binary with no DATABASE_URL and no keys,
//! in an empty data folder. It runs its own PostgreSQL, makes its keys, prints the link for
//! the first admin, keeps everything across a restart, and refuses what would break it (a
//! second process on the folder, another key). Also the README's backup and restore steps.

use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};

use crate::fakes::telegram::FakeTelegram;
use crate::helpers::{decode, eventually, log_in, random_token_key, session_client, token};
use crate::served::{run, DataFolder, Served, SLOW};

const EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "a long enough passphrase";

/// The outside world for a served binary: a fake Telegram; no OpenAI key on purpose.
fn outside(telegram: &FakeTelegram) -> Vec<(&'static str, String)> {
    vec![
        ("TELEGRAM_API_URL", telegram.base_url.clone()),
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1".to_owned()),
        ("POLL_TIMEOUT_SECS", "1".to_owned()),
        ("SUBSCRIPTION_POLL_MS", "200".to_owned()),
    ]
}

fn env<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn create_first_admin(served: &Served) -> (u16, Value) {
    let token = served.setup_token().expect("a set-up link was printed");
    decode(
        reqwest::Client::new()
            .post(format!("{}/auth/setup", served.base))
            .json(&json!({"token": token, "email": EMAIL, "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn create_bot(admin: &reqwest::Client, base: &str, name: &str, n: u32) -> String {
    let (status, body) = decode(
        admin
            .post(format!("{base}/bots"))
            .json(&json!({"name": name, "token": token(n), "model": "gpt-5-mini"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Enables the bot and waits until Telegram is polled with its token: proof that the token
/// was opened.
async fn enable_and_see_its_token_used(
    admin: &reqwest::Client,
    base: &str,
    telegram: &FakeTelegram,
    bot_id: &str,
    n: u32,
) {
    let status = admin
        .post(format!("{base}/bots/{bot_id}/enable"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    eventually(SLOW, "Telegram is polled with the bot's token", || {
        let used = telegram
            .calls_of("getUpdates")
            .iter()
            .any(|c| c.token == token(n));
        std::future::ready(used)
    })
    .await;
}

#[tokio::test]
async fn a_fresh_data_folder_runs_the_fleet_and_keeps_it_across_a_restart() {
    let telegram = FakeTelegram::start().await;
    let outside = outside(&telegram);
    let data = DataFolder::new();

    let first = Served::start(&data, &env(&outside)).await;
    let log = first.stderr();
    assert!(
        log.contains("generated TOKEN_ENCRYPTION_KEY and COOKIE_SECRET into"),
        "{log}"
    );
    assert!(
        log.contains("OPENAI_API_KEY is not set"),
        "a warning at start: {log}"
    );
    assert!(!log.contains('\u{1b}'), "no colours off a terminal: {log}");
    let health = reqwest::get(format!("{}/health", first.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    for (file, mode) in [("keys", 0o700), ("keys/token-encryption.key", 0o600)] {
        let meta = std::fs::metadata(data.path().join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }

    // The one-time link makes the first admin once.
    let (status, body) = create_first_admin(&first).await;
    assert_eq!(
        (status, body["email"].as_str()),
        (201, Some(EMAIL)),
        "{body}"
    );
    let (status, body) = create_first_admin(&first).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_setup_token")),
        "{body}"
    );
    let admin = session_client(&log_in(&first.base, EMAIL, PASSWORD).await);
    let bot_id = create_bot(&admin, &first.base, "Support", 1).await;
    // No OPENAI_API_KEY: the bot says so before anyone writes to it.
    eventually(SLOW, "the bot shows the missing key", || async {
        let (_, bot) = decode(
            admin
                .get(format!("{}/bots/{bot_id}", first.base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        bot["last_error"]["kind"] == "llm_not_configured"
    })
    .await;

    // A second process on the same folder is refused while the first serves.
    let second = run(&data, &[], &[("BIND_ADDR", "127.0.0.1:0")]).await;
    let refusal = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert_eq!(refusal.lines().count(), 1, "one line: {refusal}");
    assert!(
        refusal.contains("is using the data folder") && refusal.contains("BOTFLEET_DATA_DIR"),
        "{refusal}"
    );

    let (status, _) = first.stop().await;
    assert!(status.success(), "a clean stop");
    assert!(
        !data.path().join("postgres/postmaster.pid").exists(),
        "the embedded database stopped with the service"
    );

    // After a restart: the same keys, the admin, the bot, and its token opens.
    let again = Served::start(&data, &env(&outside)).await;
    assert!(!again.stderr().contains("generated"), "{}", again.stderr());
    assert!(again.setup_token().is_none(), "an admin exists");
    let admin = session_client(&log_in(&again.base, EMAIL, PASSWORD).await);
    enable_and_see_its_token_used(&admin, &again.base, &telegram, &bot_id, 1).await;
    let (status, _) = again.stop().await;
    assert!(status.success());

    // Another key on the same data is refused, with one line that says so.
    let other_key = random_token_key();
    let refused = run(
        &data,
        &[],
        &[
            ("BIND_ADDR", "127.0.0.1:0"),
            ("TOKEN_ENCRYPTION_KEY", &other_key),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("TOKEN_ENCRYPTION_KEY (key id")
            && last.contains("cannot open what this database stores"),
        "{stderr}"
    );
    assert!(!stderr.contains(&other_key), "the key is not echoed");
}

/// The README's backup and restore steps, as written there: `botfleet backup`, the keys
/// copied beside it; on another data folder the keys put back, `botfleet restore`, start.
#[tokio::test]
async fn the_readmes_backup_and_restore_bring_the_fleet_back_in_another_data_folder() {
    let telegram = FakeTelegram::start().await;
    let outside = outside(&telegram);
    let (old, new) = (DataFolder::new(), DataFolder::new());

    let first = Served::start(&old, &env(&outside)).await;
    assert_eq!(create_first_admin(&first).await.0, 201);
    let admin = session_client(&log_in(&first.base, EMAIL, PASSWORD).await);
    let bot_id = create_bot(&admin, &first.base, "Support", 1).await;
    // A backup while the service runs (it attaches to the running database).
    let dump = old
        .path()
        .join("..")
        .join(format!("fleet-{}.dump", uuid::Uuid::new_v4().simple()));
    let dump_arg = dump.to_string_lossy().into_owned();
    let backup = run(&old, &["backup", "--output", &dump_arg], &[]).await;
    assert!(backup.status.success(), "{backup:?}");
    assert_eq!(
        std::fs::metadata(&dump).unwrap().permissions().mode() & 0o077,
        0,
        "a backup is its owner's alone"
    );
    assert!(first.stop().await.0.success());

    // The keys go with the backup; on the new machine they come back first.
    copy_dir(&old.path().join("keys"), &new.path().join("keys"));
    let restore = run(&new, &["restore", &dump_arg], &[]).await;
    assert!(restore.status.success(), "{restore:?}");

    let restored = Served::start(&new, &env(&outside)).await;
    let admin = session_client(&log_in(&restored.base, EMAIL, PASSWORD).await);
    enable_and_see_its_token_used(&admin, &restored.base, &telegram, &bot_id, 1).await;
    // New events after the restore sort after the restored ones: a new bot is projected.
    let second = create_bot(&admin, &restored.base, "Sales", 2).await;
    let (status, list) = decode(
        admin
            .get(format!("{}/bots", restored.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    assert_eq!(ids, [bot_id.as_str(), second.as_str()], "{list}");
    assert!(restored.stop().await.0.success());

    // A restore into a database that holds data is refused.
    let again = run(&new, &["restore", &dump_arg], &[]).await;
    let _ = std::fs::remove_file(&dump);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("restore into an empty one"),
        "{again:?}"
    );
}

/// `cp -a` for a folder of files.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        std::fs::copy(entry.path(), &target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}
