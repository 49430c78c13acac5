//! Cross-site request forgery: what keeps another site's page from acting with the operator's
//! session.
//!
//! Three layers, each enough on its own in a current browser:
//! - the cookie is `SameSite=Strict`: a request started by another site carries no session;
//! - every `POST /admin/api/*` must carry the session's CSRF token in [`CSRF_HEADER`] (a page of
//!   another origin can neither read the token nor set a custom header without a CORS preflight,
//!   which this server never grants);
//! - a request that carries `Origin` (browsers send it on every POST and WebSocket upgrade) must
//!   come from the dashboard's own origin: the `Origin`'s host and port equal `Host`.
//!
//! The live socket has no custom header: it needs the cookie and an `Origin` matching `Host`.

use subtle::ConstantTimeEq as _;

/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Whether `origin` (an `Origin` header's value, when there is one) is the page's own origin for
/// a request to `host`. Compares the origin's authority with `Host`, case-insensitively: behind a
/// TLS-terminating proxy the scheme the server sees is not the browser's, but the host is.
pub fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else { return true };
    let Some(host) = host else { return false };
    match origin.split_once("://") {
        Some((scheme, authority)) if matches!(scheme, "http" | "https") && !authority.is_empty() => {
            authority.eq_ignore_ascii_case(host)
        }
        // `null` (a sandboxed frame, a file, a redirect across origins) or anything else.
        _ => false,
    }
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
        assert!(same_origin(None, Some("localhost:8787")), "no Origin: not a browser's cross-site request");
        assert!(same_origin(Some("http://localhost:8787"), Some("localhost:8787")));
        assert!(same_origin(Some("https://Admin.Example"), Some("admin.example")));
        assert!(!same_origin(Some("http://evil.example"), Some("localhost:8787")));
        assert!(!same_origin(Some("http://localhost:8788"), Some("localhost:8787")));
        assert!(!same_origin(Some("null"), Some("localhost:8787")));
        assert!(!same_origin(Some("http://localhost:8787"), None));
        assert!(!same_origin(Some("ftp://localhost:8787"), Some("localhost:8787")));
    }

    #[test]
    fn tokens() {
        assert!(token_matches(Some(b"abc"), "abc"));
        assert!(!token_matches(Some(b"abd"), "abc"));
        assert!(!token_matches(Some(b"ab"), "abc"));
        assert!(!token_matches(None, "abc"));
    }
}
