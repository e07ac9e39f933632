"""Compact JSON text, fast: orjson encodes, the standard library takes what orjson refuses.

orjson encodes several times faster than :mod:`json`; it refuses integers beyond 64 bits (and
keys that are not strings), and those go through :mod:`json` instead, so no value that encoded
before fails now. The text is compact (no spaces) and UTF-8 as is (no ``\\u`` escapes), as the
rest of Tornado writes it. Decoding stays with :mod:`json`: orjson reads an integer beyond 64
bits as a float, silently losing digits (an NF-e access key typed as a number would change).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

#: What orjson would encode on its own but :mod:`json` refuses (datetimes, dataclasses) or
#: encodes its own way (subclasses of str, int, dict, list): left to :mod:`json`, as before.
_AS_THE_STANDARD_LIBRARY = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def compact(value: Any) -> str:
    """``value`` as compact JSON text.

    Raises:
        TypeError: Not JSON-serialisable (as :func:`json.dumps` raises it).
    """
    text = orjson_text(value)
    if text is not None:
        return text.decode()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def orjson_text(value: Any) -> bytes | None:
    """``value`` as :func:`compact` writes it when orjson can (UTF-8 bytes), else ``None``."""
    try:
        return orjson.dumps(value, option=_AS_THE_STANDARD_LIBRARY)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a non-string key...
        return None


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (without encoding it when it is ASCII)."""
    return len(text) if text.isascii() else len(text.encode())
