# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection URLs with credentials that are percent-encoded, so any password fits.

A password with ``@ : / ? # %`` or a space, pasted into ``scheme://:PASSWORD@host`` as it is,
yields a URL that clients parse wrongly (another host, a truncated password). Every client
Mastodon uses (redis-client, ioredis, redis-py) percent-decodes the user information of a URL.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2 is not supported by this collection
    from urllib import quote


def connection_url(scheme, host, port=None, password=None, username=None, path=None):
    """``scheme://[user][:password]@host[:port][/path]`` with user and password percent-encoded."""
    if not scheme or not host:
        raise ValueError("a connection URL needs a scheme and a host")
    netloc = "[%s]" % host if ":" in host and not host.startswith("[") else host
    if port not in (None, ""):
        netloc = "%s:%s" % (netloc, int(port))
    userinfo = quote(username or "", safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    if userinfo:
        netloc = "%s@%s" % (userinfo, netloc)
    url = "%s://%s" % (scheme, netloc)
    if path not in (None, ""):
        url += "/" + str(path).lstrip("/")
    return url
