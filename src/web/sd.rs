//! The address `/sd` gives Prometheus for the exporter: only one the exporter was configured with
//! (`--web.external-url`) or the one the request arrived on. A client's `Host` header is used
//! only when it names one of those exactly: a cache or proxy in front could otherwise serve a
//! list naming any host a client made up, and Prometheus would send its scrapes (and their
//! credentials) there.

use std::net::SocketAddr;

use reqwest::Url;

/// `host:port` of a URL, the port written even when it is the scheme's default.
pub fn authority(url: &Url) -> String {
    // An IPv6 host comes in brackets, as a Host header writes it.
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// The address to list: the one of `hosts` (the request's `Host` headers; with several, none is
/// trusted) that names `external` or `local` exactly (a default port may be left out), else
/// `external`, else `local`.
pub fn address(
    hosts: &[&str],
    external: Option<&str>,
    local: Option<SocketAddr>,
) -> Option<String> {
    let local = local.map(|a| a.to_string());
    let configured: Vec<&str> = external.into_iter().chain(local.as_deref()).collect();
    if let [host] = hosts {
        let named = configured.iter().find(|c| names(host, c));
        if let Some(named) = named {
            return Some(named.to_string());
        }
    }
    configured.first().map(|c| c.to_string())
}

/// Whether a `Host` header names `configured` (`host:port`), ignoring case, with the port left
/// out only where it is HTTP's or HTTPS's default.
fn names(host: &str, configured: &str) -> bool {
    if host.eq_ignore_ascii_case(configured) {
        return true;
    }
    match configured.rsplit_once(':') {
        Some((name, "80" | "443")) => host.eq_ignore_ascii_case(name),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_addresses_are_listed() {
        let local: SocketAddr = "127.0.0.1:10123".parse().unwrap();
        let external = Some("exporter.example:443");
        for hostile in [
            "evil.example.com:443",
            "169.254.169.254:80",
            "",
            "127.0.0.1:1",
        ] {
            assert_eq!(
                address(&[hostile], external, Some(local)).as_deref(),
                Some("exporter.example:443"),
                "{hostile}"
            );
            assert_eq!(
                address(&[hostile], None, Some(local)).as_deref(),
                Some("127.0.0.1:10123"),
                "{hostile}"
            );
        }
        assert_eq!(
            address(&["127.0.0.1:10123"], external, Some(local)).as_deref(),
            Some("127.0.0.1:10123"),
            "a Host naming where the request arrived"
        );
        assert_eq!(
            address(&["EXPORTER.example"], external, Some(local)).as_deref(),
            Some("exporter.example:443"),
            "the default port left out"
        );
        // Duplicate Host headers: neither is trusted, whichever comes first.
        assert_eq!(
            address(&["127.0.0.1:10123", "evil.example:80"], None, Some(local)).as_deref(),
            Some("127.0.0.1:10123")
        );
        assert_eq!(address(&["x:1"], None, None), None);
    }

    #[test]
    fn an_external_url_becomes_host_and_port() {
        let at = |u: &str| authority(&Url::parse(u).unwrap());
        assert_eq!(at("https://exporter.example/"), "exporter.example:443");
        assert_eq!(
            at("http://exporter.example:9999/x"),
            "exporter.example:9999"
        );
        assert_eq!(at("http://[::1]:9999/"), "[::1]:9999");
    }
}
