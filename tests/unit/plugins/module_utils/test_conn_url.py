from urllib.parse import unquote, urlsplit

import pytest
from redis.connection import parse_url

from ansible_collections.fediverse.mastodon.plugins.module_utils.conn_url import connection_url

HOSTILE = ["p@ss:w/rd?#%", "a b+c&d=e", "ünï€ode", "%41", "[]:@"]


@pytest.mark.parametrize("password", HOSTILE)
def test_any_password_survives_a_url_parser(password):
    url = connection_url("rediss", "redis.example.net", 6380, password)
    parts = urlsplit(url)
    assert parts.hostname == "redis.example.net" and parts.port == 6380
    assert unquote(parts.password) == password


@pytest.mark.parametrize("password", HOSTILE)
def test_redis_py_reads_back_the_same_password(password):
    kwargs = parse_url(connection_url("rediss", "redis.example.net", 6380, password, path="0"))
    assert kwargs["password"] == password and kwargs["host"] == "redis.example.net" and kwargs["port"] == 6380


def test_the_raw_password_would_break_the_url():
    """What the old $(REDIS_PASSWORD) interpolation produced: another host."""
    assert urlsplit("rediss://:p@ss:w/rd?#%@redis.example.net:6380").hostname != "redis.example.net"


def test_shapes():
    assert connection_url("rediss", "r", 6380) == "rediss://r:6380"
    assert connection_url("rediss", "r", 6380, "pw", username="u s") == "rediss://u%20s:pw@r:6380"
    assert connection_url("redis", "::1", 6379, path="/2") == "redis://[::1]:6379/2"
    with pytest.raises(ValueError):
        connection_url("", "r")
