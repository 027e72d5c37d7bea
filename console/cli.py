"""``aupd web``: the Registered Manager's console in the foreground, and its logins."""

from __future__ import annotations

import asyncio
import ipaddress
import sys
import threading
from typing import Any

import click
from werkzeug.serving import WSGIRequestHandler, make_server

from aupd import log
from aupd.cli import App, fail, pass_app
from aupd.config import Config, HostPort

logger = log.get("aupd.console")


class _RequestLog(WSGIRequestHandler):
    """Requests as structlog lines like every other aupd service, without query strings
    (a filter such as ?user=NAME is personal data)."""

    def version_string(self) -> str:
        return "aupd"  # no server or Python versions for anyone probing

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.info(
            "console request",
            method=self.command,
            path=self.path.partition("?")[0],
            status=int(code) if str(code).isdigit() else str(code),
            client=self.address_string(),
        )

    def log(self, type: str, message: str, *args: Any) -> None:
        logger.warning("console server", detail=message % args if args else message)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_problem(config: Config) -> str | None:
    """Why serving on ``[web] listen`` would be unsafe, or None."""
    listen = config.web.listen
    if config.web.url.startswith("https://") or _loopback(listen.host):
        return None
    return (
        f"refusing to serve the console on {listen} over plain http: passwords and session "
        "cookies would cross the network in clear (put it behind TLS and set web.public_url "
        "to its https:// address, or pass --insecure-bind)"
    )


async def run_console(config: Config, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set). Raises OSError if it cannot listen."""
    from aupd.services import stop_on_signals
    from console.app import create_app

    app = create_app(config)
    listen = config.web.listen
    server = make_server(listen.host, listen.port, app, threaded=True, request_handler=_RequestLog)
    host, port = server.socket.getsockname()[:2]
    stop = stop or stop_on_signals()
    thread = threading.Thread(target=server.serve_forever, name="console", daemon=True)
    thread.start()
    bound = str(HostPort(host, port))
    logger.info("console ready", listen=[bound], url=config.web.public_url or f"http://{bound}")
    try:
        await stop.wait()
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join(timeout=10)
        logger.info("console stopped")


@click.group("web", invoke_without_command=True)
@click.option(
    "--insecure-bind",
    is_flag=True,
    help="Serve on a non-loopback address over plain http anyway (passwords in clear).",
)
@click.pass_context
def web_group(ctx: click.Context, insecure_bind: bool) -> None:
    """Run the Registered Manager's console in the foreground; or manage its logins."""
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.find_object(App)
    assert app is not None  # the aupd group always sets it
    config = app.config
    problem = bind_problem(config)
    if problem and not insecure_bind:
        fail(problem, code=2)
    log.configure()
    try:
        asyncio.run(run_console(config))
    except OSError as e:
        fail(f"cannot listen on {config.web.listen}: {e.strerror or e}")


@web_group.command("adduser")
@click.argument("name")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input instead of asking for it.",
)
@pass_app
def adduser_command(app: App, name: str, password_stdin: bool) -> None:
    """Create the console login NAME, or reset its password (signing it out everywhere)."""
    from aupd.unblock import record_audit
    from aupd.unblock_cli import actor
    from console import accounts
    from console.passwords import check_strength

    problem = accounts.check_name(name)
    if problem:
        fail(problem, code=2)
    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        fail("no terminal to ask for the password on: use --password-stdin", code=2)
    problem = check_strength(password)
    if problem:
        fail(problem, code=2)
    created = accounts.set_password(app.config, name, password)
    record_audit(
        app.config, actor(), "add login" if created else "reset password", [f"console {name}"]
    )
    click.echo(f"Created the login {name}." if created else f"Reset the password of {name}.")


@web_group.command("deluser")
@click.argument("name")
@pass_app
def deluser_command(app: App, name: str) -> None:
    """Remove the console login NAME (its sessions end at once)."""
    from aupd.unblock import record_audit
    from aupd.unblock_cli import actor
    from console import accounts

    if not accounts.remove(app.config, name):
        fail(f"there is no console login {name}")
    record_audit(app.config, actor(), "remove login", [f"console {name}"])
    click.echo(f"Removed the console login {name}.")


@web_group.command("users")
@pass_app
def users_command(app: App) -> None:
    """List the console logins."""
    from console import accounts

    logins = accounts.all_accounts(app.config)
    if not logins:
        click.echo("No console logins yet: add one with 'aupd web adduser NAME'.")
    for account in logins:
        click.echo(f"{account.name}\tcreated {account.created_at}\tchanged {account.updated_at}")
