"""Server-Sent Events, decoded as the HTML standard defines them
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation), with
every line and event bounded: a provider's stream is untrusted input.

Lines end in CRLF, LF or CR; `data:` lines accumulate, a blank line dispatches the event; comments
(`:` lines, the keep-alives) and the `event`, `id`, `retry` fields are read past. Only the data
matters here: each event's data is one status object.
"""

from __future__ import annotations

_CR, _LF = 13, 10


class EventTooLarge(Exception):
    """A line or an event's data passed the byte limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"an event or line larger than {limit} bytes")
        self.limit = limit


class EventDecoder:
    """Feed it the body's bytes as they arrive; it gives back the data of each complete event."""

    def __init__(self, max_event_bytes: int) -> None:
        self.max_event_bytes = max_event_bytes
        self._buffer = bytearray()
        self._data: list[str] = []
        self._size = 0
        self._started = False  # past the optional byte order mark
        self._after_cr = False  # the last chunk ended in CR

    def feed(self, chunk: bytes) -> list[str]:
        """The data of every event `chunk` completes (EventTooLarge past the limit)."""
        if not chunk:
            return []
        buffer = self._buffer
        buffer += chunk
        events: list[str] = []
        start = 0
        if self._after_cr and buffer[:1] == b"\n":  # the LF of a CRLF split across chunks
            start = 1
        self._after_cr = False
        while True:
            end = _line_end(buffer, start)
            if end < 0:
                break
            step = 1
            if buffer[end] == _CR:
                if end + 1 == len(buffer):
                    self._after_cr = True  # an LF starting the next chunk belongs to this line ending
                elif buffer[end + 1] == _LF:
                    step = 2
            if end - start > self.max_event_bytes:
                raise EventTooLarge(self.max_event_bytes)
            data = self._line(bytes(buffer[start:end]))
            start = end + step
            if data is not None:
                events.append(data)
        del buffer[:start]
        if len(buffer) > self.max_event_bytes:  # one unterminated line: refuse it before it grows more
            raise EventTooLarge(self.max_event_bytes)
        return events

    def _line(self, raw: bytes) -> str | None:
        if not self._started:
            self._started = True
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if not raw:  # a blank line dispatches the event, if it has data
            if not self._data:
                return None
            data = "\n".join(self._data)
            self._data, self._size = [], 0
            return data
        if raw[0] == 0x3A:  # ":" a comment (keep-alive)
            return None
        name, _, value = raw.partition(b":")
        if name == b"data":
            text = value.removeprefix(b" ").decode("utf-8", "replace")
            self._size += len(text) + 1
            if self._size > self.max_event_bytes:
                raise EventTooLarge(self.max_event_bytes)
            self._data.append(text)
        return None


def _line_end(buffer: bytearray, start: int) -> int:
    """Index of the first CR or LF at or after `start`, or -1."""
    cr = buffer.find(b"\r", start)
    lf = buffer.find(b"\n", start)
    if cr < 0:
        return lf
    return cr if lf < 0 else min(cr, lf)


__all__ = ["EventDecoder", "EventTooLarge"]
