//! URLs as providers document them: a base URL joined with path segments, query parameters set
//! and read.

use url::Url;

/// The URL with its query parameter `name` set to `value` (added, or replaced).
pub fn with_query(url: &Url, name: &str, value: &str) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut url = url.clone();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(name, value);
    url
}

/// The number in the URL's query parameter `name`, if any.
pub fn query_number(url: &Url, name: &str) -> Option<u64> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// Joins a base URL (the prefix before the documented path) with path segments, each
/// percent-encoded as one segment.
pub fn join_url(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    {
        let mut path = url
            .path_segments_mut()
            .expect("base URLs are checked at start to be http(s)");
        path.pop_if_empty();
        for s in segments {
            path.push(s);
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_url_keeps_the_base_path_and_encodes_segments() {
        let base = Url::parse("https://api.clockify.me/api").unwrap();
        let url = join_url(&base, &["v1", "workspaces", "a/b c", "clients"]);
        assert_eq!(
            url.as_str(),
            "https://api.clockify.me/api/v1/workspaces/a%2Fb%20c/clients"
        );
        let base = Url::parse("http://127.0.0.1:9/").unwrap();
        assert_eq!(
            join_url(&base, &["client"]).as_str(),
            "http://127.0.0.1:9/client"
        );
    }
}
