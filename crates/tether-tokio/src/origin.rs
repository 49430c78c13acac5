//! The Origin policy: the defence against cross-site WebSocket hijacking.
//!
//! Browsers let any page open a WebSocket to any server and send the page's origin along, with the
//! user's cookies. A server that trusts cookies must therefore check `Origin`. The default policy
//! accepts requests without `Origin` (non-browser clients, which can send anything anyway) and
//! same-origin requests (the origin's host and port equal the `Host` header), and refuses every other
//! origin with 403 unless it is on the allowlist (`*` allows all).

/// Which origins may open WebSocket connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    allowed: Vec<String>,
    allow_any: bool,
}

impl OriginPolicy {
    /// The default policy: no Origin or same origin only.
    pub fn same_origin() -> Self {
        Self::default()
    }

    /// Adds an allowed origin such as `https://app.example.com`, or `*` for any origin.
    pub fn allow(mut self, origin: &str) -> Self {
        if origin.trim() == "*" {
            self.allow_any = true;
        } else {
            self.allowed.push(normalize(origin));
        }
        self
    }

    /// Whether a request with this `Origin` (if any) to this `Host` is allowed.
    pub fn check(&self, origin: Option<&str>, host: &str, tls: bool) -> Result<(), String> {
        let Some(origin) = origin else { return Ok(()) };
        if self.allow_any || self.allowed.contains(&normalize(origin)) {
            return Ok(());
        }
        if is_same_origin(origin, host, tls) {
            return Ok(());
        }
        Err(format!("origin {origin} is not allowed"))
    }
}

/// Lower-cases an origin and drops a trailing slash and default ports, so equal origins compare equal.
fn normalize(origin: &str) -> String {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    match origin.split_once("://") {
        Some((scheme, authority)) => {
            let default_port = match scheme {
                "http" | "ws" => ":80",
                "https" | "wss" => ":443",
                _ => "",
            };
            let authority = if default_port.is_empty() { authority } else { authority.trim_end_matches(default_port) };
            format!("{scheme}://{authority}")
        }
        None => origin,
    }
}

/// Whether the origin names the same host and port the request was sent to.
fn is_same_origin(origin: &str, host: &str, tls: bool) -> bool {
    let origin = normalize(origin);
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let default_port = if tls { "443" } else { "80" };
    let origin_default = match scheme {
        "http" | "ws" => "80",
        "https" | "wss" => "443",
        _ => return false,
    };
    let with_port = |authority: &str, default: &str| {
        if authority.rsplit_once(':').is_some_and(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            && !authority.ends_with(']')
        {
            authority.to_owned()
        } else {
            format!("{authority}:{default}")
        }
    };
    with_port(authority, origin_default) == with_port(&host.to_ascii_lowercase(), default_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_origin_and_same_origin_are_allowed_by_default() {
        let policy = OriginPolicy::same_origin();
        assert!(policy.check(None, "localhost:8787", false).is_ok());
        assert!(policy.check(Some("http://localhost:8787"), "localhost:8787", false).is_ok());
        assert!(policy.check(Some("http://LOCALHOST:8787/"), "localhost:8787", false).is_ok());
        assert!(policy.check(Some("http://example.com"), "example.com", false).is_ok());
        assert!(policy.check(Some("https://example.com"), "example.com", true).is_ok());
        assert!(policy.check(Some("https://example.com:443"), "example.com", true).is_ok());
    }

    #[test]
    fn other_origins_are_refused_unless_allowed() {
        let policy = OriginPolicy::same_origin();
        assert!(policy.check(Some("http://evil.example"), "localhost:8787", false).is_err());
        assert!(policy.check(Some("http://localhost:9999"), "localhost:8787", false).is_err());
        assert!(policy.check(Some("null"), "localhost:8787", false).is_err());
        let policy = policy.allow("http://app.example:3000/");
        assert!(policy.check(Some("http://APP.example:3000"), "localhost:8787", false).is_ok());
        assert!(policy.check(Some("http://evil.example"), "localhost:8787", false).is_err());
        let any = OriginPolicy::same_origin().allow("*");
        assert!(any.check(Some("http://evil.example"), "localhost:8787", false).is_ok());
    }
}
