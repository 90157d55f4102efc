"""Manifest value types: the identity of a target table, and the statuses of files and runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ManifestStatus = Literal["pending", "running", "success", "failed", "reverted"]
RunStatus = Literal["running", "success", "failed", "interrupted"]

LINEAGE_FILE = "_pgingest_file_id"
"""The lineage column holding the manifest id of the file each row came from."""
LINEAGE_TIME = "_pgingest_loaded_at"
"""The lineage column holding when each row was loaded."""


@dataclass(frozen=True, slots=True)
class TableIdentity:
    """Which table a name stands for now: its oid and its storage node (0 and 0: no table).

    DROP and CREATE, and a dump and restore, give a new oid; TRUNCATE, VACUUM FULL, CLUSTER
    and a rewriting ``ALTER TABLE`` a new node (for a partitioned table, a hash of its leaf
    partitions' nodes).
    """

    oid: int
    node: int
    lineage: bool = False
    """The table has the lineage column ``_pgingest_file_id``."""

    @property
    def exists(self) -> bool:
        """Whether there is such a table."""
        return self.oid != 0


NO_TABLE = TableIdentity(0, 0)
"""The identity of a name that stands for no table."""
