"""target-loyalty-store: the DuckDB loyalty store (contacts, order lines, rejects, runs)."""

from __future__ import annotations
