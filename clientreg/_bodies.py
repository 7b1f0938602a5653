"""Reading what a server sends without letting it choose how much memory that takes.

A compressed body is small on the wire and huge in memory: 200 KB of gzip inflates to 200 MB. httpx
decodes each raw chunk in one go (``iter_bytes``), so a size check after decoding comes too late. Here
the raw bytes are decoded incrementally with ``zlib``'s ``max_length``, so no step ever produces more
than the cap (plus one byte, to notice the excess), whatever the compression ratio.

clientreg asks for ``gzip`` and ``deflate`` only (:data:`ACCEPT_ENCODING`): those are the encodings it
can bound. Anything else (``br``, ``zstd``, ``compress``) is refused rather than handed to a decoder
that cannot be bounded.

JSON gets the same treatment: nesting is bounded (:data:`MAX_JSON_DEPTH`, far below the interpreter's
recursion limit, so no later walk over a stored value can hit it), and an object naming a member twice
is refused, because two parsers of the same answer could disagree on which value counts (RFC 8259 §4).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

__all__ = [
    "ACCEPT_ENCODING",
    "MAX_ENCODING_LAYERS",
    "MAX_JSON_DEPTH",
    "BodyRefused",
    "BodyTooLarge",
    "decode_json",
    "read_bounded",
]

#: What clientreg tells servers it can decode (and bound).
ACCEPT_ENCODING: Final = "gzip, deflate"
#: ``Content-Encoding: gzip, gzip, …``: RFC 9110 §8.4 allows layers; nobody needs more than this.
MAX_ENCODING_LAYERS: Final = 2
#: Authorization server answers are a few levels deep; 32 leaves ample room and stays far from the
#: interpreter's recursion limit (1000), which copying or comparing a stored value would otherwise hit.
MAX_JSON_DEPTH: Final = 32


class BodyRefused(ValueError):
    """The body cannot be read safely: an encoding clientreg did not ask for, or undecodable bytes."""


class BodyTooLarge(BodyRefused):
    """More bytes (raw or decoded) than the caller allows."""


class _Inflater:
    """One ``gzip`` or ``deflate`` layer whose output is never more than the room it is given (+1)."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        # gzip: header and trailer checked by zlib (wbits 16+). deflate: RFC 9110 §8.4.1.2 means the zlib
        # format, but some servers send raw deflate; like httpx, fall back to it on the first chunk.
        self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        self._may_fall_back = encoding == "deflate"

    def feed(self, data: bytes, room: int) -> bytes:
        parts: list[bytes] = []
        produced = 0
        while data:
            try:
                piece = self._obj.decompress(data, room - produced + 1)
            except zlib.error:
                if not self._may_fall_back:
                    raise BodyRefused(f"the {self.encoding} body is corrupt") from None
                self._may_fall_back = False
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            self._may_fall_back = False
            produced += len(piece)
            if produced > room:
                raise BodyTooLarge("decoded")
            parts.append(piece)
            tail = self._obj.unconsumed_tail
            if tail and not piece:  # pragma: no cover - zlib always makes progress when output is allowed
                raise BodyRefused(f"the {self.encoding} body could not be decoded")
            data = tail
        return b"".join(parts)

    def flush(self, room: int) -> bytes:
        try:
            rest = self._obj.flush()
        except zlib.error:
            raise BodyRefused(f"the {self.encoding} body is corrupt") from None
        if len(rest) > room:
            raise BodyTooLarge("decoded")
        return rest


def _layers(content_encoding: str | None) -> list[_Inflater]:
    """The decoders to apply, in order (the last encoding listed was applied last, RFC 9110 §8.4)."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    unknown = sorted({c for c in codings if c not in ("gzip", "x-gzip", "deflate")})
    if unknown:
        raise BodyRefused(f"the body is encoded with {', '.join(repr(c[:20]) for c in unknown)}, which clientreg "
                          f"did not ask for (Accept-Encoding: {ACCEPT_ENCODING}) and cannot decode within bounds")
    if len(codings) > MAX_ENCODING_LAYERS:
        raise BodyRefused(f"the body is encoded {len(codings)} times over; clientreg decodes at most "
                          f"{MAX_ENCODING_LAYERS} layers")
    return [_Inflater("gzip" if c == "x-gzip" else c) for c in reversed(codings)]


def read_bounded(chunks: Iterable[bytes], *, content_encoding: str | None, limit: int,
                 on_chunk: Callable[[int], None] = lambda _total: None) -> bytes:
    """The decoded body, at most ``limit`` bytes raw and decoded alike.

    ``on_chunk(raw_total)`` runs after each raw chunk (a deadline check). Raises :class:`BodyTooLarge`
    as soon as either size passes ``limit`` (its message says "raw" or "decoded"), :class:`BodyRefused`
    for an encoding clientreg cannot bound or bytes that do not decode.
    """
    layers = _layers(content_encoding)
    out: list[bytes] = []
    raw_total = decoded_total = 0
    for chunk in chunks:
        raw_total += len(chunk)
        if raw_total > limit:
            raise BodyTooLarge("raw")
        on_chunk(raw_total)
        for layer in layers:
            chunk = layer.feed(chunk, limit - decoded_total)
        decoded_total += len(chunk)
        out.append(chunk)
    for i, layer in enumerate(layers):
        # What the outer layers still hold goes through the inner ones, each bounded by the same room.
        rest = layer.flush(limit - decoded_total)
        for inner in layers[i + 1:]:
            rest = inner.feed(rest, limit - decoded_total)
        decoded_total += len(rest)
        out.append(rest)
    if decoded_total > limit:  # pragma: no cover - each step above is bounded already
        raise BodyTooLarge("decoded")
    return b"".join(out)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BodyRefused(f"the JSON names member {json.dumps(key[:40])} more than once (RFC 8259 §4)")
        result[key] = value
    return result


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        children: Iterator[Any]
        if isinstance(current, dict):
            children = iter(current.values())
        elif isinstance(current, list):
            children = iter(current)
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def decode_json(content: bytes) -> Any:
    """The JSON value of ``content``; BodyRefused (a ValueError) saying why when it is not usable JSON."""
    try:
        value = json.loads(content, object_pairs_hook=_no_duplicates)
    except BodyRefused:
        raise
    except RecursionError:
        raise BodyRefused(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        # Bad syntax, bad UTF-8, and integers past Python's digit limit alike.
        raise BodyRefused("the body is not JSON") from None
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise BodyRefused(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    return value
