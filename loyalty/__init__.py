"""loyalty-pipelines: Singer-style ELT for loyalty and marketing data."""

from __future__ import annotations

__version__ = "0.1.0"
