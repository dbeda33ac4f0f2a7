//! The subscriptions of one session, by channel: a short list for the usual handful, a
//! hash table past [`MAX_LISTED`]. A hash table's smallest allocation holds four entries
//! and its control bytes (about 350 bytes for one subscription); the list holds what it
//! holds, and nothing once it is empty. Order is not kept, as a hash table would not.

use std::collections::HashMap;

/// Subscriptions kept in the list; the next one moves them into a hash table (a linear
/// scan of this many channel names costs less than hashing one).
pub(super) const MAX_LISTED: usize = 16;

/// Channel → `V`.
#[derive(Debug)]
pub(super) enum Subs<V> {
    /// Up to [`MAX_LISTED`] entries, unordered.
    List(Vec<(String, V)>),
    /// Past that.
    Map(HashMap<String, V>),
}

impl<V> Default for Subs<V> {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

impl<V> Subs<V> {
    /// How many channels.
    pub(super) fn len(&self) -> usize {
        match self {
            Self::List(list) => list.len(),
            Self::Map(map) => map.len(),
        }
    }

    /// The entry of `channel`.
    pub(super) fn get(&self, channel: &str) -> Option<&V> {
        match self {
            Self::List(list) => list.iter().find(|(c, _)| c == channel).map(|(_, v)| v),
            Self::Map(map) => map.get(channel),
        }
    }

    /// The entry of `channel`, to change it.
    pub(super) fn get_mut(&mut self, channel: &str) -> Option<&mut V> {
        match self {
            Self::List(list) => list.iter_mut().find(|(c, _)| c == channel).map(|(_, v)| v),
            Self::Map(map) => map.get_mut(channel),
        }
    }

    /// Whether `channel` is in.
    pub(super) fn contains_key(&self, channel: &str) -> bool {
        self.get(channel).is_some()
    }

    /// Sets the entry of `channel`, returning the one it replaces.
    pub(super) fn insert(&mut self, channel: String, value: V) -> Option<V> {
        if let Some(old) = self.get_mut(&channel) {
            return Some(std::mem::replace(old, value));
        }
        match self {
            Self::List(list) if list.len() < MAX_LISTED => {
                // Most connections hold one or two: room for what is there, no more.
                list.reserve_exact(1);
                list.push((channel, value));
            }
            Self::List(list) => {
                let mut map: HashMap<String, V> = std::mem::take(list).into_iter().collect();
                map.insert(channel, value);
                *self = Self::Map(map);
            }
            Self::Map(map) => {
                map.insert(channel, value);
            }
        }
        None
    }

    /// Takes the entry of `channel` out.
    pub(super) fn remove(&mut self, channel: &str) -> Option<V> {
        match self {
            Self::List(list) => {
                let at = list.iter().position(|(c, _)| c == channel)?;
                let (_, value) = list.swap_remove(at);
                if list.is_empty() {
                    *list = Vec::new();
                }
                Some(value)
            }
            Self::Map(map) => map.remove(channel),
        }
    }

    /// Every (channel, entry), in no particular order.
    pub(super) fn iter(&self) -> Iter<'_, V> {
        match self {
            Self::List(list) => Iter::List(list.iter()),
            Self::Map(map) => Iter::Map(map.iter()),
        }
    }

    /// Every channel.
    pub(super) fn keys(&self) -> impl Iterator<Item = &String> {
        self.iter().map(|(c, _)| c)
    }

    /// Every entry.
    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

/// See [`Subs::iter`].
pub(super) enum Iter<'a, V> {
    List(std::slice::Iter<'a, (String, V)>),
    Map(std::collections::hash_map::Iter<'a, String, V>),
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a String, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::List(it) => it.next().map(|(c, v)| (c, v)),
            Self::Map(it) => it.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_map_below_and_past_the_list_bound() {
        let mut subs = Subs::default();
        let mut model = HashMap::new();
        for round in 0..3u32 {
            for i in 0..(MAX_LISTED as u32 + 5) {
                let k = format!("ch-{i}");
                assert_eq!(subs.insert(k.clone(), i + round), model.insert(k, i + round), "insert {i}");
                assert_eq!(subs.len(), model.len());
                assert_eq!(matches!(subs, Subs::Map(_)), subs.len() > MAX_LISTED, "a table only past the bound");
            }
            for i in (0..(MAX_LISTED as u32 + 5)).step_by(2) {
                let k = format!("ch-{i}");
                assert_eq!(subs.remove(&k), model.remove(&k), "remove {i}");
                assert_eq!(subs.remove(&k), None, "removed once");
            }
            for (k, v) in &model {
                assert_eq!(subs.get(k), Some(v));
                assert!(subs.contains_key(k));
            }
            assert_eq!(subs.get("nope"), None);
            let mut seen: Vec<_> = subs.iter().map(|(k, v)| (k.clone(), *v)).collect();
            let mut want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
            seen.sort();
            want.sort();
            assert_eq!(seen, want, "iter yields each entry once");
            assert_eq!(subs.keys().count(), model.len());
            *subs.get_mut("ch-1").expect("in") += 100;
            *model.get_mut("ch-1").expect("in") += 100;
            assert_eq!(subs.values().sum::<u32>(), model.values().sum::<u32>());
            subs = Subs::default();
            model.clear();
        }
    }

    #[test]
    fn a_short_list_holds_what_it_holds_and_nothing_once_empty() {
        let mut subs = Subs::default();
        subs.insert("a".to_owned(), 1u8);
        let Subs::List(list) = &subs else { panic!("a list") };
        assert_eq!(list.capacity(), 1, "one subscription, one slot");
        subs.remove("a");
        let Subs::List(list) = &subs else { panic!("a list") };
        assert_eq!(list.capacity(), 0, "given back");
    }
}
