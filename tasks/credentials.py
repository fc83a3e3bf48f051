"""Where the credentials come from: the environment, or Prefect Secret blocks.

A Secret block is named either by a flow parameter (`secret_blocks`) or by an environment
variable `<VARIABLE>_BLOCK`, e.g. `BITBUCKET_TOKEN_BLOCK=bitbucket-token` loads the Secret
block `bitbucket-token` as `BITBUCKET_TOKEN`. Only block *names* ever travel as parameters, so
Prefect never stores a secret value with a flow run.

The organization directory's key works the same way: `ATLASSIAN_ADMIN_API_KEY_BLOCK`, or
`{"ATLASSIAN_ADMIN_API_KEY": "<block>"}` in `secret_blocks`.

Usage::

    settings, directory = resolve_credentials({"BITBUCKET_TOKEN": "bitbucket-token"})
    directory       # the organization directory's settings; None when not configured
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from tasks.atlassian.config import ADMIN_API_KEY, DirectorySettings, directory_settings_from_env
from tasks.bitbucket.config import BitbucketSettings, settings_from_env
from tasks.bitbucket.exceptions import ConfigError

SECRET_VARIABLES = (
    "BITBUCKET_TOKEN",
    "BITBUCKET_API_TOKEN",
    "BITBUCKET_OAUTH_CLIENT_SECRET",
    "BITBUCKET_EMAIL",
    "BITBUCKET_OAUTH_CLIENT_ID",
    ADMIN_API_KEY,
)


def secret_block_names(
    explicit: Mapping[str, str] | None, env: Mapping[str, str]
) -> dict[str, str]:
    """Variable → Secret block name, from the parameter first, then `<VAR>_BLOCK` variables."""
    names = {var: env[f"{var}_BLOCK"] for var in SECRET_VARIABLES if env.get(f"{var}_BLOCK")}
    for variable, block in (explicit or {}).items():
        if variable not in SECRET_VARIABLES:
            raise ConfigError(
                f"secret_blocks names {variable!r}, which is not a credential variable; "
                f"use one of {', '.join(SECRET_VARIABLES)}."
            )
        names[variable] = block
    return names


def load_secret_block(block_name: str, variable: str) -> str:
    """The value of a Prefect Secret block. Without a Prefect API configured, Prefect reads
    it from its local database (~/.prefect), starting a temporary server to do so."""
    from prefect.blocks.system import Secret

    try:
        return str(Secret.load(block_name).get())
    except Exception as exc:  # Prefect raises ValueError or HTTP errors for a missing block
        raise ConfigError(
            f"Could not load the Prefect Secret block {block_name!r} for {variable} "
            f"({type(exc).__name__}). Create it on the Prefect server the run uses, in "
            "Python: from prefect.blocks.system import Secret; "
            f"Secret(value=...).save({block_name!r}) (or in the Prefect UI)."
        ) from None


def resolve_environment(
    secret_blocks: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment overlaid with the values of any named Secret blocks."""
    merged = dict(os.environ if env is None else env)
    for variable, block in secret_block_names(secret_blocks, merged).items():
        merged[variable] = load_secret_block(block, variable)
    return merged


def resolve_credentials(
    secret_blocks: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None
) -> tuple[BitbucketSettings, DirectorySettings | None]:
    """The Bitbucket settings and the organization directory's (None when not configured),
    each Secret block loaded once."""
    merged = resolve_environment(secret_blocks, env)
    return settings_from_env(merged), directory_settings_from_env(merged)
