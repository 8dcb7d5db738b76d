"""The kit's error hierarchy: every failure a user can act on, as one line without secrets.

A connector's entry point catches ``ApiError`` and prints ``<name>: error: <message>`` (exit 1);
the message already names what failed (URL, status, body excerpt) and what to check, and went
through the client's redactor.
"""

from __future__ import annotations


class ApiError(Exception):
    """A failure the user can act on; its message is one line and free of secrets."""


class ApiConfigError(ApiError):
    """The configuration cannot work (for example missing credentials for a stream)."""


class ApiDataError(ApiError):
    """A record from the API does not match the contract (for example a bad timestamp)."""
