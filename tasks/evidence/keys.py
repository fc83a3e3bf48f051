"""Ed25519 signing keys: made by `bb2sv keygen`, read by the collection from
BB2SV_SIGNING_KEY (a PEM file) or BB2SV_SIGNING_KEY_BLOCK (a Prefect Secret block holding the
PEM text), and public keys read by verify::

    pair = generate_key_pair(Path("keys"))          # private 0600, public 0644, never overwrites
    signer = signer_from_env()                      # RunSigner, or None when neither is set
    signer.key_id, signer.sign(b"message")
    trusted = load_public_keys(["bb2sv-signing-key.pub.pem"])   # {key_id: public key}

The private key never leaves a RunSigner: its repr shows only the key id, it refuses to be
pickled or copied, and every error names the file or block, never what is in it.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tasks.bitbucket.exceptions import ConfigError
from tasks.canonical import sha256_hex
from tasks.credentials import load_secret_block

__all__ = [
    "PRIVATE_KEY_NAME",
    "PUBLIC_KEY_NAME",
    "SIGNING_KEY_BLOCK_VARIABLE",
    "SIGNING_KEY_VARIABLE",
    "KeyPairFiles",
    "RunSigner",
    "generate_key_pair",
    "key_id_of",
    "load_public_keys",
    "public_key_from_raw",
    "signer_from_env",
]

log = logging.getLogger(__name__)

SIGNING_KEY_VARIABLE = "BB2SV_SIGNING_KEY"
SIGNING_KEY_BLOCK_VARIABLE = "BB2SV_SIGNING_KEY_BLOCK"
PRIVATE_KEY_NAME = "bb2sv-signing-key.pem"
PUBLIC_KEY_NAME = "bb2sv-signing-key.pub.pem"
_HOW_TO_MAKE_ONE = "Make a key pair with `bb2sv keygen --out DIR`."


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """SHA-256 (hex) of the raw 32-byte public key: how runs and anchors name their key."""
    return sha256_hex(_raw(public_key))


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


class RunSigner:
    """Holds the private key and signs with it; nothing else can get the key out."""

    __slots__ = ("_private", "key_id", "public_raw")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_raw = _raw(private.public_key())
        self.key_id = sha256_hex(self.public_raw)

    @classmethod
    def from_pem(cls, pem: bytes, *, source: str) -> RunSigner:
        """Parse an unencrypted PKCS#8 PEM Ed25519 private key; `source` names it in errors."""
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            # The library's message may quote the data; ours names only the source.
            raise ConfigError(
                f"{source} is not an unencrypted Ed25519 private key in PEM form. "
                f"{_HOW_TO_MAKE_ONE}"
            ) from None
        if not isinstance(private, Ed25519PrivateKey):
            raise ConfigError(
                f"{source} holds a {type(private).__name__.removesuffix('PrivateKey')} key; "
                f"bb2sv signs with Ed25519 only. {_HOW_TO_MAKE_ONE}"
            )
        return cls(private)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"RunSigner(key_id={self.key_id!r})"

    def __reduce__(self):  # pickle, copy and deepcopy all come through here
        raise TypeError("a RunSigner holds a private key and is never serialised or copied")


def signer_from_env(env: Mapping[str, str] | None = None) -> RunSigner | None:
    """The signer named by BB2SV_SIGNING_KEY or BB2SV_SIGNING_KEY_BLOCK; None if neither."""
    env = os.environ if env is None else env
    path, block = env.get(SIGNING_KEY_VARIABLE), env.get(SIGNING_KEY_BLOCK_VARIABLE)
    if path and block:
        raise ConfigError(
            f"Both {SIGNING_KEY_VARIABLE} and {SIGNING_KEY_BLOCK_VARIABLE} are set; set one."
        )
    if block:
        pem = load_secret_block(block, SIGNING_KEY_VARIABLE)
        return RunSigner.from_pem(pem.encode("utf-8"), source=f"The Prefect Secret block {block!r}")
    if path:
        return RunSigner.from_pem(
            _read_private_key(Path(path)), source=f"{SIGNING_KEY_VARIABLE} ({path})"
        )
    return None


@dataclass(frozen=True, slots=True)
class KeyPairFiles:
    private: Path
    public: Path
    key_id: str


def generate_key_pair(folder: Path) -> KeyPairFiles:
    """A new key pair in `folder` (created 0700 if missing). Never overwrites a key."""
    private_path, public_path = folder / PRIVATE_KEY_NAME, folder / PUBLIC_KEY_NAME
    for path in (private_path, public_path):
        if path.exists():
            raise ConfigError(
                f"{path} already exists; keygen never overwrites a key (runs signed with it "
                "could no longer be checked). Choose another --out folder."
            )
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        private = Ed25519PrivateKey.generate()
        _write_new(
            private_path,
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            mode=0o600,
        )
        _write_new(
            public_path,
            private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            mode=0o644,
        )
    except OSError as exc:
        raise ConfigError(
            f"Could not write a key pair to {folder} ({exc.strerror}). Choose a writable --out."
        ) from None
    return KeyPairFiles(private_path, public_path, key_id_of(private.public_key()))


def load_public_keys(paths: Iterable[str | os.PathLike[str]]) -> dict[str, Ed25519PublicKey]:
    """{key_id: key} of PEM public key files (as written by keygen)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for name in paths:
        path = Path(name)
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"Cannot read the public key {path} ({exc.strerror}).") from None
        if b"PRIVATE KEY" in pem:
            raise ConfigError(
                f"{path} is a private key. Pass the public one ({PUBLIC_KEY_NAME}) to verify; "
                "the private key belongs only to the collection."
            )
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ConfigError(f"{path} is not a PEM public key. {_HOW_TO_MAKE_ONE}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{path} is not an Ed25519 public key. {_HOW_TO_MAKE_ONE}")
        keys[key_id_of(key)] = key
    return keys


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _read_private_key(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"Cannot read {SIGNING_KEY_VARIABLE} ({path}): {exc.strerror}. {_HOW_TO_MAKE_ONE}"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "%s (%s) can be read by other users (mode %o); chmod 600 it.",
            SIGNING_KEY_VARIABLE,
            path,
            stat.S_IMODE(mode),
        )
    return pem


def _write_new(path: Path, data: bytes, *, mode: int) -> None:
    # O_EXCL: never replace a file. The mode is given at creation, so the private key is
    # never readable by others, not even for a moment; fchmod makes it exact whatever the umask.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
