"""The regulator's audit report: gather integrity, findings, statistics, credit and (with a
scope) one product chain's proofs into one JSON document, and render it as one
self-contained HTML page (inline CSS, inline SVG, no JavaScript)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from api.charts import bar_chart, stacked_chart
from api.templating import environment
from ledger.compliance.findings import RULES
from ledger.core.statements import now_rfc3339
from ledger.epcis.stages import STAGES
from ledger.log.audit import audit
from ledger.log.home import Home
from ledger.log.sequencer import Ledger
from ledger.queries.chain_audit import scope_audit
from ledger.queries.credit import credit_table
from ledger.queries.findings import findings_summary, list_findings
from ledger.queries.stats import CLEARANCE_BUCKETS, PROCEDURES, statistics

STAGE_ZH = {
    "production": "生产",
    "transaction": "交易",
    "clearance": "通关",
    "logistics": "物流",
    "payment": "支付",
    "evaluation": "评价",
    "recall": "召回",
}
FINDINGS_LIMIT = 200


def _witnesses(led: Ledger, home: Home, size: int) -> dict[str, Any]:
    from ledger.log.witnesses import Witnessing, cosigned_note, count_cosignatures

    cfg = home.config()
    if not cfg.get("witnesses"):
        return {"configured": 0, "quorum": 0, "cosigned": [], "witnessed": None}
    w = Witnessing.from_config(cfg)
    names = count_cosignatures(cosigned_note(led, size), w.witnesses) if size else []
    return {
        "configured": len(w.witnesses),
        "quorum": w.quorum,
        "cosigned": names,
        "witnessed": len(names) >= w.quorum,
    }


def findings_overview(led: Ledger) -> dict[str, Any]:
    """Counts by rule (with its names and severity) and by party, and the latest findings."""
    summary = findings_summary(led.store)
    every = list_findings(led.store)
    names = led.registry_view().parties
    return {
        "total": summary["total"],
        "byRule": [
            {
                "rule": r,
                "zh": RULES[r].zh if r in RULES else r,
                "en": RULES[r].en if r in RULES else r,
                "severity": RULES[r].severity if r in RULES else "",
                "count": n,
            }
            for r, n in summary["byRule"].items()
        ],
        "bySeverity": summary["bySeverity"],
        "byParty": [
            {"party": p, "name": names[p].name if p in names else "", "count": n}
            for p, n in sorted(summary["byParty"].items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "recent": [f.as_dict() for f in every[-FINDINGS_LIMIT:][::-1]],
    }


def collect(led: Ledger, home: Home, *, scope: str | None = None) -> dict[str, Any]:
    """Everything the report shows, as one JSON-able document (``suyuan audit --json``)."""
    rep = audit(led.store, log_key=led.published_log_key)
    size = led.size()
    integrity = rep.as_dict()
    integrity["latestCheckpoint"] = led.latest_checkpoint() if size else None
    integrity["witnesses"] = _witnesses(led, home, size)
    doc: dict[str, Any] = {
        "generated": now_rfc3339(),
        "integrity": integrity,
        "findings": findings_overview(led),
        "statistics": statistics(led.store),
        "credit": credit_table(led.store),
    }
    if scope is not None:
        doc["scope"] = scope_audit(led, scope)
    return doc


def _numeric(value: object) -> bool:
    """A table cell set right-aligned: digits, with thousands commas, a point or a sign."""
    return str(value).replace(",", "").replace(".", "").lstrip("-").isdigit()


_env = environment()
_env.tests["numeric"] = _numeric
_env.filters["thousands"] = lambda n: f"{n:,}"


def statistics_view(s: dict[str, Any]) -> dict[str, Any]:
    """What the statistics template shows: the charts drawn (api.charts escapes every value
    it draws), the stages in their order, the clearance buckets."""
    by = {
        k: s["eventsByStageMonth"][k]
        for k in sorted(
            s["eventsByStageMonth"], key=lambda k: (k not in STAGES, STAGES.index(k) if k in STAGES else 0, k)
        )
    }
    months = sorted({m for v in by.values() for m in v})
    series = {f"{STAGE_ZH.get(k, k)} {k}": v for k, v in by.items()}
    total_events = sum(sum(v.values()) for v in by.values())
    trade = s["tradeByProcedure"]
    clear = s["clearanceTime"]
    buckets = [(label, clear["buckets"].get(label, 0)) for label, _ in CLEARANCE_BUCKETS]
    if clear["buckets"].get("negative"):
        buckets.append(("negative", clear["buckets"]["negative"]))
    places = []
    for key, ident, zh, en, what in (
        ("origins", "chart-origins", "原产国（地区）", "Countries of origin", "distinct product identifiers"),
        ("destinations", "chart-destinations", "目的国（地区）", "Destination countries", "declarations"),
    ):
        bars = [(k, float(v)) for k, v in s[key].items()]
        places.append(
            {
                "zh": zh,
                "en": en,
                "chart": Markup(
                    bar_chart(
                        ident=ident,
                        title=f"{zh} {en}",
                        desc=f"{en}, counting {what}: " + ", ".join(f"{k} {int(v)}" for k, v in bars) + ".",
                        bars=bars,
                    )
                ),
            }
        )
    median = clear["medianSeconds"]
    pending = clear["buckets"].get("pending", 0)
    return {
        "stage_month_chart": Markup(
            stacked_chart(
                ident="chart-stage-month",
                title="按环节和月份的事件 Events by stage and month (UTC)",
                desc=f"{total_events} events in {len(months)} months, stacked by stage.",
                columns=months,
                series=series,
            )
        ),
        "month_headers": [(m, "") for m in months],
        "stages": [
            {"label": f"{STAGE_ZH.get(k, k)} {k}", "counts": [v.get(m, 0) for m in months]}
            for k, v in by.items()
        ],
        "trade_chart": Markup(
            bar_chart(
                ident="chart-trade",
                title="按监管方式的贸易额（人民币）Trade value by procedure (CNY)",
                desc="Sum of paid amounts of orders per customs procedure: "
                + ", ".join(f"{t['procedure']} {t['valueCNY']} CNY" for t in trade)
                + ".",
                bars=[(t["procedure"], float(t["valueCNY"])) for t in trade],
                unit=" CNY",
            )
        ),
        "trade": trade,
        "other_currencies": s["otherCurrencies"],
        "places": places,
        "clearance_chart": Markup(
            bar_chart(
                ident="chart-clearance",
                title="通关时长分布 Declaration to release",
                desc=f"{clear['released']} declarations released; "
                + ", ".join(f"{k}: {v}" for k, v in buckets)
                + f"; {pending} still pending.",
                bars=[(k, float(v)) for k, v in buckets],
            )
        ),
        "pending": pending,
        "median": "—" if median is None else f"{median / 60:.0f} min",
        "kinds": list(s["entriesByKind"].items()),
    }


def _report_view(doc: dict[str, Any]) -> dict[str, Any]:
    f = doc["findings"]
    view: dict[str, Any] = {
        "severities": ", ".join(f"{k} {v}" for k, v in f["bySeverity"].items()) or "—",
        "findings_chart": Markup(
            bar_chart(
                ident="chart-findings",
                title="按规则的发现 Findings by rule",
                desc="Findings per rule: "
                + ", ".join(f"{r['rule']} {r['count']}" for r in f["byRule"])
                + ".",
                bars=[(r["rule"], float(r["count"])) for r in f["byRule"]],
                width=900,
                slanted=True,
            )
        ),
    }
    if "scope" in doc:
        sc = doc["scope"]
        view["verified"] = sum(1 for e in sc["entries"] if e["proofVerified"] and e["signaturesVerified"])
        view["lineage"] = [
            {"direction": d, **i}
            for d, items in (("上游 up", sc["upstream"]), ("下游 down", sc["downstream"]))
            for i in items
        ]
    return {"doc": doc, "view": view, "stats": statistics_view(doc["statistics"]), "procedures": PROCEDURES}


def statistics_html(s: dict[str, Any]) -> Markup:
    """The statistics as charts (inline SVG) with their tables."""
    return Markup(_env.get_template("report/statistics.html").render(stats=statistics_view(s)))


def report_sections(doc: dict[str, Any]) -> Markup:
    """The report's sections as HTML, for this page and for the regulator console."""
    return Markup(_env.get_template("report/sections.html").render(**_report_view(doc)))


def report_heading(doc: dict[str, Any]) -> Markup:
    return Markup(_env.get_template("report/heading.html").render(doc=doc, procedures=PROCEDURES))


def render_html(doc: dict[str, Any]) -> str:
    return _env.get_template("report/report.html").render(**_report_view(doc)) + "\n"
