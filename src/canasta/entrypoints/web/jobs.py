"""Long staff actions (a cycle run) run in a thread while the page that started them
refreshes itself (a meta refresh: no JavaScript) until they finish."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Job:
    id: int
    title: str
    started_by: str
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    #: queued, running, done or failed
    state: str = "running"
    stage: str = ""
    result: object | None = None
    error: str | None = None

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started


class Jobs:
    """The jobs of this server process, newest kept; at most one at a time per key (a
    programme's cycle cannot be run twice at once)."""

    def __init__(self, keep: int = 50) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._running: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._keep = keep

    def start(self, key: str, title: str, by: str, work: Callable[[Job], object]) -> Job:
        with self._lock:
            busy = self._running.get(key)
            if busy is not None:
                return self._jobs[busy]
            job = Job(next(self._ids), title, by)
            self._jobs[job.id] = job
            self._running[key] = job.id
            for old in sorted(self._jobs)[: -self._keep]:
                if self._jobs[old].finished is not None:
                    del self._jobs[old]

        def run() -> None:
            try:
                job.result = work(job)
                job.state = "done"
            except Exception as failed:  # shown on the job's page; nothing half-written
                job.error = getattr(failed, "message", None) or str(failed) or type(failed).__name__
                job.state = "failed"
            finally:
                job.finished = time.monotonic()
                with self._lock:
                    self._running.pop(key, None)

        threading.Thread(target=run, name=f"canasta-job-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def recent(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: -j.id)[:10]
