"""The FlexPOS / Amero emulator: its data (`data.py`) and its HTTP app (`app.py`)."""

from __future__ import annotations
