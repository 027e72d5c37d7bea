"""The mitmproxy engine ``aupd proxy`` runs: only what a filtering proxy needs.

Serving traffic through it is covered end to end in test_proxy_e2e.py; here, what it
leaves out stays out, and what aupd sets exists.
"""

from __future__ import annotations

import pytest
from mitmproxy.master import Master
from mitmproxy.options import Options

from proxy.cli import proxy_engine
from proxy.enforce import make_addons


@pytest.fixture
async def master() -> Master:
    master = Master(Options(), with_termlog=True)  # as run_proxy
    master.addons.add(*proxy_engine(), *make_addons())
    return master


@pytest.mark.parametrize(
    "option",
    [
        "map_local",  # answer any URL from a local file
        "map_remote",  # send a URL elsewhere
        "modify_body",
        "modify_headers",
        "server_replay",
        "client_replay",
        "save_stream_file",  # write every flow, bodies and passwords too, to a file
        "hardump",
        "scripts",  # load arbitrary Python into the proxy
        "stickycookie",
        "anticache",
    ],
)
async def test_debugging_tools_are_not_in_the_engine(master: Master, option: str) -> None:
    assert option not in master.options


@pytest.mark.parametrize("addon", ["onboarding", "save", "scriptloader", "browser", "dumper"])
async def test_no_side_door_addons(master: Master, addon: str) -> None:
    # onboarding would answer http://mitm.it/ from the proxy itself, as aupd's CA page.
    assert addon not in master.addons


@pytest.mark.parametrize(
    "option",
    [
        "listen_host",
        "listen_port",
        "mode",
        "confdir",
        "termlog_verbosity",
        "connection_strategy",
        "proxyauth",
        "block_global",  # refuses clients from public addresses
        "ignore_hosts",
        "ssl_insecure",
        "aupd_config",
    ],
)
async def test_what_aupd_and_deployers_rely_on_is_there(master: Master, option: str) -> None:
    assert option in master.options


async def test_block_global_is_on(master: Master) -> None:
    assert master.options.block_global is True
