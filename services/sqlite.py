"""The one way StemDeck opens an SQLite database, shared by the job and comparison stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

BUSY_TIMEOUT_S = 10.0


def connect(path: Path) -> sqlite3.Connection:
    """A WAL-mode, autocommit connection usable from every thread (callers hold their own lock).

    WAL lets the app and the CLI read while a worker writes; the busy timeout rides out the
    short write locks instead of failing a page.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
    )
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
    except sqlite3.DatabaseError:
        conn.close()
        raise
    return conn
