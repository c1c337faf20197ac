//! The in-process bus: nodes in one process, each with an inbox function.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use tandem_ids::NodeId;

use super::{Bus, Envelope};

/// Where a node receives envelopes.
pub type Inbox = Arc<dyn Fn(Envelope) + Send + Sync>;

/// Delivers envelopes by calling the receiving node's inbox directly: in order, nothing
/// lost while the node is attached, and dropped (as on a network) when it is not.
#[derive(Default)]
pub struct LocalBus {
    inboxes: RwLock<HashMap<NodeId, Inbox>>,
}

impl LocalBus {
    /// An empty bus.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Attaches a node's inbox (replacing any earlier one of that id).
    pub fn attach(&self, node: NodeId, inbox: Inbox) {
        self.inboxes.write().insert(node, inbox);
    }

    /// Detaches a node: envelopes for it are dropped from now on.
    pub fn detach(&self, node: &NodeId) {
        self.inboxes.write().remove(node);
    }
}

impl Bus for LocalBus {
    fn send(&self, to: &NodeId, envelope: Envelope) {
        let inbox = self.inboxes.read().get(to).cloned();
        if let Some(inbox) = inbox {
            inbox(envelope);
        }
    }

    fn broadcast(&self, envelope: Envelope) {
        let inboxes: Vec<Inbox> = self.inboxes.read().values().cloned().collect();
        for inbox in inboxes {
            inbox(envelope.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix::{Actor, Context, Handler};
    use tandem_engine::session::{ChatInput, SessionEvent, SessionLink};
    use tandem_ids::{ChatId, SessionId};
    use tokio::sync::mpsc;

    use super::*;
    use crate::bus::RemoteLink;
    use crate::registry::Registry;

    /// Stands in for a user session: forwards what it receives to the test.
    struct Probe(mpsc::UnboundedSender<SessionEvent>);

    impl Actor for Probe {
        type Context = Context<Self>;
    }

    impl Handler<SessionEvent> for Probe {
        type Result = ();
        fn handle(&mut self, event: SessionEvent, _: &mut Context<Self>) {
            let _ = self.0.send(event);
        }
    }

    #[actix_rt::test]
    async fn a_relay_reaches_a_session_on_another_node_in_order() {
        let bus = LocalBus::new();
        let registry = Arc::new(Registry::new());
        let inbox = Arc::clone(&registry);
        bus.attach(
            NodeId("b".into()),
            Arc::new(move |envelope| {
                if let Envelope::ToSession { session, event } = envelope {
                    inbox.deliver(session, event);
                }
            }),
        );
        let (tx, mut rx) = mpsc::unbounded_channel();
        let session = SessionId(42);
        let who =
            tandem_engine::session::Identity::of(tandem_ids::ClientId::parse("probe").unwrap());
        registry.insert(session, Probe(tx).start().recipient(), Arc::new(who));

        // A session on node a holds this link for its partner on node b.
        let link = RemoteLink {
            node: NodeId("b".into()),
            session,
            bus: Arc::clone(&bus) as Arc<dyn Bus>,
        };
        let chat = ChatId(7);
        for n in 0..100 {
            link.deliver(SessionEvent::Relay {
                chat,
                item: ChatInput::Msg(format!("{n}")),
            });
        }
        for n in 0..100 {
            let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap();
            let SessionEvent::Relay {
                chat: got,
                item: ChatInput::Msg(text),
            } = event
            else {
                panic!("relay expected")
            };
            assert_eq!((got, text), (chat, n.to_string()));
        }
    }
}
