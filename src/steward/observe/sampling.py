"""Tail sampling in process: a trace is kept or dropped when its root span ends.

Every error, every run slower than the latency threshold and every run dearer than the cost
threshold is kept, and a share of the rest chosen by a hash of the trace id, so every process
(and every replica) makes the same choice for the same run. The decision is taken once for all
the exporters behind the processor: the trace store and OTLP see the same traces. Run records
live in their own table and are never sampled.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from steward.observe import genai

KEPT_REASONS = ("error", "latency", "cost", "share")
DROPPED = "dropped"
_RUN_STATUS = "steward.run.status"


@dataclass(frozen=True)
class SamplingPolicy:
    """What to keep: `share` of ordinary traces (0..1), plus every error and every trace whose
    root lasted at least `latency_s` or whose model calls cost at least `cost_usd`."""

    share: float = 1.0
    latency_s: float | None = None
    cost_usd: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"sampling share must be within 0..1, not {self.share}")

    @property
    def keeps_everything(self) -> bool:
        return self.share >= 1.0

    def reason_to_keep(self, spans: Sequence[ReadableSpan], root: ReadableSpan) -> str | None:
        """Why this trace is kept (one of `KEPT_REASONS`), or None to drop it."""
        if _has_error(spans, root):
            return "error"
        if self.latency_s is not None and _duration_s(root) >= self.latency_s:
            return "latency"
        if self.cost_usd is not None and _cost_usd(spans) >= self.cost_usd:
            return "cost"
        if in_share(_trace_id(root), self.share):
            return "share"
        return None


def in_share(trace_id: int, share: float) -> bool:
    """Whether `trace_id` falls in the first `share` of the id space, hashed so that ids with
    fixed bits (UUIDv4 run ids carry a version and a variant) still spread evenly."""
    if share >= 1.0:
        return True
    digest = hashlib.blake2b(trace_id.to_bytes(16, "big"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < int(share * 2**64)


class TailSamplingProcessor(SpanProcessor):
    """Buffers each trace's finished spans until its root ends, then hands them all to the
    downstream processors or drops them all.

    A run that pauses (for an approval) ends one root and later starts another in the same
    trace: each segment is decided apart, and once a trace is kept its later spans are kept
    at once. At most `max_buffered_spans` wait; past that the oldest trace is decided early.
    """

    def __init__(
        self,
        policy: SamplingPolicy,
        downstream: Sequence[SpanProcessor],
        *,
        max_buffered_spans: int = 100_000,
        remembered_traces: int = 10_000,
    ) -> None:
        self.policy = policy
        self._downstream = tuple(downstream)
        self._max_buffered = max_buffered_spans
        self._remembered = remembered_traces
        self._lock = threading.Lock()
        self._buffers: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._buffered = 0
        self._kept_traces: OrderedDict[int, None] = OrderedDict()
        self.counts: dict[str, int] = dict.fromkeys((*KEPT_REASONS, DROPPED), 0)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self._downstream:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if self.policy.keeps_everything:
            self._forward((span,))
            return
        trace_id = _trace_id(span)
        with self._lock:
            if trace_id in self._kept_traces:
                ready: list[ReadableSpan] = [span]
            else:
                ready = self._buffer(trace_id, span)
        self._forward(ready)

    def _buffer(self, trace_id: int, span: ReadableSpan) -> list[ReadableSpan]:
        """Under the lock: add `span`, and return what a decision now releases."""
        spans = self._buffers.setdefault(trace_id, [])
        spans.append(span)
        self._buffered += 1
        released: list[ReadableSpan] = []
        if _is_root(span):
            released.extend(self._decide(trace_id, span))
        while self._buffered > self._max_buffered and self._buffers:
            oldest = next(iter(self._buffers))
            released.extend(self._decide(oldest, self._buffers[oldest][-1]))
        return released

    def _decide(self, trace_id: int, root: ReadableSpan) -> list[ReadableSpan]:
        spans = self._buffers.pop(trace_id)
        self._buffered -= len(spans)
        reason = self.policy.reason_to_keep(spans, root)
        self.counts[reason or DROPPED] += 1
        if reason is None:
            return []
        self._kept_traces[trace_id] = None
        while len(self._kept_traces) > self._remembered:
            self._kept_traces.popitem(last=False)
        return spans

    def _forward(self, spans: Iterable[ReadableSpan]) -> None:
        for span in spans:
            for processor in self._downstream:
                processor.on_end(span)

    def kept(self) -> int:
        return sum(self.counts[reason] for reason in KEPT_REASONS)

    def dropped(self) -> int:
        return self.counts[DROPPED]

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush what was decided; traces whose root has not ended stay buffered."""
        return all(processor.force_flush(timeout_millis) for processor in self._downstream)

    def shutdown(self) -> None:
        """Decide the traces still open with what they have, then stop downstream."""
        with self._lock:
            released: list[ReadableSpan] = []
            while self._buffers:
                oldest = next(iter(self._buffers))
                released.extend(self._decide(oldest, self._buffers[oldest][-1]))
        self._forward(released)
        for processor in self._downstream:
            processor.shutdown()


class SamplingCollector(Collector):
    """`steward_traces_sampled_total{decision,reason}` on `/metrics`, read from the counts."""

    def __init__(self, processor: TailSamplingProcessor) -> None:
        self._processor = processor

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "steward_traces_sampled",
            "Traces the tail sampler decided, by decision and the reason a kept one was kept.",
            labels=["decision", "reason"],
        )
        for reason, count in self._processor.counts.items():
            decision = "dropped" if reason == DROPPED else "kept"
            family.add_metric([decision, "" if reason == DROPPED else reason], count)
        yield family

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self)


def _trace_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    return context.trace_id if context is not None else 0


def _is_root(span: ReadableSpan) -> bool:
    return span.parent is None or span.parent.is_remote


def _has_error(spans: Sequence[ReadableSpan], root: ReadableSpan) -> bool:
    if (root.attributes or {}).get(_RUN_STATUS) == "error":
        return True
    return any(span.status.status_code is StatusCode.ERROR for span in spans)


def _duration_s(root: ReadableSpan) -> float:
    if root.start_time is None or root.end_time is None:
        return 0.0
    return (root.end_time - root.start_time) / 1e9


def _cost_usd(spans: Sequence[ReadableSpan]) -> float:
    total = 0.0
    for span in spans:
        cost = (span.attributes or {}).get(genai.GEN_AI_USAGE_COST)
        if isinstance(cost, int | float):
            total += float(cost)
    return total
