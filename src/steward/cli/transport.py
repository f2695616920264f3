"""Transport options for `steward dev|serve`: HTTPS with a TLS 1.2 floor when a certificate is
configured, and which proxies may set the client address and scheme (X-Forwarded-*).
"""

from __future__ import annotations

import ssl
from typing import Any

import uvicorn

from steward.config import Settings
from steward.errors import ConfigError


def transport_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        # Without a trusted list, forwarded headers are ignored: any client could forge them.
        "proxy_headers": settings.forwarded_allow_ips is not None,
        "forwarded_allow_ips": settings.forwarded_allow_ips or "",
    }
    if settings.tls_certfile is None and settings.tls_keyfile is None:
        return options
    if settings.tls_certfile is None or settings.tls_keyfile is None:
        raise ConfigError("set both tls_certfile and tls_keyfile to serve HTTPS")
    options.update(
        ssl_certfile=str(settings.tls_certfile),
        ssl_keyfile=str(settings.tls_keyfile),
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
    )
    return options


def serve_with_tls_floor(config: uvicorn.Config) -> None:
    """Run uvicorn; its SSL context is built by `load()`, so the floor is set in between."""
    config.load()
    if config.ssl is not None:
        config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    uvicorn.Server(config).run()
