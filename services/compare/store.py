"""SQLite persistence of comparisons, their cached figures and blind ratings.

Its own file (``<data dir>/compare.sqlite3``, WAL) beside the job store: comparisons refer to
jobs by id only, so either can be cleared without corrupting the other.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from services.compare.model import Comparison, LaneSpec, Rating
from services.errors import StemDeckError
from services.metrics import LaneFigures
from services.sqlite import connect

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS comparisons ("
    " id TEXT PRIMARY KEY, created_at REAL NOT NULL, data TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS comparisons_created ON comparisons (created_at)",
    "CREATE TABLE IF NOT EXISTS figures ("
    " comparison_id TEXT NOT NULL, lane_index INTEGER NOT NULL, job_id TEXT NOT NULL,"
    " data TEXT NOT NULL, PRIMARY KEY (comparison_id, lane_index))",
    "CREATE TABLE IF NOT EXISTS ratings ("
    " comparison_id TEXT NOT NULL, stem TEXT NOT NULL, lane_index INTEGER NOT NULL,"
    " rater TEXT NOT NULL, score INTEGER NOT NULL, created_at REAL NOT NULL,"
    " PRIMARY KEY (comparison_id, stem, lane_index, rater))",
)


class CompareStoreError(StemDeckError):
    """The comparison database cannot be opened or used."""


class CompareStore:
    """Thread-safe CRUD (one connection, one lock) over comparisons, figures and ratings."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            self._conn = connect(path)
            for statement in _SCHEMA:
                self._conn.execute(statement)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise CompareStoreError(
                f"The comparison database {path} cannot be used ({exc})."
            ) from exc

    def _run(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise CompareStoreError(
                    f"The comparison database {self.path} failed: {exc}"
                ) from exc

    # --- comparisons -------------------------------------------------------------------------

    def insert(self, comparison: Comparison) -> None:
        self._run(
            "INSERT INTO comparisons (id, created_at, data) VALUES (?, ?, ?)",
            (comparison.id, comparison.created_at, json.dumps(_encode(comparison))),
        )

    def get(self, comparison_id: str) -> Comparison | None:
        rows = self._run("SELECT data FROM comparisons WHERE id = ?", (comparison_id,))
        return _decode(json.loads(rows[0][0])) if rows else None

    def list(self, limit: int) -> list[Comparison]:
        rows = self._run(
            "SELECT data FROM comparisons ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
        )
        return [_decode(json.loads(row[0])) for row in rows]

    def delete(self, comparison_id: str) -> None:
        for table, column in (
            ("comparisons", "id"),
            ("figures", "comparison_id"),
            ("ratings", "comparison_id"),
        ):
            self._run(f"DELETE FROM {table} WHERE {column} = ?", (comparison_id,))

    # --- figures -----------------------------------------------------------------------------

    def figures(self, comparison_id: str, lane_index: int, job_id: str) -> LaneFigures | None:
        """Cached figures of a lane, only if computed for this very job."""
        rows = self._run(
            "SELECT data FROM figures WHERE comparison_id = ? AND lane_index = ? AND job_id = ?",
            (comparison_id, lane_index, job_id),
        )
        return LaneFigures(**json.loads(rows[0][0])) if rows else None

    def save_figures(
        self, comparison_id: str, lane_index: int, job_id: str, figures: LaneFigures
    ) -> None:
        self._run(
            "INSERT OR REPLACE INTO figures (comparison_id, lane_index, job_id, data) "
            "VALUES (?, ?, ?, ?)",
            (comparison_id, lane_index, job_id, json.dumps(asdict(figures))),
        )

    # --- ratings -----------------------------------------------------------------------------

    def rate(self, rating: Rating) -> None:
        self._run(
            "INSERT OR REPLACE INTO ratings "
            "(comparison_id, stem, lane_index, rater, score, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                rating.comparison_id,
                rating.stem,
                rating.lane_index,
                rating.rater,
                rating.score,
                rating.created_at,
            ),
        )

    def ratings(self, comparison_id: str) -> list[Rating]:
        rows = self._run(
            "SELECT comparison_id, stem, lane_index, score, rater, created_at FROM ratings "
            "WHERE comparison_id = ? ORDER BY stem, rater, lane_index",
            (comparison_id,),
        )
        return [Rating(*row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _encode(comparison: Comparison) -> dict[str, Any]:
    data = asdict(comparison)
    data["lane_errors"] = {str(k): v for k, v in comparison.lane_errors.items()}
    return data


def _decode(data: dict[str, Any]) -> Comparison:
    lanes = tuple(
        LaneSpec(
            provider=lane["provider"],
            mode=lane["mode"],
            stems=tuple(lane.get("stems", ())),
            preprocessing=tuple(lane.get("preprocessing", ())),
        )
        for lane in data["lanes"]
    )
    return Comparison(
        id=data["id"],
        input_hash=data["input_hash"],
        input_name=data["input_name"],
        duration_s=float(data["duration_s"]),
        lanes=lanes,
        job_ids=tuple(data["job_ids"]),
        created_at=float(data["created_at"]),
        references=dict(data.get("references", {})),
        example_id=data.get("example_id"),
        lane_errors={int(k): v for k, v in data.get("lane_errors", {}).items()},
    )
