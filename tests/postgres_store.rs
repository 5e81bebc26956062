//! The PostgreSQL store keeps a conversation's turns as SQLite does: each turn as what it adds
//! to its session's last request stored whole, read back whole by every way of reading, covered
//! by the chain, stored whole again before a purge takes its base, and never stored against a
//! base another replica purged.
//!
//! Each test makes its own database on the test cluster (`common::pg`).

mod common;

use common::pg;
use tollgate::record::{Record, RecordKind, Store, StoreLocation};

/// Turn `n` of a conversation: the history of turns before it, a new message, and the same
/// tools after them, as agents send it (about 4 KB per turn).
fn turn(session: &str, n: usize, started_at: &str) -> Record {
    let messages: Vec<String> = (0..=n)
        .map(|i| {
            let lines: String = (0..100)
                .map(|l| format!("let v{i}_{l} = read(\\\"cfg/{i}/{l}\\\");\\n"))
                .collect();
            format!("{{\"role\":\"user\",\"content\":\"{lines}\"}}")
        })
        .collect();
    let tools = "{\"name\":\"Read\",\"description\":\"Reads a file.\"}".repeat(200);
    let mut r = Record::new(
        RecordKind::Exchange,
        "127.0.0.1:1",
        "alice",
        "intercepted",
        "api.anthropic.com",
    );
    r.status = Some(200);
    r.outcome = "complete".into();
    r.session_id = session.into();
    r.started_at = started_at.into();
    r.request_body = format!(
        "{{\"messages\":[{}],\"tools\":[{tools}],\"stream\":true}}",
        messages.join(",")
    )
    .into();
    r.response_body = format!("data: {{\"answer\":{n}}}\n\n").into_bytes();
    r
}

fn store(url: &str, replica: &str) -> Store {
    Store::connect(&StoreLocation::Postgres(pg::settings(url, replica))).unwrap()
}

/// A plain connection to the test database, for looking at what is stored.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Each row's stored request: (base, stored length), in id order.
async fn stored(db: &tokio_postgres::Client) -> Vec<(Option<i64>, i32)> {
    db.query(
        "SELECT request_base, length(request_body) FROM records ORDER BY id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

fn bodies(rows: Vec<(i64, Record)>) -> Vec<Vec<u8>> {
    rows.into_iter()
        .map(|(_, r)| r.request_body.to_vec())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_are_stored_as_what_they_add_and_read_back_whole() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database().await;
    let mut a = store(&url, "replica-a");
    let mut sent = Vec::new();
    for n in 0..8 {
        // Two conversations interleaved, both in each batch.
        let batch = vec![
            turn("a", n, "2030-01-01T00:00:00Z"),
            turn("b", n, "2030-01-01T00:00:00Z"),
        ];
        sent.extend(batch.iter().map(|r| r.request_body.to_vec()));
        a.append(&batch).unwrap();
    }
    let db = sql(&url).await;
    let rows = stored(&db).await;
    // The first turn of each is stored whole; later ones against a base of their own session.
    assert_eq!(rows[0].0, None);
    assert_eq!(rows[1].0, None);
    assert_eq!(rows[2].0, Some(1));
    assert_eq!(rows[3].0, Some(2));
    assert!(
        rows.iter().filter(|r| r.0.is_some()).count() >= 8,
        "{rows:?}"
    );
    let whole = rows.iter().filter(|r| r.0.is_none()).map(|r| r.1).max();
    for (i, (base, len)) in rows.iter().enumerate() {
        if base.is_some() {
            assert!(
                len * 2 < whole.unwrap(),
                "row {}: {len} bytes stored",
                i + 1
            );
        }
    }
    // Every way of reading gives each request as sent, on this replica and on another.
    let b = store(&url, "replica-b");
    for s in [&a, &b] {
        assert_eq!(bodies(s.all().unwrap()), sent);
        for (i, body) in sent.iter().enumerate() {
            assert_eq!(&s.get(i as i64 + 1).unwrap().unwrap().request_body, body);
        }
        let of_a: Vec<Vec<u8>> = sent.iter().step_by(2).cloned().collect();
        assert_eq!(bodies(s.session("a").unwrap()), of_a);
        let (page, earlier) = s.session_page("b", None, 3).unwrap();
        let of_b: Vec<Vec<u8>> = sent.iter().skip(1).step_by(2).cloned().collect();
        assert_eq!(bodies(page), of_b[of_b.len() - 3..]);
        assert_eq!(earlier, of_b.len() as i64 - 3);
        assert_eq!(s.verify().unwrap(), None);
    }
    // Lists carry no bodies, deltas or not.
    let listed = a
        .exchanges(&tollgate::record::ExchangeFilter {
            limit: 50,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.len(), sent.len());
    assert!(listed.iter().all(|(_, r)| r.request_body.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_base_or_delta_breaks_the_chain() {
    let Some(server) = pg::server() else { return };
    for forgery in [
        "UPDATE records SET request_body = '\\x00' WHERE id = 1",
        "UPDATE records SET request_prefix = request_prefix - 1 WHERE id = 2",
        "UPDATE records SET request_base = 99 WHERE id = 2",
    ] {
        let url = server.fresh_database().await;
        let mut a = store(&url, "replica-a");
        a.append(&[turn("a", 0, "2030-01-01T00:00:00Z")]).unwrap();
        a.append(&[turn("a", 1, "2030-01-01T00:00:00Z")]).unwrap();
        let db = sql(&url).await;
        assert_eq!(stored(&db).await[1].0, Some(1));
        assert_eq!(a.verify().unwrap(), None);
        db.batch_execute(forgery).await.unwrap();
        let brk = a.verify().unwrap();
        assert!(brk.is_some(), "{forgery} went unnoticed");
        if !forgery.contains("request_body") {
            assert_eq!(brk.unwrap().row, 2, "{forgery}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_that_takes_a_base_stores_the_turns_kept_whole_first() {
    let Some(server) = pg::server() else { return };
    for (bodies_before, records_before) in [
        // The base's body goes, its row stays.
        ("2020-06-01T00:00:00Z", "2000-01-01T00:00:00Z"),
        // The base's row goes.
        ("2020-06-01T00:00:00Z", "2020-06-01T00:00:00Z"),
    ] {
        let url = server.fresh_database().await;
        let mut a = store(&url, "replica-a");
        let kept: Vec<Record> = (1..4)
            .map(|n| turn("a", n, "2021-01-01T00:00:00Z"))
            .collect();
        a.append(&[turn("a", 0, "2020-01-01T00:00:00Z")]).unwrap();
        a.append(&kept).unwrap();
        let db = sql(&url).await;
        assert_eq!(stored(&db).await[1].0, Some(1));
        a.purge(bodies_before, records_before).unwrap();
        let rows = stored(&db).await;
        assert!(rows.iter().all(|r| r.0.is_none()), "{rows:?}");
        let back: Vec<Vec<u8>> = a
            .all()
            .unwrap()
            .into_iter()
            .filter(|(_, r)| r.started_at.starts_with("2021"))
            .map(|(_, r)| r.request_body.to_vec())
            .collect();
        let expected: Vec<Vec<u8>> = kept.iter().map(|r| r.request_body.to_vec()).collect();
        assert_eq!(back, expected);
        assert_eq!(a.verify().unwrap(), None);
        // The next turn is not stored against a base without its body.
        a.append(&[turn("a", 4, "2021-01-01T00:00:00Z")]).unwrap();
        let rows = stored(&db).await;
        assert_eq!(rows.last().unwrap().0, None, "{rows:?}");
        let last = a.all().unwrap().pop().unwrap().1;
        assert_eq!(
            last.request_body,
            turn("a", 4, "2021-01-01T00:00:00Z").request_body
        );
        assert_eq!(a.verify().unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_another_replica_purged_is_not_stored_against() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database().await;
    let mut a = store(&url, "replica-a");
    let mut b = store(&url, "replica-b");
    a.append(&[turn("a", 0, "2020-01-01T00:00:00Z")]).unwrap();
    a.append(&[turn("a", 1, "2021-01-01T00:00:00Z")]).unwrap();
    let db = sql(&url).await;
    assert_eq!(stored(&db).await[1].0, Some(1));
    // Replica B's retention takes the base's body (and stores turn 1 whole first); A still
    // holds turn 0 as its session's base.
    b.purge("2020-06-01T00:00:00Z", "2000-01-01T00:00:00Z")
        .unwrap();
    a.append(&[turn("a", 2, "2021-01-01T00:00:00Z")]).unwrap();
    // And a base emptied by hand, outside any purge.
    a.append(&[turn("c", 0, "2021-01-01T00:00:00Z")]).unwrap();
    db.batch_execute("UPDATE records SET request_body = '\\x', bodies_purged = true WHERE id = 4")
        .await
        .unwrap();
    a.append(&[turn("c", 1, "2021-01-01T00:00:00Z")]).unwrap();
    let rows = stored(&db).await;
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[2].0, None,
        "turn 2 stored against a purged base: {rows:?}"
    );
    assert_eq!(rows[4].0, None, "stored against an emptied base: {rows:?}");
    assert_eq!(
        a.get(3).unwrap().unwrap().request_body,
        turn("a", 2, "").request_body
    );
    assert_eq!(
        a.get(5).unwrap().unwrap().request_body,
        turn("c", 1, "").request_body
    );
    // The turn after it is stored against it, its new base.
    a.append(&[turn("a", 3, "2021-01-01T00:00:00Z")]).unwrap();
    assert_eq!(stored(&db).await[5].0, Some(3));
    assert_eq!(
        b.get(6).unwrap().unwrap().request_body,
        turn("a", 3, "").request_body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_whose_id_came_again_is_not_stored_against() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database().await;
    let mut a = store(&url, "replica-a");
    let mut b = store(&url, "replica-b");
    a.append(&[turn("a", 0, "2030-01-01T00:00:00Z")]).unwrap();
    // The database is put back to an empty copy while A runs, and B writes row 1 again: a
    // request of its own, with its body, under the id A holds as its base.
    let db = sql(&url).await;
    db.batch_execute("DELETE FROM records; DELETE FROM chain_head")
        .await
        .unwrap();
    b.append(&[turn("b", 3, "2030-01-01T00:00:00Z")]).unwrap();
    a.append(&[turn("a", 1, "2030-01-01T00:00:00Z")]).unwrap();
    let rows = stored(&db).await;
    assert_eq!(rows[1].0, None, "stored against another request: {rows:?}");
    assert_eq!(
        b.get(2).unwrap().unwrap().request_body,
        turn("a", 1, "").request_body
    );
    assert_eq!(b.verify().unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_of_an_older_version_alive_holds_deltas_back() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database().await;
    // The schema made, a replica that predates deltas has just sent its heartbeat: its
    // retention would take bases without storing their turns whole first.
    drop(store(&url, "migrator"));
    let db = sql(&url).await;
    db.batch_execute("INSERT INTO replicas (replica) VALUES ('old-version')")
        .await
        .unwrap();
    let mut a = store(&url, "replica-a");
    for n in 0..3 {
        a.append(&[turn("a", n, "2030-01-01T00:00:00Z")]).unwrap();
    }
    assert!(stored(&db).await.iter().all(|r| r.0.is_none()));
    // Its heartbeats stop (the replica was upgraded or stopped): deltas from the next beat.
    a.heartbeat().unwrap();
    a.append(&[turn("a", 3, "2030-01-01T00:00:00Z")]).unwrap();
    assert_eq!(stored(&db).await[3].0, None);
    db.batch_execute(
        "UPDATE replicas SET last_seen = now() - interval '11 minutes'
         WHERE replica = 'old-version'",
    )
    .await
    .unwrap();
    a.heartbeat().unwrap();
    a.append(&[turn("a", 4, "2030-01-01T00:00:00Z")]).unwrap();
    assert_eq!(stored(&db).await[4].0, Some(4));
    // A replica of this version beside it holds nothing back.
    let mut b = store(&url, "replica-b");
    b.append(&[turn("b", 0, "2030-01-01T00:00:00Z")]).unwrap();
    b.append(&[turn("b", 1, "2030-01-01T00:00:00Z")]).unwrap();
    assert_eq!(stored(&db).await[6].0, Some(6));
    assert_eq!(
        bodies(a.all().unwrap())[4],
        turn("a", 4, "").request_body.to_vec()
    );
    assert_eq!(a.verify().unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_rewrites_many_turns_of_one_base_whole() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database().await;
    let mut a = store(&url, "replica-a");
    let base = turn("a", 5, "2020-01-01T00:00:00Z");
    a.append(std::slice::from_ref(&base)).unwrap();
    // More turns against that one base than a purge rewrites in one page.
    let text = String::from_utf8(base.request_body.to_vec()).unwrap();
    let kept: Vec<Record> = (0..150)
        .map(|k| {
            let mut r = turn("a", 5, "2021-01-01T00:00:00Z");
            r.request_body = text.replace("cfg/5/50", &format!("edited/{k}")).into();
            r
        })
        .collect();
    a.append(&kept).unwrap();
    let db = sql(&url).await;
    assert!(stored(&db).await[1..].iter().all(|r| r.0 == Some(1)));
    a.purge("2020-06-01T00:00:00Z", "2000-01-01T00:00:00Z")
        .unwrap();
    assert!(stored(&db).await.iter().all(|r| r.0.is_none()));
    let back: Vec<Vec<u8>> = bodies(a.all().unwrap()).split_off(1);
    let expected: Vec<Vec<u8>> = kept.iter().map(|r| r.request_body.to_vec()).collect();
    assert_eq!(back, expected);
    assert_eq!(a.verify().unwrap(), None);
}
