"""Local emulators of the remote systems, a seeded data generator and fault injection.

Tests and `loyalty sandbox` start them on 127.0.0.1; see `sandbox/README.md`.
"""

from __future__ import annotations
