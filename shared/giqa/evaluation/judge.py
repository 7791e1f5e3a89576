"""The LLM judge of GIQA-Bench (DESIGN §3.4): LLM-Score for descriptions, Acc(W) for What/Why/How answers.

Fixed prompts live as files beside this module (``prompts/*.txt``) and are hashed into every report, so
scores from different prompts or judges are never mixed up. The judge answers with structured output, an
integer 0–4 (``{"score": N}`` under a JSON schema), at temperature 0, through the project's one chat client
(:class:`giqa.llm.client.OpenAIChatClient`), which already retries transport errors and invalid answers.
``retries`` adds rounds here with a correction turn, for clients that do not. An item whose judge never gives
a valid score is a counted failure and scores 0 (not cached); a judge that is down stops the run. Scores are
cached by (judge model, prompt hash, inputs), so re-scoring is free.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import Any, Literal

from tqdm import tqdm

from giqa.evaluation.cache import JudgeCache, cache_key
from giqa.llm.errors import LLMUnavailableError
from giqa.metrics.scores import JUDGE_MAX
from giqa.ports import ChatLLM, Message

log = logging.getLogger(__name__)

JudgeKind = Literal["des", "vqa"]
SCORE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "integer", "minimum": 0, "maximum": JUDGE_MAX}},
    "required": ["score"],
    "additionalProperties": False,
}
_CORRECTION = (
    'That reply was not valid. Reply with exactly one JSON object {"score": N} where N is an integer '
    "from 0 to 4, and nothing else."
)


def _prompt_file(name: str) -> str:
    return (resources.files("giqa.evaluation") / "prompts" / name).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Prompts:
    """The judge's fixed prompt texts; ``$question``, ``$reference`` and ``$response`` are filled in."""

    system: str
    des: str
    vqa: str

    @classmethod
    def load(cls) -> Prompts:
        return cls(_prompt_file("system.txt"), _prompt_file("des.txt"), _prompt_file("vqa.txt"))

    def kind_hash(self, kind: JudgeKind) -> str:
        template = self.des if kind == "des" else self.vqa
        return _sha(self.system, template, json.dumps(SCORE_SCHEMA, sort_keys=True))

    @property
    def hash(self) -> str:
        """One hash for the whole prompt set (both kinds and the output schema)."""
        return _sha(self.system, self.des, self.vqa, json.dumps(SCORE_SCHEMA, sort_keys=True))

    def render(self, kind: JudgeKind, *, question: str, reference: str, response: str) -> list[Message]:
        template = Template(self.des if kind == "des" else self.vqa)
        user = template.substitute(
            question=question.strip(), reference=reference.strip(), response=response.strip()
        )
        return [{"role": "system", "content": self.system.strip()}, {"role": "user", "content": user.strip()}]


def _sha(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class JudgeRequest:
    kind: JudgeKind
    question: str
    reference: str
    response: str

    def inputs(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "question": self.question,
            "reference": self.reference,
            "response": self.response,
        }


@dataclass(frozen=True, slots=True)
class JudgeResult:
    score: int  # 0..4; 0 for a failure
    cached: bool = False
    attempts: int = 0  # calls made to the LLM for this request (0 when cached)
    error: str | None = None  # why the judge failed, if it did


def read_score(reply: Any) -> int | None:
    """The integer 0..4 in a judge reply, or ``None`` for anything else ("3" and 3.0 are read as 3)."""
    if isinstance(reply, str):
        try:
            reply = json.loads(reply)
        except json.JSONDecodeError:
            return None
    if not isinstance(reply, dict) or "score" not in reply:
        return None
    value = reply["score"]
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.lstrip("-").isdigit():
            return None
        value = int(value)
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, int) and 0 <= value <= JUDGE_MAX:
        return value
    return None


class Judge:
    """Scores requests with a :class:`giqa.ports.ChatLLM`, through a cache, with bounded concurrency."""

    def __init__(
        self,
        llm: ChatLLM,
        *,
        cache: JudgeCache | None = None,
        concurrency: int = 4,
        retries: int = 0,
        max_tokens: int = 32,
        prompts: Prompts | None = None,
        url: str | None = None,
        model_id: str | None = None,
    ) -> None:
        if concurrency < 1 or retries < 0:
            raise ValueError("concurrency must be >= 1 and retries >= 0")
        self.llm = llm
        self.cache = cache
        self.concurrency = concurrency
        self.retries = retries
        self.max_tokens = max_tokens
        self.prompts = prompts or Prompts.load()
        self.url = url
        self._model_id = model_id
        self.calls = 0
        self.cache_hits = 0
        self.failures = 0
        self._count_lock = threading.Lock()

    def _count(self, name: str) -> None:
        with self._count_lock:
            setattr(self, name, getattr(self, name) + 1)

    @property
    def model(self) -> str:
        """The judge's identity in reports and cache keys (the served model name unless given)."""
        return self._model_id or str(self.llm.model_name)

    def info(self) -> dict[str, Any]:
        """What every report records about its judge."""
        return {
            "enabled": True,
            "model": self.model,
            "url": self.url,
            "prompt_hash": self.prompts.hash,
            "prompt_hashes": {"des": self.prompts.kind_hash("des"), "vqa": self.prompts.kind_hash("vqa")},
            "temperature": 0.0,
            "scale": f"0-{JUDGE_MAX}",
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "failures": self.failures,
        }

    def score(self, request: JudgeRequest) -> JudgeResult:
        key = cache_key(self.model, self.prompts.kind_hash(request.kind), request.inputs())
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self._count("cache_hits")
                return JudgeResult(hit, cached=True)
        messages = self.prompts.render(
            request.kind, question=request.question, reference=request.reference, response=request.response
        )
        error = "no attempt"
        for attempt in range(1, self.retries + 2):
            self._count("calls")
            try:
                reply = self.llm.chat_json(
                    messages, SCORE_SCHEMA, temperature=0.0, max_tokens=self.max_tokens
                )
            except LLMUnavailableError:
                raise  # the judge is down: scoring on would turn an outage into zeros (done work is cached)
            except Exception as exc:  # a refused or unreadable answer: a failure of this item only
                reply, error = None, f"{type(exc).__name__}: {exc}"
            value = read_score(reply)
            if value is not None:
                if self.cache is not None:
                    self.cache.put(
                        key, model=self.model, prompt_hash=self.prompts.kind_hash(request.kind), score=value
                    )
                return JudgeResult(value, attempts=attempt)
            if reply is not None:
                error = f"not a score 0-{JUDGE_MAX}: {str(reply)[:120]!r}"
            # Temperature 0 repeats itself: the retry must change the input, so it says what was wrong.
            if reply is not None:
                messages = [*messages, {"role": "assistant", "content": json.dumps(reply, default=str)[:200]}]
            messages = [*messages, {"role": "user", "content": _CORRECTION}]
        self._count("failures")
        log.warning("judge failed after %d attempts: %s", self.retries + 1, error)
        return JudgeResult(0, attempts=self.retries + 1, error=error)

    def score_many(self, requests: Sequence[JudgeRequest], *, progress: bool = True) -> list[JudgeResult]:
        """Scores in request order; at most ``concurrency`` requests in flight."""
        if not requests:
            return []
        bar = tqdm(total=len(requests), desc="judge", unit="item", disable=not progress, leave=False)
        try:
            if self.concurrency == 1:
                out = []
                for request in requests:
                    out.append(self.score(request))
                    bar.update(1)
                return out
            with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="judge") as pool:
                results = []
                # map's iterator cancels the queued requests when it is left early (a stop signal): leaving
                # the pool then waits only for those in flight, not for the whole bench
                for result in pool.map(self.score, requests):
                    results.append(result)
                    bar.update(1)
                return results
        finally:
            bar.close()
