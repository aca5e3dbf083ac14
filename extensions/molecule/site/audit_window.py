# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a window of the lab's kube-apiserver audit log and report Ansible's requests.

usage:
  audit_window.py offset AUDIT_LOG
      print the current size of the log in bytes (the start or end of a window)
  audit_window.py mark AUDIT_LOG RECORD_FILE LABEL
      append "LABEL OFFSET" to RECORD_FILE
  audit_window.py writes AUDIT_LOG START END NAMESPACE [NAMESPACE...]
      print, as JSON, the requests sent by Ansible's clients between the byte offsets START
      and END (END "-" = the end of the log now) that touched one of the namespaces: every
      request by verb, and the list of mutating ones.
  audit_window.py order AUDIT_LOG START END NAMESPACE KEY=VERB[,VERB]:RESOURCE[/SUB]:NAME:first|last ...
      print, as JSON, the time (microseconds, RFC 3339) of the first or last successful,
      non-dry-run request of each KEY in the window, from any client (controllers included);
      null when there is none. Object timestamps in the API are whole seconds; the log is exact.

Ansible's clients are recognised by their userAgent: "fediverse.mastodon..." (our
module_utils) and "OpenAPI-Generator/..." (the kubernetes Python client, used by
kubernetes.core). Several runs share the lab, so a request counts only when it touched one of
the given namespaces: an object in it, or the Namespace object itself.

Mutating verbs: create, update, patch, delete, deletecollection. A dry-run request
(dryRun=All in the URI) counts as a write as well: it is what check mode sends, and a real
run has no business sending one. Failed requests (code >= 400) count too: a refused write is
still an attempt to write. Port-forwards (pods/portforward, the provisioning modules' tunnels
to the in-cluster services) are only counted (`portforwards`), whatever their verb or client
(their websocket upgrade carries no userAgent): a tunnel stores nothing. Writes by any other
client that is not a control-plane component (kubectl, for one) are listed in `other_writes`, and
every successful delete in the namespaces, by any client (the garbage collector and the
StatefulSet controller included), in `deleted_by_anyone`.
"""
import json
import os
import sys

MUTATING = {"create", "update", "patch", "delete", "deletecollection"}
AGENTS = ("fediverse.mastodon", "OpenAPI-Generator")
CONNECTS = {("pods", "portforward")}
CONTROL_PLANE = ("kube-controller-manager/", "kube-scheduler/", "kube-apiserver/", "kwok-controller/")


def read_window(path, start, end):
    size = os.path.getsize(path)
    if size < start:
        raise SystemExit("audit log %s shrank below offset %d (rotated?): cannot read the window" % (path, start))
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read((end if end is not None else size) - start)
    for raw in data.splitlines():
        try:
            yield json.loads(raw)
        except ValueError:  # a line cut at the window's end
            continue


def describe(event):
    ref = event.get("objectRef") or {}
    resource = ref.get("resource", "") + ("/" + ref["subresource"] if ref.get("subresource") else "")
    return {
        "verb": event.get("verb"),
        "resource": resource,
        "namespace": ref.get("namespace"),
        "name": ref.get("name"),
        "uri": event.get("requestURI"),
        "userAgent": event.get("userAgent"),
        "code": (event.get("responseStatus") or {}).get("code"),
        "time": event.get("requestReceivedTimestamp"),
    }


def writes(path, start, end, namespaces):
    namespaces = set(namespaces)
    by_verb = {}
    mutating, others, deleted, connects = [], [], [], 0
    for event in read_window(path, start, end):
        if event.get("stage") != "ResponseComplete":
            continue
        ref = event.get("objectRef") or {}
        ours = ref.get("namespace") in namespaces or (
            ref.get("resource") == "namespaces" and ref.get("name") in namespaces)
        if not ours:
            continue
        if (ref.get("resource"), ref.get("subresource")) in CONNECTS:
            connects += 1
            continue
        verb = event.get("verb")
        agent = event.get("userAgent") or ""
        if verb in ("delete", "deletecollection") and (event.get("responseStatus") or {}).get("code", 200) < 300:
            deleted.append(describe(event))
        if not agent.startswith(AGENTS):
            if not agent.startswith(CONTROL_PLANE) and verb in MUTATING:
                others.append(describe(event))
            continue
        by_verb[verb] = by_verb.get(verb, 0) + 1
        if verb in MUTATING or "dryRun=" in (event.get("requestURI") or ""):
            mutating.append(describe(event))
    return {"requests": sum(by_verb.values()), "by_verb": by_verb, "writes": mutating, "portforwards": connects,
            "other_writes": others, "deleted_by_anyone": deleted}


def order(path, start, end, namespace, specs):
    wanted = {}
    for spec in specs:
        key, rest = spec.split("=", 1)
        verbs, resource, name, which = rest.split(":")
        wanted[key] = (set(verbs.split(",")), resource, name, which)
    found = dict.fromkeys(wanted)
    for event in read_window(path, start, end):
        ref = event.get("objectRef") or {}
        if event.get("stage") != "ResponseComplete" or ref.get("namespace") != namespace:
            continue
        if (event.get("responseStatus") or {}).get("code", 200) >= 300 or "dryRun=" in (event.get("requestURI") or ""):
            continue
        resource = ref.get("resource", "") + ("/" + ref["subresource"] if ref.get("subresource") else "")
        for key, (verbs, res, name, which) in wanted.items():
            if event.get("verb") in verbs and resource == res and ref.get("name") == name:
                if found[key] is None or which == "last":
                    found[key] = event["stageTimestamp"]
    return found


def main(argv):
    if len(argv) == 3 and argv[1] == "offset":
        print(os.path.getsize(argv[2]))
        return 0
    if len(argv) == 5 and argv[1] == "mark":
        with open(argv[3], "a") as record:
            record.write("%s %d\n" % (argv[4], os.path.getsize(argv[2])))
        return 0
    if len(argv) >= 7 and argv[1] == "order":
        end = None if argv[4] == "-" else int(argv[4])
        json.dump(order(argv[2], int(argv[3]), end, argv[5], argv[6:]), sys.stdout)
        sys.stdout.write("\n")
        return 0
    if len(argv) >= 6 and argv[1] == "writes":
        end = None if argv[4] == "-" else int(argv[4])
        json.dump(writes(argv[2], int(argv[3]), end, argv[5:]), sys.stdout)
        sys.stdout.write("\n")
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
