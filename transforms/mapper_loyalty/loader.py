"""The mapper's error type, and mapping files read through the kit's YAML loader.

Every error a user sees names ``file:line``; the kit's loader (``singer_kit.yamlio``) keeps the
line of each key and refuses duplicate keys, so a duplicate output field cannot vanish.
"""

from __future__ import annotations

import typing as t

from singer_kit import yamlio


class MappingError(ValueError):
    """A mapping cannot be compiled or applied; the message names file:line and the field."""


def load_yaml(data: bytes | str, filename: str) -> t.Any:
    """Parse a mapping file's YAML; any problem is one MappingError line with file:line."""
    try:
        return yamlio.load_yaml(data, filename)
    except yamlio.YamlError as exc:
        raise MappingError(str(exc)) from None
