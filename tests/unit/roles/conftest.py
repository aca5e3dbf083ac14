"""Fixtures of the role render tests (see role_render.py)."""

import json
import os
import sys

import pytest

# pytest runs with --import-mode=importlib, which puts no test directory on sys.path; the test
# modules here import their helpers from role_render.py next to this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from role_render import render_role  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="module")
def render():
    cache = {}

    def _render(role, **extra_vars):
        key = (role, json.dumps(extra_vars, sort_keys=True))
        if key not in cache:
            cache[key] = render_role(role, extra_vars)
        return cache[key]
    return _render
