//! Tests of the database, tables and queues on a real redb file.

use std::path::PathBuf;

use borsh::{BorshDeserialize, BorshSerialize};
use tempfile::TempDir;

use crate::*;

const SCHEMA: Schema = Schema { app: "tc-test", version: 3 };

fn fresh() -> (TempDir, PathBuf, Db) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let db = Db::open(&path, SCHEMA).unwrap();
    (dir, path, db)
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct Item {
    n: u64,
    payload: Vec<u8>,
}

fn item(n: u64) -> Item {
    Item { n, payload: vec![n as u8; (n % 7) as usize] }
}

#[test]
fn table_put_get_del_iter() {
    let (_dir, path, db) = fresh();
    const T: Table<(u32, u64), String> = Table::new("test/v1/t");
    let mut txn = db.write().unwrap();
    // Inserted out of order; iter must return key order, which is numeric order.
    for (k, v) in [((2, 1), "c"), ((1, 300), "b"), ((1, 2), "a"), ((2, 0), "x")] {
        T.put(&mut txn, &k, &v.to_owned()).unwrap();
    }
    T.put(&mut txn, &(2, 0), &"c0".to_owned()).unwrap(); // overwrite
                                                         // Reads inside the write transaction see its own writes.
    assert_eq!(T.get(&txn, &(1, 300)).unwrap().as_deref(), Some("b"));
    txn.commit().unwrap();

    let read = db.read().unwrap();
    assert_eq!(T.get(&read, &(2, 0)).unwrap().as_deref(), Some("c0"));
    assert_eq!(T.get(&read, &(9, 9)).unwrap(), None);
    let all: Vec<_> = T.iter(&read).unwrap();
    let keys: Vec<_> = all.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, vec![(1, 2), (1, 300), (2, 0), (2, 1)]);
    drop(read);

    let mut txn = db.write().unwrap();
    assert!(T.del(&mut txn, &(1, 300)).unwrap());
    assert!(!T.del(&mut txn, &(1, 300)).unwrap(), "second delete finds nothing");
    txn.commit().unwrap();

    // Survives a reopen.
    drop(db);
    let db = Db::open(&path, SCHEMA).unwrap();
    let read = db.read().unwrap();
    assert_eq!(T.get(&read, &(1, 300)).unwrap(), None);
    assert_eq!(T.iter(&read).unwrap().len(), 3);
}

#[test]
fn read_snapshot_ignores_later_commits() {
    let (_dir, _path, db) = fresh();
    const T: Table<u8, u8> = Table::new("test/v1/snap");
    let before = db.read().unwrap();
    let mut txn = db.write().unwrap();
    T.put(&mut txn, &1, &1).unwrap();
    txn.commit().unwrap();
    assert_eq!(T.get(&before, &1).unwrap(), None);
    assert_eq!(T.get(&db.read().unwrap(), &1).unwrap(), Some(1));
}

#[test]
fn dropped_write_txn_writes_nothing() {
    let (_dir, _path, db) = fresh();
    const T: Table<u64, u64> = Table::new("test/v1/t");
    let mut txn = db.write().unwrap();
    T.put(&mut txn, &1, &1).unwrap();
    drop(txn);
    assert_eq!(T.get(&db.read().unwrap(), &1).unwrap(), None);
}

#[test]
fn prefixes_are_isolated() {
    let (_dir, _path, db) = fresh();
    const X: Table<Vec<u8>, u32> = Table::new("a/v1/x");
    const XY: Table<Vec<u8>, u32> = Table::new("a/v1/xy");
    let mut txn = db.write().unwrap();
    // Without the separator, X's key "y..." would be XY's key "...": stored as "a/v1/xy".
    X.put(&mut txn, &b"y".to_vec(), &1).unwrap();
    X.put(&mut txn, &Vec::new(), &2).unwrap();
    XY.put(&mut txn, &Vec::new(), &3).unwrap();
    XY.put(&mut txn, &b"\x00".to_vec(), &4).unwrap();
    txn.commit().unwrap();

    let read = db.read().unwrap();
    assert_eq!(X.iter(&read).unwrap(), vec![(Vec::new(), 2), (b"y".to_vec(), 1)]);
    assert_eq!(XY.iter(&read).unwrap(), vec![(Vec::new(), 3), (b"\x00".to_vec(), 4)]);
    assert_eq!(X.get(&read, &b"y".to_vec()).unwrap(), Some(1));
    assert_eq!(XY.get(&read, &Vec::new()).unwrap(), Some(3));
}

#[test]
#[should_panic(expected = "must not contain 0x00")]
fn prefix_with_separator_is_rejected() {
    let _ = Table::<u8, u8>::new("bad\0prefix");
}

#[test]
#[should_panic(expected = "must be non-empty")]
fn empty_queue_name_is_rejected() {
    let _ = Queue::<u8>::new("");
}

#[test]
fn queue_fifo_and_contiguous_indices() {
    let (_dir, path, db) = fresh();
    const Q: Queue<Item> = Queue::new("test/v1/q");

    let mut txn = db.write().unwrap();
    assert_eq!(Q.pop(&mut txn).unwrap(), None);
    for n in 0..5 {
        assert_eq!(Q.push(&mut txn, &item(n)).unwrap(), n);
    }
    txn.commit().unwrap();

    let read = db.read().unwrap();
    assert_eq!(Q.len(&read).unwrap(), 5);
    assert_eq!(Q.peek(&read).unwrap(), Some((0, item(0))));
    assert_eq!(Q.items(&read).unwrap(), (0..5).map(|n| (n, item(n))).collect::<Vec<_>>());
    drop(read);

    // Pop everything: FIFO order, indices 0..5.
    let mut txn = db.write().unwrap();
    for n in 0..5 {
        assert_eq!(Q.pop(&mut txn).unwrap(), Some((n, item(n))));
    }
    assert_eq!(Q.pop(&mut txn).unwrap(), None);
    assert!(Q.is_empty(&txn).unwrap());
    txn.commit().unwrap();

    // After emptying and reopening, indices continue at 5: never reused.
    drop(db);
    let db = Db::open(&path, SCHEMA).unwrap();
    let mut txn = db.write().unwrap();
    assert_eq!(Q.push(&mut txn, &item(50)).unwrap(), 5);
    assert_eq!(Q.push(&mut txn, &item(60)).unwrap(), 6);
    txn.commit().unwrap();
    let read = db.read().unwrap();
    assert_eq!(Q.items(&read).unwrap(), vec![(5, item(50)), (6, item(60))]);
    assert_eq!(Q.peek(&read).unwrap(), Some((5, item(50))));
}

#[test]
fn queue_ops_are_atomic_with_the_txn() {
    let (_dir, _path, db) = fresh();
    const Q: Queue<u64> = Queue::new("test/v1/q");
    const CURSOR: Table<(), u64> = Table::new("test/v1/cursor");

    // Push then drop without commit: nothing, and the index is not consumed.
    let mut txn = db.write().unwrap();
    assert_eq!(Q.push(&mut txn, &7).unwrap(), 0);
    CURSOR.put(&mut txn, &(), &1).unwrap();
    drop(txn);
    let read = db.read().unwrap();
    assert_eq!(Q.len(&read).unwrap(), 0);
    assert_eq!(Q.items(&read).unwrap(), vec![]);
    assert_eq!(CURSOR.get(&read, &()).unwrap(), None);
    drop(read);

    let mut txn = db.write().unwrap();
    assert_eq!(Q.push(&mut txn, &7).unwrap(), 0);
    assert_eq!(Q.push(&mut txn, &8).unwrap(), 1);
    txn.commit().unwrap();

    // Pop + cursor write, dropped: the item is still pending.
    let mut txn = db.write().unwrap();
    assert_eq!(Q.pop(&mut txn).unwrap(), Some((0, 7)));
    CURSOR.put(&mut txn, &(), &1).unwrap();
    drop(txn);
    let read = db.read().unwrap();
    assert_eq!(Q.peek(&read).unwrap(), Some((0, 7)));
    assert_eq!(CURSOR.get(&read, &()).unwrap(), None);
    drop(read);

    // Committed: both happen.
    let mut txn = db.write().unwrap();
    assert_eq!(Q.pop(&mut txn).unwrap(), Some((0, 7)));
    CURSOR.put(&mut txn, &(), &1).unwrap();
    txn.commit().unwrap();
    let read = db.read().unwrap();
    assert_eq!(Q.items(&read).unwrap(), vec![(1, 8)]);
    assert_eq!(CURSOR.get(&read, &()).unwrap(), Some(1));
}

#[test]
fn queues_are_independent() {
    let (_dir, _path, db) = fresh();
    const A: Queue<u8> = Queue::new("test/v1/a");
    const AB: Queue<u8> = Queue::new("test/v1/ab");
    let mut txn = db.write().unwrap();
    A.push(&mut txn, &1).unwrap();
    assert_eq!(AB.push(&mut txn, &2).unwrap(), 0);
    AB.push(&mut txn, &3).unwrap();
    txn.commit().unwrap();
    let read = db.read().unwrap();
    assert_eq!(A.items(&read).unwrap(), vec![(0, 1)]);
    assert_eq!(AB.items(&read).unwrap(), vec![(0, 2), (1, 3)]);
}

#[test]
fn corrupt_value_is_a_typed_error() {
    let (_dir, _path, db) = fresh();
    const T: Table<u64, Item> = Table::new("test/v1/items");
    let mut txn = db.write().unwrap();
    T.put(&mut txn, &1, &item(1)).unwrap();
    // A truncated body, and a valid body with a trailing byte.
    let raw2 = T.raw_key(&txn, &2).unwrap();
    txn.put_raw(&raw2, &[1, 2, 3]).unwrap();
    let mut trailing = primitives::codec::encode_body(&item(3));
    trailing.push(0);
    let raw3 = T.raw_key(&txn, &3).unwrap();
    txn.put_raw(&raw3, &trailing).unwrap();
    txn.commit().unwrap();

    let read = db.read().unwrap();
    assert_eq!(T.get(&read, &1).unwrap(), Some(item(1)));
    for k in [2u64, 3] {
        match T.get(&read, &k) {
            Err(e @ DbError::Corrupt { .. }) => {
                assert!(e.is_fatal());
                let DbError::Corrupt { key, .. } = e else { unreachable!() };
                assert_eq!(key, hex::encode(T.raw_key(&read, &k).unwrap()));
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    assert!(matches!(T.iter(&read), Err(DbError::Corrupt { .. })));
}

#[test]
fn bad_stored_key_is_a_typed_error() {
    let (_dir, _path, db) = fresh();
    const T: Table<u64, u8> = Table::new("test/v1/t");
    let mut txn = db.write().unwrap();
    let mut raw = T.raw_key(&txn, &1).unwrap();
    raw.push(0xff); // 9 key bytes for a u64
    txn.put_raw(&raw, &[5]).unwrap();
    txn.commit().unwrap();
    match T.iter(&db.read().unwrap()) {
        Err(DbError::BadKey { key, reason }) => {
            assert_eq!(key, hex::encode(&raw), "the full stored key is reported");
            assert_eq!(reason, KeyError::WrongLength { expected: 8, found: 9 });
        }
        other => panic!("expected BadKey, got {other:?}"),
    }
}

#[test]
fn corrupt_queue_is_a_typed_error() {
    let (_dir, _path, db) = fresh();
    const Q: Queue<u64> = Queue::new("test/v1/q");
    let mut txn = db.write().unwrap();
    Q.push(&mut txn, &1).unwrap();
    Q.push(&mut txn, &2).unwrap();
    // Remove the head item behind the queue's back.
    let mut head_item = Q.tag_key(&txn, b'i').unwrap();
    head_item.extend_from_slice(&0u64.to_be_bytes());
    assert!(txn.del_raw(&head_item).unwrap());
    txn.commit().unwrap();
    let read = db.read().unwrap();
    assert!(matches!(Q.peek(&read), Err(DbError::Inconsistent { .. })));
    assert!(matches!(Q.items(&read), Err(DbError::Inconsistent { .. })));
    drop(read);

    // A tail counter that does not decode.
    let mut txn = db.write().unwrap();
    let tail = Q.tag_key(&txn, b't').unwrap();
    txn.put_raw(&tail, &[1]).unwrap();
    txn.commit().unwrap();
    let err = Q.len(&db.read().unwrap()).unwrap_err();
    assert!(matches!(err, DbError::Corrupt { .. }) && err.is_fatal());
}

#[test]
fn schema_mismatch_is_refused_with_both_versions_named() {
    let (_dir, path, db) = fresh();
    const T: Table<u8, u8> = Table::new("test/v1/t");
    let mut txn = db.write().unwrap();
    T.put(&mut txn, &1, &1).unwrap();
    txn.commit().unwrap();
    drop(db);

    let newer = Schema { app: SCHEMA.app, version: 4 };
    let err = Db::open(&path, newer).unwrap_err();
    match &err {
        DbError::IncompatibleSchema {
            found_app,
            found_version,
            expected_app,
            expected_version,
            ..
        } => {
            assert_eq!((found_app.as_str(), *found_version), ("tc-test", 3));
            assert_eq!((*expected_app, *expected_version), ("tc-test", 4));
        }
        other => panic!("expected IncompatibleSchema, got {other:?}"),
    }
    assert!(err.is_fatal());
    let msg = err.to_string();
    assert!(msg.contains("version 3") && msg.contains("version 4"), "{msg}");
    assert!(msg.contains("data directory") && msg.contains("migrate"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");

    let other_app = Schema { app: "someone-else", version: 3 };
    let err = Db::open(&path, other_app).unwrap_err();
    assert!(matches!(err, DbError::IncompatibleSchema { .. }), "{err:?}");
    assert!(err.to_string().contains("'tc-test'") && err.to_string().contains("'someone-else'"));

    // The refused opens wrote nothing: the right schema still opens, data intact.
    let db = Db::open(&path, SCHEMA).unwrap();
    assert_eq!(T.get(&db.read().unwrap(), &1).unwrap(), Some(1));
}

#[test]
fn garbage_file_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in [
        ("short", b"not a database".to_vec()),
        (
            "long",
            (0..64 * 1024).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect(),
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &contents).unwrap();
        match Db::open(&path, SCHEMA) {
            Err(e @ DbError::Open { .. }) => {
                assert!(e.is_fatal());
                assert!(e.to_string().contains(&path.display().to_string()));
            }
            other => panic!("{name}: expected Open error, got {other:?}"),
        }
        // The file was not overwritten.
        assert_eq!(std::fs::read(&path).unwrap(), contents);
    }
    // A directory is not a database file either.
    assert!(matches!(Db::open(dir.path(), SCHEMA), Err(DbError::Open { .. })));
}

#[test]
fn second_open_while_open_is_refused() {
    let (_dir, path, db) = fresh();
    assert!(matches!(Db::open(&path, SCHEMA), Err(DbError::Open { .. })));
    // A clone is the same database and does not release the lock when dropped.
    let clone = db.clone();
    drop(db);
    assert!(matches!(Db::open(&path, SCHEMA), Err(DbError::Open { .. })));
    drop(clone);
    Db::open(&path, SCHEMA).unwrap();
}

#[test]
fn foreign_redb_file_without_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let def: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("theirs");
        txn.open_table(def).unwrap().insert(1, 2).unwrap();
        txn.commit().unwrap();
    }
    assert!(matches!(Db::open(&path, SCHEMA), Err(DbError::NoSchema { .. })));
}

#[test]
fn empty_redb_file_without_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bare.redb");
    drop(redb::Database::create(&path).unwrap());
    assert!(matches!(Db::open(&path, SCHEMA), Err(DbError::NoSchema { .. })));
}

#[test]
fn creation_is_atomic_and_replaces_leftovers() {
    const T: Table<u8, u8> = Table::new("test/v1/t");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let tmp = dir.path().join("db.redb.creating");
    // What a crash in the middle of redb's file initialization leaves behind: a file
    // that redb itself refuses ("magic number mismatch").
    std::fs::write(&tmp, vec![0u8; 4096]).unwrap();
    assert!(redb::Database::open(&tmp).is_err());
    let db = Db::open(&path, SCHEMA).unwrap();
    assert!(!tmp.exists(), "the staging file is renamed into place");
    let mut txn = db.write().unwrap();
    T.put(&mut txn, &1, &2).unwrap();
    txn.commit().unwrap();
    drop(db);
    // Reopening does not re-create.
    let db = Db::open(&path, SCHEMA).unwrap();
    assert_eq!(T.get(&db.read().unwrap(), &1).unwrap(), Some(2));
    drop(db);

    // An existing empty file (e.g. pre-created by a deployment tool) is initialized.
    let empty = dir.path().join("empty.redb");
    std::fs::write(&empty, b"").unwrap();
    let db = Db::open(&empty, SCHEMA).unwrap();
    assert_eq!(T.iter(&db.read().unwrap()).unwrap(), vec![]);
    drop(db);
    assert!(Db::open(&empty, Schema { app: SCHEMA.app, version: 9 }).is_err());

    // A missing directory is an Open error, not a panic.
    assert!(matches!(
        Db::open(dir.path().join("missing-dir").join("db"), SCHEMA),
        Err(DbError::Open { .. })
    ));
}

#[test]
fn error_classes() {
    let io = DbError::Storage(redb::Error::Io(std::io::Error::other("disk hiccup")));
    assert!(!io.is_fatal());
    let corrupted = DbError::Storage(redb::Error::Corrupted("bad page".into()));
    assert!(corrupted.is_fatal());
    assert!(DbError::inconsistent(b"k", "x").is_fatal());
}

#[test]
fn db_and_handles_are_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Db>();
    assert_send_sync::<DbError>();
    assert_send_sync::<Table<u64, std::rc::Rc<u8>>>();
    assert_send_sync::<Queue<std::rc::Rc<u8>>>();
    fn assert_send<T: Send>() {}
    assert_send::<WriteTxn>();
    assert_send::<ReadTxn>();
}

#[test]
fn scoped_tables_and_queues_keep_one_set_of_entries_per_scope() {
    let (_dir, _path, db) = fresh();
    const T: Table<u64, u64> = Table::scoped("test/v1/scoped");
    const U: Table<u64, u64> = Table::new("test/v1/unscoped");
    const Q: Queue<u64> = Queue::scoped("test/v1/scoped_q");

    // Without a scope, a scoped table or queue refuses (a bug), and changes nothing.
    let mut txn = db.write().unwrap();
    assert!(matches!(T.put(&mut txn, &1, &1), Err(DbError::Unscoped { prefix: "test/v1/scoped" })));
    assert!(matches!(Q.push(&mut txn, &1), Err(DbError::Unscoped { .. })));
    assert!(matches!(T.iter(&txn), Err(ref e @ DbError::Unscoped { .. }) if e.is_fatal()));
    assert_eq!(txn.range_raw(b"").unwrap(), vec![]);

    // Scope 7 and scope 8 see their own entries; an unscoped table is the same in both.
    txn.set_scope(Some(7));
    T.put(&mut txn, &1, &70).unwrap();
    Q.push(&mut txn, &71).unwrap();
    U.put(&mut txn, &1, &1).unwrap();
    assert_eq!(txn.set_scope(Some(8)), Some(7));
    assert_eq!(T.get(&txn, &1).unwrap(), None);
    assert_eq!(Q.peek(&txn).unwrap(), None);
    T.put(&mut txn, &2, &80).unwrap();
    Q.push(&mut txn, &81).unwrap();
    Q.push(&mut txn, &82).unwrap();
    assert_eq!(U.get(&txn, &1).unwrap(), Some(1));
    txn.commit().unwrap();

    let read = db.read().unwrap().scoped(7);
    assert_eq!(T.iter(&read).unwrap(), vec![(1, 70)]);
    assert_eq!(Q.items(&read).unwrap(), vec![(0, 71)]);
    let read = db.read().unwrap().scoped(8);
    assert_eq!(T.iter(&read).unwrap(), vec![(2, 80)]);
    assert_eq!(Q.items(&read).unwrap(), vec![(0, 81), (1, 82)]);

    // Retiring scope 8 removes its entries of each table and queue, and nothing else.
    let mut txn = db.write().unwrap();
    let removed: u64 = [T.prefix(), Q.name()]
        .into_iter()
        .map(|p| txn.del_range_raw(&scope_namespace(p, 8)).unwrap())
        .sum();
    assert_eq!(removed, 1 + 3 /* two items and the tail */);
    txn.commit().unwrap();
    let read = db.read().unwrap().scoped(8);
    assert_eq!(T.iter(&read).unwrap(), vec![]);
    assert_eq!(Q.len(&read).unwrap(), 0);
    let read = db.read().unwrap().scoped(7);
    assert_eq!(T.iter(&read).unwrap(), vec![(1, 70)]);
    assert_eq!(Q.items(&read).unwrap(), vec![(0, 71)]);
    assert_eq!(U.get(&read, &1).unwrap(), Some(1));
}
