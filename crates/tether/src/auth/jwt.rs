//! JWT verification for `tether serve`: connection tokens (claims `sub`, `exp`, `iat`, `info`,
//! `channels`) and subscription tokens (`sub`, `channel`, `exp`).
//!
//! Which key checks a token follows from the token's `alg` and what is configured: HS256, HS384
//! and HS512 use the HMAC secret; RS256 the RSA public key; ES256 the EC P-256 public key. Any
//! other `alg` (including `none`) is refused, and so is an `alg` whose key is not configured. The
//! key is never chosen by the token alone: an HS256 token is never checked against the public key's
//! bytes used as a secret (the classic algorithm-confusion attack).
//!
//! As in Centrifugo: `exp` is optional (a token without it never expires) but one in the past is
//! refused, with no leeway (`exp` equal to now is still valid), as is one whose `nbf` is still
//! ahead; `aud` and `iss` are checked only when configured, and are then required; `sub` empty or
//! absent means an anonymous connection.
//!
//! Size: over 400 lines because of its tests (one per way a token is refused, the
//! algorithm-confusion case, the subscription-token-as-connection case), kept beside the rules
//! they test; the code itself is under 340 lines.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The keys and expectations every token is checked with; built once at startup.
pub struct TokenKeys {
    hmac: Option<HmacKey>,
    public: Option<(Algorithm, DecodingKey)>,
    audience: Option<String>,
    issuer: Option<String>,
}

struct HmacKey {
    decoding: DecodingKey,
    encoding: EncodingKey,
}

/// A public key file that cannot be used, worded for the line `tether serve` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a token was refused. The text is short, names no part of the token, and is safe to show
/// to the client (the 401's body, the token protocol's `invalid_token` message).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts of JSON, or a claim of the wrong type.
    Malformed,
    /// An `alg` this server has no key for (or never accepts, like `none`).
    UnsupportedAlgorithm,
    /// The signature does not verify with the configured key.
    BadSignature,
    /// `exp` is in the past.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `aud` missing or not the configured audience.
    WrongAudience,
    /// `iss` missing or not the configured issuer.
    WrongIssuer,
    /// A subscription token without `sub` or `channel`.
    MissingClaim(&'static str),
    /// A token with a `channel` claim offered as a connection token: a subscription token (often
    /// without `exp`) must never open a connection as its user.
    SubscriptionTokenAsConnection,
    /// A `sub` longer than [`MAX_USER_CHARS`] or with control characters (it is echoed in the
    /// welcome, presence and logs).
    BadSubject,
}

/// The longest user id, in characters (a token's `sub`, a connect proxy's `user`).
pub const MAX_USER_CHARS: usize = 256;

/// Whether `user` may be a user id: 1..=[`MAX_USER_CHARS`] characters, no control characters
/// (no NUL, no line break to forge a log line or a presence entry).
pub fn is_valid_user(user: &str) -> bool {
    !user.is_empty() && user.chars().count() <= MAX_USER_CHARS && !user.chars().any(char::is_control)
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("malformed token"),
            Self::UnsupportedAlgorithm => f.write_str("token algorithm not accepted"),
            Self::BadSignature => f.write_str("bad token signature"),
            Self::Expired => f.write_str("token expired"),
            Self::NotYetValid => f.write_str("token not valid yet"),
            Self::WrongAudience => f.write_str("wrong token audience"),
            Self::WrongIssuer => f.write_str("wrong token issuer"),
            Self::MissingClaim(claim) => write!(f, "token lacks the {claim} claim"),
            Self::SubscriptionTokenAsConnection => f.write_str("a subscription token is not a connection token"),
            Self::BadSubject => write!(f, "token sub must be 1..={MAX_USER_CHARS} characters, no control characters"),
        }
    }
}

impl std::error::Error for TokenError {}

/// A valid connection token. `info` is the claim's JSON as written (any JSON value).
#[derive(Debug, Clone)]
pub struct VerifiedConnection {
    /// `sub`; `None` when absent or empty (an anonymous connection).
    pub user: Option<String>,
    /// `exp`; `None` = never expires.
    pub expires_at: Option<SystemTime>,
    pub info: Option<Box<RawValue>>,
    /// `channels`: subscribed by the server when the connection opens.
    pub channels: Vec<String>,
}

/// A valid subscription token: the connection `user` may join `channel` until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSubscription {
    pub user: String,
    pub channel: String,
    pub expires_at: Option<SystemTime>,
}

#[derive(Deserialize)]
struct ConnectionClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    info: Option<Box<RawValue>>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    /// Whether there is a `channel` claim (whatever its value, `null` included): only to refuse
    /// a subscription token offered as a connection token.
    #[serde(default, rename = "channel", deserialize_with = "present")]
    has_channel: bool,
}

/// `true` for a claim that is there at all (an absent one is the `default`, `false`).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

#[derive(Deserialize)]
struct SubscriptionClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
}

/// What `/demo/token` signs.
#[derive(Serialize)]
struct DemoClaims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
    /// The configured audience and issuer: verification requires them once configured, so a
    /// demo token without them would let nobody in.
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
}

impl TokenKeys {
    /// Keys from the settings: an HMAC secret, a public key in PEM (RSA -> RS256, EC P-256 ->
    /// ES256), or both; with neither, no token verifies.
    pub fn new(hmac_secret: Option<&[u8]>, public_key_pem: Option<&[u8]>) -> Result<Self, KeyError> {
        let hmac = hmac_secret
            .map(|secret| {
                let empty = |_| KeyError("an empty HMAC secret".into());
                Ok::<_, KeyError>(HmacKey {
                    decoding: DecodingKey::from_secret(secret).map_err(empty)?,
                    encoding: EncodingKey::from_secret(secret).map_err(empty)?,
                })
            })
            .transpose()?;
        let public = public_key_pem.map(public_key).transpose()?;
        Ok(Self { hmac, public, audience: None, issuer: None })
    }

    /// Requires `aud` to be (or, as an array, to contain) `audience`.
    pub fn with_audience(mut self, audience: Option<String>) -> Self {
        self.audience = audience;
        self
    }

    /// Requires `iss` to be `issuer`.
    pub fn with_issuer(mut self, issuer: Option<String>) -> Self {
        self.issuer = issuer;
        self
    }

    /// Whether an HMAC secret is configured (what `/demo/token` signs with).
    pub fn has_hmac(&self) -> bool {
        self.hmac.is_some()
    }

    /// Verifies a connection token.
    pub fn connection_token(&self, token: &str) -> Result<VerifiedConnection, TokenError> {
        let claims: ConnectionClaims = self.decode(token)?;
        if claims.has_channel {
            return Err(TokenError::SubscriptionTokenAsConnection);
        }
        let user = claims.sub.filter(|sub| !sub.is_empty());
        if user.as_deref().is_some_and(|user| !is_valid_user(user)) {
            return Err(TokenError::BadSubject);
        }
        Ok(VerifiedConnection {
            user,
            expires_at: claims.exp.and_then(expiry),
            info: claims.info.filter(|info| info.get() != "null"),
            channels: claims.channels.unwrap_or_default(),
        })
    }

    /// Verifies a subscription token; `sub` and `channel` are required. That `sub` is the
    /// connection's user and `channel` the one asked for is the caller's check.
    pub fn subscription_token(&self, token: &str) -> Result<VerifiedSubscription, TokenError> {
        let claims: SubscriptionClaims = self.decode(token)?;
        let user = claims.sub.filter(|sub| !sub.is_empty()).ok_or(TokenError::MissingClaim("sub"))?;
        if !is_valid_user(&user) {
            return Err(TokenError::BadSubject);
        }
        Ok(VerifiedSubscription {
            user,
            channel: claims.channel.filter(|c| !c.is_empty()).ok_or(TokenError::MissingClaim("channel"))?,
            expires_at: claims.exp.and_then(expiry),
        })
    }

    /// An HS256 token for `user` valid for `lifetime` from `now`, and its expiry; `None` without
    /// an HMAC secret.
    pub fn sign_hs256(&self, user: &str, now: SystemTime, lifetime: Duration) -> Option<(String, SystemTime)> {
        let hmac = self.hmac.as_ref()?;
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let exp = iat + lifetime.as_secs();
        let claims = DemoClaims { sub: user, iat, exp, aud: self.audience.as_deref(), iss: self.issuer.as_deref() };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &hmac.encoding).ok()?;
        Some((token, UNIX_EPOCH + Duration::from_secs(exp)))
    }

    fn decode<T: DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let key = match header.alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => self.hmac.as_ref().map(|hmac| &hmac.decoding),
            alg => self.public.as_ref().filter(|(expected, _)| *expected == alg).map(|(_, key)| key),
        }
        .ok_or(TokenError::UnsupportedAlgorithm)?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = Vec::new();
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        jsonwebtoken::decode::<T>(token, key, &validation).map(|data| data.claims).map_err(|error| match error.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidAudience => TokenError::WrongAudience,
            ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
            ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => TokenError::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => TokenError::WrongIssuer,
            ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => TokenError::UnsupportedAlgorithm,
            _ => TokenError::Malformed,
        })
    }
}

/// `exp` as a time; one past what `SystemTime` holds is as good as never.
fn expiry(exp: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_secs(exp))
}

/// The algorithm and key of a PEM public key: an RSA key (`RSA PUBLIC KEY`, or `PUBLIC KEY` with
/// an RSA key inside) verifies RS256, an EC P-256 key ES256.
fn public_key(pem: &[u8]) -> Result<(Algorithm, DecodingKey), KeyError> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok((Algorithm::RS256, key));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        // jsonwebtoken reads P-384 keys too; this server verifies ES256 only, so a P-384 key would
        // let no token in: refuse it at startup instead.
        if is_p256(pem) {
            return Ok((Algorithm::ES256, key));
        }
        return Err(KeyError("an EC key that is not P-256 (only ES256 is supported)".into()));
    }
    Err(KeyError("not a PEM public key of RSA or EC P-256".into()))
}

/// Whether a PEM `PUBLIC KEY` is on P-256: its DER names the curve by OID 1.2.840.10045.3.1.7.
fn is_p256(pem: &[u8]) -> bool {
    const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let text = String::from_utf8_lossy(pem);
    let body: String = text.lines().filter(|line| !line.starts_with("-----")).collect();
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .is_ok_and(|der| der.windows(P256_OID.len()).any(|window| window == P256_OID))
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("hmac", &self.hmac.as_ref().map(|_| "<hidden>"))
            .field("public", &self.public.as_ref().map(|(alg, _)| alg))
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    fn sign(alg: Algorithm, secret: &[u8], claims: serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
    }

    fn keys() -> TokenKeys {
        TokenKeys::new(Some(SECRET), None).unwrap()
    }

    #[test]
    fn a_valid_connection_token_gives_user_expiry_info_and_channels() {
        let exp = now() + 60;
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let token = sign(
                alg,
                SECRET,
                serde_json::json!({"sub":"ada","exp":exp,"iat":now(),"info":{"name":"Ada"},"channels":["news"]}),
            );
            let verified = keys().connection_token(&token).unwrap();
            assert_eq!(verified.user.as_deref(), Some("ada"));
            assert_eq!(verified.expires_at, Some(UNIX_EPOCH + Duration::from_secs(exp)));
            assert_eq!(verified.info.unwrap().get(), r#"{"name":"Ada"}"#);
            assert_eq!(verified.channels, ["news"]);
        }
    }

    #[test]
    fn no_exp_never_expires_and_no_sub_is_anonymous() {
        let verified = keys().connection_token(&sign(Algorithm::HS256, SECRET, serde_json::json!({}))).unwrap();
        assert_eq!((verified.user, verified.expires_at, verified.channels.len()), (None, None, 0));
        let empty = keys().connection_token(&sign(Algorithm::HS256, SECRET, serde_json::json!({"sub":""}))).unwrap();
        assert_eq!(empty.user, None);
    }

    #[test]
    fn expired_badly_signed_malformed_and_unkeyed_tokens_are_refused() {
        let keys = keys();
        let expired = sign(Algorithm::HS256, SECRET, serde_json::json!({"sub":"ada","exp":now() - 1}));
        assert_eq!(keys.connection_token(&expired).unwrap_err(), TokenError::Expired);
        let early = sign(Algorithm::HS256, SECRET, serde_json::json!({"sub":"ada","nbf":now() + 60}));
        assert_eq!(keys.connection_token(&early).unwrap_err(), TokenError::NotYetValid);
        let forged = sign(Algorithm::HS256, b"another secret, 32 bytes long....", serde_json::json!({"sub":"ada"}));
        assert_eq!(keys.connection_token(&forged).unwrap_err(), TokenError::BadSignature);
        assert_eq!(keys.connection_token("not.a.token").unwrap_err(), TokenError::Malformed);
        assert_eq!(keys.connection_token("").unwrap_err(), TokenError::Malformed);
        let wrong_type = sign(Algorithm::HS256, SECRET, serde_json::json!({"sub":"ada","channels":"news"}));
        assert_eq!(keys.connection_token(&wrong_type).unwrap_err(), TokenError::Malformed);
        // alg none: header {"alg":"none"}, no signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhZGEifQ.";
        assert!(keys.connection_token(none).is_err());
        // An RS256 header on a server with only a secret.
        let rs = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZGEifQ.c2ln";
        assert_eq!(keys.connection_token(rs).unwrap_err(), TokenError::UnsupportedAlgorithm);
        let no_keys = TokenKeys::new(None, None).unwrap();
        let good = sign(Algorithm::HS256, SECRET, serde_json::json!({"sub":"ada"}));
        assert_eq!(no_keys.connection_token(&good).unwrap_err(), TokenError::UnsupportedAlgorithm);
    }

    #[test]
    fn audience_and_issuer_are_required_once_configured_and_ignored_otherwise() {
        let keys = keys().with_audience(Some("tether".into())).with_issuer(Some("https://app".into()));
        let token = |claims| sign(Algorithm::HS256, SECRET, claims);
        let good = token(serde_json::json!({"sub":"ada","aud":"tether","iss":"https://app"}));
        assert_eq!(keys.connection_token(&good).unwrap().user.as_deref(), Some("ada"));
        let in_list = token(serde_json::json!({"sub":"ada","aud":["x","tether"],"iss":"https://app"}));
        assert!(keys.connection_token(&in_list).is_ok());
        let wrong_aud = token(serde_json::json!({"sub":"ada","aud":"other","iss":"https://app"}));
        assert_eq!(keys.connection_token(&wrong_aud).unwrap_err(), TokenError::WrongAudience);
        let no_aud = token(serde_json::json!({"sub":"ada","iss":"https://app"}));
        assert_eq!(keys.connection_token(&no_aud).unwrap_err(), TokenError::WrongAudience);
        let wrong_iss = token(serde_json::json!({"sub":"ada","aud":"tether","iss":"https://evil"}));
        assert_eq!(keys.connection_token(&wrong_iss).unwrap_err(), TokenError::WrongIssuer);
        let no_iss = token(serde_json::json!({"sub":"ada","aud":"tether"}));
        assert_eq!(keys.connection_token(&no_iss).unwrap_err(), TokenError::WrongIssuer);
        // Without a configured audience, a token's aud is not a reason to refuse it.
        let plain = TokenKeys::new(Some(SECRET), None).unwrap();
        assert!(plain.connection_token(&wrong_aud).is_ok());
    }

    #[test]
    fn subscription_tokens_need_sub_and_channel() {
        let keys = keys();
        let exp = now() + 30;
        let token = sign(Algorithm::HS256, SECRET, serde_json::json!({"sub":"ada","channel":"chat:x","exp":exp}));
        assert_eq!(
            keys.subscription_token(&token).unwrap(),
            VerifiedSubscription {
                user: "ada".into(),
                channel: "chat:x".into(),
                expires_at: Some(UNIX_EPOCH + Duration::from_secs(exp))
            }
        );
        let no_channel = sign(Algorithm::HS256, SECRET, serde_json::json!({"sub":"ada"}));
        assert_eq!(keys.subscription_token(&no_channel).unwrap_err(), TokenError::MissingClaim("channel"));
        let no_sub = sign(Algorithm::HS256, SECRET, serde_json::json!({"channel":"c"}));
        assert_eq!(keys.subscription_token(&no_sub).unwrap_err(), TokenError::MissingClaim("sub"));
        let expired = sign(Algorithm::HS256, SECRET, serde_json::json!({"sub":"a","channel":"c","exp":now() - 5}));
        assert_eq!(keys.subscription_token(&expired).unwrap_err(), TokenError::Expired);
    }

    #[test]
    fn a_subscription_token_is_never_a_connection_token() {
        let keys = keys();
        let subscription = sign(Algorithm::HS256, SECRET, serde_json::json!({"sub":"ada","channel":"chat:x"}));
        assert_eq!(keys.connection_token(&subscription).unwrap_err(), TokenError::SubscriptionTokenAsConnection);
        assert_eq!(
            TokenError::SubscriptionTokenAsConnection.to_string(),
            "a subscription token is not a connection token"
        );
        // Whatever the claim holds, even null or an empty string.
        for channel in [serde_json::json!(null), serde_json::json!(""), serde_json::json!(["a"])] {
            let token = sign(Algorithm::HS256, SECRET, serde_json::json!({"sub":"ada","channel":channel}));
            assert_eq!(keys.connection_token(&token).unwrap_err(), TokenError::SubscriptionTokenAsConnection);
        }
        assert!(keys.subscription_token(&subscription).is_ok(), "still good as what it is");
    }

    #[test]
    fn a_sub_too_long_or_with_control_characters_is_refused() {
        let keys = keys();
        let token = |sub: &str| sign(Algorithm::HS256, SECRET, serde_json::json!({"sub":sub,"channel":"c"}));
        let connection = |sub: &str| sign(Algorithm::HS256, SECRET, serde_json::json!({"sub":sub}));
        for bad in ["ad\u{0}a\n", "a\tb", &"x".repeat(257)] {
            assert_eq!(keys.connection_token(&connection(bad)).unwrap_err(), TokenError::BadSubject, "{bad:?}");
            assert_eq!(keys.subscription_token(&token(bad)).unwrap_err(), TokenError::BadSubject, "{bad:?}");
        }
        let longest = "é".repeat(256);
        assert_eq!(keys.connection_token(&connection(&longest)).unwrap().user.as_deref(), Some(longest.as_str()));
        assert!(TokenError::BadSubject.to_string().starts_with("token sub must be 1..=256 characters"));
        assert!(is_valid_user("ada") && !is_valid_user(""));
    }

    #[test]
    fn demo_tokens_carry_the_configured_audience_and_issuer() {
        let keys = keys().with_audience(Some("tether".into())).with_issuer(Some("https://app".into()));
        let (token, _) = keys.sign_hs256("nick", SystemTime::now(), Duration::from_secs(30)).unwrap();
        assert_eq!(keys.connection_token(&token).unwrap().user.as_deref(), Some("nick"));
        let (plain, _) = self::keys().sign_hs256("nick", SystemTime::now(), Duration::from_secs(30)).unwrap();
        let claims = plain.split('.').nth(1).unwrap();
        use base64::Engine as _;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
        assert!(claims.get("aud").is_none() && claims.get("iss").is_none(), "none configured, none signed: {claims}");
    }

    #[test]
    fn a_demo_token_verifies_with_the_same_keys() {
        let keys = keys();
        let now = SystemTime::now();
        let (token, expires_at) = keys.sign_hs256("nick", now, Duration::from_secs(30)).unwrap();
        let verified = keys.connection_token(&token).unwrap();
        assert_eq!(verified.user.as_deref(), Some("nick"));
        assert_eq!(verified.expires_at, Some(expires_at));
        assert!(TokenKeys::new(None, None).unwrap().sign_hs256("nick", now, Duration::from_secs(30)).is_none());
    }

    #[test]
    fn ec_keys_verify_es256_and_the_key_is_never_used_as_a_secret() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let keys = TokenKeys::new(None, Some(pair.public_key_pem().as_bytes())).unwrap();
        let encoding = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::ES256), &serde_json::json!({"sub":"ec"}), &encoding).unwrap();
        assert_eq!(keys.connection_token(&token).unwrap().user.as_deref(), Some("ec"));
        // Algorithm confusion: HS256 "signed" with the public key's PEM as the secret.
        let confused = sign(Algorithm::HS256, pair.public_key_pem().as_bytes(), serde_json::json!({"sub":"x"}));
        assert_eq!(keys.connection_token(&confused).unwrap_err(), TokenError::UnsupportedAlgorithm);
        assert!(TokenKeys::new(None, Some(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")).is_err());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let shown = format!("{:?}", keys());
        assert!(!shown.contains("0123456789"), "{shown}");
    }
}
