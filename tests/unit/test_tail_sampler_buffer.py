"""The tail sampler's bounded buffer: a trace whose root has not ended is decided early when
the buffer overflows, never held without bound; shutdown decides what is still open."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from steward.observe.sampling import SamplingPolicy, TailSamplingProcessor


def build(max_buffered: int) -> tuple[TailSamplingProcessor, InMemorySpanExporter, trace.Tracer]:
    memory = InMemorySpanExporter()
    sampler = TailSamplingProcessor(
        SamplingPolicy(share=0.0), [SimpleSpanProcessor(memory)], max_buffered_spans=max_buffered
    )
    provider = TracerProvider()
    provider.add_span_processor(sampler)
    return sampler, memory, provider.get_tracer("test")


def children(tracer: trace.Tracer, root: trace.Span, count: int, *, error_at: int = -1) -> None:
    context = trace.set_span_in_context(root)
    for index in range(count):
        child = tracer.start_span(f"child {index}", context=context)
        if index == error_at:
            child.set_status(Status(StatusCode.ERROR, "boom"))
        child.end()


def test_an_overflowing_buffer_decides_a_failing_trace_early_and_keeps_the_rest_of_it() -> None:
    sampler, memory, tracer = build(max_buffered=3)
    root = tracer.start_span("root")
    children(tracer, root, 4, error_at=1)
    assert sampler.counts["error"] == 1 and sampler._buffered == 0
    root.end()  # the trace is kept: its later spans pass straight through
    names = [span.name for span in memory.get_finished_spans()]
    assert names == ["child 0", "child 1", "child 2", "child 3", "root"]


def test_an_overflowing_buffer_drops_an_ordinary_trace_early() -> None:
    sampler, memory, tracer = build(max_buffered=3)
    root = tracer.start_span("root")
    children(tracer, root, 4)
    assert (sampler.dropped(), sampler._buffered) == (1, 0)
    root.end()
    assert sampler.dropped() == 2 and memory.get_finished_spans() == ()


def test_shutdown_decides_the_traces_still_open() -> None:
    sampler, memory, tracer = build(max_buffered=100)
    open_root = tracer.start_span("never ends")
    children(tracer, open_root, 2, error_at=0)
    assert memory.get_finished_spans() == ()
    sampler.shutdown()
    assert [span.name for span in memory.get_finished_spans()] == ["child 0", "child 1"]
