"""Run one track through several lanes, score them, and let listeners rate them blind."""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from services.audio.formats import ExportFormat
from services.compare import export
from services.compare.model import Comparison, LaneSpec, ProviderScore, Rating, lane_label
from services.compare.store import CompareStore
from services.errors import StemDeckError
from services.inputs import InputInfo, find_input
from services.jobs.model import Job, JobSpec, JobStatus
from services.metrics import FIGURE_HELP, LaneFigures, lane_figures
from services.providers.base import Capabilities
from services.providers.credentials import Credential
from services.runtime import Runtime

SCORES = range(1, 6)
DELETED = "This lane's job was deleted from History."


class RatingRejected(StemDeckError):
    """A rating for a lane, stem or score that does not exist."""


class Comparisons:
    """Comparisons persisted beside the job store (``<data dir>/compare.sqlite3``).

    The lanes are ordinary jobs (cached, resumable, visible in History); a comparison only
    records which jobs belong together, plus figures and ratings.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.store = CompareStore(runtime.settings.data_dir / "compare.sqlite3")
        self._figure_locks: dict[tuple[str, int], threading.Lock] = defaultdict(threading.Lock)
        self._locks_lock = threading.Lock()

    def start(
        self,
        stored: InputInfo,
        lanes: Sequence[LaneSpec],
        export: ExportFormat,
        sessions: Mapping[str, Credential | None] = {},  # never mutated
        *,
        fresh: bool = False,
        references: Mapping[str, Path] | None = None,
        example_id: str | None = None,
    ) -> Comparison:
        """Submit one job per lane (``sessions``: provider → key typed in this session).

        A lane whose submission raises a :class:`StemDeckError` gets job id ``""`` and its
        message (see :meth:`lane_error`); the other lanes run regardless. Lanes run at once:
        remote lanes on the worker's remote pool, the local engine on its own.
        """
        job_ids: list[str] = []
        errors: dict[int, str] = {}
        for index, lane in enumerate(lanes):
            spec = JobSpec.for_input(
                stored, lane.provider, lane.mode, export, lane.stems, lane.preprocessing
            )
            try:
                job = self.runtime.submit(spec, fresh, sessions.get(lane.provider))
            except StemDeckError as exc:
                job_ids.append("")
                errors[index] = exc.user_message
            else:
                job_ids.append(job.id)
        comparison = Comparison(
            id=uuid.uuid4().hex,
            input_hash=stored.hash,
            input_name=stored.name,
            duration_s=stored.info.duration_s,
            lanes=tuple(lanes),
            job_ids=tuple(job_ids),
            created_at=time.time(),
            references={stem: str(Path(p).resolve()) for stem, p in (references or {}).items()},
            example_id=example_id,
            lane_errors=errors,
        )
        self.store.insert(comparison)
        return comparison

    def get(self, comparison_id: str) -> Comparison | None:
        return self.store.get(comparison_id)

    def list(self, limit: int = 100) -> list[Comparison]:
        """Newest first."""
        return self.store.list(limit)

    def delete(self, comparison_id: str) -> None:
        """Remove the comparison and its ratings/figures (the lanes' jobs stay in History)."""
        self.store.delete(comparison_id)

    def jobs(self, comparison: Comparison) -> list[Job | None]:
        """Each lane's job, ``None`` where submission failed or the job was deleted."""
        return [self.runtime.get(job_id) if job_id else None for job_id in comparison.job_ids]

    def lane_error(self, comparison: Comparison, index: int) -> str | None:
        """Why lane ``index`` has no result (refused, failed, cancelled, deleted), or None."""
        if index in comparison.lane_errors:
            return comparison.lane_errors[index]
        job = self.runtime.get(comparison.job_ids[index])
        if job is None:
            return DELETED
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            return job.error or f"The job {job.status}."
        return None

    def label(self, comparison: Comparison, index: int) -> str:
        """The lane's column title, from its provider's capabilities where installed."""
        lane = comparison.lanes[index]
        return lane_label(lane, self._capabilities(lane.provider))

    def _capabilities(self, provider: str) -> Capabilities | None:
        try:
            return self.runtime.provider(provider).capabilities
        except StemDeckError:
            return None

    def figures(self, comparison: Comparison, index: int) -> LaneFigures | None:
        """Lane ``index``'s quality figures; None until its job succeeded (computed once)."""
        job_id = comparison.job_ids[index]
        job = self.runtime.get(job_id) if job_id else None
        if job is None or job.status is not JobStatus.SUCCEEDED:
            return None
        with self._locks_lock:
            lock = self._figure_locks[(comparison.id, index)]
        with lock:  # two reruns of the page must not decode the same stems twice
            cached = self.store.figures(comparison.id, index, job.id)
            if cached is not None:
                return cached
            stored = find_input(comparison.input_hash, self.runtime.settings)
            if stored is None:
                return None
            stems = {a.stem: self.runtime.artifact_path(job, a.file) for a in job.artifacts}
            refs = {s: Path(p) for s, p in comparison.references.items() if Path(p).is_file()}
            figures = lane_figures(stored.path, stems, refs)
            self.store.save_figures(comparison.id, index, job.id, figures)
            return figures

    def blind_order(self, comparison: Comparison, stem: str) -> list[int]:
        """Indices of lanes that returned ``stem``, shuffled stably per comparison and stem."""
        lanes = [
            i
            for i, job in enumerate(self.jobs(comparison))
            if job is not None
            and job.status is JobStatus.SUCCEEDED
            and any(a.stem == stem for a in job.artifacts)
        ]
        seed = hashlib.sha256(f"{comparison.id}:{stem}".encode()).digest()
        random.Random(seed).shuffle(lanes)
        return lanes

    def rate(
        self, comparison_id: str, stem: str, lane_index: int, score: int, rater: str = "default"
    ) -> None:
        """Record a 1–5 score; rating the same (stem, lane, rater) again replaces it."""
        comparison = self.get(comparison_id)
        if comparison is None:
            raise RatingRejected("This comparison no longer exists.")
        if score not in SCORES:
            raise RatingRejected("A rating is a whole number from 1 to 5.")
        if not 0 <= lane_index < len(comparison.lanes):
            raise RatingRejected("There is no such lane in this comparison.")
        rater = " ".join(str(rater).split())[:60] or "default"
        self.store.rate(Rating(comparison_id, stem, lane_index, int(score), rater, time.time()))

    def ratings(self, comparison_id: str) -> list[Rating]:
        return self.store.ratings(comparison_id)

    def reveal(self, comparison_id: str) -> list[ProviderScore]:
        """Ratings aggregated per lane label and stem, best mean first within each stem.

        ``wins`` counts the (stem, rater) rounds in which the lane had the top score.
        """
        comparison = self.get(comparison_id)
        if comparison is None:
            return []
        labels = [self.label(comparison, i) for i in range(len(comparison.lanes))]
        ratings = self.ratings(comparison_id)
        scores: dict[tuple[str, str], list[int]] = defaultdict(list)
        wins: dict[tuple[str, str], int] = defaultdict(int)
        rounds: dict[tuple[str, str], list[Rating]] = defaultdict(list)
        for rating in ratings:
            scores[(labels[rating.lane_index], rating.stem)].append(rating.score)
            rounds[(rating.stem, rating.rater)].append(rating)
        for (stem, _rater), given in rounds.items():
            top = max(r.score for r in given)
            for rating in given:
                if rating.score == top:
                    wins[(labels[rating.lane_index], stem)] += 1
        result = [
            ProviderScore(label, stem, sum(s) / len(s), len(s), wins[(label, stem)])
            for (label, stem), s in scores.items()
        ]
        return sorted(result, key=lambda p: (p.stem, -p.mean, -p.wins, p.provider_label))

    # --- export ------------------------------------------------------------------------------

    def report(self, comparison_id: str) -> dict[str, Any]:
        """Everything an export holds, JSON-safe (no keys: jobs only hold opaque references)."""
        comparison = self.get(comparison_id)
        if comparison is None:
            raise StemDeckError("This comparison no longer exists.")
        jobs = self.jobs(comparison)
        ratings = self.ratings(comparison_id)
        lanes = []
        for index, (lane, job) in enumerate(zip(comparison.lanes, jobs, strict=True)):
            figures = self.figures(comparison, index)
            lanes.append(
                {
                    "index": index,
                    "label": self.label(comparison, index),
                    "provider": lane.provider,
                    "mode": lane.mode,
                    "requested_stems": list(lane.stems),
                    "preprocessing": list(lane.preprocessing),
                    "job_id": job.id if job else None,
                    "status": str(job.status) if job else "not run",
                    "error": self.lane_error(comparison, index),
                    "seconds": job.elapsed_s if job else None,
                    "estimate": self._estimate(job),
                    "estimated_credits": job.estimated_cost if job else None,
                    "actual_credits": job.actual_cost if job else None,
                    "stems": [
                        {"stem": a.stem, "file": f"{job.id}/{a.file}"}
                        for a in (job.artifacts if job else [])
                    ],
                    "figures": asdict(figures) if figures else None,
                    "ratings": [asdict(r) for r in ratings if r.lane_index == index],
                }
            )
        return {
            "id": comparison.id,
            "track": comparison.input_name,
            "input_hash": comparison.input_hash,
            "duration_s": comparison.duration_s,
            "created_at": comparison.created_at,
            "example_id": comparison.example_id,
            "references": sorted(comparison.references),
            "lanes": lanes,
            "figure_help": dict(FIGURE_HELP),
            "reveal": [asdict(s) for s in self.reveal(comparison_id)],
        }

    def _estimate(self, job: Job | None) -> dict[str, Any] | None:
        """The pre-run estimate for the lane's spec (``None`` where it cannot be made now)."""
        if job is None:
            return None
        try:
            estimate = self.runtime.estimate(job.spec)
        except (StemDeckError, KeyError, ValueError):
            return None
        return asdict(estimate) if is_dataclass(estimate) else None

    def export_json(self, comparison_id: str) -> str:
        return export.to_json(self.report(comparison_id))

    def export_csv(self, comparison_id: str) -> str:
        """One row per lane and stem, figures and mean rating beside it."""
        return export.to_csv(self.report(comparison_id))

    def export_html(self, comparison_id: str) -> str:
        """A self-contained page: lanes, time, cost, stems, figures, ratings (escaped)."""
        return export.to_html(self.report(comparison_id))

    def close(self) -> None:
        self.store.close()
