"""Filters of the relayfix role: the host state that check.yml reads and the fleet table it prints."""

HEADER = ("host", "product", "packages", "files", "known problems")


def verdicts(packages, installed):
    """Turn `hotfix check --json` packages into [{id, state, reason}], then add each installed
    package (from product.json) that no source offers, so that check misses nothing list knows."""
    out = []
    for v in packages or []:
        reason = v.get("reason") or ""
        if v.get("superseded_by"):
            reason = "by " + v["superseded_by"]
        out.append({"id": v["id"], "state": v["state"], "reason": reason})
    offered = {v["id"].lower() for v in out}
    out.extend(p for p in installed or [] if p["id"].lower() not in offered)
    return out


def problem_lines(problems):
    """Say each known problem of `hotfix check --json` as hotfix check does, less the times,
    which a fleet table has no room for."""
    return [
        "%s %s crashed %d time%s (%s): %s fixes this — %s"
        % (p["program"], p["build"], p["count"], "" if p["count"] == 1 else "s", p["signature"], p["fixed_by"], p["advice"])
        for p in problems or []
    ]


def fleet_rows(states):
    """Turn {host: relayfix_state} into table rows, the header first, hosts in name order."""
    rows = [HEADER]
    for host in sorted(states):
        s = states[host]
        packages = ", ".join(
            "%s %s%s" % (k["id"], k["state"], " (%s)" % k["reason"] if k.get("reason") else "")
            for k in s.get("packages") or [])
        files = ", ".join("%s %s" % (f["name"], f["version"]) for f in s.get("files") or [])
        if s.get("problems") is None:
            problems = "not known to hotfix list"
        else:
            problems = "; ".join(s["problems"]) or "none seen"
        rows.append((host, s.get("product") or "?", packages or "none", files or "none", problems))
    return rows


def fleet_table(states):
    """Render {host: relayfix_state} as lines of a table with padded columns."""
    rows = fleet_rows(states)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER) - 1)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]


class FilterModule:
    """The relayfix role's filters."""

    def filters(self):
        return {
            "relayfix_fleet_table": fleet_table,
            "relayfix_verdicts": verdicts,
            "relayfix_problem_lines": problem_lines,
        }
