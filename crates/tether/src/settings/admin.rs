//! The admin dashboard's password (`admin_password` / `admin_password_file`): checked like the
//! other secrets (one of the two forms, never the example's placeholder, a length range, never
//! echoed: a refusal shows its length only), and read from its file at startup.
//!
//! `admin_secure_cookie` (a bool) and `admin_hosts` (host names, checked here) say how the
//! dashboard is reached: through a TLS-terminating proxy, and at which names (docs/admin.md).
//!
//! 8 bytes at least: the dashboard slows every wrong guess down (`crate::admin`), but a shorter
//! password is guessable even so. No control characters: it is typed into a form.

use super::auth::{check_not_placeholder, hidden, invalid, secret_from};
use super::fields::ServeSettings;
use super::ranges::Invalid;
use crate::auth::Secret;

const MIN_ADMIN_PASSWORD: usize = 8;
const MAX_ADMIN_PASSWORD: usize = 1024;

fn check_admin_password(password: &str) -> Result<(), String> {
    check_not_placeholder(password)?;
    if (MIN_ADMIN_PASSWORD..=MAX_ADMIN_PASSWORD).contains(&password.len()) && !password.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(format!("a password of {MIN_ADMIN_PASSWORD}..={MAX_ADMIN_PASSWORD} bytes, no control characters"))
    }
}

impl ServeSettings {
    /// The checks on one source (command line or file).
    pub(super) fn validate_admin(&self) -> Result<(), Invalid> {
        if self.admin_password.is_some() && self.admin_password_file.is_some() {
            return Err(invalid("admin_password", "and admin_password_file", false, "one of the two, not both"));
        }
        if let Some(password) = &self.admin_password {
            check_admin_password(password.expose())
                .map_err(|expected| invalid("admin_password", hidden(password.expose()), false, expected))?;
        }
        for host in &self.admin_hosts {
            let name_like =
                |label: &str| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if host.len() > 253 || !host.strip_suffix('.').unwrap_or(host).split('.').all(name_like) {
                return Err(invalid(
                    "admin_hosts",
                    host.clone(),
                    true,
                    "a host name (letters, digits, - and .), without scheme or port",
                ));
            }
        }
        Ok(())
    }

    /// The password, read from its file when given so; `None` = the dashboard is off.
    pub(super) fn resolve_admin(&self) -> Result<Option<Secret>, String> {
        secret_from(&self.admin_password, &self.admin_password_file, "--admin-password-file", check_admin_password)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::ranges::Source;
    use super::*;

    fn refused(settings: &ServeSettings) -> String {
        settings.validate().map(|()| "accepted".to_owned()).unwrap_or_else(|e| e.describe(&Source::Flag))
    }

    fn with_password(password: &str) -> ServeSettings {
        ServeSettings { admin_password: Some(Secret::new(password)), ..ServeSettings::default() }
    }

    #[test]
    fn the_password_is_checked_and_never_echoed() {
        assert_eq!(refused(&with_password("s3cret-pw")), "accepted");
        assert_eq!(refused(&with_password(&"p".repeat(1024))), "accepted");
        assert_eq!(refused(&with_password("correct horse battery staple")), "accepted", "spaces are fine");
        let expected = "expected a password of 8..=1024 bytes, no control characters";
        assert_eq!(refused(&with_password("short7!")), format!("--admin-password <7 bytes, hidden>: {expected}"));
        assert_eq!(
            refused(&with_password(&"p".repeat(1025))),
            format!("--admin-password <1025 bytes, hidden>: {expected}")
        );
        assert_eq!(
            refused(&with_password("tab\there-ok?")),
            format!("--admin-password <12 bytes, hidden>: {expected}")
        );
        assert_eq!(
            refused(&with_password("change-me-admin")),
            "--admin-password <15 bytes, hidden>: expected a secret of your own, not a placeholder starting with change-me"
        );
        let both = ServeSettings { admin_password_file: Some("f".into()), ..with_password("s3cret-pw") };
        assert_eq!(refused(&both), "--admin-password and admin_password_file: expected one of the two, not both");
        let file: ServeSettings = toml::from_str("admin_password = \"short\"").unwrap();
        let line = file.validate().unwrap_err().describe(&Source::File(Path::new("t.toml")));
        assert_eq!(line, format!("t.toml: admin_password = <5 bytes, hidden>: {expected}"));
    }

    #[test]
    fn the_secure_cookie_and_the_host_names_from_flags_or_the_file() {
        let auth = ServeSettings::default().resolve().unwrap().auth;
        assert!(!auth.admin_secure_cookie && auth.admin_hosts.is_empty(), "off and none by default");
        let file: ServeSettings =
            toml::from_str("admin_secure_cookie = true\nadmin_hosts = [\"Admin.Example.com\"]").unwrap();
        let auth = ServeSettings::default().over(file.clone()).resolve().unwrap().auth;
        assert!(auth.admin_secure_cookie);
        assert_eq!(auth.admin_hosts, ["admin.example.com"], "lower-cased");
        let flags = ServeSettings { admin_hosts: vec!["other.example".into()], ..ServeSettings::default() };
        assert_eq!(flags.over(file).resolve().unwrap().auth.admin_hosts, ["other.example"], "the flags win");
        assert!(toml::from_str::<ServeSettings>("admin_secure_cookie = \"yes\"").is_err(), "a boolean only");
        for bad in ["https://admin.example", "admin.example:8443", "", "a..b", "under_score.example"] {
            let settings = ServeSettings { admin_hosts: vec![bad.into()], ..ServeSettings::default() };
            assert_eq!(
                refused(&settings),
                format!("--admin-host {bad}: expected a host name (letters, digits, - and .), without scheme or port")
            );
        }
        let ok = ServeSettings {
            admin_hosts: vec!["admin.example.".into(), "localhost".into()],
            ..ServeSettings::default()
        };
        assert_eq!(refused(&ok), "accepted");
    }

    #[test]
    fn off_by_default_and_read_from_its_file() {
        assert!(ServeSettings::default().resolve().unwrap().auth.admin_password.is_none());
        let path = std::env::temp_dir().join(format!("tether-admin-pw-{}", std::process::id()));
        std::fs::write(&path, "from-the-file\n").unwrap();
        let settings = ServeSettings { admin_password_file: Some(path.clone()), ..ServeSettings::default() };
        let auth = settings.resolve().unwrap().auth;
        assert_eq!(auth.admin_password.unwrap().expose(), "from-the-file");
        std::fs::write(&path, "short\n").unwrap();
        let settings = ServeSettings { admin_password_file: Some(path.clone()), ..ServeSettings::default() };
        let error = settings.resolve().unwrap_err();
        assert_eq!(
            error,
            format!(
                "--admin-password-file {}: expected a password of 8..=1024 bytes, no control characters",
                path.display()
            )
        );
        let _ = std::fs::remove_file(path);
        let shown = format!("{:?}", with_password("s3cret-pw").resolve().unwrap());
        assert!(!shown.contains("s3cret-pw"), "{shown}");
    }

    #[test]
    fn the_internal_port_serves_the_dashboard_alone_too() {
        let settings = ServeSettings { internal_port: Some(9001), ..with_password("s3cret-pw") };
        assert_eq!(settings.resolve().unwrap().auth.internal_port, Some(9001));
        let alone = ServeSettings { internal_port: Some(9001), ..ServeSettings::default() };
        assert!(alone.resolve().unwrap_err().contains("or an admin password"));
    }

    #[test]
    fn documented_in_docs_limits_and_the_example() {
        let limits = include_str!("../../../../docs/limits.md");
        let example = include_str!("../../../../tether.example.toml");
        let readme = include_str!("../../../../README.md");
        let admin = include_str!("../../../../docs/admin.md");
        for key in ["admin_password", "admin_password_file", "admin_secure_cookie", "admin_hosts"] {
            assert!(limits.contains(&format!("`{key}`")), "docs/limits.md lacks {key}");
            assert!(example.contains(key), "tether.example.toml lacks {key}");
            assert!(readme.contains(&format!("`{key}`")), "README.md lacks {key}");
        }
        for flag in ["--admin-secure-cookie", "--admin-host"] {
            assert!(admin.contains(flag), "docs/admin.md lacks {flag}");
        }
    }
}
