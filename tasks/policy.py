"""The compliance policy: exceptions, grace period for new members, SLA to fix a violation,
and the identity rules (accepted second factors, SSO attestation, account types out of scope).

The policy in force is stored with every collection run (its text and SHA-256), so reports
can be rebuilt from the evidence file alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import yaml

from tasks.canonical import sha256_hex
from tasks.identity import APP_USER, DEFAULT_IDENTITY_RULES, IdentityRules, SsoAttestation
from tasks.vocabulary import Factor, MfaBasis

__all__ = [
    "DEFAULT_GRACE_DAYS",
    "DEFAULT_POLICY",
    "DEFAULT_SLA_DAYS",
    "MAX_DAYS",
    "Policy",
    "PolicyError",
    "PolicyException",
    "SEVERITY_MEMBER_WITHOUT_2SV",
    "SEVERITY_OWNER_WITHOUT_2SV",
    "SEVERITY_UNKNOWN",
    "load_policy",
    "parse_policy",
]

DEFAULT_GRACE_DAYS = 7
DEFAULT_SLA_DAYS = 14
# Ten years: beyond it a period is no policy, and day arithmetic on it (timestamp +
# interval in the views) overflows, breaking every later collection and report of the file.
MAX_DAYS = 3650

# Severity of a non-compliant member, by what they can do and what we know.
SEVERITY_OWNER_WITHOUT_2SV = "critical"
SEVERITY_MEMBER_WITHOUT_2SV = "high"
SEVERITY_UNKNOWN = "medium"


@dataclass(frozen=True, slots=True)
class PolicyException:
    """An approved, time-boxed exception. It applies on days strictly before `expires_on`."""

    workspace: str
    reason: str
    approved_by: str
    ticket: str
    expires_on: date
    account_id: str | None = None
    nickname: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    grace_days: int = DEFAULT_GRACE_DAYS
    sla_days: int = DEFAULT_SLA_DAYS
    exceptions: tuple[PolicyException, ...] = ()
    identity: IdentityRules = DEFAULT_IDENTITY_RULES
    source_text: str = ""  # the YAML exactly as read ("" for the built-in default)
    source_path: str | None = None
    sha256: str = field(default="")

    def __post_init__(self) -> None:
        # A policy built in code gets the bounds a policy file gets (`_NodeReader.days`).
        for name in ("grace_days", "sla_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DAYS:
                raise PolicyError(
                    self.source_path or "<policy>",
                    f"must be a whole number of days from 0 to {MAX_DAYS}, got {value!r}",
                    field=name,
                )
        if not self.sha256:
            object.__setattr__(self, "sha256", sha256_hex(self.source_text))


DEFAULT_POLICY = Policy()


# ---------------------------------------------------------------------------------------------
# Loading a policy file
# ---------------------------------------------------------------------------------------------

_TOP_LEVEL_KEYS = ("grace_days", "sla_days", "exceptions", "accepted_factors", "sso", "scope")
_SSO_KEYS = ("email_domains", "identity_provider", "attestation")
_SCOPE_KEYS = ("exclude_account_types",)
# The `type` a membership's user can have (Atlassian's OpenAPI spec: user, app_user, team).
ACCOUNT_TYPES = ("user", APP_USER, "team")
_FACTOR_NAMES = ", ".join(Factor)
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")
_EXCEPTION_REQUIRED = ("workspace", "reason", "approved_by", "ticket", "expires_on")
_EXCEPTION_IDENTITY = ("account_id", "nickname")
_EXCEPTION_KEYS = _EXCEPTION_REQUIRED + _EXCEPTION_IDENTITY


class PolicyError(ValueError):
    """A policy file that cannot be used. The message names the file, the field and the line.

    >>> str(err)  # doctest: +SKIP
    "policy.yaml line 7: exceptions[0].expires_on: '2026-13-01' is not a date (YYYY-MM-DD)..."
    """

    def __init__(self, path: str, message: str, field: str | None = None, line: int | None = None):
        self.path = path
        self.field = field
        self.line = line
        where = f"{path} line {line}" if line is not None else path
        subject = f"{field}: " if field else ""
        super().__init__(f"policy file {where}: {subject}{message}")


def load_policy(path: str | Path | None) -> Policy:
    """Read and validate a YAML policy file; keep its exact text and SHA-256.

    Usage::

        policy = load_policy("policy.yaml")      # PolicyError if the file is bad
        policy = load_policy(None)               # the built-in DEFAULT_POLICY

    `None` gives DEFAULT_POLICY. A path that is missing or unreadable is an error, whatever
    its name and wherever the command runs from: a mistyped (or relative, run from another
    directory) `--policy` must not silently drop every approved exception.
    """
    if path is None:
        return DEFAULT_POLICY
    file = Path(path)
    name = str(file)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PolicyError(name, f"cannot read the file ({reason}); check the path") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(name, "the file is not UTF-8 text; save it as UTF-8") from None
    return parse_policy(text, name)


def parse_policy(text: str, source_path: str | None = None) -> Policy:
    """Validate policy YAML text (see `load_policy`). `source_path` is used in messages."""
    name = source_path or "<policy>"
    root = _compose(text, name)
    reader = _NodeReader(name)
    grace_days, sla_days, exceptions = DEFAULT_GRACE_DAYS, DEFAULT_SLA_DAYS, ()
    identity = DEFAULT_IDENTITY_RULES
    if root is not None:
        fields = reader.mapping(root, "policy", _TOP_LEVEL_KEYS, ())
        if "grace_days" in fields:
            grace_days = reader.days(fields["grace_days"], "grace_days")
        if "sla_days" in fields:
            sla_days = reader.days(fields["sla_days"], "sla_days")
        if "exceptions" in fields:
            exceptions = reader.exceptions(fields["exceptions"])
        identity = reader.identity(root, fields)
    return Policy(
        grace_days=grace_days,
        sla_days=sla_days,
        exceptions=exceptions,
        identity=identity,
        source_text=text,
        source_path=source_path,
    )


def _compose(text: str, name: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise PolicyError(name, f"not valid YAML ({problem})", line=line) from None
    except yaml.YAMLError as exc:
        raise PolicyError(name, f"not valid YAML ({type(exc).__name__})") from None


class _NodeReader:
    """Walks composed YAML nodes so every complaint can name the line it is about."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, node: yaml.Node, field: str, message: str) -> PolicyError:
        return PolicyError(self.name, message, field=field, line=node.start_mark.line + 1)

    def scalar(self, node: yaml.Node, field: str) -> object:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, field, "expected a single value, not a list or mapping")
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:
            raise self.fail(node, field, f"cannot read the value {node.value!r} ({exc})") from None
        finally:
            loader.dispose()

    def mapping(
        self, node: yaml.Node, field: str, allowed: tuple[str, ...], required: tuple[str, ...]
    ) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, field, "expected a mapping of key: value")
        fields: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            label = key if field == "policy" else f"{field}.{key}"
            if key not in allowed:
                known = ", ".join(allowed)
                raise self.fail(key_node, str(label), f"unknown key; allowed keys are: {known}")
            if key in fields:
                raise self.fail(key_node, str(label), "key given twice")
            fields[key] = value_node
        for key in required:
            if key not in fields:
                raise self.fail(node, f"{field}.{key}", "required field is missing")
        return fields

    def days(self, node: yaml.Node, field: str) -> int:
        value = self.scalar(node, field)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(node, field, f"expected a whole number of days, got {node.value!r}")
        if not 0 <= value <= MAX_DAYS:
            raise self.fail(
                node, field, f"must be from 0 to {MAX_DAYS} days (ten years), got {value}"
            )
        return value

    def text(self, node: yaml.Node, field: str) -> str:
        value = self.scalar(node, field)
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail(node, field, f"expected text, got {node.value!r}")
        value = str(value).strip()
        if not value:
            raise self.fail(node, field, "must not be empty")
        return value

    def day(self, node: yaml.Node, field: str) -> date:
        try:
            value = self.scalar(node, field)
        except PolicyError:
            value = None  # e.g. 2026-13-01 looks like a timestamp but is no real date
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                if len(value) == 10:
                    return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.fail(node, field, f"{node.value!r} is not a date; write it as YYYY-MM-DD")

    def exceptions(self, node: yaml.Node) -> tuple[PolicyException, ...]:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return ()
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, "exceptions", "expected a list of exceptions (- account_id: ...)")
        result = []
        for index, item in enumerate(node.value):
            label = f"exceptions[{index}]"
            fields = self.mapping(item, label, _EXCEPTION_KEYS, _EXCEPTION_REQUIRED)
            identity = {
                key: self.text(fields[key], f"{label}.{key}")
                for key in _EXCEPTION_IDENTITY
                if key in fields
            }
            if not identity:
                raise self.fail(item, label, "needs account_id or nickname to name the member")
            values = {
                key: self.text(fields[key], f"{label}.{key}")
                for key in ("workspace", "reason", "approved_by", "ticket")
            }
            expires_on = self.day(fields["expires_on"], f"{label}.expires_on")
            result.append(PolicyException(expires_on=expires_on, **values, **identity))
        return tuple(result)

    def texts(self, node: yaml.Node, field: str) -> list[str]:
        """A list of non-empty texts (`[a, b]` or `- a` lines); no value given twice."""
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, field, "expected a list, e.g. [a, b]")
        values: list[str] = []
        for index, item in enumerate(node.value):
            value = self.text(item, f"{field}[{index}]")
            if value in values:
                raise self.fail(item, f"{field}[{index}]", f"{value!r} is listed twice")
            values.append(value)
        return values

    def identity(self, root: yaml.Node, fields: dict[str, yaml.Node]) -> IdentityRules:
        """accepted_factors, sso and scope, checked against each other."""
        factors = DEFAULT_IDENTITY_RULES.accepted_factors
        if "accepted_factors" in fields:
            factors = self.factors(fields["accepted_factors"])
        sso = self.sso(fields["sso"]) if "sso" in fields else None
        excluded: tuple[str, ...] = (APP_USER,)
        if "scope" in fields:
            scope = self.mapping(fields["scope"], "scope", _SCOPE_KEYS, ())
            if "exclude_account_types" in scope:
                node = scope["exclude_account_types"]
                excluded = tuple(self.texts(node, "scope.exclude_account_types"))
                if "user" in excluded:
                    raise self.fail(
                        node,
                        "scope.exclude_account_types",
                        "must not exclude 'user': that would leave no people in scope",
                    )
                for index, name in enumerate(excluded):
                    if name not in ACCOUNT_TYPES:
                        raise self.fail(
                            node.value[index],
                            f"scope.exclude_account_types[{index}]",
                            f"{name!r} is not a type of Bitbucket account (they are "
                            f"{', '.join(ACCOUNT_TYPES)}): a misspelt type would exclude nobody",
                        )
        if Factor.IDP_SSO in factors and sso is None:
            raise self.fail(
                fields.get("accepted_factors", root),
                "sso",
                "accepted_factors lists idp_sso, so an sso: block must say which "
                "email_domains sign in through which identity_provider, with the attestation "
                "(how MFA is enforced there, who reviewed it when, the ticket)",
            )
        if sso is not None and Factor.IDP_SSO not in factors:
            raise self.fail(
                fields["sso"],
                "sso",
                "is set but accepted_factors does not list idp_sso: add idp_sso to "
                "accepted_factors, or remove sso:",
            )
        return IdentityRules(accepted_factors=factors, exclude_account_types=excluded, sso=sso)

    def factors(self, node: yaml.Node) -> tuple[Factor, ...]:
        names = self.texts(node, "accepted_factors")
        if not names:
            raise self.fail(node, "accepted_factors", f"name at least one of {_FACTOR_NAMES}")
        for index, name in enumerate(names):
            if name == MfaBasis.EXCEPTION:
                raise self.fail(
                    node.value[index],
                    "accepted_factors",
                    "exceptions always apply (list them under exceptions:); accepted_factors "
                    f"names second factors only: {_FACTOR_NAMES}",
                )
            if name not in {factor.value for factor in Factor}:
                raise self.fail(
                    node.value[index],
                    f"accepted_factors[{index}]",
                    f"{name!r} is not a second factor bb2sv knows; use {_FACTOR_NAMES}",
                )
        return tuple(Factor(name) for name in names)

    def sso(self, node: yaml.Node) -> SsoAttestation:
        fields = self.mapping(node, "sso", _SSO_KEYS, _SSO_KEYS)
        domains = self.texts(fields["email_domains"], "sso.email_domains")
        if not domains:
            raise self.fail(fields["email_domains"], "sso.email_domains", "name at least one")
        for index, domain in enumerate(domains):
            if not _DOMAIN.fullmatch(domain.removeprefix("@").lower()):
                raise self.fail(
                    fields["email_domains"].value[index],
                    f"sso.email_domains[{index}]",
                    f"{domain!r} is not an email domain; write it like example.com",
                )
        return SsoAttestation(
            email_domains=tuple(domain.removeprefix("@").lower() for domain in domains),
            identity_provider=self.text(fields["identity_provider"], "sso.identity_provider"),
            attestation=self.text(fields["attestation"], "sso.attestation"),
        )
