"""What a Prefect server needs before the deployments in prefect.yaml can run: set up as code.

`bb2sv prefect-setup` creates, idempotently (a second run changes nothing):

- the process work pool the deployments use (`bb2sv-process`);
- the credential's shared API budget, a global concurrency rate limit (tasks/shared_budget.py),
  when credentials are at hand (environment or `--secret-block`);
- the automations in bb2sv/automations/*.yaml: no completed daily run within 26 h of the
  last (and, repeating, a whole 26 h window without one); any Failed, Crashed or TimedOut
  run of the bb2sv flows; a new critical violation. They notify through the Prefect
  notification block named with `--notify`; without one they only record that they fired.

    results = prefect_setup(pool="bb2sv-process", notify="slack-security")
    [(r.kind, r.name, r.change) for r in results]    # ('automation', '…', 'created'), …

It also holds the deployments' pull step, `use_data_dir`, which starts every flow run in the
data directory (outside any code checkout), so relative `db_path` and `reports_dir` land there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = ["DEFAULT_DATA_DIR", "DEFAULT_POOL", "SetupResult", "prefect_setup", "use_data_dir"]

DEFAULT_POOL = "bb2sv-process"
DEFAULT_DATA_DIR = "~/.local/share/bb2sv"
AUTOMATIONS = Path(__file__).parent / "automations"

Change = Literal["created", "updated", "unchanged", "skipped"]


@dataclass(frozen=True, slots=True)
class SetupResult:
    kind: str  # work pool, rate limit, automation
    name: str
    change: Change
    detail: str = ""


def use_data_dir(directory: str = DEFAULT_DATA_DIR) -> dict[str, str]:
    """Pull step: make the data directory (0700) and work in it. BB2SV_DATA_DIR, when set on
    the worker or in the deployment's job variables, wins over `directory`; `~` is the
    worker's home."""
    chosen = Path(os.path.expanduser(os.environ.get("BB2SV_DATA_DIR") or directory))
    chosen.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chdir(chosen)
    return {"directory": str(chosen)}


def prefect_setup(
    pool: str = DEFAULT_POOL,
    notify: str | None = None,
    secret_blocks: Mapping[str, str] | None = None,
) -> list[SetupResult]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        results = [ensure_pool(client, pool), ensure_rate_limit(secret_blocks)]
        block_id = None if notify is None else notification_block_id(client, notify)
        results += [ensure_automation(client, doc, block_id) for doc in automation_documents()]
    return results


def ensure_pool(client: Any, name: str) -> SetupResult:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        existing = client.read_work_pool(name)
    except ObjectNotFound:
        template = ProcessWorker.get_default_base_job_template()
        client.create_work_pool(
            WorkPoolCreate(name=name, type="process", base_job_template=template)
        )
        return SetupResult("work pool", name, "created")
    if existing.type != "process":
        from tasks.bitbucket.exceptions import ConfigError

        raise ConfigError(
            f"work pool {name!r} exists with type {existing.type!r}, not 'process'; pass "
            "another --pool or delete it"
        )
    return SetupResult("work pool", name, "unchanged")


def ensure_rate_limit(secret_blocks: Mapping[str, str] | None) -> SetupResult:
    from tasks.bitbucket.exceptions import ConfigError
    from tasks.credentials import resolve_credentials
    from tasks.shared_budget import budget_limit_name, ensure_budget_limit, read_budget_limit

    try:
        settings, _directory = resolve_credentials(secret_blocks)
    except ConfigError as exc:
        why = f"{exc} (set BITBUCKET_* or pass --secret-block VARIABLE=BLOCK)"
        return SetupResult("rate limit", "bb2sv-api-…", "skipped", why)
    name = budget_limit_name(settings)
    before = read_budget_limit(name)
    ensure_budget_limit(settings, update=True)
    after = read_budget_limit(name)
    change: Change = "created" if before is None else "unchanged" if before == after else "updated"
    return SetupResult("rate limit", name, change, f"{settings.max_requests_per_hour} per hour")


def automation_documents() -> list[dict[str, Any]]:
    return [
        yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted(AUTOMATIONS.glob("*.yaml"))
    ]


def notification_block_id(client: Any, name: str) -> Any:
    """The id of the notification block `name` (any block type), or a clear error."""
    from tasks.bitbucket.exceptions import ConfigError

    offset, page = 0, 200
    while documents := client.read_block_documents(
        offset=offset, limit=page, include_secrets=False
    ):
        for document in documents:
            if document.name == name:
                return document.id
        offset += len(documents)
    raise ConfigError(
        f"no Prefect block named {name!r}: create a notification block (e.g. Slack "
        "webhook, e-mail) in the Prefect UI, then pass its name to --notify"
    )


def ensure_automation(client: Any, document: dict[str, Any], block_id: Any) -> SetupResult:
    from prefect.events.schemas.automations import AutomationCore

    actions = []
    for action in document.get("actions", []):
        if action.get("type") == "send-notification" and block_id is None:
            actions.append({"type": "do-nothing"})  # still on record when it fires
        elif action.get("type") == "send-notification":
            actions.append({**action, "block_document_id": str(block_id)})
        else:
            actions.append(action)
    wanted = AutomationCore.model_validate({**document, "actions": actions})
    existing = client.read_automations_by_name(wanted.name)
    if not existing:
        client.create_automation(wanted)
        return SetupResult("automation", wanted.name, "created")
    current = AutomationCore.model_validate(existing[0].model_dump())
    if _comparable(current) == _comparable(wanted):
        return SetupResult("automation", wanted.name, "unchanged")
    client.update_automation(existing[0].id, wanted)
    return SetupResult("automation", wanted.name, "updated")


def _comparable(automation: Any) -> dict[str, Any]:
    # Python mode, not JSON: a trigger's `expect` is a set, and a set dumped as JSON lists
    # its items in an order that may differ between two equal sets.
    return automation.model_dump(exclude={"tags"})
