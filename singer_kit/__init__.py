"""The small kit every connector shares (Singer I/O, instants, the clock, JSON guards).

Taps, the mapper and targets import this, never the `loyalty` orchestrator, so each connector
can be shipped and reasoned about on its own (docs/architecture.md, layers).
"""
