//! Channel names and the options that apply to them.
//!
//! A name is `[$][namespace:]name[#user1,user2]`: `$` marks a private channel (needs a
//! subscription token), the part before the first `:` picks the namespace, and users after
//! `#` limit who may subscribe. Options are resolved once per channel from the config;
//! regexes are compiled once at start.

use std::collections::HashMap;

use regex::Regex;

use super::Error;
use crate::config::{ChannelConfig, ChannelOptions};

/// A namespace's options with its compiled regex.
#[derive(Debug)]
pub struct Resolved {
    /// Namespace name (empty for channels without one).
    pub namespace: String,
    /// The options.
    pub options: ChannelOptions,
    /// Compiled `channel_regex`.
    pub regex: Option<Regex>,
}

/// A parsed channel name, borrowing from the original string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelName<'a> {
    /// The whole name.
    pub full: &'a str,
    /// Starts with the private prefix.
    pub private: bool,
    /// The part after `namespace:` (and after the private prefix).
    pub name: &'a str,
    /// The users after the user boundary, if any (`"1,2"`).
    pub users: Option<&'a str>,
}

/// Channel rules resolved from `channel.*`.
#[derive(Debug)]
pub struct Channels {
    config: ChannelConfig,
    without_namespace: Resolved,
    namespaces: HashMap<String, Resolved>,
}

fn resolve(namespace: &str, options: &ChannelOptions) -> Resolved {
    Resolved {
        namespace: namespace.to_owned(),
        options: options.clone(),
        // Validated at config load; an invalid one cannot get here, so "no regex" is safe.
        regex: (!options.channel_regex.is_empty()).then(|| Regex::new(&options.channel_regex).ok()).flatten(),
    }
}

impl Channels {
    /// Resolves every namespace of the config.
    pub fn new(config: &ChannelConfig) -> Self {
        Self {
            without_namespace: resolve("", &config.without_namespace),
            namespaces: config.namespaces.iter().map(|ns| (ns.name.clone(), resolve(&ns.name, &ns.options))).collect(),
            config: config.clone(),
        }
    }

    /// Longest channel name accepted, in bytes.
    pub fn max_length(&self) -> usize {
        self.config.max_length
    }

    /// Parses a name and finds its options: 107 for an empty, too long or non-ASCII name,
    /// 102 for an unknown namespace.
    pub fn parse<'a>(&self, channel: &'a str) -> Result<(ChannelName<'a>, &Resolved), Error> {
        if channel.is_empty() {
            return Err(Error::BadRequest("empty channel"));
        }
        if channel.len() > self.config.max_length {
            return Err(Error::BadRequest("channel name too long"));
        }
        if !channel.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::BadRequest("channel name must be printable ASCII"));
        }
        let cfg = &self.config;
        let (private, rest) = match channel.strip_prefix(cfg.private_prefix.as_str()) {
            Some(rest) if !cfg.private_prefix.is_empty() => (true, rest),
            _ => (false, channel),
        };
        let (resolved, name) = match rest.split_once(cfg.namespace_boundary.as_str()) {
            Some((ns, name)) if !cfg.namespace_boundary.is_empty() => {
                (self.namespaces.get(ns).ok_or(Error::UnknownChannel)?, name)
            }
            _ => (&self.without_namespace, rest),
        };
        let users = if cfg.user_boundary.is_empty() {
            None
        } else {
            name.split_once(cfg.user_boundary.as_str()).map(|(_, users)| users)
        };
        Ok((ChannelName { full: channel, private, name, users }, resolved))
    }

    /// Whether `user` is listed in a user-limited channel's user part.
    pub fn user_allowed(&self, name: &ChannelName<'_>, user: &str) -> bool {
        match name.users {
            Some(users) => !user.is_empty() && users.split(self.config.user_separator.as_str()).any(|u| u == user),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Namespace;

    fn channels() -> Channels {
        let mut cfg = ChannelConfig::default();
        cfg.namespaces.push(Namespace {
            name: "chat".into(),
            options: ChannelOptions { presence: true, channel_regex: "^[a-z]+$".into(), ..Default::default() },
        });
        Channels::new(&cfg)
    }

    #[test]
    fn parses_namespace_private_and_users() {
        let c = channels();
        let (name, ns) = c.parse("$chat:room#1,2").expect("valid");
        assert!(name.private);
        assert_eq!(ns.namespace, "chat");
        assert_eq!(name.name, "room#1,2");
        assert!(c.user_allowed(&name, "2"));
        assert!(!c.user_allowed(&name, "3"));
        assert!(!c.user_allowed(&name, ""));
        let (name, ns) = c.parse("news").expect("valid");
        assert!(!name.private);
        assert_eq!(ns.namespace, "");
        assert!(ns.regex.is_none());
        assert!(c.parse("chat:x").expect("valid").1.regex.as_ref().is_some_and(|r| r.is_match("x")));
    }

    #[test]
    fn rejects_bad_names() {
        let c = channels();
        assert_eq!(c.parse("nope:x").err(), Some(Error::UnknownChannel));
        assert!(matches!(c.parse(""), Err(Error::BadRequest(_))));
        assert!(matches!(c.parse(&"a".repeat(256)), Err(Error::BadRequest(_))));
        assert!(c.parse(&"a".repeat(255)).is_ok());
        assert!(matches!(c.parse("caf\u{e9}"), Err(Error::BadRequest(_))));
        assert!(matches!(c.parse("a b"), Err(Error::BadRequest(_))));
    }
}
