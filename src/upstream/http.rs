//! HTTP plumbing every upstream call shares: the client (which never follows a redirect), the
//! endpoint flags' URLs and the paths joined onto them, bodies read under a cap, and error texts.

use reqwest::Url;

use crate::upstream::error::clip;

/// The HTTP client of every upstream call.
pub fn client(connect_timeout: std::time::Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("clouddevice_exporter/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        // The credentials go to the configured endpoints and nowhere else: reqwest would
        // carry X-Auth-Token, the signed headers and IAM's password body to any host a
        // redirect names. A redirect is an error instead (see `redirect_target`).
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .build()
}

/// `path` under an endpoint, keeping the endpoint's own path prefix (a gateway or proxy mount
/// point): `https://gw/koophone/` and `/v1/x` give `https://gw/koophone/v1/x`.
pub fn join(endpoint: &Url, path: &str) -> Url {
    let mut url = endpoint.clone();
    let joined = format!("{}{path}", url.path().trim_end_matches('/'));
    url.set_path(&joined);
    url
}

/// An endpoint flag that is not a URL the exporter may send credentials to.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("{flag} {shown} is not an http(s) URL; write e.g. {example}")]
    NotHttp {
        flag: &'static str,
        shown: String,
        example: &'static str,
    },
    #[error("{flag} {shown} holds a user name or password; remove the `user:password@` part: the exporter signs in only with its credential flags, and a password in a flag shows in the process list and the logs")]
    UserInfo { flag: &'static str, shown: String },
}

/// The http(s) URL of an endpoint flag. A URL with a user or password is refused: it would be a
/// secret on the command line, and reqwest would send it as Basic auth to the API. Errors never
/// repeat what may be a password.
pub fn endpoint_url(
    flag: &'static str,
    text: &str,
    example: &'static str,
) -> Result<Url, EndpointError> {
    let not_http = |shown: String| EndpointError::NotHttp {
        flag,
        shown,
        example,
    };
    let Ok(mut url) = Url::parse(text) else {
        let shown = if text.contains('@') {
            "(not shown: it holds an @)".to_string()
        } else {
            format!("{text:?}")
        };
        return Err(not_http(shown));
    };
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_username("");
        let _ = url.set_password(None);
        return Err(EndpointError::UserInfo {
            flag,
            shown: format!("\"{}\"", url.as_str().replacen("://", "://…@", 1)),
        });
    }
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(not_http(format!("{text:?}")));
    }
    Ok(url)
}

/// An endpoint as logs and errors show it: scheme, host, port and path, without a query string
/// or fragment (a gateway key may ride in one) and without user information.
pub fn shown(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// Whether a request failed because the other end speaks the other protocol: plain HTTP to a
/// TLS request (rustls reads a record that is not TLS), or, to a plain request, an answer that
/// is not HTTP or a connection closed before any answer (as a TLS port does).
pub fn other_protocol(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
            );
        }
        if let Some(http) = e.downcast_ref::<hyper::Error>() {
            return http.is_parse() || http.is_incomplete_message();
        }
        // An I/O error's source is its inner error's source: the inner one itself (rustls's,
        // under tokio-rustls) is reached through `get_ref`.
        source = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

/// Why a body could not be read whole.
pub enum Capped {
    TooLarge,
    Failed(reqwest::Error),
}

/// Reads a response body chunk by chunk, giving up as soon as it passes `limit` bytes, so an
/// oversized answer costs at most the limit in memory.
pub async fn read_capped(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, Capped> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(Capped::TooLarge);
    }
    let expected = response.content_length().unwrap_or(0).min(limit);
    let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(Capped::Failed)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(Capped::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The host a redirect points to, for the error that refuses to follow it.
pub fn redirect_target(response: &reqwest::Response) -> String {
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok());
    match location.map(|l| response.url().join(l)) {
        None => "nowhere (no Location header)".into(),
        Some(Ok(url)) => match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => clip(format!("{host}:{port}")),
            (Some(host), None) => clip(host.to_string()),
            (None, _) => "a URL without a host".into(),
        },
        Some(Err(_)) => "an unreadable Location".into(),
    }
}

/// reqwest's top-level message ("error sending request") hides the cause; show the whole chain.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_shown_without_its_query_string() {
        let url = Url::parse("https://gw.example:8443/koophone/?apikey=s3cret#frag").unwrap();
        assert_eq!(shown(&url), "https://gw.example:8443/koophone/");
    }

    #[test]
    fn a_path_is_joined_under_the_endpoint_prefix() {
        let at = |e: &str| join(&Url::parse(e).unwrap(), "/v1/x").to_string();
        assert_eq!(at("https://h"), "https://h/v1/x");
        assert_eq!(at("https://h/"), "https://h/v1/x");
        assert_eq!(at("https://h/gw/"), "https://h/gw/v1/x");
        assert_eq!(at("https://h:8443/gw"), "https://h:8443/gw/v1/x");
    }

    #[test]
    fn endpoints_with_a_password_are_refused_without_showing_it() {
        for text in [
            "http://user:pw-5ecret@host.example/",
            "https://user:pw-5ecret@host.example:8443/prefix",
            "https://:pw-5ecret@host.example/",
            "https://user@host.example/",
        ] {
            let error = endpoint_url("--clouddevice.endpoint", text, "https://x")
                .unwrap_err()
                .to_string();
            assert!(!error.contains("5ecret"), "{error}");
            assert!(error.contains("user:password@"), "{error}");
            assert!(error.contains("host.example"), "{error}");
        }
        let error = endpoint_url("--iam.endpoint", "ht tp://u:pw-5ecret@", "https://x")
            .unwrap_err()
            .to_string();
        assert!(
            !error.contains("5ecret") && error.contains("--iam.endpoint"),
            "{error}"
        );
        assert!(endpoint_url("--iam.endpoint", "ftp://host/", "https://x").is_err());
        assert_eq!(
            endpoint_url("--iam.endpoint", "https://iam.example/p/", "https://x")
                .unwrap()
                .as_str(),
            "https://iam.example/p/"
        );
    }
}
