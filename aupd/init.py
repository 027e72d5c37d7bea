"""``aupd init``: a commented config with working defaults, the store, the CA, the secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from aupd.cli import App, fail, pass_app
from aupd.config import DEFAULT_BLOCK, GROUP_KEYS, SCHEMA, ConfigError, Key, Section, load_config

CA_BASENAME = "mitmproxy"  # mitmproxy's own file names, so its tools work with our CA

# Where real deployments fetch lists from; `aupd blocklists update` downloads them.
EXAMPLE_SOURCES = (("", "https://dsi.ut-capitole.fr/blacklists/download/blacklists.tar.gz", "ut1"),)

# Example values for the commented-out tables (their help comes from the schema).
EXAMPLE_USER: dict[str, Any] = {
    "name": "asmith",
    "email": "a.smith@example.org",
    "addresses": ["192.168.10.21"],
    "group": "care",
    "leaver": False,
}
EXAMPLE_GROUP: dict[str, Any] = {
    "block": [*DEFAULT_BLOCK, "social_media", "streaming"],
    "allow": [],
    "windows": {"social_media": ["Mon-Fri 12:00-13:00", "Mon-Fri 17:30-24:00", "Sat-Sun"]},
}


def _commented_example(header: str, keys: tuple[Key, ...], values: dict[str, Any]) -> str:
    lines = [f"# {header}"]
    for key in keys:
        lines += [f"#   # {key.help}", f"#   {key.name} = {toml_value(values[key.name])}"]
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _key_lines(key: Key, value: Any) -> list[str]:
    return [f"# {key.help}", f"{key.name} = {toml_value(value)}"]


def _section_text(section: Section, state_dir: str) -> str:
    def default(key: Key) -> Any:
        if key.is_path and isinstance(key.default, str):
            return key.default.replace("aupd-data", state_dir, 1)
        return key.default

    lines = [f"# {section.help}"]
    if not section.array:
        lines.append(f"[{section.name}]")
        for key in section.keys:
            lines += _key_lines(key, default(key))
            lines.append("")
        return "\n".join(lines)
    if section.name == "blocklists":
        for category, source, fmt in EXAMPLE_SOURCES:
            lines += ["[[blocklists]]"]
            lines += _key_lines(section.keys[0], category)
            lines += _key_lines(section.keys[1], source)
            lines += _key_lines(section.keys[2], fmt)
            lines.append("")
        return "\n".join(lines)
    return "\n".join([*lines, _commented_example("[[users]]", section.keys, EXAMPLE_USER)])


def render_template(state_dir: str = "aupd-data") -> str:
    """The commented aupd.toml that ``aupd init`` writes (every key, with its help)."""
    parts = [
        "# aupd configuration. Every setting is shown with its default and what it does.",
        "# Relative paths are relative to this file. Override any key at start with",
        "#   aupd --set section.key=value ...",
        "",
    ]
    for section in SCHEMA:
        parts.append(_section_text(section, state_dir))
        parts.append("")
    parts.append("# Policy groups: people with `group = NAME` get [groups.NAME] instead of the")
    parts.append("# [proxy] defaults.")
    parts.append(_commented_example("[groups.care]", GROUP_KEYS, EXAMPLE_GROUP))
    return "\n".join(parts)


def ensure_ca(confdir: Path, organisation: str) -> Path:
    """Create the CA in mitmproxy's confdir unless it exists; returns the cert's path."""
    from mitmproxy.certs import CertStore

    cert = confdir / f"{CA_BASENAME}-ca-cert.pem"
    if not (confdir / f"{CA_BASENAME}-ca.pem").exists():
        confdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        CertStore.create_store(
            confdir, CA_BASENAME, 2048, organization=organisation, cn=f"{organisation} aupd CA"
        )
    return cert


@click.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option(
    "--state-dir",
    default="aupd-data",
    show_default=True,
    help="Where the store, index, CA and mail spool go (relative to DIRECTORY), "
    "e.g. /var/lib/aupd for a system install.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing aupd.toml.")
@pass_app
def init_command(app: App, directory: str, state_dir: str, force: bool) -> None:
    """Write a commented aupd.toml with working defaults; create the store, the CA and the
    secret key. Run it once per installation."""
    from aupd.secrets import load_or_create_secret
    from aupd.store import connect

    target = Path(directory)
    path = target / "aupd.toml"
    if path.exists() and not force:
        fail(f"{path} exists already; use --force to overwrite it")
    target.mkdir(parents=True, exist_ok=True)
    path.write_text(render_template(state_dir), encoding="utf-8")
    try:
        config = load_config(path, app.overrides)
    except ConfigError as e:  # the template itself is tested; this guards --set typos
        fail(f"config error: {e}", code=2)
    for folder in (config.store.index_dir, config.mailgate.certs_dir, config.mailgate.spool_dir):
        folder.mkdir(parents=True, exist_ok=True)
    connect(config.store.path).conn.close()
    load_or_create_secret(config.state_dir)
    cert = ensure_ca(config.proxy.confdir, config.organisation.name)
    click.echo(f"Wrote {path}")
    click.echo(f"Store:          {config.store.path}")
    click.echo(
        f"CA certificate: {cert}  (install it on staff devices; the console serves it at /ca)"
    )
    click.echo("Next steps:")
    click.echo(f"  1. Edit {path}: organisation, [[users]], [[blocklists]].")
    click.echo(f"  2. aupd --config {path} blocklists update")
    click.echo(f"  3. aupd --config {path} run")
