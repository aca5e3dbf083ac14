# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print, as JSON, the mutating API requests that touched a namespace since a time.

Usage: audit_writes.py AUDIT_LOG SINCE_ISO8601 NAMESPACE
Counts create/update/patch/delete/deletecollection on objects in NAMESPACE and on the Namespace
object itself. SelfSubjectAccessReviews are not counted: the API server stores nothing for them.
"""
import json
import sys

MUTATING = {"create", "update", "patch", "delete", "deletecollection"}


def main(path, since, namespace):
    writes = []
    with open(path) as log:
        for line in log:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("requestReceivedTimestamp", "") < since or event.get("verb") not in MUTATING:
                continue
            ref = event.get("objectRef") or {}
            if ref.get("namespace") == namespace or (ref.get("resource") == "namespaces" and ref.get("name") == namespace):
                writes.append("%s %s" % (event["verb"], event.get("requestURI")))
    print(json.dumps({"writes": writes}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
