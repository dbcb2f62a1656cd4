//! URLs as muster's settings and probes write them
//! (`scheme://[userinfo@]host[:port][/rest]`): splitting them into parts, and
//! hiding their passwords. A leaf: it imports nothing of the crate, so the
//! settings, the probes, the notifier and the CLI share one reading of a URL
//! and one redaction.

/// A URL with its password replaced by `***`, for logs and output.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None if !userinfo.is_empty() => format!("{scheme}://***@{host}"),
        None => url.to_string(),
    }
}

/// A URL reduced to what may be logged when its path and query can hold
/// tokens (webhooks: Slack's `/services/T…/B…/secret`, `?token=`): the
/// password hidden as in [`redact_url`], and everything after the host and
/// port written as `/…`.
pub fn redact_url_path(url: &str) -> String {
    let shown = redact_url(url);
    let Some((scheme, rest)) = shown.split_once("://") else {
        return shown;
    };
    // The authority ends at the first '/', '?' or '#' after the user info.
    let after_user = rest.rfind('@').map_or(0, |at| at + 1);
    match rest[after_user..].find(['/', '?', '#']) {
        Some(i) if !matches!(&rest[after_user + i..], "/" | "") => {
            format!("{scheme}://{}/…", &rest[..after_user + i])
        }
        _ => shown,
    }
}

/// The password (or token, for `scheme://token@host`) of a URL, when it has
/// one: what [`redact_url`] hides, for hiding it in other text too.
pub fn secret(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (userinfo, _) = rest.rsplit_once('@')?;
    let secret = userinfo.split_once(':').map_or(userinfo, |(_, pw)| pw);
    (!secret.is_empty()).then_some(secret)
}

/// Splits a URL into (scheme, userinfo, host, port, rest) — enough for the
/// `scheme://[userinfo@]host[:port][/rest]` URLs probes take.
pub(crate) struct UrlParts<'a> {
    pub scheme: &'a str,
    pub userinfo: Option<&'a str>,
    pub host: &'a str,
    pub port: Option<u16>,
    pub rest: &'a str,
}

pub(crate) fn split_url(url: &str) -> Result<UrlParts<'_>, String> {
    let (scheme, after) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not a URL (expected scheme://host:port)"))?;
    let auth_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(auth_end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = split_host_port(hostport)?;
    if host.is_empty() {
        return Err("the URL has no host".to_string());
    }
    Ok(UrlParts {
        scheme,
        userinfo,
        host,
        port,
        rest,
    })
}

/// `host`, `host:port`, `[v6]:port`.
pub(crate) fn split_host_port(hostport: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("bad IPv6 address in {hostport:?}"))?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, Some(parse_port(p)?))),
            None => Ok((host, None)),
        };
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) => Ok((host, Some(parse_port(port)?))),
        None => Ok((hostport, None)),
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    p.parse()
        .map_err(|_| format!("bad port {p:?} (expected a number 1-65535)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_path_hides_password_path_and_query() {
        assert_eq!(
            redact_url_path("https://ops:s3cret@hooks.example:8443/services/T0/B1/XyZ?token=abc"),
            "https://ops:***@hooks.example:8443/…"
        );
        assert_eq!(
            redact_url_path("http://hooks.example?token=abc"),
            "http://hooks.example/…"
        );
        assert_eq!(
            redact_url_path("http://hooks.example/"),
            "http://hooks.example/"
        );
        assert_eq!(
            redact_url_path("http://hooks.example:80"),
            "http://hooks.example:80"
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("redis://u:secret@h:6379/0"),
            "redis://u:***@h:6379/0"
        );
        assert_eq!(redact_url("redis://:secret@h:6379"), "redis://:***@h:6379");
        assert_eq!(redact_url("nats://token@h:4222"), "nats://***@h:4222");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(secret("redis://u:secret@h:6379/0"), Some("secret"));
        assert_eq!(secret("nats://token@h:4222"), Some("token"));
        assert_eq!(secret("redis://:@h:6379"), None);
        assert_eq!(secret("redis://h:6379"), None);
    }

    #[test]
    fn splits_urls() {
        let p = split_url("nats://tok@[::1]:4222").unwrap();
        assert_eq!(
            (p.host, p.port, p.userinfo),
            ("::1", Some(4222), Some("tok"))
        );
        assert!(split_url("redis:6379").is_err());
        assert!(split_url("redis://h:99999").is_err());
    }
}
