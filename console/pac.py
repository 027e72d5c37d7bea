"""proxy.pac / wpad.dat: how devices in regular mode find the proxy.

Everything goes through the proxy except plain host names, the console itself and the
device's own loopback. There is no DIRECT fallback after the proxy: when the filter is
down, browsing stops rather than silently going round the filter.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from aupd import log
from aupd.config import Config, HostPort, parse_host_port

CONTENT_TYPE = "application/x-ns-proxy-autoconfig"
UNSPECIFIED = frozenset({"", "0.0.0.0", "::", "*"})  # noqa: S104 (compared, never bound)

logger = log.get("aupd.console")


def console_host(config: Config) -> str:
    return urlsplit(config.web.url).hostname or "localhost"


def proxy_address(config: Config) -> HostPort:
    """Where devices reach the proxy: [web] proxy_address, else [proxy] listen. A proxy
    listening on every address is reached at the console's host (the same box)."""
    address = config.proxy.listen
    if config.web.proxy_address.strip():
        try:
            address = parse_host_port(config.web.proxy_address)
        except ValueError as e:
            logger.warning("web.proxy_address is not host:port; using proxy.listen", error=str(e))
    if address.host in UNSPECIFIED:
        address = HostPort(console_host(config), address.port)
    return address


def render(config: Config) -> str:
    direct = [console_host(config), "localhost", "::1", "[::1]"]
    host_tests = " ||\n      ".join(f"host == {json.dumps(h)}" for h in dict.fromkeys(direct))
    proxy = json.dumps(f"PROXY {proxy_address(config)}")
    return (
        "// Proxy settings served by the aupd console. No DIRECT fallback: a filter that\n"
        "// is down must stop browsing, not let it round the filter.\n"
        "function FindProxyForURL(url, host) {\n"
        "  if (isPlainHostName(host) ||\n"
        f"      {host_tests} ||\n"
        '      shExpMatch(host, "127.*"))\n'
        '    return "DIRECT";\n'
        f"  return {proxy};\n"
        "}\n"
    )
