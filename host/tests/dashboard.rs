//! The web dashboard in a real browser: headless Chromium over WebDriver against `orch serve`.

mod support;

use support::browser::Browser;

#[test]
fn the_browser_runs_headless_and_waits_on_the_dom() {
    let browser = Browser::open("smoke");
    browser.goto("data:text/html,<p id=a>one</p>");
    browser.eval("setTimeout(() => { document.getElementById('a').textContent = 'two'; }, 50);");
    browser.wait_for(
        "the text to change",
        "document.getElementById('a').textContent === 'two'",
    );
    assert_eq!(browser.text("#a").as_deref(), Some("two"));
    assert!(browser.screenshot("page").is_file());
}
