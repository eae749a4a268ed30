//! A real browser for the console's tests: Debian's Chromium, headless, driven through its
//! chromedriver (WebDriver) with fantoccini. One chromedriver per test, on a free port, with
//! a new empty profile; both go away with the test.
//!
//! Nothing is skipped: without Chromium the test fails and says how to install it (`.ci/run`
//! does). A scenario run through [`Browser::scenario`] that fails leaves a screenshot and the
//! page's HTML, and the failure message names both files.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::json;

/// How long a condition in the page may take to come true.
pub const PAGE_WAIT: Duration = Duration::from_secs(30);

fn program(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

pub struct Browser {
    pub client: Client,
    /// Where the console under test answers, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    test: String,
    driver: tokio::process::Child,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium for `test`, against the app at `base`.
    pub async fn start(test: &str, base: &str) -> Self {
        let chromium = program("CHROMIUM", "/usr/bin/chromium");
        let chromedriver = program("CHROMEDRIVER", "/usr/bin/chromedriver");
        for (path, package) in [(&chromium, "chromium"), (&chromedriver, "chromium-driver")] {
            assert!(
                path.exists(),
                "the console's browser tests need {} (Debian's {package}); install it with \
                 `apt-get install chromium chromium-driver` (.ci/run does), or point CHROMIUM \
                 and CHROMEDRIVER at them",
                path.display()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = tokio::process::Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        crate::helpers::eventually(Duration::from_secs(30), "chromedriver answers", || {
            let status = format!("{url}/status");
            async move {
                reqwest::get(status)
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
        let profile = std::env::temp_dir().join(format!(
            "botfleet-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&profile).expect("a profile directory");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a Chromium session through chromedriver");
        Self {
            client,
            base: base.to_owned(),
            test: test.to_owned(),
            driver,
            profile,
        }
    }

    /// Runs a scenario; when it fails, saves a screenshot and the page's HTML and names them.
    pub async fn scenario<F: Future<Output = ()>>(&self, scenario: F) {
        if let Err(panic) = AssertUnwindSafe(scenario).catch_unwind().await {
            let (png, html) = self.save_artifacts().await;
            // Ends the browser now: the panic skips `finish`.
            let _ = self.client.clone().close().await;
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!(
                "{message}\nthe browser's screenshot: {}\nthe page's HTML: {}",
                png.display(),
                html.display()
            );
        }
    }

    async fn save_artifacts(&self) -> (PathBuf, PathBuf) {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-failures");
        std::fs::create_dir_all(&dir).expect("the artifacts directory");
        let stem = format!(
            "{}-{}",
            self.test,
            chrono::Utc::now().format("%Y%m%dT%H%M%S")
        );
        let png = dir.join(format!("{stem}.png"));
        let html = dir.join(format!("{stem}.html"));
        if let Ok(bytes) = self.client.screenshot().await {
            let _ = std::fs::write(&png, bytes);
        }
        if let Ok(source) = self.client.source().await {
            let _ = std::fs::write(&html, source);
        }
        (png, html)
    }

    pub async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The element `css` selects, once it is there.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css:?} appeared: {e}"))
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css:?}: {e}"))
    }

    /// The page's visible text. Between two documents (a form just submitted, a link just
    /// followed) the page has no body for a moment, or the body found goes stale: then the
    /// next document's is read.
    pub async fn text(&self) -> String {
        for _ in 0..50 {
            let body = self
                .client
                .wait()
                .at_most(PAGE_WAIT)
                .for_element(Locator::Css("body"))
                .await;
            if let Ok(body) = body {
                if let Ok(text) = body.text().await {
                    return text;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page never had a body to read");
    }

    /// Waits until the page's text contains `needle`.
    pub async fn wait_for_text(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            if self.text().await.contains(needle) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("the page never showed {needle:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `check` holds on the page's text, reloading it between looks (for pages
    /// that show what the pipeline records a moment later).
    pub async fn reload_until(&self, what: &str, check: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            if check(&self.text().await) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("the page never showed {what}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.client.refresh().await.expect("reload");
        }
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear a field");
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("type into {css:?}: {e}"));
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css:?}: {e}"));
    }

    /// Signs in through the sign-in page and waits for the overview.
    pub async fn sign_in(&self, email: &str, password: &str) {
        self.open("/console/login").await;
        self.fill("input[name=email]", email).await;
        self.fill("input[name=password]", password).await;
        self.click("button[type=submit]").await;
        self.find("h1").await;
        self.wait_for_text("Sign out").await;
    }

    /// Saves the page as a PNG (for the README's pictures).
    pub async fn screenshot_to(&self, path: &Path) {
        let bytes = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(path, bytes).expect("write the screenshot");
    }

    /// Closes the browser and stops chromedriver (dropping does the latter too).
    pub async fn finish(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
