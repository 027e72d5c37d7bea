"""The console's Flask application: ``create_app(config)``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jinja2
from flask import Flask, render_template
from werkzeug.exceptions import HTTPException

from aupd.categories import CANONICAL
from aupd.config import Config
from aupd.secrets import load_or_create_secret
from aupd.users import Directory
from blocklists.index import IndexStore
from console import auth, formatting, public, views
from console.passwords import hash_password
from console.ratelimit import FailureLimiter
from console.security import add_headers, csrf_token, derive_key
from console.state import EXTENSION, Console

# Finding types (SPEC) as the manager reads them.
PII_LABELS = {
    "nhs_number": "NHS number",
    "nino": "National Insurance number",
    "date_of_birth": "date of birth",
    "bank_account": "bank account",
    "payment_card": "payment card",
    "client_register": "service user (client register)",
}

# Werkzeug's own texts talk about servers and URLs; staff get these instead.
PLAIN_ERRORS = {
    400: "The request could not be understood.",
    403: "You may not do that.",
    404: "There is no such page.",
    405: "This page cannot be used that way. Go back and use the page's own buttons.",
    413: "That was too much to send.",
    500: "Something went wrong in the console. Please try again; if it keeps happening, tell IT.",
}


def create_app(config: Config) -> Flask:
    secret = load_or_create_secret(config.state_dir)
    app = Flask(__name__)
    app.secret_key = derive_key(secret, "console session")
    app.config.update(
        SESSION_COOKIE_NAME="aupd_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.web.url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=auth.SESSION_HOURS),
        # The 8 hours run from the login (auth.current_user), not from the last click.
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.jinja_env.undefined = jinja2.StrictUndefined
    app.extensions[EXTENSION] = Console(
        config=config,
        secret=secret,
        report_key=derive_key(secret, "console report form"),
        limiter=FailureLimiter(),
        index=IndexStore(config.store.index_dir),
        directory=Directory(config),
        dummy_hash=hash_password("no such login"),
    )
    _templates(app, config)
    app.register_blueprint(auth.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(public.bp)
    app.after_request(add_headers)
    app.register_error_handler(HTTPException, _error_page)
    return app


def _templates(app: Flask, config: Config) -> None:
    timezone = config.organisation.timezone
    app.jinja_env.filters["local"] = lambda stamp: formatting.local_time(stamp, timezone)
    app.jinja_env.filters["ago"] = formatting.age
    app.jinja_env.filters["until"] = lambda stamp: formatting.until(stamp, timezone)

    @app.context_processor
    def shared() -> dict[str, Any]:
        return {
            "organisation": config.organisation.name,
            "policy_url": config.organisation.policy_url
            if config.organisation.policy_url.startswith(("https://", "http://"))
            else "",
            "console_url": config.web.url,
            "timezone": timezone,
            "category_labels": CANONICAL,
            "pii_labels": PII_LABELS,
            "signed_in": auth.current_user(),
            "csrf_token": csrf_token,
        }


def _error_page(error: HTTPException) -> tuple[str, int]:
    code = error.code or 500
    # A description given at abort() is ours and plain; the class default is Werkzeug's.
    ours = error.description and error.description != type(error).description
    text = error.description if ours else PLAIN_ERRORS.get(code, error.name)
    return render_template("error.html", code=code, title=error.name, message=text), code
