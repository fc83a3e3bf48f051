"""The manifest written beside each report: every file's SHA-256 and the runs it covers.

manifest = manifest_bytes("daily", "acme", files, run_id="r-1", run_hash="…", emulated=False,
                          extra={"status": "COMPLIANT"})
"""

from __future__ import annotations

from typing import Any

from tasks.canonical import sha256_hex
from tasks.report.render import render_json
from tasks.version import __version__

MANIFEST_SCHEMA = "bb2sv.report-manifest/1"


def manifest_bytes(
    kind: str,
    workspace: str,
    files: dict[str, bytes],
    *,
    run_id: str | None,
    run_hash: str | None,
    emulated: bool,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """Files are listed by name (sorted) with size and SHA-256, so the bytes are reproducible.
    `tool_version`: the bb2sv that wrote them (another version may render the same evidence
    otherwise; manifests written before 0.3.0 have none)."""
    document: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "tool_version": __version__,
        "kind": kind,
        "workspace": workspace,
        "run_id": run_id,
        "run_hash": run_hash,
        "emulated": emulated,
        **(extra or {}),
        "files": [
            {"name": name, "bytes": len(data), "sha256": sha256_hex(data)}
            for name, data in sorted(files.items())
        ],
    }
    return render_json(document)
