//! Reading the TOML file (`--config`), checking it, and laying the command line over it; a TOML
//! error becomes one line naming the file, the key and the range (toml's own message spans several
//! lines and shows the file's text).

use std::path::Path;

use super::fields::ServeSettings;
use super::ranges::{range_of, Source};

impl ServeSettings {
    /// Validates the command line, then reads the file named by `--config` (if any), validates it
    /// and puts the command line over it. Errors are one line, ready to print after `tether: `.
    pub fn load(self) -> Result<Self, String> {
        self.validate().map_err(|invalid| invalid.describe(&Source::Flag))?;
        let Some(path) = self.config.clone() else { return Ok(self) };
        let file = Self::from_file(&path)?;
        file.validate().map_err(|invalid| invalid.describe(&Source::File(&path)))?;
        Ok(self.over(file))
    }

    fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|error| file_error(path, &text, &error))
    }
}

/// The keys whose values are secrets.
/// (A Redis URL may hold a password.)
const SECRET_KEYS: [&str; 4] = ["token_hmac_secret", "api_key", "admin_password", "redis"];

/// A TOML error on one line: `FILE: key = value: what is wrong`, with the range when the key has
/// one (toml's own message spans several lines and shows the file's text).
fn file_error(path: &Path, text: &str, error: &toml::de::Error) -> String {
    let message = error.message().lines().next().unwrap_or("invalid TOML").trim().to_owned();
    let Some(span) = error.span() else { return format!("{}: {message}", path.display()) };
    let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let line_no = text[..span.start].matches('\n').count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line.split_once('=').map(|(key, _)| key.trim().trim_matches('"'));
    let value = text.get(span.clone()).unwrap_or("").trim();
    // A secret is never echoed, even one of the wrong type (toml's message would quote it).
    if let Some(key) = key.filter(|key| SECRET_KEYS.contains(key)) {
        return format!("{}: {key} = <hidden>: expected a string", path.display());
    }
    match key {
        Some(key) if !value.is_empty() && !value.contains('\n') && span.start > line_start => {
            let expected = range_of(key).map_or(message.clone(), |range| format!("expected {}", range.expected));
            format!("{}: {key} = {value}: {expected}", path.display())
        }
        _ => format!("{}:{line_no}: {message}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_flags_win() {
        let example: ServeSettings =
            toml::from_str(include_str!("../../../../tether.example.toml")).expect("example config parses");
        example.validate().map_err(|e| e.describe(&Source::Flag)).expect("example values are in range");
        // No live secret in the example: anyone could read it. Its chat namespace needs users, so
        // it starts once a secret is given (here from the command line, as a deployment would).
        assert!(example.token_hmac_secret.is_none() && example.api_key.is_none());
        let alone = example.clone().resolve().unwrap_err();
        assert!(alone.starts_with("namespaces.chat.subscribe = \"authenticated\": expected a way"), "{alone}");
        let cli = ServeSettings {
            port: Some(9000),
            token_hmac_secret: Some(crate::auth::Secret::new("a-real-secret-of-32-bytes-or-more!")),
            ..ServeSettings::default()
        };
        let merged = cli.over(example.clone());
        assert_eq!(merged.port, Some(9000));
        assert_eq!(merged.host, example.host);
        let resolved = merged.resolve().unwrap();
        assert_eq!(resolved.port, 9000);
        assert!(resolved.auth.token_keys.is_some() && resolved.auth.api_key.is_none());
        assert_eq!(resolved.auth.namespaces.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), ["chat"]);
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<ServeSettings>("prot = 1").is_err());
    }

    fn file_refusal(text: &str) -> String {
        let path = Path::new("t.toml");
        match toml::from_str::<ServeSettings>(text) {
            Err(error) => file_error(path, text, &error),
            Ok(settings) => {
                settings.validate().map(|()| "accepted".into()).unwrap_or_else(|e| e.describe(&Source::File(path)))
            }
        }
    }

    #[test]
    fn file_values_are_refused_on_one_line_naming_the_key() {
        assert_eq!(
            file_refusal("port = 1\nping_interval = 0.5 # half\n"),
            "t.toml: ping_interval = 0.5: expected whole seconds 0..=86400 (0 = off)"
        );
        assert_eq!(
            file_refusal("max_connections = 0"),
            "t.toml: max_connections = 0: expected a whole number 1..=1000000"
        );
        assert_eq!(
            file_refusal("publish_rate = nan"),
            "t.toml: publish_rate = NaN: expected a rate per second 0.001..=1000000"
        );
        assert_eq!(file_refusal("threads = \"4\""), "t.toml: threads = \"4\": expected a whole number 1..=1024");
        assert_eq!(
            file_refusal("idle_timeout = -1"),
            "t.toml: idle_timeout = -1: expected whole seconds 0..=86400 (0 = off)"
        );
        assert_eq!(
            file_refusal("static = \"/nonexistent\""),
            "t.toml: static = \"/nonexistent\": expected an existing directory"
        );
        assert_eq!(file_refusal("api_key = 1234567890123456"), "t.toml: api_key = <hidden>: expected a string");
        for text in ["prot = 1", "port = ", "log_format = \"xml\""] {
            let line = file_refusal(text);
            assert!(line.starts_with("t.toml") && !line.contains('\n'), "{line}");
        }
    }
}
