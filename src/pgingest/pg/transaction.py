"""A batch's transaction in two round trips fewer than ``BEGIN`` and ``COMMIT`` sent alone.

``BEGIN`` goes out in the query string of the transaction's first COPY
(:meth:`Transaction.opening`), ``COMMIT`` in the query string of the statements kept for the
end (:meth:`Transaction.at_commit`: the manifest's record of the batch). Each is a
simple-query string of several statements, which the server runs in order and stops at the
first error: the transaction is then aborted, and rolled back here. A small file is one batch,
and its round trips are most of its cost: seven before, five now (claim; COPY, and its data;
record and commit; complete).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from pgingest.pg.errors import is_gone


class Transaction:
    """One transaction on ``conn``, opened by the first statement that carries
    :meth:`opening` (or by :meth:`begin`), committed on leaving the ``async with`` block
    together with the statements kept by :meth:`at_commit`, rolled back on an error."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._open = False
        self._at_commit: list[str] = []

    def opening(self) -> str:
        """The text to put ahead of a statement sent as a simple query (a COPY): ``BEGIN;``
        the first time, which that statement's query string then opens the transaction with;
        empty after."""
        if self._open:
            return ""
        self._open = True
        return "BEGIN; "

    async def begin(self) -> None:
        """Open the transaction now, for a statement that cannot carry :meth:`opening` (one
        with parameters: the extended protocol takes one statement)."""
        if not self._open:
            await self._conn.execute("BEGIN")
            self._open = True

    def at_commit(self, statement: str) -> None:
        """Run ``statement`` (SQL without parameters: literals only) just before the commit,
        in the commit's query string: it commits with the transaction or not at all."""
        self._at_commit.append(statement)

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            statements = [*self._at_commit, "COMMIT"]
            if not self._open:  # nothing carried BEGIN: the kept statements alone, atomically
                statements.insert(0, "BEGIN")
            try:
                await self._conn.execute("; ".join(statements))
            except BaseException:
                await self._rollback()  # a kept statement failed: the rest did not run
                raise
            return
        await self._rollback()

    async def _rollback(self) -> None:
        # A broken connection's transaction ends with its session, and the error stays the
        # one that broke it. Otherwise roll back (an error here replaces the first, as in
        # asyncpg's own transactions).
        if not is_gone(self._conn) and self._conn.is_in_transaction():
            await self._conn.execute("ROLLBACK")
