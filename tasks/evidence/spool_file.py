"""One spooled attempt on disk, sealed so that only a collection with the same credentials
could have written it.

Whoever can write the spool folder (beside the evidence file) need not hold the Bitbucket
credentials; without a seal, such a person could spool a made-up attempt (every member
with 2SV on, a member left out, a lenient policy) and the next honest collection would
store, sign and anchor it as evidence. So each file is sealed with an HMAC whose key is
derived from the collection's credentials (`SpoolSeal.for_auth`), over the attempt and the
identifier of the evidence file it was spooled for (`file_identity.identifier_of`: a genuine
attempt of another evidence file, say a staging one with a lenient policy, is not this
file's), and an attempt is stored only if its seal matches. Rotated credentials leave
earlier files unverifiable: they are set aside, never deleted, and `BB2SV_SPOOL_TRUST=1`
stores them on the operator's word.

    seal = SpoolSeal.for_auth(settings.auth)            # its repr shows no key
    path = write_spool("evidence.duckdb", Spooled(extract, policy, None), seal=seal)
    attempt = read_spool(path, seal=seal, evidence="evidence.duckdb")  # SpoolSealError if not ours

A file is one JSON header line (format, the evidence file's identifier, seal), then the
attempt as JSON (pages base64).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from tasks.atlassian.models import DirectoryExtract
from tasks.bitbucket.auth import BitbucketAuth
from tasks.bitbucket.models import RawPage, WorkspaceExtract
from tasks.canonical import as_utc, sha256_hex, utc_iso
from tasks.evidence.file_identity import identifier_of
from tasks.policy import DEFAULT_POLICY, Policy, parse_policy
from tasks.version import __version__
from tasks.vocabulary import ErrorKind, Listing, RunStatus
from tasks.workspaces import folder_name

__all__ = [
    "MAX_SPOOL_BYTES",
    "SPOOL_FORMAT",
    "SpoolSeal",
    "SpoolSealError",
    "Spooled",
    "read_spool",
    "spool_dir",
    "write_spool",
    "write_spool_file",
]

SPOOL_FORMAT = "bb2sv.spooled-run/2"
_UNSEALED_FORMAT = "bb2sv.spooled-run/1"  # bb2sv before 0.4: no seal
# An attempt takes about 2.7 KB per member in the spool; this is 1,000 times a large workspace.
MAX_SPOOL_BYTES = 1 << 30
_SEAL_CONTEXT = b"bb2sv.spool-seal/1"


def spool_dir(db_path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(db_path)}.spool")


class SpoolSealError(ValueError):
    """A spool file whose seal does not show that this collection's credentials wrote it."""


class SpoolSeal:
    """The key that seals spooled attempts, derived from the collection's Bitbucket
    credentials (never stored; its repr shows nothing)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_auth(cls, auth: BitbucketAuth) -> SpoolSeal:
        return cls(hmac.new(auth.seal_material(), _SEAL_CONTEXT, hashlib.sha256).digest())

    def of(self, attempt: bytes, evidence: str) -> str:
        """The seal of `attempt` spooled for the evidence file whose identifier is
        `evidence` (`file_identity.identifier_of`)."""
        sealed = f"{SPOOL_FORMAT}\n{evidence}\n".encode() + attempt
        return hmac.new(self._key, sealed, "sha256").hexdigest()

    def __repr__(self) -> str:
        return "SpoolSeal(***)"


@dataclass(frozen=True, slots=True)
class Spooled:
    """Everything `record_run` needs, so a spooled attempt is stored as it would have been."""

    extract: WorkspaceExtract
    policy: Policy
    flow_run_id: str | None
    directory: DirectoryExtract | None = None
    # The bb2sv that collected it: the run is stored by its rules (normalise.roles_of). A
    # spool file without one was written by 0.1, which did not record it.
    tool_version: str = __version__


def write_spool(db_path: str | os.PathLike, attempt: Spooled, *, seal: SpoolSeal) -> Path:
    """The attempt written to the spool, sealed: its path."""
    return write_spool_file(db_path, attempt, seal=seal)[0]


def write_spool_file(
    db_path: str | os.PathLike, attempt: Spooled, *, seal: SpoolSeal
) -> tuple[Path, str]:
    """(path, SHA-256 of the file's bytes) of the attempt written to the spool, sealed."""
    extract, policy, directory = attempt.extract, attempt.policy, attempt.directory
    folder = spool_dir(db_path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = as_utc(extract.started_at).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{stamp}-{folder_name(extract.workspace)}-{uuid.uuid4().hex[:8]}.json"
    document = {
        "tool_version": attempt.tool_version,
        "prefect_flow_run_id": attempt.flow_run_id,
        "policy": {"text": policy.source_text, "path": policy.source_path},
        "extract": {
            "workspace": extract.workspace,
            "source": extract.source,
            **_run_fields(extract),
        },
        "directory": None
        if directory is None
        else {
            "org_id": directory.org_id,
            "source": directory.source,
            "users_read": directory.users_read,
            **_run_fields(directory),
        },
    }
    body = orjson.dumps(document)
    evidence = identifier_of(db_path)
    header = orjson.dumps(
        {"format": SPOOL_FORMAT, "evidence": evidence, "seal": seal.of(body, evidence)}
    )
    data = header + b"\n" + body
    temp = path.with_suffix(".partial")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)  # complete or absent: replay never reads half a file
    return path, sha256_hex(data)


def read_spool(
    path: Path, *, seal: SpoolSeal, evidence: str | os.PathLike, trust: bool = False
) -> Spooled:
    """The attempt in `path`; SpoolSealError unless it was sealed with `seal` for the
    evidence file at `evidence` (or `trust`: BB2SV_SPOOL_TRUST, the operator vouches for
    files sealed otherwise or not at all), ValueError or OSError if it cannot be read."""
    data = _read_regular_file(path)
    header_line, _, body = data.partition(b"\n")
    header = orjson.loads(header_line)
    if not isinstance(header, dict):
        raise ValueError("it is not a bb2sv spooled run")
    if header.get("format") == _UNSEALED_FORMAT and not body:
        if not trust:
            raise SpoolSealError(
                "it was spooled by a bb2sv before 0.4, which did not seal spooled attempts, "
                "so it cannot be told from a forged one"
            )
        document = header
    elif header.get("format") == SPOOL_FORMAT:
        given, ours = header.get("seal"), identifier_of(evidence)
        if not (isinstance(given, str) and hmac.compare_digest(given, seal.of(body, ours))):
            if header.get("evidence") != ours and not trust:
                raise SpoolSealError(
                    "it was spooled for another evidence file (or this one was replaced), "
                    "or someone else wrote it"
                )
            if not trust:
                raise SpoolSealError(
                    "its seal does not match this collection's Bitbucket credentials: it was "
                    "written with other credentials (rotated since?), or by someone else, or "
                    "edited"
                )
        document = orjson.loads(body)
    else:
        raise ValueError(f"it is not a bb2sv spooled run ({header.get('format')!r})")
    raw = document["extract"]
    text, source_path = document["policy"]["text"], document["policy"]["path"]
    extract = WorkspaceExtract(workspace=raw["workspace"], source=raw["source"], **_run(raw))
    folder = document.get("directory")
    directory = None
    if folder is not None:
        directory = DirectoryExtract(
            org_id=folder["org_id"],
            source=folder["source"],
            users_read=folder["users_read"],
            **_run(folder),
        )
    policy = parse_policy(text, source_path) if text or source_path else DEFAULT_POLICY
    version = document.get("tool_version", "0.1.0")
    if not isinstance(version, str):
        raise ValueError(f"it names no bb2sv version ({version!r})")
    return Spooled(extract, policy, document["prefect_flow_run_id"], directory, version)


def _read_regular_file(path: Path) -> bytes:
    """The bytes of `path` if it is a regular file (not a link, a FIFO that would block the
    read forever, or a device) of at most MAX_SPOOL_BYTES."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("it is not a regular file")
        if info.st_size > MAX_SPOOL_BYTES:
            raise ValueError(f"it is larger ({info.st_size} bytes) than any spooled attempt")
        return handle.read(MAX_SPOOL_BYTES + 1)


def _run_fields(extract: WorkspaceExtract | DirectoryExtract) -> dict:
    """The fields a workspace read and a directory read share, as JSON (bodies base64)."""
    return {
        "started_at": utc_iso(extract.started_at),
        "finished_at": utc_iso(extract.finished_at),
        "status": str(extract.status),
        "request_count": extract.request_count,
        "error": extract.error,
        "error_kind": None if extract.error_kind is None else str(extract.error_kind),
        "emulated": extract.emulated,
        "pages": [
            {
                "listing": str(page.listing),
                "url": page.url,
                "status_code": page.status_code,
                "fetched_at": utc_iso(page.fetched_at),
                "body": base64.b64encode(page.body).decode("ascii"),
                "sha256": page.sha256,
            }
            for page in extract.pages
        ],
    }


def _page(raw: dict) -> RawPage:
    """A spooled page, its body checked against the sha256 it was spooled with (a file from
    before 0.4 has no seal, and this still catches a body altered in it)."""
    page = RawPage(  # sha256 computed from the body read back
        listing=Listing(raw["listing"]),
        url=raw["url"],
        status_code=raw["status_code"],
        fetched_at=_instant(raw["fetched_at"]),
        body=base64.b64decode(raw["body"]),
    )
    if page.sha256 != raw["sha256"]:
        raise ValueError(
            f"the body of its {page.listing} page {page.url} is not the one spooled (its "
            "SHA-256 differs): the file was altered"
        )
    return page


def _run(raw: dict) -> dict:
    """`_run_fields` read back, as keyword arguments of either extract."""
    pages = [_page(page) for page in raw["pages"]]
    return {
        "started_at": _instant(raw["started_at"]),
        "finished_at": _instant(raw["finished_at"]),
        "status": RunStatus(raw["status"]),
        "pages": pages,
        "request_count": raw["request_count"],
        "error": raw["error"],
        "error_kind": None if raw["error_kind"] is None else ErrorKind(raw["error_kind"]),
        "emulated": raw["emulated"],
    }


def _instant(text: str) -> datetime:
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
