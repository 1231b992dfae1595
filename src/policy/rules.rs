//! Rules (`[[rules]]`): as written in the config ([`RuleSpec`]), and built ([`Rule`]): first match
//! wins; a rule matches on user (or group), client network, destination host name, destination
//! network (after resolution), port ranges and method.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::destinations::canonical;
use super::ranges::{in_ranges, nets, ports};
use super::{Denial, PolicyError, Request, Verdict};

/// What a rule, or `default_action`, does with a request it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
}

/// One `[[rules]]` entry as written in the config. Empty lists match anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Shown in logs when the rule denies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dest: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Rule {
    pub(super) label: String,
    pub(super) action: Action,
    /// `None`: any user, authenticated or not.
    users: Option<Vec<String>>,
    clients: Vec<IpNet>,
    hosts: Vec<HostPattern>,
    dest: Vec<IpNet>,
    ports: Vec<(u16, u16)>,
    connect: bool,
    forward: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com`: any name below `example.com` (stored as `.example.com`), not itself.
    Below(String),
}

pub(super) fn verdict(action: Action, label: &str) -> Verdict {
    match action {
        Action::Allow => Verdict::Allow,
        Action::Deny => Verdict::Deny(Denial::Rule(label.to_owned())),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Match {
    No,
    Yes,
    /// Everything but the destination address matches, and that is not known yet.
    NeedAddress,
}

impl Rule {
    pub(super) fn new(
        i: usize,
        spec: &RuleSpec,
        groups: &BTreeMap<String, Vec<String>>,
    ) -> Result<Rule, PolicyError> {
        let key = |field: &str| format!("rules[{i}].{field}");
        let mut users: Vec<String> = spec.users.clone();
        for g in &spec.groups {
            let members = groups.get(g).ok_or_else(|| PolicyError {
                key: key("groups"),
                reason: format!("no group {g:?} in [groups]"),
            })?;
            users.extend(members.iter().cloned());
        }
        let (mut connect, mut forward) = (spec.methods.is_empty(), spec.methods.is_empty());
        for m in &spec.methods {
            match m.to_ascii_lowercase().as_str() {
                "connect" => connect = true,
                "forward" => forward = true,
                _ => {
                    return Err(PolicyError {
                        key: key("methods"),
                        reason: format!("{m:?}: CONNECT or forward"),
                    });
                }
            }
        }
        let hosts = spec
            .hosts
            .iter()
            .map(|h| {
                host_pattern(h).ok_or_else(|| PolicyError {
                    key: key("hosts"),
                    reason: format!("{h:?}: a host name or *.suffix"),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Rule {
            label: spec
                .name
                .clone()
                .unwrap_or_else(|| format!("rule {}", i + 1)),
            action: spec.action,
            users: (!spec.users.is_empty() || !spec.groups.is_empty()).then_some(users),
            clients: nets(&key("clients"), &spec.clients)?,
            hosts,
            dest: nets(&key("dest"), &spec.dest)?,
            ports: ports(&key("ports"), &spec.ports)?,
            connect,
            forward,
        })
    }

    pub(super) fn matches(&self, req: &Request<'_>, ip: Option<IpAddr>) -> Match {
        let method = if req.connect {
            self.connect
        } else {
            self.forward
        };
        let user = match (&self.users, req.user) {
            (None, _) => true,
            (Some(list), Some(u)) => list.iter().any(|l| l == u),
            (Some(_), None) => false,
        };
        let client = canonical(req.client);
        let fixed = method
            && user
            && (self.clients.is_empty() || self.clients.iter().any(|n| n.contains(&client)))
            && (self.ports.is_empty() || in_ranges(&self.ports, req.port))
            && (self.hosts.is_empty()
                || req
                    .host
                    .is_some_and(|h| self.hosts.iter().any(|p| p.matches(h))));
        if !fixed {
            return Match::No;
        }
        if self.dest.is_empty() {
            return Match::Yes;
        }
        match ip {
            None => Match::NeedAddress,
            Some(ip) if self.dest.iter().any(|n| n.contains(&canonical(ip))) => Match::Yes,
            Some(_) => Match::No,
        }
    }
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        match self {
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name),
            HostPattern::Below(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

fn host_pattern(text: &str) -> Option<HostPattern> {
    let text = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    let (below, name) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return None;
    }
    Some(if below {
        HostPattern::Below(format!(".{name}"))
    } else {
        HostPattern::Exact(name.to_owned())
    })
}
