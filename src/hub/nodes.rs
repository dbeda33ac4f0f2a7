//! The other nodes on the same engine, as this node learns of them through
//! [`super::Broker::control`]: no cluster protocol of our own, only control messages the
//! engine already carries to every node (Redis PUB/SUB; the memory engine has one node).
//!
//! - **Announcements:** every node sends its [`NodeInfo`] every [`ANNOUNCE_INTERVAL`]; a
//!   node not heard from for [`MAX_SILENCE`] is forgotten, and one that shuts down
//!   gracefully says so and is forgotten at once.
//! - **Surveys:** a question to every node (e.g. its channels) that each answers to the
//!   asker; the asker waits for every node it knows of, or [`SURVEY_TIMEOUT`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::NodeInfo;

/// How often a node announces itself (Centrifugo's node info interval).
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(3);

/// A node silent this long is gone: two missed announcements and a second of slack.
pub const MAX_SILENCE: Duration = Duration::from_secs(7);

/// How long a survey waits for the nodes' answers.
pub const SURVEY_TIMEOUT: Duration = Duration::from_secs(3);

/// What a survey asks every node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SurveyQuery {
    /// Its channels matching a glob pattern, with their local subscriber counts.
    Channels(String),
    /// An `/emulation` request (its body as posted; Protobuf or JSON) for a session this
    /// node owns; asked of that node only.
    Emulation {
        /// The request body.
        body: Bytes,
        /// Whether it is Protobuf-encoded.
        protobuf: bool,
    },
}

/// One node's answer to a survey.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SurveyAnswer {
    /// Channel → local subscribers.
    Channels(Vec<(String, usize)>),
    /// The HTTP status the owning node gave the emulation request.
    Emulation(u16),
}

struct Survey {
    /// Nodes still to answer.
    waiting: Vec<String>,
    answers: mpsc::UnboundedSender<SurveyAnswer>,
}

/// The nodes this node knows of, and its surveys in flight.
#[derive(Default)]
pub(super) struct Nodes {
    known: Mutex<HashMap<String, (NodeInfo, Instant)>>,
    surveys: Mutex<HashMap<u64, Survey>>,
    next_survey: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is one map operation: a poisoned lock guards consistent data.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Nodes {
    /// Records another node's announcement (or its departure).
    pub(super) fn heard(&self, info: NodeInfo, leaving: bool) {
        let mut known = lock(&self.known);
        // Forget the silent ones here too, so the map stays as small as the live cluster
        // even when nobody asks for the node list (every restart is a new node id).
        known.retain(|_, (_, at)| at.elapsed() < MAX_SILENCE);
        if leaving {
            known.remove(&info.uid);
        } else {
            known.insert(info.uid.clone(), (info, Instant::now()));
        }
    }

    /// The other nodes heard from within [`MAX_SILENCE`], by name; forgets the rest.
    pub(super) fn live(&self) -> Vec<NodeInfo> {
        let mut known = lock(&self.known);
        known.retain(|_, (_, at)| at.elapsed() < MAX_SILENCE);
        let mut nodes: Vec<_> = known.values().map(|(info, _)| info.clone()).collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.uid.cmp(&b.uid)));
        nodes
    }

    /// Opens a survey of the live other nodes: its id and the stream of their answers
    /// (ending when all have answered). None when there is no other node.
    pub(super) fn open_survey(&self) -> Option<(u64, mpsc::UnboundedReceiver<SurveyAnswer>)> {
        self.open_survey_of(self.live().into_iter().map(|n| n.uid).collect())
    }

    /// Opens a survey of the given nodes (see [`Nodes::open_survey`]).
    pub(super) fn open_survey_of(&self, waiting: Vec<String>) -> Option<(u64, mpsc::UnboundedReceiver<SurveyAnswer>)> {
        if waiting.is_empty() {
            return None;
        }
        let id = self.next_survey.fetch_add(1, Ordering::Relaxed);
        let (answers, rx) = mpsc::unbounded_channel();
        lock(&self.surveys).insert(id, Survey { waiting, answers });
        Some((id, rx))
    }

    /// Takes one node's answer to survey `id` (ignored if the survey is over or the node
    /// already answered or was not asked).
    pub(super) fn answered(&self, id: u64, node: &str, answer: SurveyAnswer) {
        let mut surveys = lock(&self.surveys);
        let Some(survey) = surveys.get_mut(&id) else { return };
        let Some(pos) = survey.waiting.iter().position(|n| n == node) else { return };
        survey.waiting.swap_remove(pos);
        let _ = survey.answers.send(answer);
        if survey.waiting.is_empty() {
            surveys.remove(&id); // drops the sender: the asker's stream ends
        }
    }

    /// Whether `uid` is a live other node.
    pub(super) fn is_live(&self, uid: &str) -> bool {
        lock(&self.known).get(uid).is_some_and(|(_, at)| at.elapsed() < MAX_SILENCE)
    }

    /// Ends survey `id` (answered or timed out).
    pub(super) fn close_survey(&self, id: u64) {
        lock(&self.surveys).remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(uid: &str) -> NodeInfo {
        NodeInfo { uid: uid.into(), name: format!("n-{uid}"), ..Default::default() }
    }

    #[test]
    fn nodes_are_known_until_they_leave() {
        let nodes = Nodes::default();
        nodes.heard(node("b"), false);
        nodes.heard(node("a"), false);
        assert_eq!(nodes.live().iter().map(|n| n.uid.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        nodes.heard(node("a"), true);
        assert_eq!(nodes.live().len(), 1);
    }

    #[test]
    fn a_silent_node_is_forgotten() {
        let nodes = Nodes::default();
        nodes.heard(node("a"), false);
        lock(&nodes.known).get_mut("a").expect("a").1 -= MAX_SILENCE;
        assert!(nodes.live().is_empty());
    }

    #[test]
    fn silent_nodes_are_dropped_as_others_announce_themselves() {
        let nodes = Nodes::default();
        nodes.heard(node("old"), false);
        lock(&nodes.known).get_mut("old").expect("old").1 -= MAX_SILENCE;
        nodes.heard(node("new"), false);
        assert_eq!(lock(&nodes.known).keys().collect::<Vec<_>>(), ["new"], "the map does not keep dead node ids");
    }

    #[tokio::test]
    async fn a_survey_ends_when_every_node_answered_once() {
        let nodes = Nodes::default();
        assert!(nodes.open_survey().is_none(), "no other node: nothing to ask");
        nodes.heard(node("a"), false);
        nodes.heard(node("b"), false);
        let (id, mut rx) = nodes.open_survey().expect("survey");
        let answer = |n: usize| SurveyAnswer::Channels(vec![("c".into(), n)]);
        nodes.answered(id, "a", answer(1));
        nodes.answered(id, "a", answer(9));
        nodes.answered(id, "x", answer(9));
        nodes.answered(id, "b", answer(2));
        assert_eq!(rx.recv().await, Some(answer(1)));
        assert_eq!(rx.recv().await, Some(answer(2)));
        assert_eq!(rx.recv().await, None, "all answered: closed, repeats and strangers ignored");
    }
}
