//! The `tc::nonce` log line that end-to-end tests grep to prove that no attempt is
//! preprocessed twice: one line per released preprocess, with session, kind and attempt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io;
use std::sync::{Arc, Mutex};

use common::*;
use messages::{SignKind, SignRequest};
use signers::Handled;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_released_preprocess_is_logged_once_with_its_attempt() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = nodes(&dir, 2, 3);
    let b = batch(5);
    let plan = SignKind::Plan([0xab; 32]);
    tracing::subscriber::with_default(subscriber, || {
        let n = node(&mut nodes, 2);
        assert!(n.start(&b).is_some());
        assert!(n.start(&b).is_none());
        n.restart();
        assert!(n.start(&b).is_none());
        assert!(matches!(
            n.handle(&b, &SignRequest::Reattempt { id: id(&b, 0) }),
            Handled::Ignored(_)
        ));
        assert!(matches!(
            n.handle(&b, &SignRequest::Reattempt { id: id(&b, 1) }),
            Handled::Reply(_)
        ));
        assert!(matches!(
            n.handle(&b, &SignRequest::Reattempt { id: id(&b, 1) }),
            Handled::Ignored(_)
        ));
        // A plan's kind is logged by its hex id.
        let mut txn = n.db().write().unwrap();
        let machine = signers::batch_machine(n.keys.clone(), &b);
        assert!(n.signers.start(&mut txn, plan, machine).unwrap().is_some());
        txn.commit().unwrap();
    });
    let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("tc::nonce")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (line, kind, attempt) in [
        (lines[0], "batch/5", 0),
        (lines[1], "batch/5", 1),
        (lines[2], &format!("plan/{}", "ab".repeat(32))[..], 0),
    ] {
        assert!(line.contains("INFO"), "{line}");
        assert!(line.contains("session=3"), "{line}");
        assert!(line.contains(&format!("kind={kind}")), "{line}");
        assert!(line.contains(&format!("attempt={attempt}")), "{line}");
    }
}
