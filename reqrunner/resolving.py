"""The jobs a runner knows: those registered with ``@queue.job``, and past them those a
queue's resolvers supply by name (jobs a framework declares through its own API)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence

from .runner import JobFunction

__all__ = ["Resolving"]

log = logging.getLogger("reqrunner.runner")


class Resolving(Mapping[str, JobFunction]):
    """The registered jobs, and past them whatever the queue's resolvers supply by name
    (remembered, so a name is resolved once per process, found or not)."""

    def __init__(
        self,
        registered: Mapping[str, JobFunction],
        resolvers: Sequence[Callable[[str], JobFunction | None]],
        found: dict[str, JobFunction | None],
    ) -> None:
        self._registered = registered
        self._resolvers = resolvers
        self._found = found

    def __getitem__(self, name: str) -> JobFunction:
        found = self._registered.get(name)
        if found is None:
            if name not in self._found:
                self._found[name] = self._resolve(name)
            found = self._found[name]
        if found is None:
            raise KeyError(name)
        return found

    def _resolve(self, name: str) -> JobFunction | None:
        for resolver in self._resolvers:
            try:
                found = resolver(name)
            except Exception:
                # A broken resolver must not end the run: the job fails as unknown instead.
                log.exception("resolving job %r failed", name)
                continue
            if found is not None:
                return found
        return None

    def __iter__(self) -> Iterator[str]:
        return iter(self._registered)

    def __len__(self) -> int:
        return len(self._registered)
