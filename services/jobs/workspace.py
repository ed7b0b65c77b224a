"""Per-job folders under ``jobs_dir/<job_id>/`` and the janitor that keeps the tree tidy.

Folder names are job ids (uuid4 hex) only, never anything a user typed, so no path a user
influences is ever joined onto the data directory.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.jobs.model import JobStatus

_JOB_ID = re.compile(r"[0-9a-f]{32}")


def new_job_id() -> str:
    return uuid.uuid4().hex


def is_job_id(value: str) -> bool:
    return bool(_JOB_ID.fullmatch(value))


@dataclass
class JanitorReport:
    """What a janitor pass removed (folder names), for the log."""

    orphans: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class Workspaces:
    """Creates, resolves and removes job folders under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, job_id: str) -> Path:
        if not is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / job_id

    def fresh(self, job_id: str) -> Path:
        """An empty folder for a new attempt (a retried job must not see a half-written run)."""
        self.delete(job_id)
        folder = self.path(job_id)
        folder.mkdir(parents=True)
        return folder

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self.path(job_id), ignore_errors=True)

    def resolve(self, job_id: str, relpath: str) -> Path:
        """A file inside the job folder; refuses anything that would escape it."""
        folder = self.path(job_id).resolve()
        target = (folder / relpath).resolve()
        if not target.is_relative_to(folder):
            raise ValueError(f"path {relpath!r} leaves the job workspace")
        return target

    def janitor(self, statuses: Callable[[], Mapping[str, JobStatus]]) -> JanitorReport:
        """Remove folders of jobs with no record (orphans) and of failed or cancelled jobs.

        ``statuses`` (job id → status) is read *after* listing the folders, so a job created
        meanwhile (record first, folder second) is never mistaken for an orphan.
        """
        report = JanitorReport()
        if not self.root.is_dir():
            return report
        folders = [p.name for p in self.root.iterdir() if p.is_dir() and is_job_id(p.name)]
        known = statuses()
        for name in folders:
            if name not in known:
                report.orphans.append(name)
            elif known[name] in (JobStatus.FAILED, JobStatus.CANCELLED):
                report.failed.append(name)
            else:
                continue
            self.delete(name)
        return report
