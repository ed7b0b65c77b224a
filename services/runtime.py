"""The one object pages and the CLI talk to: submit, watch, cancel, delete and download jobs.

One :class:`Runtime` per process (the UI keeps it in ``st.cache_resource``). It owns the store,
the workspaces, the worker and the provider credentials; everything it returns is a plain
:class:`Job` snapshot. A key typed in a session reaches its job through the credential vault
(see :mod:`services.providers.credentials`): the job record only carries an opaque reference.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from services.audio.encode import zip_files
from services.audio.formats import ExportFormat
from services.config import Settings
from services.errors import InputRejected, JobCancelled, StemDeckError
from services.inputs import InputInfo, find_input
from services.jobs.model import Job, JobSpec, JobStatus
from services.jobs.runner import build_request
from services.jobs.store import JobStore
from services.jobs.worker import Worker
from services.jobs.workspace import Workspaces, new_job_id
from services.pricing import intents
from services.pricing.quotes import NO_ENDPOINT, Balances, Quote, confirm_reason
from services.providers import preflight
from services.providers.base import (
    Capabilities,
    Estimate,
    RunContext,
    SeparatedStem,
    SeparationProvider,
    SeparationRequest,
)
from services.providers.credentials import CREDENTIAL_FACT, Credential, Credentials, Resolved
from services.providers.preflight import Problem
from services.providers.registry import DEFAULT, Registry, key_digest

log = logging.getLogger(__name__)

WAIT_POLL_S = 0.1
DELETE_WAIT_S = 15.0


class Runtime:
    """Store + workspaces + worker behind the service API the brief names."""

    def __init__(self, settings: Settings, registry: Registry, store: JobStore) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.credentials = Credentials(settings)
        self.workspaces = Workspaces(settings.jobs_dir)
        self.worker = Worker(
            store, self.workspaces, settings, self._job_provider, settings.local_workers
        )
        self._submit_lock = threading.Lock()
        self._zip_lock = threading.Lock()
        self.balances = Balances()

    @classmethod
    def start(
        cls, settings: Settings, registry: Registry | None = None, *, warm: bool = False
    ) -> Runtime:
        """Open the store, sweep what a dead process left behind, start the worker threads.

        ``warm`` builds every provider in a background thread (the app): the local engine's
        import of torch takes seconds, which the first page would otherwise wait for.
        """
        runtime = cls(settings, registry or DEFAULT, JobStore(settings.database))
        if warm:
            threading.Thread(target=runtime._warm, name="stemdeck-warm", daemon=True).start()
        runtime.worker.start()  # sweeps first, so jobs it fails are tidied by the janitor below
        report = runtime.workspaces.janitor(runtime.store.statuses)
        if report.orphans or report.failed:
            log.info(
                "janitor removed %d orphan and %d failed workspaces",
                len(report.orphans),
                len(report.failed),
            )
        return runtime

    def _warm(self) -> None:
        for name in self.registry.names():
            try:
                self.provider(name)
            except Exception:  # the page that needs it reports the failure properly
                log.exception("could not load provider %s", name)

    # --- providers and credentials ---------------------------------------------------------

    def provider(self, name: str, session: Credential | None = None) -> SeparationProvider:
        """The provider instance built with the credential ``name`` resolves to right now.

        Capabilities and estimates are the same for every key; runs and connection checks
        use the instance of the resolved key and base URL.
        """
        credential = self.credentials.resolve(name, session).credential
        return self._instance(name, credential)

    def _instance(self, name: str, credential: Credential) -> SeparationProvider:
        return self.registry.get(
            name, self.settings, api_key=credential.api_key, base_url=credential.base_url
        )

    def providers(self) -> dict[str, SeparationProvider]:
        return {name: self.provider(name) for name in self.registry.names()}

    def key_status(self, name: str, session: Credential | None = None) -> Resolved:
        """Which key and base URL ``name`` would use, and where each comes from."""
        return self.credentials.resolve(name, session)

    def key_problem(self, name: str, session: Credential | None = None) -> Problem | None:
        """A "needs a key" problem when the provider needs one and none is available."""
        return preflight.key_problem(self.provider(name), self.key_status(name, session).has_key)

    def set_secrets(self, values: dict[str, object]) -> None:
        """The app's ``st.secrets`` values (``<NAME>_API_KEY``, ``<NAME>_BASE_URL``)."""
        self.credentials.set_secrets(values)

    def save_credential(self, name: str, credential: Credential) -> None:
        """Save a typed key/base URL to the owner-only keys file (on the user's request)."""
        self.credentials.save(name, credential)

    def forget_credential(self, name: str, session: Credential | None = None) -> None:
        """Forget the saved and this session's key; drop adapters built with them."""
        for held in (session, self.credentials.saved.load().get(name)):
            if held is not None and held.api_key:
                self.registry.forget(name, held.api_key)
        self.credentials.forget(name, session)

    def check_connection(self, name: str, session: Credential | None = None) -> str:
        """The provider's own connection check with the resolved key (balance where offered)."""
        resolved = self.key_status(name, session)
        provider = self._instance(name, resolved.credential)
        if problem := preflight.key_problem(provider, resolved.has_key):
            raise problem.error()
        check = getattr(provider, "check_connection", None)
        if check is None:
            return f"{provider.capabilities.display_name} needs no connection."
        return str(check())

    def _job_provider(self, name: str) -> SeparationProvider:
        """What the worker runs: the credential is picked from the job's facts at run time."""
        return _CredentialedRun(self, name)

    # --- jobs ------------------------------------------------------------------------------

    def request(self, spec: JobSpec) -> SeparationRequest:
        """The provider request for ``spec`` (its input must still be stored)."""
        return build_request(Job(id="", spec=spec), self.settings)

    def estimate(self, spec: JobSpec) -> Estimate:
        """What ``spec`` will cost and take, before it runs (raises for invalid options)."""
        return self.provider(spec.provider).estimate(self.request(spec))

    # --- cost before running (services/pricing) ---------------------------------------------

    def quotes(
        self,
        info: InputInfo,
        intent_id: str,
        export: ExportFormat,
        sessions: Mapping[str, Credential] | None = None,
        chosen: JobSpec | None = None,
    ) -> list[Quote]:
        """A quote per provider that has a mode for ``intent_id`` (2/4/6 stems) on this input;
        ``chosen`` (the user's exact settings) stands in for its provider's row."""
        specs = [
            chosen
            if chosen is not None and chosen.provider == name
            else JobSpec.for_input(info, name, mode, export)
            for name in self.registry.names()
            if (mode := intents.mode_for(intent_id, name)) is not None
            or (chosen is not None and chosen.provider == name)
        ]
        return self.quote_specs(specs, sessions)

    def quote_specs(
        self, specs: Sequence[JobSpec], sessions: Mapping[str, Credential] | None = None
    ) -> list[Quote]:
        """Estimate, balance (asked in parallel, briefly cached) and cover, per spec."""
        sessions = sessions or {}
        drafts = [self._draft_quote(spec, sessions.get(spec.provider)) for spec in specs]
        fetchers = {}
        for quote in drafts:
            if quote.free or quote.needs_key:
                continue
            credential = self.key_status(quote.provider, sessions.get(quote.provider)).credential
            fetch = getattr(self._instance(quote.provider, credential), "balance", None)
            if fetch is not None:
                key = (quote.provider, key_digest(credential.api_key), credential.base_url)
                fetchers[quote] = (key, fetch)
        found = self.balances.get_many(dict(fetchers.values()))
        quotes = []
        for quote in drafts:
            if quote in fetchers:
                balance, note = found[fetchers[quote][0]]
            elif quote.free or quote.needs_key:
                balance, note = None, ""
            else:
                balance, note = None, NO_ENDPOINT
            quotes.append(dataclasses.replace(quote, balance=balance, balance_note=note))
        return quotes

    def _draft_quote(self, spec: JobSpec, session: Credential | None) -> Quote:
        provider = self.provider(spec.provider)
        caps = provider.capabilities
        problem = self.preflight(spec, session)
        estimate = None
        if problem is None or problem.kind != "mode":
            try:
                estimate = provider.estimate(self.request(spec))
            except StemDeckError:  # invalid options or a vanished input: the problem says so
                estimate = None
        return Quote(
            provider=spec.provider,
            display_name=caps.display_name,
            mode=spec.mode,
            mode_label=next((m.label for m in caps.modes if m.id == spec.mode), spec.mode),
            estimate=estimate,
            free=caps.pricing_unit == "free",
            problem=problem.message if problem else None,
            needs_key=problem is not None and problem.kind == "needs_key",
        )

    def confirm_reason(self, quote: Quote) -> str | None:
        """Why a run should be confirmed before it may spend (above the threshold), or None."""
        return confirm_reason(quote, self.settings)

    def preflight(self, spec: JobSpec, session: Credential | None = None) -> Problem | None:
        """Why ``spec`` cannot run as asked (mode, key, limits, public URL, options), or None."""
        provider = self.provider(spec.provider)
        if problem := preflight.mode_problem(provider, spec.mode):
            return problem  # before the input: the CLI reports a bad mode without ingesting
        stored = find_input(spec.input_hash, self.settings)
        if stored is None:
            return Problem(
                "options", f"The input file ({spec.input_name}) is no longer stored; add it again."
            )
        has_key = self.key_status(spec.provider, session).has_key
        return preflight.check(
            provider, self.request(spec), stored.info.size_bytes, has_key, self.settings
        )

    def submit(
        self, spec: JobSpec, fresh: bool = False, session: Credential | None = None
    ) -> Job:
        """Queue ``spec``; an identical stored result (unless ``fresh``) or run is returned.

        ``session`` is a key/base URL typed in this session (or given to the CLI): the job
        gets an opaque reference to it, never the key.
        """
        ExportFormat.from_options(spec.export)  # refuse a bad format before any work
        if problem := self.preflight(spec, session):
            raise problem.error()
        provider = self.provider(spec.provider)
        with self._submit_lock:
            done = None if fresh else self.stored_result(spec)
            if done is not None:
                return done
            active = self.store.find_active(spec.cache_key)
            if active is not None:
                return active
            job = Job(id=new_job_id(), spec=spec, created_at=time.time())
            if provider.capabilities.needs_key:
                ref = self.credentials.hand_over(spec.provider, session)
                job.facts = {CREDENTIAL_FACT: ref} if ref else {}
            job.estimated_cost = provider.estimate(build_request(job, self.settings)).credits
            self.store.insert(job)
        if provider.capabilities.pricing_unit != "free":  # its balance is about to change
            self.balances.forget(lambda key: key[0] == spec.provider)
        self.worker.wake()
        return job

    def stored_result(self, spec: JobSpec) -> Job | None:
        """The stored result for ``spec`` (same cache key) whose files are all still there."""
        done = self.store.find_succeeded(spec.cache_key)
        return done if done is not None and self._files_present(done) else None

    def _files_present(self, job: Job) -> bool:
        """A cached result is only reusable if nobody removed its files meanwhile."""
        try:
            return all(
                self.artifact_path(job, rel).is_file()
                for a in job.artifacts
                for rel in (a.file, a.preview, a.peaks)
            )
        except ValueError:
            return False

    def get(self, job_id: str) -> Job | None:
        return self.store.get(job_id)

    def list_jobs(self, limit: int = 200) -> list[Job]:
        """Newest first."""
        return self.store.list(limit)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job at once, or ask a running one (here or elsewhere) to stop."""
        cancelled = self.store.update(
            job_id,
            only_if={"status": JobStatus.QUEUED},
            status=JobStatus.CANCELLED,
            stage="cancelled",
            error=JobCancelled().user_message,
            finished_at=time.time(),
        )
        if not cancelled:
            self.store.request_cancel(job_id)
            self.worker.cancel(job_id)
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        """Remove record and files; a job still working is cancelled (and awaited) first."""
        job = self.get(job_id)
        if job is None:
            return
        if not job.status.terminal:
            self.cancel(job_id)
            if not self.wait(job_id, DELETE_WAIT_S).status.terminal:
                raise StemDeckError("This job is still stopping; try deleting it again shortly.")
        self.store.delete(job_id)
        self.workspaces.delete(job_id)

    def workspace(self, job_id: str) -> Path:
        return self.workspaces.path(job_id)

    def artifact_path(self, job: Job, artifact_relpath: str) -> Path:
        """Absolute path of a file recorded on ``job``; never outside its workspace."""
        return self.workspaces.resolve(job.id, artifact_relpath)

    def zip_for(self, job_id: str) -> Path:
        """A zip of every stem in the job's export format, built on first request."""
        job = self.get(job_id)
        if job is None or job.status is not JobStatus.SUCCEEDED:
            raise InputRejected("Only a finished job can be downloaded as a zip.")
        dest = self.workspace(job_id) / zip_name(job)
        with self._zip_lock:
            if not dest.is_file():
                members = [
                    (Path(a.file).name, self.artifact_path(job, a.file)) for a in job.artifacts
                ]
                zip_files(members, dest)  # atomic: a half-built zip never has the real name
        return dest

    def wait(self, job_id: str, timeout_s: float | None = None) -> Job:
        """Block until the job is terminal or ``timeout_s`` passes; returns the latest record."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.get(job_id)
            if job is None:
                raise StemDeckError(f"Job {job_id} no longer exists.")
            if job.status.terminal:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                return job
            time.sleep(WAIT_POLL_S)

    def shutdown(self) -> None:
        """Stop the worker (running jobs go back to the queue) and close the store."""
        self.worker.stop()
        self.store.close()
        self.balances.close()


class _CredentialedRun:
    """A provider as the worker sees it: the instance for the job's credential is chosen when
    the job runs, from the opaque reference in its facts (never a key in the record)."""

    def __init__(self, runtime: Runtime, name: str) -> None:
        self._runtime = runtime
        self.name = name
        self._default = runtime.provider(name)

    @property
    def capabilities(self) -> Capabilities:
        return self._default.capabilities

    def estimate(self, request: SeparationRequest) -> Estimate:
        return self._default.estimate(request)

    def run(self, request: SeparationRequest, ctx: RunContext) -> list[SeparatedStem]:
        if not self.capabilities.needs_key:
            return self._default.run(request, ctx)
        credential = self._runtime.credentials.for_job(
            self.name, self.capabilities.display_name, ctx.facts.get(CREDENTIAL_FACT)
        )
        return self._runtime._instance(self.name, credential).run(request, ctx)


def zip_name(job: Job) -> str:
    """``<input name>-<mode>-stems.zip`` with only safe characters (it becomes a file name)."""
    stem = Path(job.spec.input_name).stem
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:80] or "stems"
    mode = re.sub(r"[^A-Za-z0-9]+", "", job.spec.mode) or "mode"
    return f"{safe}-{mode}-stems.zip"
