"""Compact JSON through orjson, with the standard library taking what orjson refuses."""

from __future__ import annotations

import json

import pytest

from tornado_core.jsontext import compact


def test_text_is_compact_and_utf8_as_is() -> None:
    assert (
        compact({"nota": "ação", "itens": [1, 2.5, None, True]})
        == '{"nota":"ação","itens":[1,2.5,null,true]}'
    )


def test_what_orjson_refuses_still_encodes_as_the_standard_library_does() -> None:
    big = {"chave": 35240112345678000190550010000012341000012345}  # an NF-e key typed as a number
    assert compact(big) == json.dumps(big, separators=(",", ":"))
    assert json.loads(compact(big)) == big


def test_values_json_refuses_are_still_refused() -> None:
    import datetime
    from dataclasses import dataclass

    @dataclass
    class Nota:
        numero: int

    for value in ({"when": datetime.datetime(2026, 1, 1)}, {"nota": Nota(1)}):
        with pytest.raises(TypeError):
            compact(value)
