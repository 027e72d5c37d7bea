"""aupd for plain mitmproxy::

    mitmdump -s proxy/addon.py --set aupd_config=/etc/aupd/aupd.toml

mitmproxy loads ``-s`` scripts by path as throwaway modules, so the addons themselves
live in the installed ``proxy.enforce`` module and this file only hands them over.
"""

from proxy.enforce import make_addons

addons = make_addons()
