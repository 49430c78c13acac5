//! The dashboard's HTTP side: the page (the login form without a session, the dashboard with
//! one), `POST /admin/login`, the page's script and style, and `POST /admin/api/*`.
//!
//! Every answer carries a strict Content-Security-Policy (only this origin's script, style and
//! sockets; no inline script, no framing), `X-Frame-Options: DENY`, `nosniff`, `Referrer-Policy: same-origin` (not `no-referrer`: with that, Chromium sends
//! `Origin: null` on the login form's POST, which the origin check must refuse), and
//! `Cache-Control: no-store` (the pages hold a CSRF token and live figures).
//!
//! Every request is first checked for its `Host` (an IP address, `localhost` or a name of
//! `admin_hosts`; else 421, against DNS rebinding), and the headers are set by a layer over every
//! route, so axum's own answers (405) get them too. `POST /admin/login` reads at most
//! [`MAX_LOGIN_BODY`] (its own limit, checked before the body is buffered).
//!
//! `/admin/api/*` checks, in this order: a live session (401), POST (405), an `Origin` of this
//! dashboard when one is sent (403), the session's CSRF token in `X-CSRF-Token` (403), the body
//! size (413), the call (404), its arguments (400).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::csrf::{host_allowed, same_origin, token_matches, CSRF_HEADER, HOST_REFUSED};
use super::devices;
use super::login::{Admission, WRONG_PASSWORD_DELAY};
use super::queries::{self, Refusal};
use super::sessions::{self, clear_cookie, cookie_named, set_cookie, Current};
use super::state::Shared;

const ADMIN_HTML: &str = include_str!("../../assets/admin.html");
const ADMIN_JS: &str = include_str!("../../assets/admin.js");
const ADMIN_CSS: &str = include_str!("../../assets/admin.css");

/// The policy of every dashboard answer. `connect-src 'self'` covers the page's own `ws:`/`wss:`.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; \
                   frame-ancestors 'none'";

/// The longest login body read (a 1024-byte password, percent-encoded, and the field name).
const MAX_LOGIN_BODY: usize = 4 * 1024;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    let body_limit = shared.body_limit;
    let not_found = || async { (StatusCode::NOT_FOUND, "not found\n").into_response() };
    Router::new()
        .route("/admin", get(page))
        .route("/admin/", get(|| async { see_other("/admin") }))
        // Its own limit (the inner layer wins): anonymous clients never get the API's.
        .route("/admin/login", post(login).layer(DefaultBodyLimit::max(MAX_LOGIN_BODY)))
        .route("/admin/admin.js", get(|| async { asset("text/javascript; charset=utf-8", ADMIN_JS) }))
        .route("/admin/admin.css", get(|| async { asset("text/css; charset=utf-8", ADMIN_CSS) }))
        .route("/admin/api/{*call}", any(api).layer(DefaultBodyLimit::max(body_limit)))
        .route("/admin/{*rest}", any(not_found))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&shared), check_host))
        .route_layer(middleware::map_response(|response: Response| async move { with_headers(response) }))
        .with_state(shared)
}

/// Answers only the `Host`s the dashboard is for (see [`host_allowed`]): 421 for the others.
async fn check_host(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let host = header_str(request.headers(), &header::HOST).or_else(|| request.uri().authority().map(|a| a.as_str()));
    if !host_allowed(host, &shared.hosts) {
        return (StatusCode::MISDIRECTED_REQUEST, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], HOST_REFUSED)
            .into_response();
    }
    next.run(request).await
}

/// The security headers every dashboard answer gets (set by the router's layer).
fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn see_other(location: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// The two views of `admin.html`: the part between `<!--login-->` and `<!--/login-->`, and the
/// one between `<!--dashboard-->` and `<!--/dashboard-->`, each with the page's head and foot.
fn views() -> &'static (String, String) {
    static VIEWS: OnceLock<(String, String)> = OnceLock::new();
    VIEWS.get_or_init(|| (view(ADMIN_HTML, "login", "dashboard"), view(ADMIN_HTML, "dashboard", "login")))
}

/// `html` without the sections marked `drop`, and without the markers of `keep`.
fn view(html: &str, keep: &str, drop: &str) -> String {
    let (open, close) = (format!("<!--{drop}-->"), format!("<!--/{drop}-->"));
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let Some(end) = rest[start..].find(&close) else { break };
        text.push_str(&rest[..start]);
        rest = &rest[start + end + close.len()..];
    }
    text.push_str(rest);
    for marker in [format!("<!--{keep}-->"), format!("<!--/{keep}-->")] {
        text = text.replace(&marker, "");
    }
    text
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn login_page(status: StatusCode, error: &str) -> Response {
    let html = views().0.replace("{{error}}", &escape(error));
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// The value of the request's cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(header::COOKIE).iter().filter_map(|value| value.to_str().ok()).find_map(|h| cookie_named(h, name))
}

/// The session of the request's cookie, if it is live.
fn session(shared: &Shared, headers: &HeaderMap) -> Option<Current> {
    shared.sessions.find(cookie(headers, sessions::COOKIE)?, Instant::now())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn from_this_origin(shared: &Shared, headers: &HeaderMap) -> bool {
    // An Origin that is not valid text is not this page's.
    if headers.contains_key(header::ORIGIN) && header_str(headers, &header::ORIGIN).is_none() {
        return false;
    }
    same_origin(header_str(headers, &header::ORIGIN), header_str(headers, &header::HOST), shared.secure)
}

async fn page(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    match session(&shared, &headers) {
        Some(current) => {
            let html = views().1.replace("{{csrf}}", &current.csrf).replace("{{version}}", env!("CARGO_PKG_VERSION"));
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
        }
        None => login_page(StatusCode::OK, ""),
    }
}

fn peer_ip(request: &Request) -> IpAddr {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip())
}

/// A 429 login form: `message` and when to try again.
fn too_many(left: std::time::Duration, message: &str) -> Response {
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let mut response = login_page(StatusCode::TOO_MANY_REQUESTS, &format!("{message}: try again in {secs} s."));
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

async fn login(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    if !from_this_origin(&shared, request.headers()) {
        return login_page(StatusCode::FORBIDDEN, "This form only signs in from the dashboard's own page.");
    }
    let ip = peer_ip(&request);
    let now = Instant::now();
    // A trusted device (it signed in before) is exempt from the lockout and the global budget:
    // nobody sharing the operator's address, or with many addresses, can lock the operator out.
    let device = cookie(request.headers(), devices::COOKIE).and_then(|id| shared.devices.attempt(id, now));
    if device.is_none() {
        match shared.throttle.attempt(ip, now) {
            Admission::Check => {}
            Admission::Locked(left) => return too_many(left, "Too many wrong passwords from your address"),
            Admission::Busy(left) => return too_many(left, "Too many wrong passwords to this server"),
        }
    }
    // At most MAX_LOGIN_BODY (the route's limit): a longer body is refused before it is read.
    let body = match Bytes::from_request(request, &()).await {
        Ok(body) if body.len() <= MAX_LOGIN_BODY => body,
        _ => return login_page(StatusCode::PAYLOAD_TOO_LARGE, "That is not a password this server could have."),
    };
    let password = url::form_urlencoded::parse(&body).find(|(name, _)| name == "password").map(|(_, value)| value);
    if password.as_deref().is_some_and(|password| shared.password.matches(password.as_bytes())) {
        let still_trusted = match &device {
            Some(key) => shared.devices.succeeded(key),
            None => {
                shared.throttle.succeeded(ip);
                false
            }
        };
        let (id, _) = shared.sessions.create(Instant::now());
        tracing::info!(peer = %ip, trusted_device = device.is_some(), "admin dashboard: signed in");
        let mut response = see_other("/admin");
        let cookie = HeaderValue::from_str(&set_cookie(&id, shared.secure)).expect("hex digits and ASCII");
        response.headers_mut().append(header::SET_COOKIE, cookie);
        if !still_trusted {
            let device = shared.devices.trust(Instant::now());
            let cookie = HeaderValue::from_str(&devices::set_cookie(&device, shared.secure)).expect("ASCII");
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        return response;
    }
    if let Some(suppressed) = shared.refusals.event(Instant::now()) {
        tracing::warn!(peer = %ip, suppressed, trusted_device = device.is_some(), "admin dashboard: a wrong password");
    }
    tokio::time::sleep(WRONG_PASSWORD_DELAY).await;
    login_page(StatusCode::UNAUTHORIZED, "Wrong password.")
}

fn json_answer(status: StatusCode, body: &impl Serialize) -> Response {
    let text = serde_json::to_string(body).expect("serializable");
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn refusal(refusal: Refusal) -> Response {
    json_answer(refusal.status, &serde_json::json!({ "error": refusal.message }))
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|error| Refusal::new(StatusCode::BAD_REQUEST, error.to_string()))
}

fn answer<T: Serialize>(result: Result<T, Refusal>) -> Response {
    match result {
        Ok(body) => json_answer(StatusCode::OK, &body),
        Err(error) => refusal(error),
    }
}

async fn api(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let call = request.uri().path().strip_prefix("/admin/api/").unwrap_or_default().to_owned();
    let Some(current) = session(&shared, request.headers()) else {
        return refusal(Refusal::new(StatusCode::UNAUTHORIZED, "sign in at /admin first"));
    };
    if request.method() != Method::POST {
        return refusal(Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "the dashboard's API takes POST"));
    }
    if !from_this_origin(&shared, request.headers()) {
        return refusal(Refusal::new(StatusCode::FORBIDDEN, "a request from another origin"));
    }
    let presented = request.headers().get(CSRF_HEADER).map(HeaderValue::as_bytes);
    if !token_matches(presented, &current.csrf) {
        return refusal(Refusal::new(StatusCode::FORBIDDEN, "a missing or wrong X-CSRF-Token"));
    }
    let body = match Bytes::from_request(request, &()).await {
        Ok(body) => body,
        Err(rejection) => return refusal(Refusal::new(rejection.status(), rejection.body_text())),
    };
    let registry = &shared.registry;
    let hub = &shared.hub;
    match call.as_str() {
        "connections" => answer(parse(&body).and_then(|query| queries::connections(registry, &query))),
        "channels" => answer(parse(&body).and_then(|query| queries::channels(hub, &query))),
        "history" => match parse(&body) {
            Ok(query) => answer(queries::history(hub, &query).await),
            Err(refusal) => answer::<queries::Peek>(Err(refusal)),
        },
        "publish" => match parse(&body) {
            Ok(query) => answer(queries::publish(hub, &query).await),
            Err(refusal) => answer::<queries::Published>(Err(refusal)),
        },
        "disconnect" => answer(parse(&body).and_then(|query| queries::disconnect(registry, &query))),
        // Nothing but the session check (the page asks after its socket failed to reconnect).
        "session" => json_answer(StatusCode::OK, &serde_json::json!({})),
        "logout" => {
            shared.sessions.remove(&current.key);
            let mut response = json_answer(StatusCode::OK, &serde_json::json!({}));
            let cookie = HeaderValue::from_str(&clear_cookie(shared.secure)).expect("ASCII");
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        _ => {
            let shown: String = call.chars().take(64).collect();
            refusal(Refusal::new(StatusCode::NOT_FOUND, format!("no call {shown:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_view_keeps_its_own_section() {
        let html = "<head><!--dashboard--><meta/><!--/dashboard--></head><!--login--><form>{{error}}</form><!--/login--><!--dashboard--><main/><!--/dashboard--><foot/>";
        assert_eq!(view(html, "login", "dashboard"), "<head></head><form>{{error}}</form><foot/>");
        assert_eq!(view(html, "dashboard", "login"), "<head><meta/></head><main/><foot/>");
        let (login, dashboard) = views();
        assert!(login.contains("name=\"password\"") && !login.contains("admin.js"));
        assert!(
            dashboard.contains("{{csrf}}")
                && dashboard.contains("admin.js")
                && !dashboard.contains("name=\"password\"")
        );
    }
}
