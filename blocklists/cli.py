"""``aupd blocklists update`` and ``aupd blocklists lookup``.

``lookup`` is a batch tool (and what tests from outside drive), so it reads stdin in big
chunks, decides with the index's fast path and writes buffered output; it imports
nothing it does not need (no structlog, no mitmproxy).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import BinaryIO

import click

from aupd.cli import App, fail, pass_app
from blocklists.hosts import normalize_host, split_url
from blocklists.index import Index, IndexFormatError, IndexStore

READ_SIZE = 1 << 20

Decide = Callable[[Iterable[str]], str]


@click.group("blocklists")
def blocklists_group() -> None:
    """Category blocklists: import, compile to an index, look up."""


@blocklists_group.command("update")
@click.option(
    "--accept-shrink",
    is_flag=True,
    help="Install even if a list lost more than half its entries (normally taken for a "
    "download cut short, and refused).",
)
@pass_app
def update_command(app: App, accept_shrink: bool) -> None:
    """Fetch/read every configured source, compile, and swap the new index in."""
    from blocklists.update import UpdateError, update

    config = app.config
    try:
        report = update(config, progress=True, accept_shrink=accept_shrink)
    except UpdateError as e:
        fail(f"blocklists update failed, the index in use is unchanged: {e}")
    stats = report.stats
    click.echo(
        f"Installed {report.generation.name}: {stats.domains} domains, {stats.paths} path rules "
        f"from {len(stats.sources)} lists in {report.seconds:.1f} s "
        f"({stats.bytes_on_disk / 1e6:.1f} MB)."
    )
    categories = sorted({*stats.domains_by_category, *stats.paths_by_category})
    click.echo(f"  {'category':<16}{'domains':>10}{'paths':>8}")
    for category in categories:
        domains = stats.domains_by_category.get(category, 0)
        paths = stats.paths_by_category.get(category, 0)
        click.echo(f"  {category:<16}{domains:>10}{paths:>8}")
    click.echo("  sources:")
    for source in stats.sources:
        entries = stats.entries_by_source.get(source.label, 0)
        click.echo(f"    {source.label:<32}{source.category:<16}{entries:>10} entries")
    if report.invalid_lines:
        click.echo(f"  skipped {report.invalid_lines} unreadable lines")


@blocklists_group.command("lookup")
@click.argument("urls", nargs=-1)
@click.option(
    "--stdin", "use_stdin", is_flag=True, help="Read URLs or hosts from stdin, one a line."
)
@pass_app
def lookup_command(app: App, urls: tuple[str, ...], use_stdin: bool) -> None:
    """Look URLs up in the lists; one output line per input line.

    Output: block<TAB>category<TAB>input when the URL is listed in a category of
    [proxy] block and not under [proxy] allow, else allow<TAB>-<TAB>input.
    """
    if not urls and not use_stdin:
        raise click.UsageError("give URLs or --stdin")
    config = app.config
    try:
        index = IndexStore(config.store.index_dir).open_current()
    except IndexFormatError as e:
        fail(f"blocklist index is unusable: {e}")
    if index is None:
        click.echo(
            "aupd: no blocklist index yet (run 'aupd blocklists update'); everything is allowed",
            err=True,
        )
        index = Index.empty()
    decide = make_decider(index, config.proxy.block, config.proxy.allow)
    out = sys.stdout.buffer
    try:
        if urls:
            out.write(decide(urls).encode("utf-8", "surrogateescape"))
        if use_stdin:
            _stream(sys.stdin.buffer, out, decide)
        out.flush()
    except BrokenPipeError:
        # A reader that stopped early (| head) is not an error; keep Python quiet at exit.
        sys.stdout = None


def make_decider(index: Index, block: Iterable[str], allow: Iterable[str]) -> Decide:
    """A function from a batch of input lines to their output text ("" or newline-ended).

    Blank lines are skipped; a line that is not a URL or host is allowed, never an error.
    The loop is in one function with everything bound locally: it runs once per line.
    """
    mask = index.blocked_mask(block)
    allowed = frozenset(h for h in map(normalize_host, allow) if h)
    first_blocked = index.first_blocked

    def decide(lines: Iterable[str]) -> str:
        out: list[str] = []
        append = out.append
        for raw in lines:
            line = raw[:-1] if raw.endswith("\r") else raw
            parts = split_url(line, with_query=True)
            if parts is None:
                if line.strip():
                    append("allow\t-\t" + line)
                continue
            match = first_blocked(parts[0], parts[1], mask, normalized=True)
            if match is not None and not _is_allowed(parts[0], allowed):
                append(f"block\t{match.category}\t{line}")
            else:
                append("allow\t-\t" + line)
        return "\n".join(out) + "\n" if out else ""

    return decide


def _is_allowed(host: str, allowed: frozenset[str]) -> bool:
    """Is the host, or a parent domain of it, on the allowlist? (IPs: exactly.)"""
    if not allowed:
        return False
    if host in allowed:
        return True
    if ":" in host or host.rpartition(".")[2].isdigit():
        return False
    while "." in host:
        host = host.partition(".")[2]
        if host in allowed:
            return True
    return False


def _stream(stdin: BinaryIO, out: BinaryIO, decide: Decide) -> None:
    """Decide stdin line by line, in chunks; flush after each so pipelines can interleave."""
    pending = b""
    while True:
        chunk = stdin.read1(READ_SIZE) if hasattr(stdin, "read1") else stdin.read(READ_SIZE)
        if not chunk:
            break
        complete, newline, rest = (pending + chunk).rpartition(b"\n")
        pending = rest
        if newline:
            text = complete.decode("utf-8", "surrogateescape")
            out.write(decide(text.split("\n")).encode("utf-8", "surrogateescape"))
            out.flush()
    if pending:
        text = pending.decode("utf-8", "surrogateescape")
        out.write(decide([text]).encode("utf-8", "surrogateescape"))
