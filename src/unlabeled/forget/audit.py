"""The forget requests' audit log: an append-only SQLite table inside the original run.

Every request writes a ``started`` row before any work, ``finished`` when its output run is
complete, and ``verified`` rows with verification results; rows are never updated or
deleted (triggers refuse it). A request with ``started`` and no ``finished`` crashed midway:
``requests()`` shows it as incomplete, and running the same command again redoes it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from unlabeled._console import UnlabeledError
from unlabeled.runs import AUDIT_FILE

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request TEXT NOT NULL,
    time TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('started', 'finished', 'verified')),
    method TEXT,
    ids_hash TEXT,
    forgotten INTEGER,
    output TEXT,
    details TEXT
);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the forget audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the forget audit log is append-only'); END;
"""


class AuditLog:
    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / AUDIT_FILE

    @contextmanager
    def _session(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection (a transaction when ``write``); SQLite's errors (a damaged file, a
        folder it cannot write) as one line naming the log, not a traceback."""
        try:
            with closing(sqlite3.connect(self.path, timeout=30)) as con:
                con.executescript(SCHEMA)
                if not write:
                    yield con
                    return
                with con:
                    yield con
        except sqlite3.Error as e:
            raise UnlabeledError(f"{self.path}: the forget audit log cannot be used ({e})") from None

    def append(
        self,
        request: str,
        event: str,
        *,
        method: str | None = None,
        ids_hash: str | None = None,
        forgotten: int | None = None,
        output: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        with self._session(write=True) as con:
            con.execute(
                "INSERT INTO events (request, time, event, method, ids_hash, forgotten, output, details) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request,
                    time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    event,
                    method,
                    ids_hash,
                    forgotten,
                    output,
                    json.dumps(details or {}),
                ),
            )

    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self._session() as con:
            con.row_factory = sqlite3.Row
            rows = con.execute("SELECT * FROM events ORDER BY seq").fetchall()
        return [{**dict(r), "details": json.loads(r["details"] or "{}")} for r in rows]

    def requests(self) -> list[dict[str, Any]]:
        """One entry per request: its start, whether it finished, its latest verification."""
        out: dict[str, dict[str, Any]] = {}
        for e in self.events():
            r = out.setdefault(e["request"], {"request": e["request"], "status": "incomplete"})
            if e["event"] == "started":
                r.update(
                    started=e["time"],
                    method=e["method"],
                    ids_hash=e["ids_hash"],
                    forgotten=e["forgotten"],
                    output=e["output"],
                )
            elif e["event"] == "finished":
                details = e["details"]  # exact: None for requests logged before it was recorded
                r.update(
                    status="complete", finished=e["time"], seconds=details.get("seconds"), exact=details.get("exact")
                )
            else:
                r["verification"] = e["details"]
        return list(out.values())
