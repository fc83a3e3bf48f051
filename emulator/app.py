"""Starlette routes of the emulated Bitbucket Cloud API.

    app = create_app(EmulatorState([WorkspaceSpec("acme")], day=date.today()))

Routes: GET /2.0/workspaces/{ws}, /members, /members/{member}, /permissions, GET /2.0/user,
POST /site/oauth2/access_token, and the Atlassian Admin API's organization directory
GET /admin/v2/orgs/{org}/directories/{directory}/users (`limit`, `cursor`; errors as
`{"code", "message"}`). Order of checks per request: authentication (401), scope (403),
hourly budget (429), workspace (404), input (400), then counted faults; the directory checks
the organization (404) before the budget.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.auth import USER_SCOPE, WORKSPACE_SCOPE, Caller
from emulator.directory import directory_page
from emulator.payloads import (
    caller_account,
    error_body,
    listing_values,
    membership,
    workspace_full,
    workspace_ref,
)
from emulator.state import EmulatorState

INVALID_TOKEN = "Token is invalid, expired, or not supported for this endpoint."  # noqa: S105
RATE_LIMITED = "Rate limit for this resource has been exceeded"
MISSING_SCOPE = "Your credentials lack one or more required privilege scopes."
ADD_2FA_LISTING = "+values.user.has_2fa_enabled"
ADD_2FA_MEMBER = "+user.has_2fa_enabled"
MAX_PAGELEN = 100
DIRECTORY_LIMIT = 100  # the organization directory's page size, at most
ADMIN_UNAUTHORIZED = "Unauthorized: the API key is missing, invalid, expired or revoked."
ADMIN_RATE_LIMITED = "Too many requests: the rate limit for this API key was exceeded."
_Q_PERMISSION = re.compile(r"""^\s*permission\s*=\s*["'](owner|member|collaborator)["']\s*$""")
_HTML_REASON = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class Reject(Exception):
    """A finished error response, raised from deep inside a handler."""

    def __init__(self, response: Response) -> None:
        self.response = response


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def error(
    status: int, message: str, detail: object = None, headers: dict[str, str] | None = None
) -> Response:
    return json_response(error_body(message, detail), status, headers)


class EmulatorHeaders:
    """ASGI middleware: counts requests (and logs their paths), adds `X-Bb2sv-Emulator: 1`,
    applies `latency_s`: a response starts no sooner than `latency_s` after its request
    arrived, the emulator's own work included, as a real server's latency includes its work
    (building a 100-member page takes the emulator a few ms that Bitbucket's would not add)."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.state.count_request(scope["path"])
        arrived = time.monotonic()
        latency = self.state.scenario.latency_s

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                if latency:  # async: other requests keep flowing
                    await self.state.pause(latency - (time.monotonic() - arrived))
                headers = [*message.get("headers", []), (b"x-bb2sv-emulator", b"1")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_marked)


def _retry_after(state: EmulatorState, seconds: float) -> dict[str, str]:
    mode, whole = state.scenario.retry_after, max(1, int(seconds + 0.999))
    if mode == "seconds":
        return {"Retry-After": str(whole)}
    if mode == "http-date":
        return {"Retry-After": formatdate(time.time() + whole, usegmt=True)}
    return {}


def admin_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An Atlassian Admin API error: `{"code": status, "message": ...}`."""
    return json_response({"code": status, "message": message}, status, headers)


def _reset_headers(seconds: float, budget: int | None) -> dict[str, str]:
    """The Admin API's 429 headers: when to come back as an ISO-8601 time, no Retry-After."""
    reset = datetime.now(UTC) + timedelta(seconds=max(1, int(seconds + 0.999)))
    return {
        "X-RateLimit-Limit": str(budget or 0),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _authorize(state: EmulatorState, request: Request, scope: str) -> tuple[Caller, dict[str, str]]:
    """Authenticate, check scope and spend one request of the hourly budget."""
    caller = state.auth.identify(request.headers.get("authorization"))
    if caller is None:
        raise Reject(error(401, INVALID_TOKEN))
    if not caller.has_scope(scope):
        detail = {"granted": list(caller.scopes), "required": [scope]}
        raise Reject(error(403, MISSING_SCOPE, detail))
    budget = state.scenario.hourly_budget
    allowed, used, wait_s = state.limiter.take(caller.key, budget)
    headers: dict[str, str] = {}
    if caller.bearer:
        headers["X-RateLimit-Resource"] = "api"
        if budget is not None:
            headers["X-RateLimit-Limit"] = str(budget)
            headers["X-RateLimit-NearLimit"] = "true" if used >= 0.8 * budget else "false"
    if not allowed:
        raise Reject(error(429, RATE_LIMITED, headers={**headers, **_retry_after(state, wait_s)}))
    return caller, headers


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _workspace(state: EmulatorState, request: Request):  # -> WorkspaceSpec
    identifier = request.path_params["workspace"]
    spec = state.resolve(identifier)
    if spec is None:
        raise Reject(error(404, f"No workspace with identifier '{identifier}'."))
    return spec


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise Reject(error(400, f"Invalid {name}: {raw!r} is not a positive integer."))
    return value


def _page_number(state: EmulatorState, request: Request) -> int:
    if not state.scenario.opaque_cursor:
        return _int_param(request, "page", 1)
    raw = request.query_params.get("page")
    if raw is None:
        return 1
    page = state.page_for_cursor(raw)
    if page is None:
        raise Reject(error(400, f"Invalid page cursor {raw!r}: follow the 'next' link as given."))
    return page


def _page_url(state: EmulatorState, request: Request, page: int) -> str:
    """Absolute URL of another page: same path and query, only `page` changes."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
    query = urlencode(params, quote_via=quote, safe="")
    if state.scenario.opaque_cursor:
        value = state.cursor_for(page, f"{request.url.path}?{query}")
    else:
        value = str(page)
    query = f"{query}&page={value}" if query else f"page={value}"
    return f"{_origin(request)}{request.url.path}?{query}"


def _wants(request: Request, field: str) -> bool:
    """`fields=%2Bvalues.user.has_2fa_enabled`; an unencoded '+' arrives as a space: no."""
    fields = ",".join(request.query_params.getlist("fields"))
    return field in fields.split(",")


async def _counted_fault(
    state: EmulatorState, listing: str, workspace: str
) -> tuple[Response | None, str | None]:
    """(error response to send instead, or None; how to mangle the body: None, "truncate" or
    "drip"). The directory's errors take the Admin API's shape."""
    fault = state.faults.next_fault(listing, workspace)
    sc = state.scenario
    admin = listing == "directory"
    if fault == "rate_limit_storm":
        if admin:
            return admin_error(
                429, ADMIN_RATE_LIMITED, _reset_headers(sc.retry_after_s, sc.hourly_budget)
            ), None
        return error(429, RATE_LIMITED, headers=_retry_after(state, sc.retry_after_s)), None
    if fault == "auth_failures":
        return (admin_error(401, ADMIN_UNAUTHORIZED) if admin else error(401, INVALID_TOKEN)), None
    if fault == "html_errors":
        status = sc.html_error_status
        reason = _HTML_REASON.get(status, "Server Error")
        html = f"<html><head><title>{status} {reason}</title></head><body>{reason}</body></html>"
        return Response(html, status, media_type="text/html"), None
    if fault == "slow_responses":
        await state.pause(sc.slow_s)
    mangle = {"truncated_json": "truncate", "drip_responses": "drip"}
    return None, mangle.get(fault) if fault else None


def _shape_faults(body: dict[str, Any], scenario: Any) -> None:
    """The page-shape faults that change single fields of one member or the size."""
    users = [value["user"] for value in body["values"]]
    if scenario.size_as_text and "size" in body:
        body["size"] = str(body["size"])
    if users and scenario.account_id_as_number:
        users[0]["account_id"] = 557058
    if scenario.without_account_id:
        for user in users:
            user.pop("account_id", None)
    without_2sv = [user for user in users if user.get("has_2fa_enabled") is not True]
    if without_2sv and scenario.display_name_bytes:
        without_2sv[0]["display_name"] = "x" * scenario.display_name_bytes


def _drip(state: EmulatorState, content: bytes) -> StreamingResponse:
    sc = state.scenario

    async def chunks():
        for start in range(0, len(content), sc.drip_bytes):
            yield content[start : start + sc.drip_bytes]
            await state.pause(sc.drip_interval_s)
            if state.stopping.is_set():
                return

    return StreamingResponse(chunks(), 200, media_type="application/json")


async def listing_page(state: EmulatorState, request: Request, listing: str) -> Response:
    caller, headers = _authorize(state, request, WORKSPACE_SCOPE)
    spec = _workspace(state, request)
    permission = None
    q = request.query_params.get("q")
    if q is not None:
        match = _Q_PERMISSION.match(q) if listing == "permissions" else None
        if match is None:
            raise Reject(error(400, f"Invalid or unsupported query q={q!r}.", headers=headers))
        permission = match.group(1)
    pagelen = min(_int_param(request, "pagelen", 10), MAX_PAGELEN)
    page = _page_number(state, request)
    failure, mangle = await _counted_fault(state, listing, spec.slug)
    if failure is not None:
        failure.headers.update(headers)
        return failure

    sc = state.scenario
    pop, order = state.listing(spec, permission)
    last_page = max(1, -(-len(order) // pagelen))
    origin = _origin(request)
    with_2fa = caller.admin and _wants(request, ADD_2FA_LISTING)
    start = (page - 1) * pagelen
    body: dict[str, Any] = {"pagelen": pagelen}
    targeted = sc.targets(listing, spec.slug)
    if not (sc.omit_size and targeted):
        body["size"] = len(order) + (sc.size_offset if targeted else 0)
    if not sc.opaque_cursor:
        body["page"] = page
    body["values"] = listing_values(
        pop.rows(order[start : start + pagelen]),
        spec,
        origin,
        with_2fa=with_2fa,
        with_permission=listing == "permissions",
    )
    if page < last_page:
        body["next"] = _page_url(state, request, page + 1)
    elif sc.next_loop and targeted:
        body["next"] = _page_url(state, request, 1)
    if targeted:
        _shape_faults(body, sc)
    if state.faults.shift_ready(listing, spec.slug):
        state.apply_shift(spec)  # the page above was served before the change
    content = orjson.dumps(body)
    if targeted and sc.two_step_key_twice:
        content = content.replace(
            b'"has_2fa_enabled":false', b'"has_2fa_enabled":false,"has_2fa_enabled":true', 1
        )
    if mangle == "truncate":
        content = content[: len(content) // 2]
    if mangle == "drip":
        return _drip(state, content)
    return Response(content, 200, headers, media_type="application/json")


async def directory_listing(state: EmulatorState, request: Request) -> Response:
    """One page of the organization directory's users; `links.next` is an opaque cursor."""
    caller = state.auth.org_admin(request.headers.get("authorization"))
    if caller is None:
        raise Reject(admin_error(401, ADMIN_UNAUTHORIZED))
    org, directory = request.path_params["org"], request.path_params["directory"]
    if org != state.org.org_id or directory != "-":
        raise Reject(admin_error(404, f"No organization '{org}' or directory '{directory}'."))
    budget = state.scenario.hourly_budget
    allowed, _used, wait_s = state.limiter.take(caller.key, budget)
    if not allowed:
        raise Reject(admin_error(429, ADMIN_RATE_LIMITED, _reset_headers(wait_s, budget)))
    limit = min(_int_param(request, "limit", DIRECTORY_LIMIT), DIRECTORY_LIMIT)
    cursor = request.query_params.get("cursor")
    page = 1 if cursor is None else state.page_for_cursor(cursor)
    if page is None:
        raise Reject(admin_error(400, f"Invalid cursor {cursor!r}: pass links.next as given."))
    failure, mangle = await _counted_fault(state, "directory", "")
    if failure is not None:
        return failure
    users = state.directory_users()
    last_page = max(1, -(-len(users) // limit))
    key = f"{request.url.path}?limit={limit}"
    loop = state.scenario.next_loop and state.scenario.targets("directory", "")
    following = page + 1 if page < last_page else (1 if loop else None)
    links = {
        "self": cursor,
        "prev": state.cursor_for(page - 1, key) if page > 1 else None,
        "next": None if following is None else state.cursor_for(following, key),
    }
    content = orjson.dumps(
        directory_page(users, start=(page - 1) * limit, limit=limit, links=links)
    )
    if mangle == "truncate":
        content = content[: len(content) // 2]
    if mangle == "drip":
        return _drip(state, content)
    return Response(content, 200, media_type="application/json")


def create_app(state: EmulatorState) -> ASGIApp:
    """The ASGI app for `state` (wrapped in the emulator-header middleware)."""

    def handler(fn):  # turn Reject into its response
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except Reject as rejected:
                return rejected.response

        return endpoint

    @handler
    async def members(request: Request) -> Response:
        return await listing_page(state, request, "members")

    @handler
    async def permissions(request: Request) -> Response:
        return await listing_page(state, request, "permissions")

    @handler
    async def member(request: Request) -> Response:
        caller, headers = _authorize(state, request, WORKSPACE_SCOPE)
        spec = _workspace(state, request)
        identifier = request.path_params["member"]
        identifier = identifier.lower() if identifier.startswith("{") else identifier
        pop, order = state.listing(spec)
        position = pop.find(identifier)
        if position is None or not (order == position).any():
            message = f"No member with identifier '{identifier}' in workspace '{spec.slug}'."
            return error(404, message, headers=headers)
        origin = _origin(request)
        with_2fa = caller.admin and _wants(request, ADD_2FA_MEMBER)
        body = membership(
            pop.user(position),
            slug=spec.slug,
            origin=origin,
            ws=workspace_ref(spec, origin),
            with_2fa=with_2fa,
            with_permission=False,
        )
        return json_response(body, headers=headers)

    @handler
    async def workspace(request: Request) -> Response:
        _, headers = _authorize(state, request, WORKSPACE_SCOPE)
        spec = _workspace(state, request)
        return json_response(workspace_full(spec, _origin(request)), headers=headers)

    @handler
    async def user(request: Request) -> Response:
        caller, headers = _authorize(state, request, USER_SCOPE)
        body = caller_account(caller.nickname, caller.display_name, _origin(request))
        return json_response(body, headers=headers)

    @handler
    async def directory_users(request: Request) -> Response:
        return await directory_listing(state, request)

    async def access_token(request: Request) -> Response:
        if not state.auth.client_ok(request.headers.get("authorization")):
            return json_response(
                {"error": "invalid_client", "error_description": "Client credentials are invalid."},
                401,
            )
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        grant = form.get("grant_type")
        if grant == "refresh_token" and not state.auth.use_refresh(form.get("refresh_token", "")):
            return json_response(
                {"error": "invalid_grant", "error_description": "Invalid refresh_token."}, 400
            )
        if grant not in ("client_credentials", "refresh_token"):
            description = f"Unsupported grant_type {grant!r}: use client_credentials."
            return json_response(
                {"error": "unsupported_grant_type", "error_description": description}, 400
            )
        return json_response(state.auth.issue(state.scenario.oauth_expires_in))

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return error(
            status,
            f"Resource not found: {request.url.path}" if status == 404 else "Request failed.",
        )

    routes = [
        Route("/2.0/workspaces/{workspace}", workspace),
        Route("/2.0/workspaces/{workspace}/members", members),
        Route("/2.0/workspaces/{workspace}/members/{member}", member),
        Route("/2.0/workspaces/{workspace}/permissions", permissions),
        Route("/2.0/user", user),
        Route("/site/oauth2/access_token", access_token, methods=["POST"]),
        Route("/admin/v2/orgs/{org}/directories/{directory}/users", directory_users),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    return EmulatorHeaders(app, state)
