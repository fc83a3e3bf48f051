"""Read one Bitbucket Cloud workspace's members and permissions, whole or with a reason.

Entry point: `extract.extract_workspace(config.settings_from_env(), "acme")`. The modules,
each with one job: `extract` (both listings, the verdict), `config` (settings), `auth` (three
auth modes), `client` (send, record, pace, act on `decisions.classify`), `decisions` (pure
done/retry/fail), `retry` (waits and the deadline), `ratelimit` (hourly budget), `paginator`
(next links, page count, loops), `inflight` (the whole-response deadline), `tls` (the TLS
context), `messages` (what to fix), `exceptions`, `models` (what extraction hands on),
`clock`, `secret`.
"""
