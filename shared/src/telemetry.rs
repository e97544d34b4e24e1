//! Structured logs, one line per event, on stderr (Lambda ships both streams; the CLI
//! keeps stdout for what it prints to people).
//!
//! Lambda's logging controls win, as lambda_runtime's own subscriber does it:
//! `AWS_LAMBDA_LOG_FORMAT` (`JSON` or `Text`, from the function's LoggingConfig) picks
//! the format and `AWS_LAMBDA_LOG_LEVEL` (its ApplicationLogLevel) the level. Elsewhere
//! `RUST_LOG` filters, and the format is the CLI's `--log-format`, else text for a
//! person at a terminal and JSON for everything else (a container's log driver, a
//! pipe, a Lambda without LoggingConfig).

use tracing_subscriber::EnvFilter;

pub const LOG_FORMAT_VAR: &str = "AWS_LAMBDA_LOG_FORMAT";
pub const LOG_LEVEL_VAR: &str = "AWS_LAMBDA_LOG_LEVEL";

/// The format asked for on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub json: bool,
    /// An `EnvFilter` directive.
    pub filter: String,
}

impl LogSettings {
    pub fn from_env(asked: Option<LogFormat>, default_filter: &str) -> LogSettings {
        use std::io::IsTerminal;
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let format = asked.or_else(|| std::io::stderr().is_terminal().then_some(LogFormat::Text));
        let mut settings = LogSettings::from_values(
            var(LOG_FORMAT_VAR).as_deref(),
            var(LOG_LEVEL_VAR).as_deref(),
            var("RUST_LOG").as_deref(),
            format,
        );
        if var("RUST_LOG").is_none() && var(LOG_LEVEL_VAR).is_none() {
            settings.filter = default_filter.to_string();
        }
        settings
    }

    /// `format` is what was asked for outside Lambda (or text at a terminal); without
    /// it, JSON.
    pub fn from_values(
        lambda_format: Option<&str>,
        lambda_level: Option<&str>,
        rust_log: Option<&str>,
        format: Option<LogFormat>,
    ) -> LogSettings {
        let json = match lambda_format {
            Some(f) => !f.trim().eq_ignore_ascii_case("text"),
            None => format != Some(LogFormat::Text),
        };
        // Lambda's levels are TRACE, DEBUG, INFO, WARN, ERROR and FATAL; tracing has
        // no FATAL, so it means "errors only".
        let lambda_level = lambda_level.map(|l| match l.trim().to_ascii_lowercase().as_str() {
            "fatal" => "error".to_string(),
            other => other.to_string(),
        });
        let filter = lambda_level
            .filter(|l| ["trace", "debug", "info", "warn", "error"].contains(&l.as_str()))
            .or_else(|| rust_log.map(str::to_string))
            .unwrap_or_else(|| "info".into());
        LogSettings { json, filter }
    }
}

/// Installs the subscriber the environment asks for (the functions). Safe to call twice.
pub fn init() {
    init_with(None, "info");
}

/// Installs the subscriber, with the command line's format and the command's default
/// level when `RUST_LOG` says none.
pub fn init_with(format: Option<LogFormat>, default_filter: &str) {
    let settings = LogSettings::from_env(format, default_filter);
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if settings.json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init()
    } else {
        use std::io::IsTerminal;
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_logging_controls_win() {
        let s = LogSettings::from_values(None, None, None, None);
        assert_eq!((s.json, s.filter.as_str()), (true, "info"));
        let s = LogSettings::from_values(Some("Text"), Some("WARN"), Some("debug"), None);
        assert_eq!((s.json, s.filter.as_str()), (false, "warn"));
        let s = LogSettings::from_values(Some("JSON"), Some("FATAL"), None, Some(LogFormat::Text));
        assert_eq!((s.json, s.filter.as_str()), (true, "error"));
        let s = LogSettings::from_values(None, None, Some("replicator=debug"), None);
        assert_eq!(s.filter, "replicator=debug");
        // An unknown level is ignored rather than silencing the function.
        let s = LogSettings::from_values(None, Some("LOUD"), None, None);
        assert_eq!(s.filter, "info");
        // Outside Lambda the command line (or a terminal) decides.
        let s = LogSettings::from_values(None, None, None, Some(LogFormat::Text));
        assert!(!s.json);
        let s = LogSettings::from_values(None, None, None, Some(LogFormat::Json));
        assert!(s.json);
    }
}
