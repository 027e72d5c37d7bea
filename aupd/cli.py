"""The ``aupd`` command line.

Subcommands live beside the component they drive and are imported only when called, so
``aupd blocklists lookup`` does not pay for importing mitmproxy.
"""

from __future__ import annotations

import importlib
import sys
from functools import cached_property
from typing import Any, NoReturn

import click

from aupd import log
from aupd.config import Config, ConfigError, find_config_file, load_config

# command name -> "module:attribute" of a click command.
COMMANDS: dict[str, str] = {
    "init": "aupd.init:init_command",
    "run": "aupd.services:run_command",
    "proxy": "proxy.cli:proxy_command",
    "check-url": "proxy.cli:check_url_command",
    "blocklists": "blocklists.cli:blocklists_group",
    "mailgate": "mailgate.service:mailgate_command",
    "mail": "mailgate.cli:mail_group",
    "unblock": "aupd.unblock_cli:unblock_group",
    "web": "console.cli:web_group",
    "report": "reports.cli:report_group",
    "purge": "aupd.privacy:purge_command",
    "export-subject": "aupd.privacy:export_subject_command",
    "dpia-facts": "aupd.privacy:dpia_facts_command",
    "doctor": "aupd.doctor:doctor_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attr = COMMANDS[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module_name), attr)
            return command
        return super().get_command(ctx, cmd_name)


class App:
    """What every command gets as ``ctx.obj``: the chosen config file and overrides."""

    def __init__(self, config_file: str | None, overrides: tuple[str, ...]) -> None:
        self.config_file = config_file
        self.overrides = overrides

    @cached_property
    def config(self) -> Config:
        try:
            return load_config(find_config_file(self.config_file), self.overrides)
        except ConfigError as e:
            fail(f"config error: {e}", code=2)


def fail(message: str, code: int = 1) -> NoReturn:
    """One plain line on stderr and a non-zero exit: what every expected error looks like."""
    click.echo(f"aupd: {message}", err=True)
    sys.exit(code)


pass_app = click.make_pass_decorator(App)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="Config file. Default: $AUPD_CONFIG, ./aupd.toml, /etc/aupd/aupd.toml, "
    "else built-in defaults.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Override a setting (repeatable); lists are comma separated.",
)
@click.version_option(package_name="aupd")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, overrides: tuple[str, ...]) -> None:
    """aupd: acceptable-use enforcement for an office gateway.

    Blocks web categories (with a block page and unblock requests), keeps
    person-identifiable email from leaving in the clear, and writes the weekly report
    the Registered Manager reads.
    """
    log.configure(stream=sys.stderr)
    ctx.obj = App(config_file, overrides)


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="aupd")
