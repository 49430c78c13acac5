//! Cross-site request forgery: what keeps another site's page from acting with the operator's
//! session.
//!
//! Three layers, each enough on its own in a current browser:
//! - the cookie is `SameSite=Strict`: a request started by another site carries no session;
//! - every `POST /admin/api/*` must carry the session's CSRF token in [`CSRF_HEADER`] (a page of
//!   another origin can neither read the token nor set a custom header without a CORS preflight,
//!   which this server never grants);
//! - a request that carries `Origin` (browsers send it on every POST and WebSocket upgrade) must
//!   come from the dashboard's own origin: the `Origin`'s host and port equal `Host` (an `https`
//!   origin when the dashboard is served over TLS or with `admin_secure_cookie`).
//!
//! And before any of them, against DNS rebinding, the dashboard answers only a `Host` that is an
//! IP address, `localhost` or a name in `admin_hosts` ([`host_allowed`]).
//!
//! The live socket has no custom header: it needs the cookie and an `Origin` matching `Host`.

use subtle::ConstantTimeEq as _;

/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A host and port: `Host`'s or an origin's authority, lower-cased, the port explicit.
fn authority(text: &str, default_port: u16) -> Option<(String, u16)> {
    let text = text.trim().to_ascii_lowercase();
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (inside, after) = rest.split_once(']')?;
            (format!("[{inside}]"), after)
        }
        None => match text.rsplit_once(':') {
            Some((host, _)) => (host.to_owned(), &text[host.len()..]),
            None => (text.clone(), ""),
        },
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => default_port,
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => digits.parse().ok()?,
        _ => return None,
    };
    (!host.is_empty()).then_some((host, port))
}

/// Whether `origin` (an `Origin` header's value, when there is one) is the page's own origin for
/// a request to `host`: the origin's host and port equal `Host`'s, case-insensitively, a missing
/// port being the scheme's default (`https://x` is `Host: x:443`, as tether-tokio's origin
/// policy normalises it). Behind a TLS-terminating proxy the scheme the server sees is not the
/// browser's, so the scheme is compared only with `https_only` (the dashboard is served over TLS
/// or with `admin_secure_cookie`): then only an `https` origin is the page's.
pub fn same_origin(origin: Option<&str>, host: Option<&str>, https_only: bool) -> bool {
    let Some(origin) = origin else { return true };
    let Some(host) = host else { return false };
    let origin = origin.trim().trim_end_matches('/');
    let Some((scheme, rest)) = origin.split_once("://") else { return false };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => 443,
        "http" if !https_only => 80,
        // `null` (a sandboxed frame, a file, a redirect across origins), plain http when https
        // is required, or anything else.
        _ => return false,
    };
    match (authority(rest, default_port), authority(host, default_port)) {
        (Some(origin), Some(host)) => origin == host,
        _ => false,
    }
}

/// What a request for a `Host` the dashboard does not answer gets.
pub const HOST_REFUSED: &str = "this dashboard answers only at an IP address, localhost or a name given with --admin-host (admin_hosts): not at this Host\n";

/// Whether the dashboard answers a request for this `Host`: an IP address, `localhost`, or one of
/// the names the operator allowed (`admin_hosts`). Anything else may be a DNS rebinding: another
/// site's name pointed at this server's address, whose pages then pass the origin check (their
/// `Origin` equals their `Host`) while the browser thinks it talks to that site.
pub fn host_allowed(host: Option<&str>, allowed: &[String]) -> bool {
    let Some((name, _)) = host.and_then(|host| authority(host, 0)) else { return false };
    let name = name.strip_suffix('.').unwrap_or(&name);
    let ip = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
    ip.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || allowed.iter().any(|allowed| allowed.trim_end_matches('.').eq_ignore_ascii_case(name))
}

/// Whether the presented token is the session's, in constant time (both are 64 hex digits; a
/// token of another length is refused by `ct_eq` without a data-dependent branch on content).
pub fn token_matches(presented: Option<&[u8]>, expected: &str) -> bool {
    presented.is_some_and(|presented| presented.ct_eq(expected.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let same = |origin, host| same_origin(origin, host, false);
        assert!(same(None, Some("localhost:8787")), "no Origin: not a browser's cross-site request");
        assert!(same(Some("http://localhost:8787"), Some("localhost:8787")));
        assert!(same(Some("https://Admin.Example"), Some("admin.example")));
        assert!(!same(Some("http://evil.example"), Some("localhost:8787")));
        assert!(!same(Some("http://localhost:8788"), Some("localhost:8787")));
        assert!(!same(Some("null"), Some("localhost:8787")));
        assert!(!same(Some("http://localhost:8787"), None));
        assert!(!same(Some("ftp://localhost:8787"), Some("localhost:8787")));
        assert!(!same(Some("http://localhost:8787@evil.example"), Some("localhost:8787")));
        assert!(same(Some("http://[::1]:8787"), Some("[::1]:8787")));
    }

    #[test]
    fn default_ports_are_normalised() {
        let same = |origin, host| same_origin(Some(origin), Some(host), false);
        assert!(same("https://x.example", "x.example:443"));
        assert!(same("https://x.example:443", "x.example"));
        assert!(same("http://x.example", "x.example:80"));
        assert!(same("http://x.example:80/", "X.example"));
        assert!(!same("https://x.example", "x.example:80"));
        assert!(!same("http://x.example", "x.example:443"));
    }

    #[test]
    fn https_only_refuses_plain_http_origins() {
        assert!(same_origin(Some("https://x.example"), Some("x.example"), true));
        assert!(!same_origin(Some("http://x.example"), Some("x.example"), true));
        assert!(!same_origin(Some("http://x.example:443"), Some("x.example:443"), true));
        assert!(same_origin(None, Some("x.example"), true), "no Origin: not a browser");
    }

    #[test]
    fn hosts() {
        let none: &[String] = &[];
        for host in
            ["127.0.0.1:8787", "127.0.0.1", "[::1]:8787", "localhost:8787", "LOCALHOST", "10.1.2.3", "localhost."]
        {
            assert!(host_allowed(Some(host), none), "{host}");
        }
        for host in ["evil.example", "evil.example:8787", "localhost.evil.example", "", "[::1", "x:y"] {
            assert!(!host_allowed(Some(host), none), "{host}");
        }
        assert!(!host_allowed(None, none));
        let allowed = vec!["admin.example".to_owned()];
        assert!(host_allowed(Some("Admin.Example:443"), &allowed));
        assert!(host_allowed(Some("admin.example."), &allowed));
        assert!(!host_allowed(Some("other.example"), &allowed));
    }

    #[test]
    fn tokens() {
        assert!(token_matches(Some(b"abc"), "abc"));
        assert!(!token_matches(Some(b"abd"), "abc"));
        assert!(!token_matches(Some(b"ab"), "abc"));
        assert!(!token_matches(None, "abc"));
    }
}
