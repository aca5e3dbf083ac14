# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Quantities written as the API server prints them (plugin_utils/quantities.py, filter quantity)."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.fediverse.mastodon.plugins.filter.quantity import FilterModule
from ansible_collections.fediverse.mastodon.plugins.plugin_utils import quantities


@pytest.mark.parametrize("given,written", [("250m", "250m"), ("0.5", "500m"), ("2", "2"), (2, "2"), ("1000m", "1"),
                                           ("1.25", "1250m")])
def test_cpu(given, written):
    assert quantities.cpu(given) == written


@pytest.mark.parametrize("given,written", [("512M", "512Mi"), ("1G", "1Gi"), ("1536M", "1536Mi"), ("2T", "2Ti"),
                                           ("64K", "64Ki"), ("0", "0"), ("1000", "1000")])
def test_memory(given, written):
    assert quantities.memory(given) == written


def test_resources_leave_out_an_empty_cpu_limit():
    assert quantities.resources("250m", "", "512M", "1G") == {
        "requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
    assert quantities.resources("250m", "2", "512M", "1G")["limits"] == {"cpu": "2", "memory": "1Gi"}


def test_errors_name_the_variable():
    with pytest.raises(quantities.QuantityError, match="^redis_cpu_limit must be a CPU quantity such as 250m"):
        quantities.resources("100m", "lots", "1G", "1G", prefix="redis")
    with pytest.raises(AnsibleFilterError, match="memory_request must be a size"):
        FilterModule().filters()["k8s_resources"]("100m", None, "big", "1G")


def test_problems_list_every_bad_value_and_skip_empty_ones():
    assert quantities.problems({"minio_cpu_request": "1.2345", "minio_memory_limit": "2G", "minio_cpu_limit": "",
                                "minio_storage_size": "huge"}) == [
        "minio_cpu_request must be a CPU quantity such as 250m, 0.5 or 2, not '1.2345'",
        "minio_storage_size must be a size such as 512M, 1G or 1536M (binary units), not 'huge'"]
