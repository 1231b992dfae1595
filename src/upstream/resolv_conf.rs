//! `resolv.conf(5)` for ringgate's own resolver, as glibc reads it: the name servers, the search
//! list and the options that shape a lookup (`ndots`, `timeout`, `attempts`); and the search-list
//! expansion glibc's `res_nsearch` applies to a name. Pure: text in, settings out; the caller
//! reads the file.
//!
//! Not taken over from glibc: a search list derived from the host name when the file has none,
//! the `RES_OPTIONS`/`LOCALDOMAIN` environment variables, and options other than the three above.

use std::net::IpAddr;
use std::time::Duration;

/// At most this many name servers are used (glibc's `MAXNS`).
pub const MAX_SERVERS: usize = 3;
/// At most this many search domains are tried (the classic `MAXDNSRCH`): each one costs a
/// lookup, and a name that exists nowhere tries them all.
pub const MAX_SEARCH: usize = 6;

/// What a resolv.conf says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// In file order; empty: the file names none (glibc then asks the local machine).
    pub nameservers: Vec<IpAddr>,
    /// Domains tried after (or before, see [`candidates`]) the name itself, lowercased, no dots at
    /// either end.
    pub search: Vec<String>,
    /// A name with at least this many dots is tried as given first (default 1, at most 15).
    pub ndots: usize,
    /// `timeout:n`: how long one server has for one try (at most 30 s); `None`: not in the file.
    pub timeout: Option<Duration>,
    /// `attempts:n`: passes over the server list (at most 5); `None`: not in the file.
    pub attempts: Option<u32>,
}

impl Default for ResolvConf {
    fn default() -> Self {
        ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: None,
            attempts: None,
        }
    }
}

/// Parses a resolv.conf. Lines it does not understand are skipped, as glibc skips them.
pub fn parse(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                // A scoped IPv6 address (`fe80::1%eth0`) does not parse and is skipped.
                if let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>)
                    && conf.nameservers.len() < MAX_SERVERS
                {
                    conf.nameservers.push(ip);
                }
            }
            // The last `domain` or `search` line wins, as in glibc.
            Some("domain") => conf.search = domains(words.take(1)),
            Some("search") => conf.search = domains(words),
            Some("options") => {
                for option in words {
                    let (name, value) = option.split_once(':').unwrap_or((option, ""));
                    let value = value.parse::<u64>().ok();
                    match (name, value) {
                        ("ndots", Some(n)) => conf.ndots = n.min(15) as usize,
                        ("timeout", Some(n)) => {
                            conf.timeout = Some(Duration::from_secs(n.clamp(1, 30)));
                        }
                        ("attempts", Some(n)) => conf.attempts = Some(n.clamp(1, 5) as u32),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    conf
}

fn domains<'a>(words: impl Iterator<Item = &'a str>) -> Vec<String> {
    words
        .map(|d| d.trim_matches('.').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .take(MAX_SEARCH)
        .collect()
}

/// The names to look up for `name`, in order, as glibc's `res_nsearch` tries them: a name ending
/// in a dot only as given; a name with at least `ndots` dots as given first, then with each search
/// domain; one with fewer, with each search domain first and as given last. The first that has
/// addresses wins. Returned without a trailing dot.
pub fn candidates(name: &str, search: &[String], ndots: usize) -> Vec<String> {
    if let Some(absolute) = name.strip_suffix('.') {
        return vec![absolute.to_owned()];
    }
    let searched = search.iter().map(|d| format!("{name}.{d}"));
    let dots = name.bytes().filter(|&b| b == b'.').count();
    if dots >= ndots {
        std::iter::once(name.to_owned()).chain(searched).collect()
    } else {
        searched.chain(std::iter::once(name.to_owned())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_as_glibc_reads_them() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let secs = |n| Some(Duration::from_secs(n));
        // One row per file: the text, then servers, search list, ndots, timeout, attempts.
        type Row = (
            &'static str,
            &'static [&'static str],
            &'static [&'static str],
            usize,
            Option<Duration>,
            Option<u32>,
        );
        let rows: &[Row] = &[
            ("", &[], &[], 1, None, None),
            (
                "nameserver 10.0.0.1\nnameserver ::1\n",
                &["10.0.0.1", "::1"],
                &[],
                1,
                None,
                None,
            ),
            (
                "# c\n; c\nnameserver 1.1.1.1\nnameserver 2.2.2.2\nnameserver 3.3.3.3\nnameserver 4.4.4.4",
                &["1.1.1.1", "2.2.2.2", "3.3.3.3"],
                &[],
                1,
                None,
                None,
            ),
            (
                "nameserver fe80::1%eth0\nnameserver bogus\n  nameserver 10.0.0.9",
                &["10.0.0.9"],
                &[],
                1,
                None,
                None,
            ),
            (
                "search Corp.Example. b.example\noptions ndots:2 timeout:3 attempts:4 rotate",
                &[],
                &["corp.example", "b.example"],
                2,
                secs(3),
                Some(4),
            ),
            ("domain x.test\n", &[], &["x.test"], 1, None, None),
            (
                "search a.test\ndomain b.test",
                &[],
                &["b.test"],
                1,
                None,
                None,
            ),
            ("search .", &[], &[], 1, None, None),
            (
                "search a b c d e f g h",
                &[],
                &["a", "b", "c", "d", "e", "f"],
                1,
                None,
                None,
            ),
            (
                "options ndots:99 timeout:0 attempts:99",
                &[],
                &[],
                15,
                secs(1),
                Some(5),
            ),
            (
                "options timeout:99 ndots:x attempts",
                &[],
                &[],
                1,
                secs(30),
                None,
            ),
        ];
        for (text, servers, search, ndots, timeout, attempts) in rows {
            let c = parse(text);
            let want: Vec<IpAddr> = servers.iter().map(|a| a.parse().unwrap()).collect();
            assert_eq!(c.nameservers, want, "{text:?}");
            assert_eq!(c.search, s(search), "{text:?}");
            assert_eq!(
                (c.ndots, c.timeout, c.attempts),
                (*ndots, *timeout, *attempts),
                "{text:?}"
            );
        }
    }

    #[test]
    fn search_list_and_ndots_order_the_names_tried() {
        let search = vec!["corp.test".to_owned(), "b.test".to_owned()];
        // One row per case: name, ndots, the names tried in order.
        let rows: &[(&str, usize, &[&str])] = &[
            ("www", 1, &["www.corp.test", "www.b.test", "www"]),
            ("www.x", 1, &["www.x", "www.x.corp.test", "www.x.b.test"]),
            ("www.x", 2, &["www.x.corp.test", "www.x.b.test", "www.x"]),
            ("a.b.c", 2, &["a.b.c", "a.b.c.corp.test", "a.b.c.b.test"]),
            ("www.", 1, &["www"]),
            ("www.x.", 5, &["www.x"]),
            ("www", 0, &["www", "www.corp.test", "www.b.test"]),
        ];
        for (name, ndots, want) in rows {
            assert_eq!(
                candidates(name, &search, *ndots),
                *want,
                "{name} ndots {ndots}"
            );
        }
        assert_eq!(candidates("www", &[], 1), ["www"]);
    }
}
