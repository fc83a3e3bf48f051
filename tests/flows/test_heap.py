"""The garbage collector is kept off the objects a collection imported (tasks/heap.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FRESH_PROCESS = """
import gc
import weakref
from tasks.heap import freeze_imported_objects
class Node:
    pass
garbage = Node()
garbage.cycle = garbage  # unreachable once dropped: only a collection frees it
freed = weakref.ref(garbage)
del garbage
before = gc.get_freeze_count()
first = freeze_imported_objects()
frozen = gc.get_freeze_count()
kept = [[index] for index in range(10_000)]  # new tracked objects, after the freeze
second = freeze_imported_objects()
print(before, first, frozen, second, gc.get_freeze_count(), freed() is None)
"""


def test_the_first_call_freezes_and_later_calls_leave_new_objects_to_the_collector():
    run = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS], cwd=ROOT, capture_output=True, text=True, check=True
    )
    before, first, frozen, second, after, garbage_freed = run.stdout.split()
    assert (before, first, second) == ("0", "True", "False")
    assert garbage_freed == "True"  # collected before the freeze, not kept forever
    assert int(frozen) > 1_000  # the interpreter's and the import's objects
    assert int(after) == int(frozen)  # the 10,000 lists made later are still collected


def test_a_collection_freezes_what_it_imported(collect_local, bitbucket_env, monkeypatch):
    import flows.collection

    calls = []
    monkeypatch.setattr(flows.collection, "freeze_imported_objects", lambda: calls.append(1))
    collection = collect_local(["alpha"])
    assert collection.whole
    assert calls == [1]
