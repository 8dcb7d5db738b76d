"""target-loyalty-store: Singer target that loads the loyalty store (DuckDB or PostgreSQL).

singer-sdk's ``Target`` provides the CLI, config validation, ``--about`` and the standard
target tests; the messages themselves go through :class:`Loader`'s own loop (raw RECORD lines
staged per stream, loaded set-based by DuckDB), because the SDK's per-record Sink path is an
order of magnitude too slow for the store (see DESIGN.md, performance principles). The wiring
(reader, one-line errors, signals) is the kit's :class:`singer_kit.target.LoopTarget`.
"""

from __future__ import annotations

import json
import typing as t

from singer_sdk import typing as th
from singer_sdk.about import JSONFormatter
from singer_sdk.helpers.capabilities import PluginCapabilities

from singer_kit.commit import CommitLoop
from singer_kit.duckstore import LOCK_TIMEOUT
from singer_kit.target import LoopTarget
from target_loyalty_store.loader import DEFAULT_BATCH_ROWS, Loader
from target_loyalty_store.store import RESERVED_NAMES, StoreError


class TargetLoyaltyStore(LoopTarget):
    """Loads contacts, order lines, rejects and any other stream into one DuckDB file (or a
    PostgreSQL database)."""

    name = "target-loyalty-store"
    # The distribution --about reads its version from (singer-sdk defaults to `name`).
    package_name = "loyalty-pipelines"
    # Only what is true: BATCH messages (local JSONL, gzip or not) but no stream maps.
    capabilities: t.ClassVar[list] = [PluginCapabilities.ABOUT, PluginCapabilities.BATCH]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "database",
            th.StringType,
            default="./loyalty.duckdb",
            description="Path of the DuckDB file (created with its schema if missing), or a "
            "PostgreSQL URL (postgresql://user:password@host:port/db) for a store in that "
            "database.",
        ),
        th.Property(
            "match_field",
            th.StringType,
            default="email",
            allowed_values=["email", "mobile"],
            description="Field that identifies a person across sources (normalised).",
        ),
        th.Property(
            "resubscribe_unsubscribed",
            th.BooleanType,
            default=False,
            description="Let an import set newsletter=true for a contact who unsubscribed.",
        ),
        th.Property(
            "batch_size_rows",
            th.IntegerType,
            default=DEFAULT_BATCH_ROWS,
            description="Records per committed batch (bounds memory and staging size).",
        ),
        th.Property(
            "max_batch_seconds",
            th.NumberType,
            default=60,
            description="Commit (and emit STATE) when a STATE arrives this long after the "
            "last commit, even if the batch is not full.",
        ),
        th.Property(
            "strict_key_properties",
            th.BooleanType,
            default=False,
            description="A record missing a key property fails the run (Singer-strict) "
            "instead of going to _rejects.",
        ),
        th.Property(
            "memory_limit",
            th.StringType,
            default="150MB",
            description="DuckDB memory_limit; larger batches spill to disk beyond it.",
        ),
        th.Property(
            "threads",
            th.IntegerType(minimum=1),
            description="DuckDB threads (default: one per core). 1 with memory_limit 100MB "
            "keeps peak RSS near 200 MB at any size, ~25% slower.",
        ),
        LOCK_TIMEOUT,
        th.Property(
            "staging_dir",
            th.StringType,
            description="Directory for per-batch staging files (default: system temp).",
        ),
    ).to_dict()

    @classmethod
    def print_about(cls, output_format: str | None = None) -> None:
        """singer-sdk's about, plus (as JSON) `reserved_streams`: the store's own tables and
        views no input stream may take, so an orchestrator can refuse such a pipeline before
        it runs (`loyalty validate`) instead of at the first SCHEMA."""
        if output_format != "json":
            super().print_about(output_format)
            return
        info = json.loads(JSONFormatter().format_about(cls._get_about_info()))
        info["reserved_streams"] = sorted(RESERVED_NAMES)
        print(json.dumps(info, indent=2, default=str))

    def make_loop(self) -> Loader:
        """The store's loop on the DuckDB file (or PostgreSQL database) of the config."""
        return Loader(self.config)

    def named_error(self, exc: BaseException, loop: CommitLoop) -> BaseException:
        """A failed write that names no file (disk full) was to a staging file: say where."""
        if isinstance(exc, OSError) and exc.filename is None and isinstance(loop, Loader):
            return StoreError(
                f"cannot write the staging files in {loop._staging}: {exc.strerror or exc} "
                "(point staging_dir, or TMPDIR, at a disk with room)"
            )
        return exc


if __name__ == "__main__":
    TargetLoyaltyStore.cli()
