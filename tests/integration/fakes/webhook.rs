//! A fake receiver of Botfleet's admin alert webhook: records every JSON body it is sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json};
use poem::{handler, post, EndpointExt, Route, Server};
use serde_json::Value;
use tokio::sync::Notify;

#[derive(Default)]
struct Received {
    bodies: Mutex<Vec<Value>>,
    arrived: Notify,
}

pub struct FakeWebhook {
    pub url: String,
    received: Arc<Received>,
}

impl FakeWebhook {
    pub async fn start() -> Self {
        let received = Arc::new(Received::default());
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
        let app = Route::new()
            .at("/alerts", post(receive))
            .data(received.clone());
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        Self {
            url: format!("http://127.0.0.1:{port}/alerts"),
            received,
        }
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.received.bodies.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.received.arrived.notified();
            let bodies = self.bodies();
            if bodies.len() >= n {
                return bodies;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("timed out waiting for {n} alerts; got {}", bodies.len());
            }
        }
    }
}

#[handler]
async fn receive(body: Json<Value>, received: Data<&Arc<Received>>) -> &'static str {
    received.bodies.lock().unwrap().push(body.0);
    received.arrived.notify_waiters();
    "ok"
}
