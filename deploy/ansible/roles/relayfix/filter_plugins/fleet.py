"""Filters of the relayfix role: the fleet table that check.yml prints."""

HEADER = ("host", "product", "packages", "files", "known problems")


def fleet_rows(states):
    """Turn {host: relayfix_state} into table rows, the header first, hosts in name order."""
    rows = [HEADER]
    for host in sorted(states):
        s = states[host]
        p = s.get("product") or {}
        product = "%s %s SP%s" % (p.get("name", "?"), p.get("version", "?"), p.get("service_pack", "?"))
        packages = ", ".join(
            "%s %s%s" % (k["id"], k["state"], " (%s)" % k["reason"] if k.get("reason") else "")
            for k in s.get("packages") or [])
        files = ", ".join("%s %s" % (f["name"], f["version"]) for f in s.get("files") or [])
        if s.get("problems") is None:
            problems = "not known to hotfix list"
        else:
            problems = "; ".join(s["problems"]) or "none seen"
        rows.append((host, product, packages or "none", files or "none", problems))
    return rows


def fleet_table(states):
    """Render {host: relayfix_state} as lines of a table with padded columns."""
    rows = fleet_rows(states)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER) - 1)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]


class FilterModule:
    """The relayfix role's filters."""

    def filters(self):
        return {"relayfix_fleet_table": fleet_table}
