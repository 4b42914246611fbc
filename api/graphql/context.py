"""What every resolver sees: the ledger, the settings, who is asking, and per-request loaders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from api.graphql.loaders import Loaders
from api.settings import Settings
from ledger.core.errors import NotAuthorised
from ledger.core.private import Viewer
from ledger.log.sequencer import Ledger

T = TypeVar("T")


@dataclass
class Context:
    ledger: Ledger
    settings: Settings
    viewer: Viewer
    token: str | None = None  # the bearer token the viewer came from, if any
    appended: Callable[[], None] | None = None  # told after a submit appended entries
    over_http: bool = False  # an HTTP request, not a WebSocket
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.ledger, self.viewer)

    def require_regulator(self) -> None:
        """For regulator-only fields (findings, statistics, credit, audit, recallImpact)."""
        if self.viewer.kind != "regulator":
            raise NotAuthorised(
                "only a regulator may ask this; send a regulator's bearer token", code="regulator_only"
            )


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A blocking ledger call, off the event loop."""
    return await run_in_threadpool(fn, *args, **kwargs)
