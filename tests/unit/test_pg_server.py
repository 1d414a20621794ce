"""The test PostgreSQL server is real: it answers SQL and keeps databases apart."""

from __future__ import annotations

from pg_server import PgServer


def test_server_answers_and_databases_are_separate(pg_server: PgServer, pg_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    other = pg_server.create_database()
    rows = pg_server.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 't'", other
    )
    assert rows == [(0,)]
    assert pg_url.rsplit("/", 1)[1] in pg_server.databases()
