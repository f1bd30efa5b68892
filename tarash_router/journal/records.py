"""What the journal keeps about a provider job, and the idempotency claims that guard submits."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, UTC
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..models import Cost, ImageGenerationResponse, Job, VideoGenerationResponse

JobState = Literal["submitting", "submitted", "queued", "processing", "completed", "failed", "cancelled"]
# States only move forward; the three terminal states never change again. `submitting` is the intent
# written before the POST: left behind, it means a crash while the provider may have accepted a job.
STATE_ORDER: dict[str, int] = {"submitting": -1, "submitted": 0, "queued": 1, "processing": 2, "completed": 3, "failed": 3,
                               "cancelled": 3}
TERMINAL_STATES = frozenset({"completed", "failed", "cancelled"})


def can_move(current: str, new: str) -> bool:
    """Forward only: queued -> processing is fine, completed -> processing never is."""
    if current in TERMINAL_STATES:
        return False
    return STATE_ORDER[new] >= STATE_ORDER[current]


class JobRecord(BaseModel):
    """One accepted provider job: enough to find, poll, fetch and cancel it after a restart.

    Never holds an API key or request headers; the key is read again (config or env) on resume.
    Frozen: a store hands out the record it holds, and a change is a new record (`model_copy`).
    """

    model_config = ConfigDict(frozen=True)

    job_id: str  # the provider's job id; also `response.request_id`
    provider: str
    model: str
    modality: Literal["video", "image"]
    state: JobState = "submitted"
    job: dict[str, Any] = Field(default_factory=dict, description="Job handle from the submit response (URLs)")
    base_url: str = ""
    provider_config: dict[str, Any] = Field(default_factory=dict)
    timeout: float = 600
    poll_interval: float = 5
    max_poll_attempts: int = 120
    fingerprint: str = ""
    idempotency_key: str | None = None
    # The estimate made before submit (the family's prices), so a resumed job still carries it.
    estimated_cost: Cost | None = None
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    result: dict[str, Any] | None = None  # the response (model_dump) once completed
    error: dict[str, Any] | None = None  # {type, message} once failed

    def to_job(self, progress: int | None = None, response: Any = None) -> Job:
        """The public view of this record (`submitting` intents read as queued: nothing is known yet)."""
        state = self.state if self.state in ("queued", "processing", "completed", "failed", "cancelled") else "queued"
        if response is None and self.result is not None:
            cls = VideoGenerationResponse if self.modality == "video" else ImageGenerationResponse
            response = cls.model_validate(self.result)
        return Job(id=self.job_id, provider=self.provider, model=self.model, modality=self.modality, state=state,
                   progress=100 if state == "completed" else progress, response=response, error=self.error,
                   created_at=datetime.fromtimestamp(self.created_at, UTC),
                   updated_at=datetime.fromtimestamp(self.updated_at, UTC))


ClaimState = Literal["running", "submitting", "completed", "failed"]


class Claim(BaseModel):
    """An idempotency key: who owns it, for which request, and how it ended."""

    key: str
    fingerprint: str
    owner: str
    state: ClaimState = "running"
    job_id: str | None = None
    heartbeat: float = Field(default_factory=time.time)
    result: dict[str, Any] | None = None
    modality: Literal["video", "image"] = "video"


def fingerprint(target: str, request: BaseModel) -> str:
    """A stable hash of what is being generated (target + request, idempotency key excluded)."""
    data = request.model_dump(mode="json", exclude={"idempotency_key"})
    text = json.dumps({"target": target, "request": data}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = ["JobRecord", "JobState", "Claim", "can_move", "fingerprint", "TERMINAL_STATES"]
