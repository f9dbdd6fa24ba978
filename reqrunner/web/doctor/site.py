"""The checks that need the live site: which mode ``auto`` picks there, whether a signed
self-request reaches ``{path}/run``, whether the page's CSP admits the ``js`` trigger, whether
``Authorization`` reaches the app, and whether the tick URL answers 202.

They go over HTTP to the site's address (``--url``, else ``self_url``), from wherever doctor
runs; where that address is unknown or unreachable the checks say they cannot tell.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from ..admin.auth import BasicAuth
from ..routes import DOCTOR_PURPOSE, RUN_PURPOSE
from .csp import blocked_by
from .probe import AUTH_MARK
from .report import Check, Status

if TYPE_CHECKING:
    from ..core import MiddlewareCore

__all__ = ["site_checks"]

AREA = "Running from page views"
TOKEN_TTL = 120.0

_CGI_FIX = (
    "Apache: put `CGIPassAuth On` in the site's .htaccess (Apache 2.4.13 or later), or "
    '`SetEnvIf Authorization "(.*)" HTTP_AUTHORIZATION=$1`; or protect the admin with a '
    "callable admin= check instead of BasicAuth."
)


def _why(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc or 'no detail'}"


def _probe(
    core: MiddlewareCore, base: str, client: httpx.Client
) -> tuple[dict[str, Any] | None, str]:
    token = core.signer().sign(DOCTOR_PURPOSE, ttl=TOKEN_TTL)
    url = f"{base}{core.path}/doctor"
    try:
        response = client.get(url, params={"token": token}, headers={"authorization": AUTH_MARK})
    except httpx.HTTPError as exc:
        return None, f"{url} could not be reached from here ({_why(exc)})"
    if response.status_code == 403:
        return None, (
            f"{url} refused doctor's token (403): the site signs with another secret than this "
            "process reads; give doctor the same REQRUNNER_SECRET or database"
        )
    if response.status_code != 200:
        return None, (
            f"{url} answered {response.status_code}: no reqrunner there; give --url the site's "
            "address with the app's mount point"
        )
    try:
        facts = response.json()
    except ValueError:
        return None, f"{url} did not answer JSON"
    return (facts, "") if isinstance(facts, dict) else (None, f"{url} did not answer JSON")


def _mode(core: MiddlewareCore, facts: dict[str, Any] | None, problem: str) -> tuple[Check, str]:
    mode = core.options.mode
    status: Status = "ok"
    concrete: str
    if core.options.run_rate <= 0:
        found = "Page views never run jobs (run_rate=0): a worker, cron or the tick URL must."
        return Check(id="run.mode", area=AREA, title="Mode", status="ok", found=found), "off"
    if facts is None:
        concrete = mode if mode != "auto" else "unknown"
        found = f"mode={mode!r}; which server runs the site is unknown: {problem}."
        status = "unknown" if mode == "auto" else "ok"
        return Check(id="run.mode", area=AREA, title="Mode", status=status, found=found), concrete
    concrete = str(facts.get("concrete_mode"))
    server = facts.get("software") or facts.get("protocol", "?").upper() + " server"
    if facts.get("run_once"):
        why = f"{server} runs one request per process (CGI)"
    else:
        why = f"{server} ({facts.get('protocol', '?').upper()}) outlives each response"
    if mode == "auto":
        found = f"auto picks {concrete} here: {why}."
    else:
        found = f"mode={mode!r} is set; {why}."
    data = {k: facts.get(k) for k in ("mode", "concrete_mode", "protocol", "run_once", "software")}
    advice = ""
    if concrete in ("sync", "async") and facts.get("run_once"):
        status = "warn"
        advice = (
            "Under CGI a run in the page's process keeps the visitor waiting: "
            "use mode='auto' or 'js'."
        )
    check = Check(
        id="run.mode", area=AREA, title="Mode", status=status, found=found, advice=advice, data=data
    )
    return check, concrete


def _self_request(
    core: MiddlewareCore, base: str | None, concrete: str, client: httpx.Client
) -> Check:
    self_url = core.options.self_url
    target = (self_url or base or "").rstrip("/")
    title = "Signed self-request"
    if not target:
        return Check(
            id="run.self_request",
            area=AREA,
            title=title,
            status="unknown",
            found="No address to try: give --url https://your.site or set self_url.",
        )
    url = f"{target}{core.path}/run"
    token = core.signer().sign(RUN_PURPOSE, ttl=TOKEN_TTL)
    started = time.perf_counter()
    try:
        response = client.post(url, data={"token": token})
        error = None if response.status_code == 202 else f"answered {response.status_code}, not 202"
    except httpx.HTTPError as exc:
        error = _why(exc)
    took = time.perf_counter() - started
    via = " (self_url)" if self_url else ""
    data = {"url": url, "seconds": took, "error": error}
    if error is None:
        found = f"POST {url}{via} answered 202 in {took * 1000:.0f} ms (and ran a bounded batch)."
        return Check(
            id="run.self_request", area=AREA, title=title, status="ok", found=found, data=data
        )
    found = f"POST {url}{via} failed: {error}."
    fix = (
        "Set self_url to an address the server itself can reach (often http://127.0.0.1:PORT "
        "behind a proxy); it decides where signed self-requests go."
    )
    if concrete == "js" and self_url:
        found += (
            " In js mode the visitors' browsers post to this address too, so no page view "
            "runs jobs."
        )
        return Check(
            id="run.self_request",
            area=AREA,
            title=title,
            status="fail",
            found=found,
            advice="Point self_url at the site's public address.",
            data=data,
        )
    if concrete == "async":
        found += (
            " async mode then runs jobs in-process after a timeout, and skips self-requests "
            "for 5 min."
        )
        return Check(
            id="run.self_request",
            area=AREA,
            title=title,
            status="warn",
            found=found,
            advice=fix + " Or use mode='sync', which needs no loopback.",
            data=data,
        )
    found += f" The current mode ({concrete}) does not use it; async mode would."
    return Check(
        id="run.self_request",
        area=AREA,
        title=title,
        status="warn",
        found=found,
        advice=fix,
        data=data,
    )


def _csp(base: str, concrete: str, client: httpx.Client) -> Check:
    title = "Content Security Policy"
    try:
        response = client.get(base + "/", headers={"accept": "text/html"})
    except httpx.HTTPError as exc:
        return Check(
            id="run.csp",
            area=AREA,
            title=title,
            status="unknown",
            found=f"The page {base}/ could not be fetched ({_why(exc)}).",
        )
    policies = response.headers.get_list("content-security-policy")
    parts = urlsplit(str(response.url))
    blocked = blocked_by(policies, f"{parts.scheme}://{parts.netloc}")
    data = {"page": f"{base}/", "policies": policies, "blocked_by": blocked}
    if blocked is None:
        found = (
            "The page sets no CSP."
            if not policies
            else "The page's CSP admits the trigger script and its POST."
        )
        return Check(id="run.csp", area=AREA, title=title, status="ok", found=found, data=data)
    found = f"The page's CSP ({blocked}) would refuse the js trigger's script or its POST."
    advice = "Add 'self' to script-src and connect-src (or send a nonce: the trigger reuses it)."
    if concrete == "js":
        found += " In js mode no page view can run jobs."
        return Check(
            id="run.csp",
            area=AREA,
            title=title,
            status="fail",
            found=found,
            advice=advice,
            data=data,
        )
    found += f" The current mode ({concrete}) does not use the script."
    return Check(id="run.csp", area=AREA, title=title, status="ok", found=found, data=data)


def _authorization(core: MiddlewareCore, facts: dict[str, Any] | None, problem: str) -> Check:
    title = "Authorization header"
    if facts is None:
        return Check(
            id="run.authorization",
            area=AREA,
            title=title,
            status="unknown",
            found=f"Cannot tell: {problem}.",
        )
    if facts.get("authorization"):
        return Check(
            id="run.authorization",
            area=AREA,
            title=title,
            status="ok",
            found="An Authorization header sent to the site reaches the app.",
        )
    found = "The server does not pass the Authorization header to the app"
    found += " (as Apache does for CGI scripts by default)." if facts.get("run_once") else "."
    basic = isinstance(core.options.admin, BasicAuth)
    if basic:
        found += " The admin's BasicAuth can never succeed: it answers 401 to the right password."
    else:
        found += " Only matters for BasicAuth in the admin, which this site does not use."
    return Check(
        id="run.authorization",
        area=AREA,
        title=title,
        status="warn" if basic else "ok",
        found=found,
        advice=_CGI_FIX if basic else "",
        data={"seen": False},
    )


def _tick(core: MiddlewareCore, base: str, client: httpx.Client) -> Check:
    title = "Tick URL"
    url = core.tick_url(base)
    shown = url.split("?", 1)[0] + "?token=…"
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        return Check(
            id="run.tick",
            area=AREA,
            title=title,
            status="unknown",
            found=f"{shown} could not be fetched from here ({_why(exc)}); an uptime monitor "
            "elsewhere may still reach it.",
            data={"url": shown},
        )
    if response.status_code == 202:
        return Check(
            id="run.tick",
            area=AREA,
            title=title,
            status="ok",
            found=f"{shown} answered 202 (and ran a bounded batch): give it to an uptime "
            "monitor or a remote cron so a quiet site still runs its jobs.",
            data={"url": shown, "status": 202},
        )
    return Check(
        id="run.tick",
        area=AREA,
        title=title,
        status="warn",
        found=f"{shown} answered {response.status_code}, not 202.",
        advice="Check that --url is the site's public address with the app's mount point, "
        "and that a firewall or WAF lets GET requests with a query string through.",
        data={"url": shown, "status": response.status_code},
    )


def site_checks(
    core: MiddlewareCore, url: str | None, *, timeout: float = 5.0
) -> tuple[list[Check], dict[str, Any] | None]:
    """The live site's checks, and what its process said of itself (``None`` if unreachable)."""
    base = (url or core.options.self_url or "").rstrip("/") or None
    with httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False) as client:
        if base is None:
            facts, problem = None, "no address to ask: give --url https://your.site or set self_url"
        else:
            facts, problem = _probe(core, base, client)
        mode_check, concrete = _mode(core, facts, problem)
        checks = [mode_check, _self_request(core, base, concrete, client)]
        if base is not None:
            checks.append(_csp(base, concrete, client))
        checks.append(_authorization(core, facts, problem))
        if base is not None:
            checks.append(_tick(core, base, client))
    return checks, facts
