"""Settings for reading the organization directory, from the environment.

Usage::

    settings = directory_settings_from_env()     # None when the directory is not configured
    settings.org_id, settings.source, settings.http.api_url
    repr(settings)                               # the Admin API key shows as ***

=============================  =====================================================
variable                       meaning
=============================  =====================================================
``ATLASSIAN_ORG_ID``           the organization's id (admin.atlassian.com URL)
``ATLASSIAN_ADMIN_API_KEY``    an organization API key (Bearer), org admin;
                               scoped keys need ``read:directories:admin``
``ATLASSIAN_ADMIN_API_URL``    default ``https://api.atlassian.com``
=============================  =====================================================

Both of the first two, or neither. Timeouts, retry deadline, backoff and the hourly budget
are the ``BITBUCKET_*`` tuning variables (`tuning_from_env`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from tasks.bitbucket.auth import BearerToken
from tasks.bitbucket.config import BitbucketSettings, check_api_url, tuning_from_env
from tasks.bitbucket.exceptions import ConfigError

__all__ = [
    "ADMIN_API_KEY",
    "ADMIN_API_URL",
    "DEFAULT_ADMIN_API_URL",
    "ORG_ID",
    "AdminApiKey",
    "DirectorySettings",
    "directory_settings_from_env",
]

ORG_ID = "ATLASSIAN_ORG_ID"
ADMIN_API_KEY = "ATLASSIAN_ADMIN_API_KEY"  # noqa: S105 (a variable name, not a secret)
ADMIN_API_URL = "ATLASSIAN_ADMIN_API_URL"
DEFAULT_ADMIN_API_URL = "https://api.atlassian.com"

_ORG_ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
_WHERE_KEYS_ARE = (
    "Create an organization API key at admin.atlassian.com (Settings, API keys) as an "
    "organization admin"
)


class AdminApiKey(BearerToken):
    """An Atlassian organization API key, sent as `Authorization: Bearer <key>`."""

    env_hint = ADMIN_API_KEY

    def __repr__(self) -> str:
        return f"AdminApiKey(key={self.token!r})"


@dataclass(frozen=True, slots=True)
class DirectorySettings:
    """Which organization to read, and how (`http`: the Admin API's URL, key and tuning)."""

    org_id: str
    http: BitbucketSettings

    @property
    def source(self) -> str:
        """The organization's Admin API base, as stored with each run (no credentials)."""
        return f"{self.http.api_url}/admin/v2/orgs/{quote(self.org_id, safe='')}"


def directory_settings_from_env(env: Mapping[str, str] | None = None) -> DirectorySettings | None:
    """The directory's settings, None when neither ATLASSIAN_ORG_ID nor the key is set; a
    ConfigError naming what to set when only part of it is."""
    env = os.environ if env is None else env
    values = {name: env.get(name, "").strip() for name in (ORG_ID, ADMIN_API_KEY, ADMIN_API_URL)}
    values = {name: value for name, value in values.items() if value}
    if ORG_ID not in values and ADMIN_API_KEY not in values:
        if ADMIN_API_URL in values:
            raise ConfigError(
                f"{ADMIN_API_URL} is set but {ORG_ID} and {ADMIN_API_KEY} are not: set both "
                f"to read the organization directory, or unset {ADMIN_API_URL}."
            )
        return None
    if ADMIN_API_KEY not in values:
        raise ConfigError(
            f"{ORG_ID} is set but {ADMIN_API_KEY} is missing, so the organization directory "
            f"cannot be read. {_WHERE_KEYS_ARE} and set {ADMIN_API_KEY} (or name a Prefect "
            f"Secret block in {ADMIN_API_KEY}_BLOCK), or unset {ORG_ID}."
        )
    if ORG_ID not in values:
        raise ConfigError(
            f"{ADMIN_API_KEY} is set but {ORG_ID} is missing: set it to the organization's id "
            "(admin.atlassian.com/o/<id>/...), or unset the key."
        )
    org_id = values[ORG_ID]
    if not _ORG_ID_SHAPE.fullmatch(org_id):
        raise ConfigError(
            f"{ORG_ID} {org_id!r} is not an organization id: copy it from the URL of "
            "admin.atlassian.com (the part after /o/)."
        )
    api_url = check_api_url(values.get(ADMIN_API_URL, DEFAULT_ADMIN_API_URL), ADMIN_API_URL)
    http = BitbucketSettings(
        auth=AdminApiKey(values[ADMIN_API_KEY]), api_url=api_url, **tuning_from_env(env)
    )
    return DirectorySettings(org_id=org_id, http=http)
