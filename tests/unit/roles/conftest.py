"""Fixtures of the role render tests (see role_render.py)."""

import json

import pytest

from role_render import render_role


@pytest.fixture(scope="module")
def render():
    cache = {}

    def _render(role, **extra_vars):
        key = (role, json.dumps(extra_vars, sort_keys=True))
        if key not in cache:
            cache[key] = render_role(role, extra_vars)
        return cache[key]
    return _render
