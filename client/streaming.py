"""Streamed answers: server-sent events read line by line into typed events.

A stream is opened when the call is made (so a refused request raises there, with its
status), then iterated once. It closes its connection when the events end, on an error, on
``close()``, or when used as a context manager and left early.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Generic, Protocol, Self, TypeVar

import httpx

from client._core import SSE_DONE, SSEParser, decode_event
from client.errors import connection_error

E_co = TypeVar("E_co", covariant=True)
R_co = TypeVar("R_co", covariant=True)


class Decoder(Protocol[E_co, R_co]):
    """Turns one JSON event into a typed event (or None to skip it); keeps the final result."""

    @property
    def result(self) -> R_co | None: ...

    def __call__(self, event: dict[str, Any]) -> E_co | None: ...


class Stream(Generic[E_co, R_co]):
    """Events of a streamed answer (sync): ``for event in stream``; ``stream.result`` at the end."""

    def __init__(self, response: httpx.Response, decoder: Decoder[E_co, R_co]) -> None:
        self.response = response
        self.decoder = decoder

    @property
    def result(self) -> R_co | None:
        """The final result, once the stream has been read to its end."""
        return self.decoder.result

    def __iter__(self) -> Iterator[E_co]:
        parser = SSEParser()
        try:
            for line in self.response.iter_lines():
                data = parser.feed(line)
                if data is None:
                    continue
                if data.strip() == SSE_DONE:
                    return
                event = self.decoder(decode_event(data))
                if event is not None:
                    yield event
        except httpx.TransportError as exc:
            raise connection_error(exc) from exc
        finally:
            self.close()

    def until_done(self) -> R_co | None:
        """Read the rest of the stream; the final result."""
        for _ in self:
            pass
        return self.result

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncStream(Generic[E_co, R_co]):
    """Events of a streamed answer (async): ``async for event in stream``."""

    def __init__(self, response: httpx.Response, decoder: Decoder[E_co, R_co]) -> None:
        self.response = response
        self.decoder = decoder

    @property
    def result(self) -> R_co | None:
        return self.decoder.result

    async def __aiter__(self) -> AsyncIterator[E_co]:
        parser = SSEParser()
        try:
            async for line in self.response.aiter_lines():
                data = parser.feed(line)
                if data is None:
                    continue
                if data.strip() == SSE_DONE:
                    return
                event = self.decoder(decode_event(data))
                if event is not None:
                    yield event
        except httpx.TransportError as exc:
            raise connection_error(exc) from exc
        finally:
            await self.aclose()

    async def until_done(self) -> R_co | None:
        async for _ in self:
            pass
        return self.result

    async def aclose(self) -> None:
        await self.response.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
