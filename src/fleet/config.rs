//! Where the fleet's Redis is and how to reach it: `redis://host:port/db`, `rediss://` (TLS), `unix:///path`
//! (`?db=N`), a user and password in the URL (config file) or the password in a file — never in clear on a
//! command line, where every local user can read it in the process list.

use std::path::Path;
use std::time::Duration;

use redis::IntoConnectionInfo;

/// The default stream name.
pub const DEFAULT_STREAM: &str = "jwtd:revocations";
/// How long the stream keeps every entry, whatever the rules (a daemon down for less catches every
/// unrevocation; see docs/FLEET.md, "Trimming").
pub const DEFAULT_KEEP: Duration = Duration::from_secs(86_400);

/// A fleet's settings.
#[derive(Clone)]
pub struct FleetConfig {
    pub info: redis::ConnectionInfo,
    /// The URL for logs and STATS: the password replaced by `***`.
    pub shown: String,
    pub stream: String,
    pub keep: Duration,
    /// Trust anchors (PEM) for `rediss://` instead of the system's: a private CA.
    pub ca_pem: Option<Vec<u8>>,
    /// Replicas that must hold an entry (Redis `WAIT`) before it counts as published; 0: the primary's
    /// answer is enough.
    pub min_replicas: u32,
}

/// The most replicas `min_replicas` may ask for.
pub const MAX_REPLICAS: u32 = 64;

/// Checks a `min_replicas` setting.
pub fn check_min_replicas(n: u32) -> Result<u32, String> {
    if n > MAX_REPLICAS {
        return Err(format!(
            "min_replicas {n}: at most {MAX_REPLICAS} (the replicas that must hold an entry before it counts as published)"
        ));
    }
    Ok(n)
}

impl std::fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetConfig")
            .field("redis", &self.shown)
            .field("stream", &self.stream)
            .field("keep", &self.keep)
            .field("min_replicas", &self.min_replicas)
            .finish()
    }
}

impl PartialEq for FleetConfig {
    fn eq(&self, o: &FleetConfig) -> bool {
        self.shown == o.shown
            && self.stream == o.stream
            && self.keep == o.keep
            && self.ca_pem == o.ca_pem
            && self.min_replicas == o.min_replicas
            && self.info.redis_settings().password() == o.info.redis_settings().password()
    }
}

/// Where the password may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag: a password in the URL is refused.
    CommandLine,
    /// The configuration file (private to the operator).
    File,
}

/// Replaces the password of a URL with `***` (the user stays: it helps, and is no secret).
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let hidden = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_string()
            };
            format!("{}{hidden}{}", &url[..scheme_end], &rest[at..])
        }
        None => url.to_string(),
    }
}

/// Checks a stream name: printable ASCII without spaces, at most 200 bytes.
pub fn check_stream(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 200 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{s:?}: a stream name is 1 to 200 printable ASCII characters without spaces"
        ));
    }
    Ok(())
}

/// Reads a fleet's settings.
pub fn parse(
    url: &str,
    password_file: Option<&Path>,
    ca_file: Option<&Path>,
    stream: Option<&str>,
    keep: Option<Duration>,
    origin: Origin,
) -> Result<FleetConfig, String> {
    let shown = redact(url);
    let lower = url.to_ascii_lowercase();
    if !["redis://", "rediss://", "unix://", "redis+unix://"]
        .iter()
        .any(|s| lower.starts_with(s))
    {
        return Err(format!(
            "{shown}: a Redis URL starts with redis://, rediss:// (TLS) or unix://"
        ));
    }
    let mut info = url
        .into_connection_info()
        .map_err(|e| format!("{shown}: not a Redis URL ({e})"))?;
    if info.redis_settings().password().is_some() && origin == Origin::CommandLine {
        return Err(format!(
            "{shown}: a password on the command line is visible to every local user (ps); put it in a file \
             (--fleet-redis-password-file) or in the configuration file"
        ));
    }
    if let Some(path) = password_file {
        let bytes = crate::keys::file::read_regular(path)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("{}: the password is not UTF-8", path.display()))?;
        let password = text.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            return Err(format!("{}: the password file is empty", path.display()));
        }
        let settings = info.redis_settings().clone().set_password(password);
        info = info.set_redis_settings(settings);
    }
    let ca_pem = match ca_file {
        None => None,
        Some(path) => {
            if !lower.starts_with("rediss://") {
                return Err(format!(
                    "{}: a CA file is for TLS: the URL must start with rediss://",
                    path.display()
                ));
            }
            let pem = crate::keys::file::read_regular(path)?;
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(format!("{}: no PEM certificate in it", path.display()));
            }
            Some(pem)
        }
    };
    let stream = stream.unwrap_or(DEFAULT_STREAM).to_string();
    check_stream(&stream)?;
    let keep = keep.unwrap_or(DEFAULT_KEEP);
    if keep < Duration::from_secs(1) {
        return Err("the stream keeps entries at least 1 second (keep)".into());
    }
    Ok(FleetConfig {
        info,
        shown,
        stream,
        keep,
        ca_pem,
        min_replicas: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_and_refused_on_the_command_line() {
        assert_eq!(
            redact("redis://u:s3cret@host:6379/2"),
            "redis://u:***@host:6379/2"
        );
        assert_eq!(redact("redis://:s3cret@host"), "redis://:***@host");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        let e = parse(
            "redis://:s3cret@127.0.0.1:6379",
            None,
            None,
            None,
            None,
            Origin::CommandLine,
        )
        .unwrap_err();
        assert!(e.contains("password-file") && !e.contains("s3cret"), "{e}");
        let c = parse(
            "redis://:s3cret@127.0.0.1:6379",
            None,
            None,
            None,
            None,
            Origin::File,
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(parse("http://x", None, None, None, None, Origin::File).is_err());
        assert!(
            parse(
                "unix:///tmp/r.sock",
                None,
                None,
                Some("has space"),
                None,
                Origin::File
            )
            .is_err()
        );
    }

    #[test]
    fn min_replicas_is_bounded() {
        assert_eq!(check_min_replicas(0), Ok(0));
        assert_eq!(check_min_replicas(MAX_REPLICAS), Ok(MAX_REPLICAS));
        let e = check_min_replicas(MAX_REPLICAS + 1).unwrap_err();
        assert!(e.contains("at most 64"), "{e}");
    }

    #[test]
    fn the_password_file_is_read() {
        let dir = std::env::temp_dir().join(format!("jwtd-fleet-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "hunter2\n").unwrap();
        let c = parse(
            "unix:///tmp/r.sock",
            Some(&f),
            None,
            None,
            None,
            Origin::CommandLine,
        )
        .unwrap();
        assert_eq!(c.info.redis_settings().password(), Some("hunter2"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
