//! Headless Chromium driven over WebDriver: one chromedriver per test binary, one browser
//! session per [`Browser`], screenshots under `target/test-artifacts/dashboard/`.
//!
//! Waiting is done in the page: [`Browser::wait_for`] runs a script that re-checks a DOM
//! condition until it holds or its deadline passes, so tests never sleep.

use super::prometheus::{free_port, poll};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package chromium-driver).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a page may take to reach a state the test waits for.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// The test binary's chromedriver, on a free loopback port.
struct Driver {
    port: u16,
    /// The watchdog shell; it stops chromedriver once this test process is gone.
    _watchdog: std::process::Child,
}

fn driver() -> &'static Driver {
    static DRIVER: OnceLock<Driver> = OnceLock::new();
    DRIVER.get_or_init(|| {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).is_file(),
                "{path} is missing: the dashboard test needs a real browser; run `cargo xtask \
                 test` (it installs the Debian packages chromium and chromium-driver) or \
                 `apt-get install {package}`"
            );
        }
        let dir = tempfile::tempdir().unwrap().keep();
        let port = free_port();
        let script = format!(
            "{CHROMEDRIVER} --port={port} >{d}/chromedriver.log 2>&1 & p=$!; \
             while kill -0 {me} 2>/dev/null && kill -0 $p 2>/dev/null; do sleep 1; done; \
             kill $p; wait $p; rm -rf {d}",
            d = dir.display(),
            me = std::process::id()
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        // chromedriver answers HTTP/1.1 only; it listens once it is ready.
        let ready = poll(300, || TcpStream::connect(("127.0.0.1", port)).ok());
        assert!(
            ready.is_some(),
            "chromedriver did not start:\n{}",
            std::fs::read_to_string(dir.join("chromedriver.log")).unwrap_or_default()
        );
        Driver {
            port,
            _watchdog: watchdog,
        }
    })
}

/// Where screenshots of `test` go: `$CARGO_TARGET_DIR` (or the workspace's `target/`)
/// `/test-artifacts/dashboard/`.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-artifacts").join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One headless Chromium session; closed (and Chromium stopped) when dropped.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    /// Prefix of this session's screenshot files.
    test: String,
}

impl Browser {
    /// A new headless session for the test named `test` (used in screenshot names).
    pub fn open(test: &str) -> Browser {
        let port = driver().port;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                // root in a container: no sandbox; small /dev/shm: use /tmp.
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,1000"],
            }),
        );
        let client = rt
            .block_on(
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .unwrap_or_else(|e| panic!("cannot start a Chromium session: {e}"));
        Browser {
            rt,
            client: Some(client),
            test: test.to_string(),
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("open session")
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        self.rt
            .block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// Types `text` into the element `css` (after clearing it).
    pub fn fill(&self, css: &str, text: &str) {
        self.rt.block_on(async {
            let e = self
                .client()
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no element {css}: {e}"));
            e.clear().await.unwrap();
            e.send_keys(text).await.unwrap();
        });
    }

    /// Clicks the element `css`.
    pub fn click(&self, css: &str) {
        self.rt.block_on(async {
            self.client()
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no element {css}: {e}"))
                .click()
                .await
                .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
        });
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn eval(&self, script: &str) -> Value {
        self.rt
            .block_on(self.client().execute(script, vec![]))
            .unwrap_or_else(|e| panic!("script failed ({e}): {script}"))
    }

    /// Runs `script` asynchronously in the page: it gets a callback as its last argument
    /// (`arguments[arguments.length - 1]`) and calls it with the result.
    pub fn eval_async(&self, script: &str) -> Value {
        self.rt
            .block_on(self.client().execute_async(script, vec![]))
            .unwrap_or_else(|e| panic!("script failed ({e}): {script}"))
    }

    /// The text of the element `css`, or `None` when there is none.
    pub fn text(&self, css: &str) -> Option<String> {
        let css = serde_json::to_string(css).unwrap();
        match self.eval(&format!(
            "const e = document.querySelector({css}); return e ? e.textContent : null;"
        )) {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Waits until the JavaScript expression `condition` is true in the page (checked in the
    /// page on every animation frame); on timeout saves a screenshot and fails naming `what`.
    pub fn wait_for(&self, what: &str, condition: &str) {
        self.wait_for_within(what, condition, DEFAULT_WAIT)
    }

    /// [`Browser::wait_for`] with its own deadline.
    pub fn wait_for_within(&self, what: &str, condition: &str, within: Duration) {
        let ms = within.as_millis();
        let script = format!(
            "const done = arguments[arguments.length - 1];\n\
             const deadline = Date.now() + {ms};\n\
             const check = () => {{ try {{ return Boolean({condition}); }} catch (e) {{ return false; }} }};\n\
             const tick = () => {{\n\
               if (check()) done(true);\n\
               else if (Date.now() > deadline) done(false);\n\
               else requestAnimationFrame(tick);\n\
             }};\n\
             tick();"
        );
        let held = self.rt.block_on(async {
            let script_limit = Some(within + Duration::from_secs(10));
            let timeouts = fantoccini::wd::TimeoutConfiguration::new(script_limit, None, None);
            self.client().update_timeouts(timeouts).await.unwrap();
            self.client().execute_async(&script, vec![]).await
        });
        if held.as_ref().ok() != Some(&Value::Bool(true)) {
            let shot = self.screenshot(&format!("timeout-{}", slug(what)));
            let body = self
                .rt
                .block_on(self.client().execute(
                    "return document.body ? document.body.innerText : ''",
                    vec![],
                ))
                .unwrap_or(Value::Null);
            panic!(
                "timed out after {within:?} waiting for {what} ({condition}): {held:?}\n\
                 screenshot: {}\npage text:\n{}",
                shot.display(),
                body.as_str().unwrap_or_default()
            );
        }
    }

    /// Saves a PNG of the page as `<test>-<name>.png` in [`artifacts_dir`] and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .rt
            .block_on(self.client().screenshot())
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let path = artifacts_dir().join(format!("{}-{}.png", self.test, slug(name)));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The text of an open `alert()`/`confirm()` dialog, if one is open.
    pub fn open_dialog(&self) -> Option<String> {
        self.rt.block_on(self.client().get_alert_text()).ok()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Ends the session, which stops this Chromium even when the test failed.
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(20), client.close()).await
            });
        }
    }
}

fn slug(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .to_string()
}
