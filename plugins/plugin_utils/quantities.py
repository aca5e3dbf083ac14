# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource quantities, written the way the API server prints them.

The live object then equals the rendered one, and a no-op rerun writes nothing. Memory and
storage come in Ansible's size syntax (binary units: 512M = 512 MiB) and are written with the
largest binary suffix that divides them (512Mi, 1Gi, 1536Mi). CPU comes as 250m, 0.5 or 2 and is
written as 250m, 500m or 2. Used by the filter plugin (templates) and by the preflight checks.
"""

from __future__ import annotations

import re

from ansible.module_utils.common.text.formatters import human_to_bytes

CPU_RE = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]{1,3})?)$")
_BINARY = (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10))


class QuantityError(ValueError):
    """A value that is not a quantity; the message names the variable and an example."""


def cpu(value, variable="cpu"):
    text = str(value).strip()
    if not CPU_RE.match(text):
        raise QuantityError("%s must be a CPU quantity such as 250m, 0.5 or 2, not %r" % (variable, value))
    millis = int(text[:-1]) if text.endswith("m") else int(round(float(text) * 1000))
    return str(millis // 1000) if millis % 1000 == 0 else "%dm" % millis


def memory(value, variable="memory"):
    try:
        size = human_to_bytes(str(value).strip())
    except (ValueError, TypeError):
        raise QuantityError("%s must be a size such as 512M, 1G or 1536M (binary units), not %r" % (variable, value))
    if size == 0:
        return "0"
    for suffix, unit in _BINARY:
        if size % unit == 0:
            return "%d%s" % (size // unit, suffix)
    return str(size)


def resources(cpu_request, cpu_limit, memory_request, memory_limit, prefix=""):
    """A container's resources block; no CPU limit when ``cpu_limit`` is empty."""
    name = (prefix + "_") if prefix else ""
    out = {"requests": {"cpu": cpu(cpu_request, name + "cpu_request"),
                        "memory": memory(memory_request, name + "memory_request")},
           "limits": {"memory": memory(memory_limit, name + "memory_limit")}}
    if cpu_limit is not None and str(cpu_limit) != "":
        out["limits"]["cpu"] = cpu(cpu_limit, name + "cpu_limit")
    return out


def problems(variables):
    """One problem line per variable (name -> value) that is not a quantity of its kind: names with
    ``_cpu_`` are CPU, ``_memory_``, ``_size`` and ``_storage_size`` are sizes; empty values pass."""
    out = []
    for name in sorted(variables):
        value = variables[name]
        if value is None or str(value) == "":
            continue
        try:
            if "_cpu_" in name:
                cpu(value, name)
            elif "_memory_" in name or name.endswith("_size"):
                memory(value, name)
        except QuantityError as exc:
            out.append(str(exc))
    return out
