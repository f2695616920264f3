"""The one shape of paging in the API: bounded `limit` and `offset`, in a query or a body.

Unbounded, an offset like 1e20 reaches the database driver and overflows (a 500); every route
that pages takes these types, so no page size or offset escapes the bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query
from pydantic import Field

MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000
DEFAULT_LIMIT = 10

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description="Most items to return.")]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET, description="Items to skip first.")]


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


def _page(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Most items to return.")] = (
        DEFAULT_LIMIT
    ),
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip first.")] = 0,
) -> Page:
    return Page(limit, offset)


PageQuery = Annotated[Page, Depends(_page)]
