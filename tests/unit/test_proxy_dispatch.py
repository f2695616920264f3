"""`ProxyDispatch`: proxy POSTs go straight to their handler, everything else to the router, and
a handler's exception answers through the app's own exception handlers."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from steward.errors import ApiError
from steward.server.problems import install_problem_handlers
from steward.server.proxy_dispatch import ProxyDispatch

routed: list[str] = []


async def fast(request: Request) -> Response:
    return Response(b"fast:" + await request.body())


async def failing(request: Request) -> Response:
    raise ApiError(418, "teapot", "I am a teapot", "short and stout")


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def router_fallback(path: str) -> Response:
        routed.append(path)
        return Response(b"routed")

    app.add_middleware(ProxyDispatch, endpoints={"/v1/fast": fast, "/v1/failing": failing})
    return app


async def test_proxy_posts_skip_the_router_and_everything_else_reaches_it() -> None:
    routed.clear()
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        fast_answer = await client.post("/v1/fast", content=b"hi")
        get_answer = await client.get("/v1/fast")
        other = await client.post("/v1/other", content=b"x")
    assert fast_answer.content == b"fast:hi"
    assert get_answer.content == other.content == b"routed"
    assert routed == ["v1/fast", "v1/other"]  # the proxy POST never reached the router


async def test_a_handler_exception_answers_through_the_apps_exception_handlers() -> None:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post("/v1/failing", content=b"{}")
    assert answer.status_code == 418
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "short and stout"
