from decimal import Decimal

import pytest

from ansible_collections.fediverse.mastodon.plugins.module_utils.k8s_objects import (
    is_subset, owned_field_dropped, parse_quantity, project, redact, secret_string_data_to_data)


@pytest.mark.parametrize("text,value", [
    ("500m", Decimal("0.5")), ("1", Decimal(1)), (2, Decimal(2)), ("1Gi", Decimal(2 ** 30)),
    ("512Mi", Decimal(512 * 2 ** 20)), ("1k", Decimal(1000)), ("1.5", Decimal("1.5")),
])
def test_parse_quantity(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["abc", "", None, True, "1Xi"])
def test_parse_quantity_rejects_non_quantities(text):
    assert parse_quantity(text) is None


def test_subset_ignores_server_added_fields():
    desired = {"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "a:1"}]}}}}
    live = {"spec": {"replicas": 2, "revisionHistoryLimit": 10,
                     "template": {"spec": {"containers": [{"name": "c", "image": "a:1", "imagePullPolicy": "IfNotPresent"}],
                                           "dnsPolicy": "ClusterFirst"}}}}
    assert is_subset(desired, live)


def test_subset_sees_a_changed_value():
    desired = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "a:2"}]}}}}
    live = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "a:1"}]}}}}
    assert not is_subset(desired, live)


def test_subset_sees_a_missing_list_item():
    assert not is_subset({"ports": [{"port": 1}, {"port": 2}]}, {"ports": [{"port": 1}]})


def test_subset_normalises_quantities_but_not_other_strings():
    assert is_subset({"cpu": "1000m", "memory": "1024Mi"}, {"cpu": "1", "memory": "1Gi"})
    assert not is_subset({"cpu": "1500m"}, {"cpu": "1"})
    assert not is_subset({"image": "a"}, {"image": "b"})


def test_subset_treats_dropped_zero_values_as_equal():
    assert is_subset({"securityContext": {}, "readOnly": False, "args": []}, {})
    assert not is_subset({"readOnly": True}, {})
    assert not is_subset({"replicas": 1}, {})


def test_subset_keeps_bool_and_string_apart():
    assert not is_subset({"a": True}, {"a": "true"})


def test_secret_string_data_is_folded_into_data():
    secret = {"kind": "Secret", "stringData": {"k": "v"}, "data": {"b": "eA=="}}
    folded = secret_string_data_to_data(secret)
    assert folded["data"] == {"b": "eA==", "k": "dg=="} and "stringData" not in folded
    assert secret["stringData"] == {"k": "v"}


def test_redact_hides_secret_values_only():
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "c2VjcmV0"}}
    assert redact(secret)["data"] == {"k": "**redacted**"}
    assert secret["data"]["k"] == "c2VjcmV0"
    config_map = {"kind": "ConfigMap", "data": {"k": "v"}}
    assert redact(config_map) == config_map


def test_project_keeps_only_desired_keys():
    assert project({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 0}}) == {"b": {"c": 2}}


def _managed(fields, manager="fediverse-mastodon", operation="Apply"):
    return {"metadata": {"managedFields": [
        {"manager": manager, "operation": operation, "fieldsV1": fields}]}}


DEPLOYMENT_FIELDS = {
    "f:metadata": {"f:labels": {"f:app": {}, "f:tier": {}}},
    "f:spec": {"f:template": {"f:spec": {
        "f:nodeSelector": {"f:disk": {}},
        "f:containers": {'k:{"name":"web"}': {".": {}, "f:name": {}, "f:env": {
            'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}}}}}}}},
}


def _deployment(labels=("app", "tier"), node_selector=True, env=("A",)):
    spec = {"containers": [{"name": "web", "env": [{"name": n, "value": "1"} for n in env]}]}
    if node_selector:
        spec["nodeSelector"] = {"disk": "ssd"}
    return {"metadata": {"labels": dict((k, "x") for k in labels)}, "spec": {"template": {"spec": spec}}}


def test_owned_field_kept_is_not_dropped():
    assert not owned_field_dropped(_deployment(), _managed(DEPLOYMENT_FIELDS), "fediverse-mastodon")


@pytest.mark.parametrize("definition", [
    _deployment(labels=("app",)), _deployment(node_selector=False), _deployment(env=()), _deployment(env=("B",)),
])
def test_owned_field_dropped_from_the_definition(definition):
    assert owned_field_dropped(definition, _managed(DEPLOYMENT_FIELDS), "fediverse-mastodon")


def test_fields_of_other_managers_do_not_count():
    assert not owned_field_dropped(_deployment(labels=()), _managed(DEPLOYMENT_FIELDS, manager="kubectl"),
                                   "fediverse-mastodon")
    assert not owned_field_dropped(_deployment(labels=()), _managed(DEPLOYMENT_FIELDS, operation="Update"),
                                   "fediverse-mastodon")
