//! The leak scan's canary: a test that leaks on purpose. It registers two
//! fresh secrets and logs them, through this binary's subscriber, to the
//! canary log (`<dir>/it-<pid>.canary.log`) in each form the scan must catch:
//! as written, JSON-escaped (the second holds a quote and a backslash, so a
//! JSON log line can only carry it escaped) and base64 in an HTTP Basic
//! header (`client:secret`). `cargo xtask test` fails unless the scan finds
//! every form there; so if the subscriber never installed or the secrets
//! were never listed, the run fails instead of passing on empty logs.
//!
//! Without `HUB_TEST_LOG_DIR` (a plain `cargo test`) it logs nowhere.

use base64::Engine;

#[test]
fn the_leak_scan_canary_logs_a_registered_secret_on_purpose() {
    crate::leaks::init();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let plain = format!("leak-canary-{nonce}");
    let quoted = format!("leak-canary\"{nonce}\\");
    crate::leaks::register_secret(&plain);
    crate::leaks::register_secret(&quoted);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("canary-client:{plain}"));
    tracing::warn!(
        target: crate::leaks::CANARY_TARGET,
        secret = %plain,
        quoted = %quoted,
        authorization = %format!("Basic {basic}"),
        "the leak scan's canary: these secrets are logged on purpose"
    );
    assert_eq!(
        crate::leaks::capturing(),
        std::env::var_os("HUB_TEST_LOG_DIR").is_some(),
        "the capture is on exactly when HUB_TEST_LOG_DIR is set"
    );
}
