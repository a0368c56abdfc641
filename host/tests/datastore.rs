//! The PostgreSQL datastore against a real PostgreSQL (Debian's `postgresql`, started by
//! `support::postgres` in a temporary directory).

mod support;

use support::postgres;

#[test]
fn the_harness_serves_a_fresh_database_per_test_behind_a_password() {
    let url = postgres::fresh_database();
    let other = postgres::fresh_database();
    assert_ne!(url, other);
    let server = postgres::server();
    let db = url.rsplit('/').next().unwrap();
    server.psql_in(
        db,
        "SET ROLE orch; CREATE TABLE t (x int); INSERT INTO t VALUES (7)",
    );
    assert_eq!(server.psql_in(db, "SELECT x FROM t").trim(), "7");
    let mut client = ::postgres::Config::new()
        .host("127.0.0.1")
        .port(server.port)
        .user(postgres::ROLE)
        .password(postgres::PASSWORD)
        .dbname(db)
        .connect(::postgres::NoTls)
        .expect("connect as the test role with its password");
    let row = client.query_one("SELECT x FROM t", &[]).unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
    let wrong = ::postgres::Config::new()
        .host("127.0.0.1")
        .port(server.port)
        .user(postgres::ROLE)
        .password("wrong")
        .dbname(db)
        .connect(::postgres::NoTls);
    assert!(wrong.is_err(), "a wrong password must be refused");
}
