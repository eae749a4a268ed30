//! A counting proxy between Botfleet and PostgreSQL: every statement Botfleet runs, by its
//! SQL, read off the wire.
//!
//! PostgreSQL 15 counts transactions per database but not statements (that needs
//! `pg_stat_statements`, which must be preloaded at server start: not something a bench may
//! do to a shared server). Botfleet's sqlx speaks the extended protocol: a statement is
//! `Parse` once per connection (named, cached) and then `Bind` + `Execute` per run; the proxy
//! keeps each connection's statement names and counts one run per `Execute` (and one per
//! simple `Query`, as `BEGIN`/`COMMIT` may be sent). Bytes are forwarded as they come; the
//! counting only reads a copy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Statements run so far, by their SQL (whitespace collapsed).
pub type StatementCounts = HashMap<String, u64>;

pub struct CountingProxy {
    /// Where Botfleet connects instead of the server: `127.0.0.1:PORT`.
    pub address: String,
    counts: Arc<Mutex<StatementCounts>>,
    task: JoinHandle<()>,
}

impl CountingProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`
    /// (`host:port`).
    pub async fn start(upstream: String) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let counts = Arc::new(Mutex::new(StatementCounts::new()));
        let shared = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, counts) = (upstream.clone(), shared.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let _ = relay(client, server, counts).await;
                    }
                });
            }
        });
        Ok(Self {
            address,
            counts,
            task,
        })
    }

    /// What ran so far.
    pub fn counts(&self) -> StatementCounts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    counts: Arc<Mutex<StatementCounts>>,
) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    });
    let mut reader = FrontendReader::new(counts);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = client_read.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        server_write.write_all(&chunk[..n]).await?;
        reader.feed(&chunk[..n]);
    }
    let _ = server_write.shutdown().await;
    answers.abort();
    Ok(())
}

/// Splits what a client sends into protocol messages and counts the statements it runs.
struct FrontendReader {
    buffer: Vec<u8>,
    /// Until the startup message passed, messages have no type byte.
    started: bool,
    /// Prepared statements of this connection: name → SQL.
    statements: HashMap<String, String>,
    /// The statement the last `Bind` named: what the next `Execute` runs.
    bound: Option<String>,
    counts: Arc<Mutex<StatementCounts>>,
}

/// The protocol version a startup message carries (3.0); SSL and GSS requests carry others
/// and are followed by the real startup message.
const PROTOCOL_3: u32 = 196_608;

impl FrontendReader {
    fn new(counts: Arc<Mutex<StatementCounts>>) -> Self {
        Self {
            buffer: Vec::new(),
            started: false,
            statements: HashMap::new(),
            bound: None,
            counts,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        loop {
            let consumed = if self.started {
                self.typed_message()
            } else {
                self.startup_message()
            };
            match consumed {
                Some(n) => {
                    self.buffer.drain(..n);
                }
                None => return,
            }
        }
    }

    fn startup_message(&mut self) -> Option<usize> {
        let length = u32::from_be_bytes(self.buffer.get(..4)?.try_into().ok()?) as usize;
        let version = u32::from_be_bytes(self.buffer.get(4..8)?.try_into().ok()?);
        if self.buffer.len() < length {
            return None;
        }
        self.started = version == PROTOCOL_3;
        Some(length)
    }

    fn typed_message(&mut self) -> Option<usize> {
        let kind = *self.buffer.first()?;
        let length = u32::from_be_bytes(self.buffer.get(1..5)?.try_into().ok()?) as usize;
        let total = 1 + length;
        if self.buffer.len() < total {
            return None;
        }
        let body = &self.buffer[5..total];
        match kind {
            b'P' => {
                let (name, rest) = c_string(body);
                let (sql, _) = c_string(rest);
                self.statements.insert(name, normalise(&sql));
            }
            b'B' => {
                let (_portal, rest) = c_string(body);
                let (statement, _) = c_string(rest);
                self.bound = Some(statement);
            }
            b'E' => {
                if let Some(sql) = self.bound.as_ref().and_then(|s| self.statements.get(s)) {
                    self.count(sql.clone());
                }
            }
            b'Q' => {
                let (sql, _) = c_string(body);
                self.count(normalise(&sql));
            }
            _ => {}
        }
        Some(total)
    }

    fn count(&self, sql: String) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(sql).or_default() += 1;
        }
    }
}

/// A NUL-terminated string at the start of `bytes`, and what follows it.
fn c_string(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]).into_owned();
    (text, bytes.get(end + 1..).unwrap_or_default())
}

/// SQL with its whitespace collapsed, so one statement is one key however it was indented.
fn normalise(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What ran between two readings, per statement.
pub fn difference(before: &StatementCounts, after: &StatementCounts) -> StatementCounts {
    after
        .iter()
        .map(|(sql, n)| {
            (
                sql.clone(),
                n - before.get(sql).copied().unwrap_or_default(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}
