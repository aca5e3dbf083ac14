# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print, as JSON, microsecond timestamps of chosen requests from the lab's kube-apiserver audit log.

usage: audit_times.py AUDIT_LOG NAMESPACE SINCE KEY=VERB:RESOURCE[/SUBRESOURCE]:NAME:first|last ...
SINCE (RFC 3339) drops older events, for example those of an earlier namespace of the same name.
The object timestamps in the API are whole seconds; the audit log orders events strictly.
"""
import json
import sys


def main(argv):
    path, namespace, since, specs = argv[1], argv[2], argv[3], argv[4:]
    wanted = {}
    for spec in specs:
        key, rest = spec.split("=", 1)
        verb, resource, name, which = rest.split(":")
        wanted[key] = (verb, resource, name, which)
    found = {key: None for key in wanted}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if namespace not in line:
                continue
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if ref.get("namespace") != namespace or event.get("stage") != "ResponseComplete" or event["stageTimestamp"] < since:
                continue
            if (event.get("responseStatus") or {}).get("code", 200) >= 300:
                continue
            if "dryRun=" in event.get("requestURI", ""):
                continue
            resource = ref.get("resource", "") + ("/" + ref["subresource"] if ref.get("subresource") else "")
            for key, (verb, res, name, which) in wanted.items():
                if event["verb"] == verb and resource == res and ref.get("name") == name:
                    if found[key] is None or which == "last":
                        found[key] = event["stageTimestamp"]
    json.dump(found, sys.stdout)


if __name__ == "__main__":
    main(sys.argv)
