//! Integration tests: each sandbox driven over loopback with plain reqwest,
//! the way the hub's clients will call them.

mod faults;
mod marketman;
mod quickbooks;
mod square;
mod timetracking;
mod toast;
mod webhooks;
mod xero;

/// A client that never goes through a proxy and gives up quickly.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The `url` of the `rel` entry of an RFC 5988 `Link` header.
pub fn link(headers: &reqwest::header::HeaderMap, rel: &str) -> Option<String> {
    let value = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    value.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == format!("rel=\"{rel}\""))
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}
