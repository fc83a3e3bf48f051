"""Keep Python's garbage collector off the objects a process imported.

CPython collects its oldest generation over every object it tracks. Once Prefect, pandas,
pyarrow, DuckDB and httpx are imported, a process tracks ~80,000 objects that live as long
as it does, and a full collection walks them all: 50–90 ms on the benchmark machine, about
35 times while 100,000 members were read (2.4 s of collecting in all, 0.86 s frozen); each
holds the GIL, so the listings wait on it for their next request. `gc.freeze()` moves the
objects alive now into a generation collections skip (Python's documentation suggests it
for objects a process keeps).

A command calls `freeze_imported_objects()` once it has imported what it runs (a collection,
verify, a report). It collects first (~50 ms, once), so that no garbage is frozen with them:
a cycle holding a file or a connection would never be freed. Only the first call freezes: a
process that runs many collections (a test session) freezes its imports once, not every
later collection's objects::

    freeze_imported_objects()   # True: frozen now
    freeze_imported_objects()   # False: already done in this process
"""

from __future__ import annotations

import gc
import threading

__all__ = ["freeze_imported_objects"]

_lock = threading.Lock()
_frozen = False


def freeze_imported_objects() -> bool:
    """Collect, then freeze the objects still tracked, the first time it is called; True if
    it froze them. Call it after imports and settings, before the work that allocates."""
    global _frozen
    with _lock:
        if _frozen:
            return False
        gc.collect()
        gc.freeze()
        _frozen = True
        return True
