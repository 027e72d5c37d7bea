"""Who is asking: a login name (proxy or SMTP auth), else the device address. Pure.

Shared by the proxy and the mail gateway."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from aupd.config import Config, User


@dataclass(frozen=True)
class Identity:
    name: str  # user name, or "-" when nobody is known
    user: User | None  # the [[users]] entry, if there is one


UNKNOWN = Identity("-", None)


class Directory:
    """Finds users by login name, device address or email address; built once per config."""

    def __init__(self, config: Config) -> None:
        self._by_name = {u.name: u for u in config.users}
        self._by_email = {u.email.lower(): u for u in config.users if u.email}
        self._by_ip: dict[str, User] = {}
        self._networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, User]] = []
        for user in config.users:
            for net in user.addresses:
                if net.num_addresses == 1:
                    self._by_ip[str(net.network_address)] = user
                else:
                    self._networks.append((net, user))
        # Most specific network first, so a /32 inside an office /24 wins.
        self._networks.sort(key=lambda item: item[0].prefixlen, reverse=True)

    def by_email(self, address: str) -> User | None:
        return self._by_email.get(address.lower())

    def identify(self, login: str | None, client_ip: str) -> Identity:
        if login:
            return Identity(login, self._by_name.get(login))
        user = self._by_ip.get(_plain_ip(client_ip))
        if user is None and self._networks:
            try:
                addr = ipaddress.ip_address(_plain_ip(client_ip))
            except ValueError:
                return UNKNOWN
            user = next((u for net, u in self._networks if addr in net), None)
        return Identity(user.name, user) if user else UNKNOWN


def _plain_ip(address: str) -> str:
    # Dual-stack sockets report IPv4 clients as ::ffff:a.b.c.d.
    return address.removeprefix("::ffff:")
