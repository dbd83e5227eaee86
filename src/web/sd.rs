//! The address (and probe path) `/sd` gives Prometheus for the exporter: only one the exporter
//! was configured with (`--web.external-url`) or the one the request arrived on. A client's `Host` header is used
//! only when it names one of those exactly: a cache or proxy in front could otherwise serve a
//! list naming any host a client made up, and Prometheus would send its scrapes (and their
//! credentials) there.

use std::net::SocketAddr;

use reqwest::Url;

/// Where Prometheus reaches the exporter from outside (`--web.external-url`).
#[derive(Debug, Clone, PartialEq)]
pub struct External {
    /// `host:port`.
    pub address: String,
    /// The URL's path without its trailing `/`: empty, or a proxy's mount point (`/exporter`).
    pub path_prefix: String,
}

impl External {
    pub fn from_url(url: &Url) -> Self {
        External {
            address: authority(url),
            path_prefix: url.path().trim_end_matches('/').to_string(),
        }
    }
}

/// What `/sd` lists: the target's address, and the path its probes go to.
#[derive(Debug, PartialEq)]
pub struct Listed {
    pub address: String,
    pub probe_path: String,
}

/// `host:port` of a URL, the port written even when it is the scheme's default.
pub fn authority(url: &Url) -> String {
    // An IPv6 host comes in brackets, as a Host header writes it.
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// What to list for probes at `probe_path`: the address of `hosts` (the request's `Host`
/// headers; with several, none is trusted) that names `external` or `local` exactly (a default
/// port may be left out), else `external`, else `local`. Probes through `external` go under its
/// path prefix.
pub fn address(
    hosts: &[&str],
    external: Option<&External>,
    local: Option<SocketAddr>,
    probe_path: &str,
) -> Option<Listed> {
    let through = |e: &External| Listed {
        address: e.address.clone(),
        probe_path: format!("{}{probe_path}", e.path_prefix),
    };
    let direct = |a: SocketAddr| Listed {
        address: a.to_string(),
        probe_path: probe_path.to_string(),
    };
    if let [host] = hosts {
        if let Some(e) = external.filter(|e| names(host, &e.address)) {
            return Some(through(e));
        }
        if let Some(a) = local.filter(|a| names(host, &a.to_string())) {
            return Some(direct(a));
        }
    }
    external.map(through).or_else(|| local.map(direct))
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

    /// The address listed for these hosts.
    fn listed(hosts: &[&str], external: Option<&External>, local: Option<SocketAddr>) -> String {
        address(hosts, external, local, "/probe").unwrap().address
    }

    #[test]
    fn only_configured_addresses_are_listed() {
        let local: SocketAddr = "127.0.0.1:10123".parse().unwrap();
        let external = External::from_url(&Url::parse("https://exporter.example/").unwrap());
        let external = Some(&external);
        for hostile in [
            "evil.example.com:443",
            "169.254.169.254:80",
            "",
            "127.0.0.1:1",
        ] {
            assert_eq!(
                listed(&[hostile], external, Some(local)),
                "exporter.example:443",
                "{hostile}"
            );
            assert_eq!(
                listed(&[hostile], None, Some(local)),
                "127.0.0.1:10123",
                "{hostile}"
            );
        }
        assert_eq!(
            listed(&["127.0.0.1:10123"], external, Some(local)),
            "127.0.0.1:10123",
            "a Host naming where the request arrived"
        );
        assert_eq!(
            listed(&["EXPORTER.example"], external, Some(local)),
            "exporter.example:443",
            "the default port left out"
        );
        // Duplicate Host headers: neither is trusted, whichever comes first.
        assert_eq!(
            listed(&["127.0.0.1:10123", "evil.example:80"], None, Some(local)),
            "127.0.0.1:10123"
        );
        assert_eq!(address(&["x:1"], None, None, "/probe"), None);
    }

    #[test]
    fn probes_through_the_external_url_go_under_its_path() {
        let local: SocketAddr = "127.0.0.1:10123".parse().unwrap();
        let url = Url::parse("https://gw.example/clouddevice/").unwrap();
        let external = External::from_url(&url);
        let through = address(&[], Some(&external), Some(local), "/probe").unwrap();
        assert_eq!(through.probe_path, "/clouddevice/probe");
        let direct = address(&["127.0.0.1:10123"], Some(&external), Some(local), "/probe");
        assert_eq!(direct.unwrap().probe_path, "/probe");
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
