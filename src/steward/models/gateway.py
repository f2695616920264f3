"""The model gateway: every model call, from an agent or through the proxy, passes here.

reserve budget → attempts over the route's deployments (breaker, retries with backoff, first-
token timeout, fallbacks) → price the real usage → settle the reservation → `chat` span,
metrics and a spend record. `GatewayCall` carries one logical call across its attempts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from steward.errors import ModelError, ModelStreamError, SpendCapExceeded
from steward.models.budget import NANO_USD, Budget, Reservation, SpendScope
from steward.models.budget.types import to_nano
from steward.models.deployments import Deployments, Target
from steward.models.pricing import Cost, PriceTable
from steward.models.reservation import ReservationPlan, estimate_usd, plan_reservation
from steward.models.resilience import (
    RetryPolicy,
    is_deployment_failure,
    is_quota_exhausted,
    is_retryable,
)
from steward.models.settings import GatewaySettings
from steward.models.types import (
    ModelRequest,
    ModelResponse,
    StreamDone,
    TextDelta,
    Usage,
)
from steward.observe import genai
from steward.observe.metrics import GatewayMetrics, current_exemplar
from steward.observe.spans import ChatRecorder, input_messages_json, output_messages_json
from steward.observe.tracing import Tracing
from steward.store.schema import SpendRecord
from steward.store.spend import SpendLedger

__all__ = ["Gateway", "GatewayCall", "NoDeploymentAvailable"]

log = logging.getLogger("steward.gateway")
T = TypeVar("T")
OnDelta = Callable[[str], None]

# Steward's own span attributes for what the conventions have no names for yet.
RETRY_COUNT = "steward.gateway.retries"
FALLBACK_USED = "steward.gateway.fallback_used"
DEPLOYMENT = "steward.gateway.deployment"
CACHE_HIT = "steward.gateway.cache_hit"
PER_MESSAGE_TOKENS = 16  # chat-template tokens a provider adds around each message


class NoDeploymentAvailable(ModelError):
    """Every target of the route has its circuit breaker open; `retry_after_s` says when the
    first of them lets a probe through."""

    def __init__(self, message: str, *, retry_after_s: float | None) -> None:
        super().__init__(message, retryable=True)
        self.retry_after_s = retry_after_s


@dataclass
class GatewayCall:
    """One logical model call across its attempts."""

    scope: SpendScope
    source: str  # agent | proxy
    request_model: str
    reservation: Reservation
    span: Span
    started: float = field(default_factory=time.perf_counter)
    target: Target | None = None
    retries: int = 0
    fallback_used: bool = False
    first_chunk_s: float | None = None
    finished: bool = False
    # Output already reached the caller (text on the run's stream): from then on a failure is
    # final, since another attempt would send that output a second time.
    output_sent: bool = False

    def mark_first_chunk(self) -> None:
        if self.first_chunk_s is None:
            self.first_chunk_s = time.perf_counter() - self.started


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        *,
        default_model: str,
        budget: Budget,
        prices: PriceTable,
        tracing: Tracing,
        ledger: SpendLedger | None,
        metrics: GatewayMetrics | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.budget = budget
        self.prices = prices
        self.tracing = tracing
        self.ledger = ledger
        self.metrics = metrics or GatewayMetrics()
        self.retry = retry or RetryPolicy(
            max_retries=settings.max_retries,
            base_s=settings.backoff_base_s,
            max_s=settings.backoff_max_s,
        )
        self.deployments = Deployments(
            settings, default_model, on_breaker_change=self.metrics.breaker_changed
        )

    async def aclose(self) -> None:
        await self.deployments.aclose()
        if self.ledger is not None:
            await self.ledger.aclose()
        await self.budget.counters.aclose()

    # -- the protocol every caller follows -------------------------------------------------

    def estimate_usd(
        self, targets: Sequence[Target], input_tokens: int, output_tokens: int
    ) -> float:
        """An upper bound of the call's cost over every deployment it may end up on."""
        return estimate_usd(self.prices, targets, input_tokens, output_tokens)

    async def plan(
        self,
        scope: SpendScope,
        targets: Sequence[Target],
        *,
        input_tokens: int,
        max_tokens: int | None,
        choices: int = 1,
    ) -> ReservationPlan:
        """The worst case the request allows; with no `max_tokens`, also the output limit to
        send, so the provider cannot bill past what was reserved."""
        return await plan_reservation(
            self.budget,
            self.prices,
            scope,
            targets,
            input_tokens=input_tokens,
            choices=choices,
            max_tokens=max_tokens,
            default_output_tokens=self.settings.reservation_output_tokens,
        )

    async def open_call(
        self,
        scope: SpendScope,
        source: str,
        request_model: str,
        estimate_usd: float,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        reserved_for: str | None = None,
    ) -> GatewayCall:
        """Reserve the budget and start the `chat` span; raises `SpendCapExceeded`."""
        attributes: dict[str, AttributeValue] = {
            genai.GEN_AI_OPERATION_NAME: genai.OPERATION_CHAT,
            genai.GEN_AI_REQUEST_MODEL: request_model,
        }
        if max_tokens is not None:
            attributes[genai.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
        if temperature is not None:
            attributes[genai.GEN_AI_REQUEST_TEMPERATURE] = temperature
        span = self.tracing.tracer.start_span(
            f"chat {request_model}", kind=SpanKind.CLIENT, attributes=attributes
        )
        try:
            reservation = await self.budget.reserve(scope, estimate_usd, what=reserved_for)
        except SpendCapExceeded as exc:
            self.metrics.refused.labels(exc.cap).inc()
            span.set_attribute(genai.ERROR_TYPE, "spend_cap_exceeded")
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            span.end()
            raise
        return GatewayCall(scope, source, request_model, reservation, span)

    async def attempt(
        self, call: GatewayCall, targets: Sequence[Target], fn: Callable[[Target], Awaitable[T]]
    ) -> T:
        """Run `fn` against the targets in order, with breakers and retries; the first success
        wins. A non-retryable error ends the call at once, except quota exhaustion, which moves
        on to the next target; so does a breaker that a failure just opened, without waiting.
        Nothing is retried once output reached the caller."""
        last: ModelError | None = None
        for position, target in enumerate(targets):
            breaker = target.breaker
            retry = 0
            while breaker.allow():
                call.target = target
                call.fallback_used = position > 0
                try:
                    result = await fn(target)
                except ModelError as exc:
                    last = exc
                    delay = self._after_failure(call, target, exc, retry)
                    if delay is None:
                        break
                    retry += 1
                    call.retries += 1
                    self.metrics.retries.labels(target.deployment.name).inc()
                    await asyncio.sleep(delay)
                    continue
                except BaseException:
                    breaker.release()
                    raise
                breaker.success()
                if call.fallback_used:
                    self.metrics.fallbacks.labels(target.deployment.name).inc()
                return result
        if last is not None:
            raise last
        names = ", ".join(f"{t.deployment.name}:{t.model}" for t in targets)
        raise NoDeploymentAvailable(
            f"every target for {call.request_model!r} has an open circuit breaker ({names})",
            retry_after_s=min((t.breaker.retry_in_s() for t in targets), default=None),
        )

    def _after_failure(
        self, call: GatewayCall, target: Target, exc: ModelError, retry: int
    ) -> float | None:
        """Tell the breaker; then the backoff before retrying this target, None to move on to
        the next one, or raise when the call is over."""
        breaker = target.breaker
        failed = is_deployment_failure(exc)
        if failed:
            breaker.failure()
        else:
            breaker.release()
        if call.output_sent:
            raise _final_after_output(exc) from exc
        if not is_retryable(exc):
            if is_quota_exhausted(exc):
                return None
            raise exc
        if failed and breaker.state != "closed":
            return None  # this failure opened the breaker: waiting would not help
        return self.retry.delay(retry, getattr(exc, "retry_after_s", None))

    async def finish(
        self,
        call: GatewayCall,
        usage: Usage | None,
        *,
        response_model: str | None = None,
        response_id: str = "",
        finish_reasons: Sequence[str] = (),
        error: BaseException | None = None,
        status: str | None = None,
    ) -> Cost:
        """Price, settle, record. With no usage (the call failed before any answer) the
        reservation is released and nothing is recorded as spent."""
        if call.finished:
            raise RuntimeError("a gateway call is finished once")
        call.finished = True
        target = call.target
        provider = target.deployment.provider_name if target else ""
        model = response_model or (target.model if target else call.request_model)
        if usage is None or target is None:
            cost = Cost(0.0, known=True, price_version=self.prices.version)
        else:
            cost = self.prices.cost(provider, model, usage)
        if to_nano(cost.usd) > call.reservation.amount_nano:
            # The spend happened and is recorded; a provider billed past the worst case its
            # request allowed, so the caps may be passed by this much.
            log.warning(
                "%s call cost $%.6g, more than the $%.6g reserved for it",
                call.request_model,
                cost.usd,
                call.reservation.amount_nano / NANO_USD,
            )
        try:
            await self.budget.settle(call.reservation, cost.usd)
        finally:
            self._end_span(call, usage, cost, model, response_id, finish_reasons, error)
            self._observe(call, usage, cost, error)
            if usage is not None and target is not None and self.ledger is not None:
                self.ledger.add(self._record(call, usage, cost, model, status, error))
        return cost

    # -- the agent path ----------------------------------------------------------------------

    async def chat(
        self,
        request: ModelRequest,
        scope: SpendScope,
        *,
        model: str | None = None,
        on_delta: OnDelta | None = None,
    ) -> tuple[ModelResponse, Cost]:
        """One agent model call, streamed from the provider and assembled."""
        targets = self.deployments.targets(model)
        plan = await self.plan(
            scope,
            targets,
            input_tokens=request_token_bound(request),
            max_tokens=request.max_tokens,
        )
        if plan.send_max_tokens is not None:
            request = replace(request, max_tokens=plan.send_max_tokens)
        call = await self.open_call(
            scope,
            "agent",
            targets[0].model,
            plan.estimate_usd,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            reserved_for=plan.describe(),
        )
        if self.tracing.capture_content:
            call.span.set_attribute(
                genai.GEN_AI_INPUT_MESSAGES, input_messages_json(request.messages)
            )
        try:
            response = await self.attempt(
                call, targets, lambda target: self._stream(call, target, request, on_delta)
            )
        except BaseException as exc:
            await self.finish(call, None, error=exc)
            raise
        if self.tracing.capture_content:
            call.span.set_attribute(genai.GEN_AI_OUTPUT_MESSAGES, output_messages_json(response))
        cost = await self.finish(
            call,
            response.usage,
            response_model=response.model,
            response_id=response.id,
            finish_reasons=[response.provider_finish_reason],
        )
        return response, cost

    async def _stream(
        self, call: GatewayCall, target: Target, request: ModelRequest, on_delta: OnDelta | None
    ) -> ModelResponse:
        provider = target.deployment.provider
        sent = ModelRequest(
            model=target.model,
            messages=request.messages,
            tools=request.tools,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            tool_choice=request.tool_choice,
            stop=request.stop,
        )
        events = provider.stream(sent)
        timeout = self.settings.first_token_timeout_s
        try:
            async with asyncio.timeout(timeout):
                first = await anext(events)
        except TimeoutError as exc:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
            raise ModelError(
                f"{provider.name} sent no first chunk within {timeout}s",
                provider=provider.name,
                retryable=True,
            ) from exc
        except StopAsyncIteration as exc:
            raise ModelStreamError("the model stream was empty", retryable=True) from exc
        event = first
        while True:
            if isinstance(event, TextDelta):
                call.mark_first_chunk()
                if on_delta is not None:
                    call.output_sent = True
                    on_delta(event.text)
            elif isinstance(event, StreamDone):
                return event.response
            else:
                call.mark_first_chunk()
            try:
                event = await anext(events)
            except StopAsyncIteration:
                raise ModelStreamError(
                    "the model stream ended without a final response", retryable=True
                ) from None

    # -- recording ---------------------------------------------------------------------------

    def _end_span(
        self,
        call: GatewayCall,
        usage: Usage | None,
        cost: Cost,
        model: str,
        response_id: str,
        finish_reasons: Sequence[str],
        error: BaseException | None,
    ) -> None:
        span = call.span
        target = call.target
        attributes: dict[str, AttributeValue] = {
            RETRY_COUNT: call.retries,
            FALLBACK_USED: call.fallback_used,
        }
        if target is not None:
            attributes[genai.GEN_AI_PROVIDER_NAME] = target.deployment.provider_name
            attributes[DEPLOYMENT] = target.deployment.name
        if call.first_chunk_s is not None:
            attributes[genai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = call.first_chunk_s
        span.set_attributes(attributes)
        if usage is not None:
            response = ModelResponse(
                provider=target.deployment.provider_name if target else "",
                model=model,
                id=response_id,
                content="",
                tool_calls=(),
                finish_reason="other",
                provider_finish_reason=",".join(finish_reasons),
                usage=usage,
            )
            ChatRecorder(span, capture_content=False).record(
                response, cost.usd, cost.known and not cost.estimated
            )
            span.set_attribute(genai.GEN_AI_RESPONSE_FINISH_REASONS, list(finish_reasons))
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error) or None))
            span.set_attribute(genai.ERROR_TYPE, type(error).__qualname__)
        span.end()

    def _observe(
        self, call: GatewayCall, usage: Usage | None, cost: Cost, error: BaseException | None
    ) -> None:
        target = call.target
        provider = target.deployment.provider_name if target else ""
        labels = (genai.OPERATION_CHAT, provider, call.request_model)
        m = self.metrics
        exemplar = current_exemplar()  # the run's trace, when an agent made the call
        m.duration.labels(*labels, type(error).__name__ if error else "").observe(
            time.perf_counter() - call.started, exemplar
        )
        if call.first_chunk_s is not None:
            m.first_chunk.labels(*labels).observe(call.first_chunk_s, exemplar)
        if usage is not None:
            m.tokens.labels(*labels, "input").observe(usage.input_tokens)
            m.tokens.labels(*labels, "output").observe(usage.output_tokens)
            if cost.usd:
                m.spend.labels(call.scope.tenant_id, provider, call.request_model, call.source).inc(
                    cost.usd
                )

    def _record(
        self,
        call: GatewayCall,
        usage: Usage,
        cost: Cost,
        model: str,
        status: str | None,
        error: BaseException | None,
    ) -> SpendRecord:
        target = call.target
        assert target is not None
        scope = call.scope
        return SpendRecord(
            id=str(uuid.uuid4()),
            tenant_id=scope.tenant_id,
            key_id=scope.key_id,
            user_id=scope.user_id,
            agent=scope.agent,
            run_id=scope.run_id,
            source=call.source,
            provider=target.deployment.provider_name,
            deployment=target.deployment.name,
            model=model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_usd=cost.usd,
            cost_estimated=cost.estimated or not cost.known,
            price_version=cost.price_version,
            status=status or ("error" if error else "ok"),
        )


def _final_after_output(exc: ModelError) -> ModelStreamError:
    return ModelStreamError(
        f"{exc} (after part of the answer was streamed, so it is not retried)",
        provider=exc.provider,
        retryable=False,
    )


def request_token_bound(request: ModelRequest) -> int:
    """At most this many input tokens: a byte-level BPE token covers at least one byte."""
    total = 0
    for message in request.messages:
        total += len(message.content.encode()) + PER_MESSAGE_TOKENS
        for call in message.tool_calls:
            total += len(call.name) + len(json.dumps(call.arguments, ensure_ascii=False).encode())
    for tool in request.tools:
        total += (
            len(tool.name)
            + len(tool.description.encode())
            + len(json.dumps(tool.parameters, ensure_ascii=False).encode())
        )
    return total + PER_MESSAGE_TOKENS
