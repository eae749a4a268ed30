//! The floor plan of `src/`: every room may use the rooms on floors below its own, and no
//! other. A lower room never names a higher one, so a newcomer in a room knows what it may
//! touch, and the rooms can be read (and tested) from the ground up.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each room of `src/` (a folder, or a file at the top) and its floor, from the ground up.
/// This table is the plan: README's "How it fits together" and `src/lib.rs` describe it.
const FLOORS: &[(&str, u8)] = &[
    // Ground floor: plumbing that names no room.
    ("runtime", 0),
    ("secrets", 0),
    ("metrics", 0),
    ("rate_limit", 0),
    ("db", 0),
    ("telemetry", 0),
    ("data_dir", 0),
    ("embedded_db", 0),
    // The outside world's adapters; the store's sealing keys.
    ("llm", 1),
    ("telegram", 1),
    ("keyring", 1),
    // The event store: appends, and reading the stream in commit order.
    ("event_store", 2),
    // Built on the store: subscriptions (projections), personal-data keys.
    ("subscriptions", 3),
    ("personal_data", 3),
    // Accepting updates; admin accounts; the pipeline's health.
    ("intake", 4),
    ("auth", 4),
    ("health", 4),
    // The effects: a chat's turns; a bot's delivery and alerts.
    ("turns", 5),
    ("bots", 5),
    // The HTTP surface.
    ("http", 6),
    // The admin console: pages on the HTTP room's sessions and the API's operations.
    ("console", 7),
    // Wiring: settings, the running service, this machine's installation, the command line.
    ("config", 8),
    ("app", 9),
    ("installation", 9),
    ("cli", 10),
    ("lib", 11),
    ("main", 11),
];

fn floor(room: &str) -> Option<u8> {
    FLOORS.iter().find(|(r, _)| *r == room).map(|(_, f)| *f)
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The rooms a line of code names through `crate::`.
fn rooms_named(line: &str) -> BTreeSet<String> {
    let mut rooms = BTreeSet::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::b, c};`
            let inner = group.split('}').next().unwrap_or_default();
            for item in inner.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    rooms.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                rooms.insert(name);
            }
        }
    }
    rooms
}

#[test]
fn no_room_of_src_names_a_room_on_its_floor_or_above() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let room = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        let Some(own) = floor(&room) else {
            wrong.push(format!(
                "src/{}: the room {room:?} has no floor in FLOORS",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for named in rooms_named(line) {
                if named == room {
                    continue;
                }
                match floor(&named) {
                    Some(theirs) if theirs < own => {}
                    Some(theirs) => wrong.push(format!(
                        "src/{}:{}: {room} (floor {own}) names {named} (floor {theirs})",
                        relative.display(),
                        n + 1
                    )),
                    None => wrong.push(format!(
                        "src/{}:{}: {named} is not a room in FLOORS",
                        relative.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the floor plan:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_every_form_of_import() {
    assert_eq!(
        rooms_named("use crate::{http::errors::ApiFailure, intake};"),
        BTreeSet::from(["http".to_owned(), "intake".to_owned()])
    );
    assert_eq!(
        rooms_named("    let x = crate::turns::worker::run(crate::metrics::now());"),
        BTreeSet::from(["metrics".to_owned(), "turns".to_owned()])
    );
}
