"""A file's record in the manifest, from its claim to its end: the one owner of what the load
writes about a file (its lock, its batches and rejects, its hash, complete, staged or failed).

The pipeline holds a :class:`FileRecord` per claimed file and asks it; the SQL is in
:mod:`pgingest.manifest.store` and :mod:`pgingest.manifest.replacement`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pgingest.manifest import replacement, store
from pgingest.model import Reject
from pgingest.pg.transaction import Transaction


@dataclass(frozen=True, slots=True)
class FileRecord:
    """The manifest row of one claimed file (``file_id``), and every write to it."""

    file_id: int

    async def relock(self, conn: Any, owner: str | None = None) -> bool:
        """Take the file's lock again on a new connection ``conn`` (recorded as ``owner``'s,
        the run's application name); False when another process took the file meanwhile."""
        return await store.relock_file(conn, self.file_id, owner)

    async def stamp(self, conn: Any) -> None:
        """Stamp the rows ``conn`` writes with the file's id (its lineage column default)."""
        await store.set_file_id(conn, self.file_id)

    async def begin_batch(self, conn: Any, replaced: int | None, sha256: str | None) -> None:
        """In a batch's transaction, before its rows: remove the rows of the version of the
        file this one ``replaced`` (with the first batch), record the content hash once it is
        known (so that an interrupted file can be found, and reverted, by it)."""
        if replaced is not None:
            await store.remove_replaced(conn, replaced, self.file_id)
        if sha256 is not None:
            await store.record_sha256(conn, self.file_id, sha256)

    async def record_batch(
        self,
        conn: Any,
        txn: Transaction,
        batch: int,
        first_line: int,
        rows: int,
        rejects: Sequence[Reject],
    ) -> None:
        """In the batch's transaction ``txn`` on ``conn``, after its rows: its bad rows set
        aside, and the batch recorded as it commits."""
        if rejects:
            await store.record_rejects(conn, self.file_id, rejects)
        store.record_batch(txn, self.file_id, batch, first_line, rows)

    async def committed_rows(self, conn: Any, batch: int) -> int | None:
        """The rows of ``batch`` when it committed (a retry asks first: the reply may have
        been lost), else ``None``."""
        return await store.committed_batch_rows(conn, self.file_id, batch)

    async def rejects(self, conn: Any) -> int:
        """Bad rows of the file set aside so far (committed batches)."""
        return await store.count_rejects(conn, self.file_id)

    async def rows(self, conn: Any) -> int:
        """Rows of the file's committed batches."""
        return await store.file_rows(conn, self.file_id)

    async def complete(
        self, conn: Any, sha256: str | None, *, fmt: str | None, force: bool, lineage: bool
    ) -> store.Completion:
        """Mark the file loaded (see :func:`store.complete_file`) and release its lock."""
        return await store.complete_file(
            conn, self.file_id, sha256, fmt=fmt, force=force, lineage=lineage
        )

    async def stage(self, conn: Any, sha256: str | None, fmt: str | None) -> store.Completion:
        """``replace``: mark the file staged in the run's new table (loaded only by the swap)
        and release its lock."""
        return store.Completion(await replacement.stage_file(conn, self.file_id, sha256, fmt))

    async def fail(self, conn: Any, error: str, *, discard: bool) -> None:
        """Mark the file failed; with ``discard`` its committed batches go too."""
        await store.fail_file(conn, self.file_id, error, discard=discard)

    async def release(self, conn: Any) -> None:
        """Release the file's lock (after a failure: complete and stage release it)."""
        await store.release_file(conn, self.file_id)
