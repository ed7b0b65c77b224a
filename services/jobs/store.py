"""SQLite job store: the durable record behind Results, History and the restart sweep.

One connection guarded by a lock serves all threads of a process; several processes (the app
and the CLI) may share the file because it runs in WAL mode with a busy timeout. The schema is
versioned with ``PRAGMA user_version`` and migrated forward step by step on open.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Collection, Iterable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from services.errors import StemDeckError
from services.jobs.model import Artifact, Job, JobSpec, JobStatus
from services.sqlite import connect

# One tuple of statements per schema version; never edit a released step, append a new one.
# (Plain statements, not executescript(), which would commit the migration transaction early.)
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            cache_key TEXT NOT NULL,
            spec TEXT NOT NULL,
            status TEXT NOT NULL,
            progress REAL NOT NULL DEFAULT 0,
            stage TEXT NOT NULL DEFAULT 'queued',
            eta_s REAL,
            error TEXT,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            estimated_cost REAL,
            actual_cost REAL,
            artifacts TEXT NOT NULL DEFAULT '[]',
            attempts INTEGER NOT NULL DEFAULT 0,
            facts TEXT NOT NULL DEFAULT '{}',
            worker_id TEXT,
            heartbeat_at REAL,
            cancel_requested INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX jobs_cache_key ON jobs (cache_key, status)",
        "CREATE INDEX jobs_status_created ON jobs (status, created_at)",
        "CREATE INDEX jobs_created ON jobs (created_at)",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

_JOB_COLUMNS = tuple(f.name for f in fields(Job) if f.name != "spec")
_ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


class StoreError(StemDeckError):
    """The job database cannot be opened or used (corrupt, newer schema, unwritable)."""


def _to_row(values: dict[str, Any]) -> dict[str, Any]:
    """Python values → column values; the only place that knows the JSON columns."""
    row = dict(values)
    if "spec" in row:
        spec: JobSpec = row["spec"]
        row["spec"] = json.dumps(asdict(spec), sort_keys=True)
        row["cache_key"] = spec.cache_key
    if "artifacts" in row:
        row["artifacts"] = json.dumps([asdict(a) for a in row["artifacts"]])
    if "facts" in row:
        row["facts"] = json.dumps(row["facts"], sort_keys=True)
    if "status" in row:
        row["status"] = str(JobStatus(row["status"]))
    return row


def _from_row(row: sqlite3.Row) -> Job:
    try:
        return _decode(row)
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreError(f"Job {row['id']} in the job database is unreadable ({exc}).") from exc


def _decode(row: sqlite3.Row) -> Job:
    spec = json.loads(row["spec"])
    spec["stems"] = tuple(spec.get("stems", ()))
    spec["preprocessing"] = tuple(spec.get("preprocessing", ()))
    values = {name: row[name] for name in _JOB_COLUMNS}
    values["status"] = JobStatus(values["status"])
    values["artifacts"] = [Artifact(**a) for a in json.loads(values["artifacts"])]
    values["facts"] = json.loads(values["facts"])
    return Job(spec=JobSpec(**spec), **values)


class JobStore:
    """CRUD over job records plus the few queries the worker and the cache need."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            self._conn = connect(path)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise StoreError(
                f"The job database {path} cannot be used ({exc}). Move it aside to start "
                "with an empty history."
            ) from exc
        except OSError as exc:
            raise StoreError(f"The job database {path} cannot be created ({exc}).") from exc
        except StoreError:
            self._close_quietly()
            raise

    def _close_quietly(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()

    def _migrate(self) -> None:
        with self._transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"The job database {self.path} was written by a newer StemDeck "
                    f"(schema {version}, this one knows {SCHEMA_VERSION}). Upgrade StemDeck."
                )
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step + 1}")

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn, self._lock)

    def _execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._conn.execute(sql, params)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"The job database {self.path} failed: {exc}") from exc

    def _query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._execute(sql, params).fetchall()

    @property
    def schema_version(self) -> int:
        return self._query("PRAGMA user_version")[0][0]

    def insert(self, job: Job) -> None:
        row = _to_row({f.name: getattr(job, f.name) for f in fields(Job)})
        names = ", ".join(row)
        marks = ", ".join(f":{name}" for name in row)
        self._execute(f"INSERT INTO jobs ({names}) VALUES ({marks})", row)

    def get(self, job_id: str) -> Job | None:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _from_row(rows[0]) if rows else None

    def list(self, limit: int = 200) -> list[Job]:
        """Newest first (History shows the latest work on top)."""
        rows = self._query(
            "SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
        )
        return [_from_row(r) for r in rows]

    def statuses(self) -> dict[str, JobStatus]:
        """Job id → status of every record (cheap: the janitor's view)."""
        return {r[0]: JobStatus(r[1]) for r in self._query("SELECT id, status FROM jobs")}

    def in_status(self, *statuses: JobStatus) -> list[Job]:
        """Jobs in any of ``statuses``, oldest first (queue order)."""
        marks = ", ".join("?" for _ in statuses)
        rows = self._query(
            f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created_at, rowid",
            [str(s) for s in statuses],
        )
        return [_from_row(r) for r in rows]

    def find_succeeded(self, cache_key: str) -> Job | None:
        """The newest finished job with this cache key: a stored result to return instantly."""
        return self._find(cache_key, (JobStatus.SUCCEEDED,), "finished_at DESC")

    def find_active(self, cache_key: str) -> Job | None:
        """A queued or running job with this cache key, so identical work is not done twice."""
        return self._find(cache_key, _ACTIVE, "created_at")

    def _find(self, cache_key: str, statuses: Iterable[JobStatus], order: str) -> Job | None:
        statuses = [str(s) for s in statuses]
        marks = ", ".join("?" for _ in statuses)
        rows = self._query(
            f"SELECT * FROM jobs WHERE cache_key = ? AND status IN ({marks}) "
            f"ORDER BY {order} LIMIT 1",
            [cache_key, *statuses],
        )
        return _from_row(rows[0]) if rows else None

    def update(self, job_id: str, *, only_if: dict[str, Any] | None = None, **values: Any) -> bool:
        """Set fields of one job; with ``only_if`` only when those columns still hold those values.

        Returns whether a row changed, which makes compare-and-set transitions (queued →
        cancelled, running → succeeded by this worker) safe against concurrent writers.
        """
        if not values:
            return False
        row = _to_row(values)
        sets = ", ".join(f"{name} = :{name}" for name in row)
        where, params = _where(job_id, only_if)
        cur = self._execute(f"UPDATE jobs SET {sets} WHERE {where}", {**row, **params})
        return cur.rowcount > 0

    def progress(self, job_id: str, worker_id: str, **values: Any) -> bool:
        """Write progress of a job this worker runs; returns whether the work should stop.

        Stop when the user asked to cancel (possibly from another process), or when the job is
        no longer ours (deleted, or re-queued by a restart sweep that thought we were dead).
        """
        row = _to_row(values)
        sets = ", ".join(f"{name} = :{name}" for name in row)
        rows = self._query(
            f"UPDATE jobs SET {sets} WHERE id = :_id AND status = :_status "
            "AND worker_id = :_worker RETURNING cancel_requested",
            {**row, "_id": job_id, "_status": str(JobStatus.RUNNING), "_worker": worker_id},
        )
        return not rows or bool(rows[0][0])

    def request_cancel(self, job_id: str) -> None:
        self._execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))

    def claim_next(
        self,
        worker_id: str,
        now: float,
        providers: Collection[str] | None = None,
        *,
        exclude: bool = False,
    ) -> Job | None:
        """Atomically take the oldest queued job (also across processes) and mark it running.

        ``providers`` limits the claim to jobs of those providers (``exclude``: of any other),
        so CPU-bound local jobs and I/O-bound remote ones can be drained by separate pools.
        """
        try:
            return self._claim_next(worker_id, now, providers, exclude)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"The job database {self.path} failed: {exc}") from exc

    def _claim_next(
        self, worker_id: str, now: float, providers: Collection[str] | None, exclude: bool
    ) -> Job | None:
        where, params = "status = ?", [str(JobStatus.QUEUED)]
        if providers is not None:
            marks = ", ".join("?" * len(providers))
            negate = "NOT " if exclude else ""
            where += f" AND json_extract(spec, '$.provider') {negate}IN ({marks})"
            params += sorted(providers)
        with self._transaction() as conn:
            row = conn.execute(
                f"SELECT id FROM jobs WHERE {where} ORDER BY created_at, rowid LIMIT 1", params
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET status = ?, stage = 'starting', progress = 0, eta_s = NULL, "
                "started_at = ?, finished_at = NULL, worker_id = ?, heartbeat_at = ?, "
                "attempts = attempts + 1 WHERE id = ?",
                (str(JobStatus.RUNNING), now, worker_id, now, row[0]),
            )
            job_row = conn.execute("SELECT * FROM jobs WHERE id = ?", (row[0],)).fetchone()
        return _from_row(job_row)

    def heartbeat(self, worker_id: str, now: float) -> None:
        self._execute(
            "UPDATE jobs SET heartbeat_at = ? WHERE worker_id = ? AND status = ?",
            (now, worker_id, str(JobStatus.RUNNING)),
        )

    def delete(self, job_id: str) -> bool:
        return self._execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` under the store lock: one writer across processes."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
        self._conn = conn
        self._lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._conn

    def __exit__(self, exc_type: object, *_rest: object) -> None:
        try:
            self._conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()


def _where(job_id: str, only_if: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    clauses = ["id = :_id"]
    params: dict[str, Any] = {"_id": job_id}
    for name, value in _to_row(only_if or {}).items():
        clauses.append(f"{name} IS :_w_{name}")
        params[f"_w_{name}"] = value
    return " AND ".join(clauses), params
