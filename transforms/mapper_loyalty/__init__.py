"""mapper-loyalty: declarative Singer mappings (transforms/mappings/*.yaml), compiled once.

``compile_mapping(path, catalog=None)`` is the API ``loyalty validate`` uses; it raises
:class:`MappingError` whose message names ``file:line`` and the field at fault.
"""

from __future__ import annotations

from mapper_loyalty.compiler import CompiledMapping, CompiledStream, compile_mapping
from mapper_loyalty.loader import MappingError
from mapper_loyalty.rules import RuleFailure

__all__ = ["CompiledMapping", "CompiledStream", "MappingError", "RuleFailure", "compile_mapping"]
