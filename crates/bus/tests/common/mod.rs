//! The transport behaviour suite, run on every transport (see tests/memory.rs, tests/nats.rs).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bus::{
    BusMetrics, Delivery, Mailbox, Received, ReceiverTask, SenderTask, Subscription, Transport,
    TransportError, INBOX,
};
use db::{Db, Get, Schema};
use messages::{
    envelope::{seal, Body, Envelope, Identity, KeyRegistry},
    CoordinatorMessage, Party, ProcessorMessage, Status,
};
use primitives::{codec::Versioned, NetworkId};
use rand_core::OsRng;
use task::{RunConfig, Shutdown, TaskStats, TaskWaker};

pub const P: Party = Party::Processor { network: NetworkId::Bitcoin, validator: 1 };
pub const C: Party = Party::Coordinator;
const SCHEMA: Schema = Schema { app: "bus-test", version: 1 };

pub struct Node {
    pub party: Party,
    pub db: Db,
    pub mailbox: Mailbox,
    pub metrics: BusMetrics,
    _dir: tempfile::TempDir,
}

/// A processor and the coordinator, each pinning the other.
pub fn pair() -> (Node, Node) {
    let (p_id, c_id) =
        (Arc::new(Identity::generate(&mut OsRng)), Arc::new(Identity::generate(&mut OsRng)));
    let mut at_p = KeyRegistry::new();
    at_p.insert(C, c_id.public());
    let mut at_c = KeyRegistry::new();
    at_c.insert(P, p_id.public());
    let node = |party, id, registry| {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("db.redb"), SCHEMA).unwrap();
        let metrics = BusMetrics::default();
        let mailbox = Mailbox::new(party, id, Arc::new(registry), metrics.clone());
        Node { party, db, mailbox, metrics, _dir: dir }
    };
    (node(P, p_id, at_p), node(C, c_id, at_c))
}

pub fn ping(nonce: u64) -> Vec<u8> {
    ProcessorMessage::Status(Status::Ping { nonce }).encode()
}

pub fn pong(nonce: u64) -> Vec<u8> {
    CoordinatorMessage::Status(Status::Pong { nonce, protocol_version: 1 }).encode()
}

/// Every key and value in a database: to show that something changed nothing.
pub fn snapshot(db: &Db) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.read().unwrap().range_raw(b"").unwrap()
}

/// Publishing the same dedup id twice delivers once; another id is delivered.
pub async fn publish_dedup_by_intent<T: Transport>(t: T) {
    let mut sub = t.subscribe(C).await.unwrap();
    t.publish(C, [1; 32], b"one".to_vec()).await.unwrap();
    t.publish(C, [1; 32], b"one".to_vec()).await.unwrap();
    t.publish(C, [2; 32], b"two".to_vec()).await.unwrap();
    let mut got = vec![];
    while let Some(d) = sub.next(Duration::from_millis(500)).await.unwrap() {
        got.push(d.payload.clone());
        d.ack().await.unwrap();
    }
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
}

/// A delivery not acknowledged comes back to the next subscription; an acknowledged one
/// does not.
pub async fn unacked_is_redelivered_after_restart<T: Transport>(t: T) {
    t.publish(C, [3; 32], b"keep".to_vec()).await.unwrap();
    t.publish(C, [4; 32], b"done".to_vec()).await.unwrap();
    let mut sub = t.subscribe(C).await.unwrap();
    let first = sub.next(Duration::from_secs(5)).await.unwrap().expect("delivered");
    assert_eq!(first.payload, b"keep");
    let second = sub.next(Duration::from_secs(5)).await.unwrap().expect("delivered");
    assert_eq!(second.payload, b"done");
    second.ack().await.unwrap();
    drop(first); // The consumer dies without acking.
    drop(sub);
    let mut sub = t.subscribe(C).await.unwrap();
    let again = sub.next(Duration::from_secs(10)).await.unwrap().expect("redelivered");
    assert_eq!(again.payload, b"keep");
    again.ack().await.unwrap();
    assert!(sub.next(Duration::from_millis(500)).await.unwrap().is_none());
}

/// Wraps a transport so every ack checks, at that instant, that the receiver's inbox
/// already holds the acknowledged message.
#[derive(Clone)]
pub struct CheckingTransport<T> {
    inner: T,
    db: Db,
    pub acks: Arc<Mutex<Vec<(u64, bool)>>>,
}

pub struct CheckingSubscription<S> {
    inner: S,
    db: Db,
    acks: Arc<Mutex<Vec<(u64, bool)>>>,
}

impl<S> std::fmt::Debug for CheckingSubscription<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckingSubscription")
    }
}

impl<T: Transport> Transport for CheckingTransport<T> {
    type Subscription = CheckingSubscription<T::Subscription>;
    async fn publish(&self, r: Party, id: [u8; 32], p: Vec<u8>) -> Result<(), TransportError> {
        self.inner.publish(r, id, p).await
    }
    async fn subscribe(&self, me: Party) -> Result<Self::Subscription, TransportError> {
        let inner = self.inner.subscribe(me).await?;
        Ok(CheckingSubscription { inner, db: self.db.clone(), acks: self.acks.clone() })
    }
}

impl<S: Subscription> Subscription for CheckingSubscription<S> {
    async fn next(&mut self, wait: Duration) -> Result<Option<Delivery>, TransportError> {
        let Some(d) = self.inner.next(wait).await? else { return Ok(None) };
        let (payload, ack) = d.into_parts();
        let envelope = Envelope::decode(&payload).unwrap();
        let (db, acks) = (self.db.clone(), self.acks.clone());
        Ok(Some(Delivery::new(
            payload,
            Box::new(move || {
                if let Body::Message(_) = envelope.body {
                    let inbox: Vec<(u64, Received)> = INBOX.items(&db.read().unwrap()).unwrap();
                    let committed = inbox.iter().any(|(_, r)| r.sequence == envelope.sequence);
                    acks.lock().unwrap().push((envelope.sequence, committed));
                }
                ack()
            }),
        )))
    }
}

pub fn fast() -> RunConfig {
    RunConfig {
        idle_poll: Duration::from_millis(50),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(500),
    }
}

/// Starts a node's receiver alone, over `t`.
pub fn start_receiver<T: Transport>(node: &Node, t: T, shutdown: &Shutdown)
where
    T::Subscription: std::fmt::Debug,
{
    let receiver = ReceiverTask::new(
        node.db.clone(),
        t,
        node.mailbox.clone(),
        Duration::from_millis(100),
        TaskWaker::new(),
    );
    tokio::spawn(task::run(
        receiver,
        fast(),
        TaskWaker::new(),
        vec![],
        shutdown.clone(),
        Arc::new(TaskStats::default()),
    ));
}

/// Starts a node's sender and receiver; returns the sender's waker.
pub fn start<T: Transport>(node: &Node, t: T, shutdown: &Shutdown) -> TaskWaker
where
    T::Subscription: std::fmt::Debug,
{
    let waker = TaskWaker::new();
    let sender = SenderTask::new(
        node.db.clone(),
        t.clone(),
        node.mailbox.clone(),
        Duration::from_millis(700),
    );
    tokio::spawn(task::run(
        sender,
        fast(),
        waker.clone(),
        vec![],
        shutdown.clone(),
        Arc::new(TaskStats::default()),
    ));
    start_receiver(node, t, shutdown);
    waker
}

/// Acks happen only after the inbox commit; a delivery processed but not acked (a crash
/// between commit and ack) is redelivered and changes nothing the second time.
pub async fn ack_only_after_commit<T: Transport>(t: T)
where
    T::Subscription: std::fmt::Debug,
{
    let (p, c) = pair();
    let mut txn = p.db.write().unwrap();
    for n in 0..5 {
        p.mailbox.send(&mut txn, C, ping(n)).unwrap();
    }
    txn.commit().unwrap();
    let checking =
        CheckingTransport { inner: t.clone(), db: c.db.clone(), acks: Default::default() };
    let shutdown = Shutdown::new();
    start(&p, t.clone(), &shutdown);
    start_receiver(&c, checking.clone(), &shutdown);
    wait_for(|| INBOX.len(&c.db.read().unwrap()).unwrap() == 5, "5 messages in the inbox").await;
    wait_for(|| checking.acks.lock().unwrap().len() >= 5, "5 acks").await;
    shutdown.trigger();
    // Let the receivers finish their last iteration: on a broker, they would otherwise
    // compete with the subscription below for the same durable consumer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acks = checking.acks.lock().unwrap().clone();
    assert!(acks.iter().all(|(_, committed)| *committed), "acked before commit: {acks:?}");

    // A crash between commit and ack: the redelivery is a duplicate and changes nothing.
    let (p, c) = pair();
    let mut txn = p.db.write().unwrap();
    p.mailbox.send(&mut txn, C, ping(9)).unwrap();
    txn.commit().unwrap();
    let (_, out) = Mailbox::pending(&p.db.read().unwrap()).unwrap().remove(0);
    t.publish(C, [0x55; 32], out.envelope.clone()).await.unwrap();
    let mut sub = t.subscribe(C).await.unwrap();
    let d = sub.next(Duration::from_secs(5)).await.unwrap().unwrap();
    c.mailbox.receive(&c.db, &d.payload).unwrap();
    drop((d, sub));
    let before = snapshot(&c.db);
    let mut sub = t.subscribe(C).await.unwrap();
    let d = sub.next(Duration::from_secs(10)).await.unwrap().expect("redelivered");
    let receipt = c.mailbox.receive(&c.db, &d.payload).unwrap();
    assert!(
        matches!(receipt, bus::Receipt::Message { delivered: 0, through: 1, .. }),
        "{receipt:?}"
    );
    assert_eq!(snapshot(&c.db), before);
    assert_eq!(INBOX.len(&c.db.read().unwrap()).unwrap(), 1);
    d.ack().await.unwrap();
}

pub async fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pops a node's inbox until `n` messages arrived; returns them in order.
pub async fn drain(node: &Node, n: usize) -> Vec<Received> {
    let mut got = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while got.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} messages arrived",
            got.len()
        );
        let mut txn = node.db.write().unwrap();
        let mut popped = false;
        while let Some((_, r)) = INBOX.pop(&mut txn).unwrap() {
            got.push(r);
            popped = true;
        }
        txn.commit().unwrap();
        if !popped {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    got
}

/// Both directions, `n` messages each, while `disrupt` runs (broker restarts, crashes):
/// every message arrives exactly once, in order, and every outbox empties (all acked end
/// to end).
pub async fn exactly_once_end_to_end<T: Transport, F, Fut>(t: T, n: u64, disrupt: F)
where
    T::Subscription: std::fmt::Debug,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (p, c) = pair();
    let shutdown = Shutdown::new();
    let p_sender = start(&p, t.clone(), &shutdown);
    let c_sender = start(&c, t.clone(), &shutdown);
    let send =
        |node: &Node, to: Party, range: std::ops::Range<u64>, waker: &TaskWaker, pong_: bool| {
            for chunk in range.collect::<Vec<_>>().chunks(7) {
                let mut txn = node.db.write().unwrap();
                for n in chunk {
                    node.mailbox
                        .send(&mut txn, to, if pong_ { pong(*n) } else { ping(*n) })
                        .unwrap();
                }
                txn.commit().unwrap();
                waker.wake();
            }
        };
    send(&p, C, 0..n / 2, &p_sender, false);
    send(&c, P, 0..n / 2, &c_sender, true);
    disrupt().await;
    send(&p, C, n / 2..n, &p_sender, false);
    send(&c, P, n / 2..n, &c_sender, true);

    let at_c = drain(&c, n as usize).await;
    let at_p = drain(&p, n as usize).await;
    let expect_ping: Vec<Vec<u8>> = (0..n).map(ping).collect();
    let expect_pong: Vec<Vec<u8>> = (0..n).map(pong).collect();
    assert_eq!(at_c.iter().map(|r| r.message.clone()).collect::<Vec<_>>(), expect_ping);
    assert_eq!(at_p.iter().map(|r| r.message.clone()).collect::<Vec<_>>(), expect_pong);
    assert_eq!(at_c.iter().map(|r| r.sequence).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
    wait_for(
        || {
            Mailbox::pending(&p.db.read().unwrap()).unwrap().is_empty()
                && Mailbox::pending(&c.db.read().unwrap()).unwrap().is_empty()
        },
        "every outbox entry to be acknowledged end to end",
    )
    .await;
    // Nothing more trickles in.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(INBOX.len(&c.db.read().unwrap()).unwrap(), 0);
    assert_eq!(INBOX.len(&p.db.read().unwrap()).unwrap(), 0);
    shutdown.trigger();
}

/// Forged, unknown-sender and garbage envelopes are counted by reason, acked (not
/// redelivered forever) and change no state.
pub async fn rejected_envelopes_change_nothing<T: Transport>(t: T)
where
    T::Subscription: std::fmt::Debug,
{
    let (_p, c) = pair();
    let before = snapshot(&c.db);
    let impostor = Identity::generate(&mut OsRng);
    let forged = seal(&impostor, P, C, 1, Body::Message(ping(1))).encode();
    let stranger = Party::Processor { network: NetworkId::Monero, validator: 7 };
    let unknown = seal(&impostor, stranger, C, 1, Body::Message(ping(1))).encode();
    t.publish(C, [7; 32], forged).await.unwrap();
    t.publish(C, [8; 32], unknown).await.unwrap();
    t.publish(C, [9; 32], b"\x01garbage".to_vec()).await.unwrap();
    t.publish(C, [10; 32], vec![]).await.unwrap();

    let shutdown = Shutdown::new();
    start_receiver(&c, t.clone(), &shutdown);
    let m = c.metrics.clone();
    wait_for(
        || {
            m.rejected_count("bad_signature") == 1
                && m.rejected_count("unknown_sender") == 1
                && m.rejected_count("undecodable") == 2
        },
        "four rejections",
    )
    .await;
    shutdown.trigger();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(snapshot(&c.db), before, "a rejected envelope changed state");
    // They were acknowledged to the broker: a new consumer gets nothing.
    let mut sub = t.subscribe(C).await.unwrap();
    assert!(sub.next(Duration::from_millis(500)).await.unwrap().is_none());
}
