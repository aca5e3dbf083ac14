# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters mastodon_settings and mastodon_cluster_state: the mastodon role's decisions, in
Python (plugin_utils/mastodon_plan.py); mastodon_container, mastodon_pod_spec, mastodon_es_ca_file,
mastodon_endpoint_egress, mastodon_asset_upload_pod, mastodon_ingress_annotations,
mastodon_traefik_middlewares and mastodon_pod_monitor: the pod parts the role's templates share (plugin_utils/mastodon_objects.py)."""

from __future__ import annotations

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import mastodon_objects, mastodon_plan


class FilterModule:
    def filters(self):
        return {
            "mastodon_settings": mastodon_plan.settings,
            "mastodon_cluster_state": mastodon_plan.cluster_state,
            "mastodon_asset_upload_pod": mastodon_objects.asset_upload_pod,
            "mastodon_container": mastodon_objects.container,
            "mastodon_env_sections": mastodon_objects.env_sections,
            "mastodon_es_ca_file": mastodon_objects.es_ca_file,
            "mastodon_endpoint_egress": mastodon_objects.endpoint_egress,
            "mastodon_feature_env": mastodon_objects.feature_env,
            "mastodon_ingress_annotations": mastodon_objects.ingress_annotations,
            "mastodon_traefik_middlewares": mastodon_objects.traefik_middlewares,
            "mastodon_overrides": mastodon_objects.overrides,
            "mastodon_pod_monitor": mastodon_objects.pod_monitor,
            "mastodon_pod_spec": mastodon_objects.pod_spec,
        }
