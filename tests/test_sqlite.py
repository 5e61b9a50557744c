"""routine.sqlite: a seeded template, private copies per run, state digests."""

from __future__ import annotations

from routine.tools.sqlite import SeededSqlite, state_digest

builds: list[int] = []


def build(conn):
    builds.append(1)
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(5)])


def test_copies_are_private_and_the_template_is_built_once():
    seeded = SeededSqlite(build)
    with seeded.connect() as a, seeded.connect() as b:
        before = state_digest(a)
        assert before == state_digest(b)
        a.execute("DELETE FROM t WHERE x = 3")
        assert state_digest(a) != before and state_digest(b) == before
        assert [r["x"] for r in b.execute("SELECT x FROM t ORDER BY x")] == [0, 1, 2, 3, 4]
    with seeded.connect() as c:
        assert state_digest(c) == before  # the template never sees a run's writes
    assert len(builds) == 1
