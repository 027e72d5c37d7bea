"""Login, logout and who is signed in.

A session is a signed cookie holding the login name, when the login happened and a
stamp of the password hash: it ends after SESSION_HOURS whatever the browser does, and
at once when the password is reset or the login removed.
"""

from __future__ import annotations

import secrets
import time

from flask import (
    Blueprint,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from aupd import log
from aupd.unblock import record_audit
from console import accounts
from console.passwords import verify_password
from console.security import check_csrf, check_same_origin, csrf_token, safe_next
from console.state import state

SESSION_HOURS = 8
MAX_FIELD = 256

logger = log.get("aupd.console")
bp = Blueprint("auth", __name__)


def current_user() -> str | None:
    """The signed-in login name for this request, or None."""
    if "user" in g:
        user: str | None = g.user
        return user
    g.user = None
    name, stamp, since = session.get("user"), session.get("stamp"), session.get("login_at")
    if not isinstance(name, str) or not isinstance(since, (int, float)):
        return None
    if time.time() - since > SESSION_HOURS * 3600:
        session.clear()
        return None
    account = accounts.get(state().config, name)
    if account is None or not secrets.compare_digest(account.stamp, str(stamp)):
        session.clear()
        return None
    g.user = name
    return name


def require_login() -> Response | None:
    """For a blueprint's before_request: sign-in page unless signed in; CSRF on POST."""
    if current_user() is None:
        target = request.full_path.rstrip("?") if request.method == "GET" else "/"
        return redirect(url_for("auth.login", next=target))
    if request.method == "POST":
        check_csrf()
    return None


def _client() -> str:
    return request.remote_addr or "-"


@bp.get("/login")
def login() -> Response | str:
    target = safe_next(request.args.get("next"))
    if current_user() is not None:
        return redirect(target)
    return render_template("login.html", next=target, username="", error=None)


@bp.post("/login")
def login_post() -> ResponseReturnValue:
    console = state()
    check_same_origin(console.config.web.url)
    username = request.form.get("username", "").strip()[:MAX_FIELD]
    password = request.form.get("password", "")[:MAX_FIELD]
    target = safe_next(request.form.get("next"))
    name_key = f"name:{username.lower()}"
    keys = [f"address:{_client()}", name_key]
    if console.limiter.blocked(keys):
        logger.warning("console login refused: too many failures", client=_client())
        message = "Too many failed sign-ins. Please wait 15 minutes and try again."
        page = render_template("error.html", code=429, title="Please wait", message=message)
        return page, 429, {"Retry-After": "900"}
    known = accounts.check_name(username) is None
    account = accounts.get(console.config, username) if known else None
    # Always one scrypt run, so an unknown name answers as slowly as a wrong password.
    matched = verify_password(password, account.password_hash if account else console.dummy_hash)
    if account is None or not matched:
        console.limiter.fail(keys)
        logger.info("console login failed", client=_client())
        record_audit(console.config, username[:64] or "-", "login failed", [_client()])
        page = render_template(
            "login.html", next=target, username=username, error="Wrong name or password."
        )
        return page, 401
    # The name's failures are forgiven; the address's stand, so a valid login of one's
    # own cannot be used to reset the count while guessing at another.
    console.limiter.succeed([name_key])
    # A fresh session: nothing from before the login (a planted cookie) survives it.
    session.clear()
    session.permanent = True
    session["user"] = account.name
    session["stamp"] = account.stamp
    session["login_at"] = time.time()
    session["sid"] = secrets.token_urlsafe(16)
    csrf_token()
    record_audit(console.config, account.name, "login", [_client()])
    logger.info("console login", user=account.name, client=_client())
    return redirect(target)


@bp.post("/logout")
def logout() -> Response:
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login"))
    check_csrf()
    record_audit(state().config, user, "logout", [_client()])
    session.clear()
    flash("You are signed out.", "ok")
    return redirect(url_for("auth.login"))
