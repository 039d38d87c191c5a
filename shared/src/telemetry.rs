//! Logs: `tracing` with one JSON object per line in production, carrying the
//! request id of the invocation (or HTTP request) that wrote it. Secrets are
//! `SecretString`s, whose `Debug` prints `[REDACTED]`, so a secret put in a log
//! field by mistake still does not leak.

use crate::config::LogFormat;
use tracing::Span;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

pub use secrecy::{ExposeSecret, SecretString};

/// Installs the global subscriber. Call once, at start-up.
pub fn init(format: LogFormat) {
    let _ = tracing::subscriber::set_global_default(subscriber(format, std::io::stderr));
}

/// Builds the subscriber writing to `writer` (tests capture it).
pub fn subscriber<W>(format: LogFormat, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
        LogFormat::Pretty => Box::new(builder.finish()),
    }
}

/// The span every request or invocation runs in: its logs carry `request_id`.
pub fn request_span(request_id: &str) -> Span {
    tracing::info_span!("request", request_id = %request_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn json_logs_carry_the_request_id_and_redact_secrets() {
        let buf = Buf::default();
        let sub = subscriber(LogFormat::Json, buf.clone());
        let token = SecretString::from("sk-live-very-secret");
        tracing::subscriber::with_default(sub, || {
            let span = request_span("req-123");
            let _g = span.enter();
            tracing::info!(token = ?token, "refreshing");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(line["span"]["request_id"], "req-123", "{out}");
        assert_eq!(line["message"], "refreshing");
        assert!(!out.contains("sk-live-very-secret"), "{out}");
        assert!(out.contains("REDACTED"), "{out}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_exposed_only_on_request() {
        let s = SecretString::from("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose_secret(), "hunter2");
    }
}
