"""The regulator's audit report: gather integrity, findings, statistics, credit and (with a
scope) one product chain's proofs into one JSON document, and render it as one
self-contained HTML page (inline CSS, inline SVG, no JavaScript)."""

from __future__ import annotations

from html import escape
from typing import Any

from api.charts import bar_chart, stacked_chart
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

STAGE_ZH = {"production": "生产", "transaction": "交易", "clearance": "通关", "logistics": "物流",
            "payment": "支付", "evaluation": "评价", "recall": "召回"}
FINDINGS_LIMIT = 200


def _witnesses(led: Ledger, home: Home, size: int) -> dict[str, Any]:
    from ledger.log.witnesses import Witnessing, cosigned_note, count_cosignatures

    cfg = home.config()
    if not cfg.get("witnesses"):
        return {"configured": 0, "quorum": 0, "cosigned": [], "witnessed": None}
    w = Witnessing.from_config(cfg)
    names = count_cosignatures(cosigned_note(led, size), w.witnesses) if size else []
    return {"configured": len(w.witnesses), "quorum": w.quorum, "cosigned": names,
            "witnessed": len(names) >= w.quorum}


def findings_overview(led: Ledger) -> dict[str, Any]:
    """Counts by rule (with its names and severity) and by party, and the latest findings."""
    summary = findings_summary(led.store)
    every = list_findings(led.store)
    names = led.registry_view().parties
    return {
        "total": summary["total"],
        "byRule": [{"rule": r, "zh": RULES[r].zh if r in RULES else r,
                    "en": RULES[r].en if r in RULES else r,
                    "severity": RULES[r].severity if r in RULES else "", "count": n}
                   for r, n in summary["byRule"].items()],
        "bySeverity": summary["bySeverity"],
        "byParty": [{"party": p, "name": names[p].name if p in names else "", "count": n}
                    for p, n in sorted(summary["byParty"].items(), key=lambda kv: (-kv[1], kv[0]))],
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


# --- HTML -----------------------------------------------------------------------------------

CSS = """
body{font-family:'Noto Sans CJK SC','Noto Sans',sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2630;line-height:1.5;padding:0 1rem}
h1{font-size:1.7rem;border-bottom:3px solid #2f6f9f;padding-bottom:.3rem}
h2{font-size:1.3rem;margin-top:2.2rem;border-bottom:1px solid #ccd;padding-bottom:.2rem}
h3{font-size:1.05rem;margin-top:1.4rem}
.en{color:#4a5866;font-weight:normal}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #c9d1d9;padding:.25rem .55rem;text-align:left;vertical-align:top}
th{background:#eef3f8}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1e7a3c;font-weight:bold}.bad{color:#b3261e;font-weight:bold}
.muted{color:#667}
code{font-size:.85em;word-break:break-all}
figure{margin:1rem 0}figcaption{font-size:.9rem;color:#4a5866}
details{margin:.2rem 0}
main{overflow-wrap:anywhere}
pre{white-space:pre-wrap}
.wide{overflow-x:auto;max-width:100%}
svg.chart{max-width:100%;height:auto}
pre{white-space:pre-wrap;word-break:break-all}
"""


def _bi(zh: str, en: str) -> str:
    return f'{escape(zh)} <span class="en" lang="en">{escape(en)}</span>'


def _table(headers: list[tuple[str, str]], rows: list[list[str]], *, caption: str = "") -> str:
    head = "".join(f'<th scope="col">{_bi(z, e)}</th>' for z, e in headers)
    cap = f"<caption>{caption}</caption>" if caption else ""
    body = "".join("<tr>" + "".join(rows_cell(c) for c in r) + "</tr>" for r in rows)
    if not rows:
        body = f'<tr><td colspan="{len(headers)}" class="muted">{_bi("无", "none")}</td></tr>'
    # In a box of its own that scrolls sideways: a wide table never widens a phone's page.
    return (f'<div class="wide"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            "</table></div>")


def rows_cell(c: str) -> str:
    """A cell: text is escaped unless marked as HTML with a leading NUL."""
    if c.startswith("\0"):
        return f"<td>{c[1:]}</td>"
    cls = ' class="num"' if c.replace(",", "").replace(".", "").lstrip("-").isdigit() else ""
    return f"<td{cls}>{escape(c)}</td>"


def _html(s: str) -> str:
    return "\0" + s


def _status(ok: bool | None, yes: tuple[str, str], no: tuple[str, str]) -> str:
    if ok is None:
        return f'<span class="muted">{_bi("未配置", "not configured")}</span>'
    return (f'<span class="ok">{_bi(*yes)}</span>' if ok
            else f'<span class="bad">{_bi(*no)}</span>')


def _integrity(i: dict[str, Any]) -> str:
    w = i["witnesses"]
    rows = [["条目 entries", f"{i['entries']:,}"], ["签名 signatures", f"{i['signatures']:,}"],
            ["检查点 checkpoints", f"{i['checkpoints']:,}"], ["树节点 tree nodes", f"{i['nodes']:,}"],
            ["见证 witnesses (k of n)",
             f"{len(w['cosigned'])} / {w['configured']} (quorum {w['quorum']})"]]
    out = [f"<p>{_status(i['ok'], ('账本完整', 'the ledger is sound'), ('发现问题', 'problems found'))}"
           f" · {_status(w['witnessed'], ('已见证', 'witnessed'), ('未达法定数', 'below quorum'))}</p>",
           _table([("项目", "item"), ("数值", "value")], rows)]
    if w["cosigned"]:
        out.append(f"<p>{_bi('已联署见证人：', 'cosigned by: ')}"
                   f"{escape(', '.join(w['cosigned']))}</p>")
    if i.get("latestCheckpoint"):
        out.append(f"<h3>{_bi('最新检查点', 'Latest checkpoint')}</h3>"
                   f"<pre><code>{escape(i['latestCheckpoint'])}</code></pre>")
    out.append(f"<h3>{_bi('问题', 'Problems')}</h3>")
    out.append(_table([("序号", "seq"), ("检查点", "checkpoint"), ("问题", "problem")],
                      [[str(p["seq"] if p["seq"] is not None else "—"),
                        str(p["checkpoint"] if p["checkpoint"] is not None else "—"),
                        p["problem"]] for p in i["problems"]]))
    return "".join(out)


def _findings_html(f: dict[str, Any]) -> str:
    sev = ", ".join(f"{k} {v}" for k, v in f["bySeverity"].items()) or "—"
    out = [f"<p>{_bi('发现总数：', 'findings in all: ')}<strong>{f['total']}</strong> "
           f"({escape(sev)})</p>",
           f"<h3>{_bi('按规则', 'By rule')}</h3><figure>",
           bar_chart(ident="chart-findings", title="按规则的发现 Findings by rule",
                     desc="Findings per rule: " + ", ".join(
                         f"{r['rule']} {r['count']}" for r in f["byRule"]) + ".",
                     bars=[(r["rule"], float(r["count"])) for r in f["byRule"]],
                     width=900, slanted=True),
           "</figure>",
           _table([("规则", "rule"), ("说明", "meaning"), ("严重程度", "severity"), ("数量", "count")],
                  [[r["rule"], _html(f"{escape(r['zh'])}<br><span lang=\"en\">"
                                     f"{escape(r['en'])}</span>"), r["severity"], str(r["count"])]
                   for r in f["byRule"]]),
           f"<h3>{_bi('按主体', 'By party')}</h3>",
           _table([("主体", "party"), ("名称", "name"), ("数量", "count")],
                  [[r["party"], r["name"], str(r["count"])] for r in f["byParty"]]),
           f"<h3>{_bi('最近的发现', 'Most recent findings')}</h3>",
           _table([("编号", "id"), ("规则", "rule"), ("严重程度", "severity"), ("条目", "seqs"),
                   ("说明", "message")],
                  [[str(x["id"]), str(x["rule"]), str(x["severity"]),
                    ", ".join(str(s) for s in x["seqs"]),
                    _html(f"{escape(x['message']['zh'])}<br>"
                          f"<span lang=\"en\">{escape(x['message']['en'])}</span>")]
                   for x in f["recent"]])]
    return "".join(out)


def statistics_html(s: dict[str, Any]) -> str:
    """The statistics as charts (inline SVG) with their tables."""
    by = {k: s["eventsByStageMonth"][k] for k in
          sorted(s["eventsByStageMonth"], key=lambda k: (k not in STAGES, STAGES.index(k)
                                                         if k in STAGES else 0, k))}
    months = sorted({m for v in by.values() for m in v})
    series = {f"{STAGE_ZH.get(k, k)} {k}": v for k, v in by.items()}
    total_events = sum(sum(v.values()) for v in by.values())
    trade = s["tradeByProcedure"]
    clear = s["clearanceTime"]
    buckets = [(label, clear["buckets"].get(label, 0)) for label, _ in CLEARANCE_BUCKETS]
    if clear["buckets"].get("negative"):
        buckets.append(("negative", clear["buckets"]["negative"]))
    out = [
        f"<h3>{_bi('按环节和月份的事件', 'Events by stage and month')}</h3><figure>",
        stacked_chart(ident="chart-stage-month",
                      title="按环节和月份的事件 Events by stage and month (UTC)",
                      desc=f"{total_events} events in {len(months)} months, stacked by stage.",
                      columns=months, series=series),
        f"<figcaption>{_bi('按事件时间（UTC）所在月份计数。', 'Counted by the month of eventTime in UTC.')}"
        "</figcaption></figure>",
        _table([("环节", "stage"), *[(m, "") for m in months]],
               [[f"{STAGE_ZH.get(k, k)} {k}", *[str(v.get(m, 0)) for m in months]]
                for k, v in by.items()]),
        f"<h3>{_bi('按监管方式的贸易额', 'Trade value by customs procedure')}</h3><figure>",
        bar_chart(ident="chart-trade", title="按监管方式的贸易额（人民币）Trade value by procedure (CNY)",
                  desc="Sum of paid amounts of orders per customs procedure: " + ", ".join(
                      f"{t['procedure']} {t['valueCNY']} CNY" for t in trade) + ".",
                  bars=[(t["procedure"], float(t["valueCNY"])) for t in trade], unit=" CNY"),
        "</figure>",
        _table([("监管方式", "procedure"), ("申报", "declarations"), ("订单", "orders"),
                ("实付金额（元）", "paid, CNY")],
               [[t["procedure"], str(t["declarations"]), str(t["orders"]), t["valueCNY"]]
                for t in trade]),
    ]
    if s["otherCurrencies"]:
        out.append(_table([("监管方式", "procedure"), ("币制", "currency"), ("金额", "value")],
                          [[o["procedure"], o["currency"], o["value"]]
                           for o in s["otherCurrencies"]],
                          caption=_bi("未折算的其他币种", "other currencies, not converted")))
    for key, ident, zh, en, what in (
            ("origins", "chart-origins", "原产国（地区）", "Countries of origin",
             "distinct product identifiers"),
            ("destinations", "chart-destinations", "目的国（地区）", "Destination countries",
             "declarations")):
        bars = [(k, float(v)) for k, v in s[key].items()]
        out += [f"<h3>{_bi(zh, en)}</h3><figure>",
                bar_chart(ident=ident, title=f"{zh} {en}",
                          desc=f"{en}, counting {what}: " + ", ".join(
                              f"{k} {int(v)}" for k, v in bars) + ".", bars=bars),
                "</figure>"]
    median = clear["medianSeconds"]
    out += [f"<h3>{_bi('通关时长分布', 'Clearance time distribution')}</h3><figure>",
            bar_chart(ident="chart-clearance", title="通关时长分布 Declaration to release",
                      desc=f"{clear['released']} declarations released; " + ", ".join(
                          f"{k}: {v}" for k, v in buckets) + f"; {clear['buckets'].get('pending', 0)}"
                      " still pending.", bars=[(k, float(v)) for k, v in buckets]),
            f"<figcaption>{_bi('从申报到放行。', 'From declaration to release.')} "
            f"{_bi('待放行：', 'pending: ')}{clear['buckets'].get('pending', 0)} · "
            f"{_bi('中位数：', 'median: ')}"
            f"{'—' if median is None else f'{median / 60:.0f} min'}</figcaption></figure>",
            f"<h3>{_bi('按类型的条目', 'Entries by kind')}</h3>",
            _table([("类型", "kind"), ("条目", "entries")],
                   [[k, str(v)] for k, v in s["entriesByKind"].items()])]
    return "".join(out)


def _credit(rows: list[dict[str, Any]]) -> str:
    details = "".join(
        f"<details><summary>{escape(r['name'])} <code>{escape(r['party'])}</code>: "
        f"{r['score']}</summary>"
        + _table([("来源", "source"), ("条目", "seqs"), ("分值", "points"), ("理由", "reason")],
                 [[i["source"], ", ".join(map(str, i["seqs"])), str(i["points"]),
                   _html(f"{escape(i['reason']['zh'])}<br>"
                         f"<span lang=\"en\">{escape(i['reason']['en'])}</span>")]
                  for i in r["explained"]]) + "</details>"
        for r in rows if r["explained"])
    rule_zh = ("起始 100 分；监管记录按签署分值；发现按严重程度；产品被召回 −10（主动召回 −5）；"
               "差评 1 星 −2、2 星 −1，合计最多 −10；结果限定在 0–100。")
    rule_en = ("Start at 100; regulator records as signed; findings by severity; a recall of "
               "its products −10 (voluntary −5); complaints −2 (1 star) or −1 (2 stars), at most "
               "−10 in all; clamped to 0–100.")
    rules = f'<p class="muted">{_bi(rule_zh, rule_en)}</p>'
    return rules + _table([("主体", "party"), ("名称", "name"), ("角色", "roles"), ("信用分", "score"),
                   ("计分项", "items"), ("合计分值", "points")],
                  [[r["party"], r["name"], ", ".join(r["roles"]), str(r["score"]),
                    str(r["items"]), str(r["points"])] for r in rows]) + details


def _scope(sc: dict[str, Any]) -> str:
    ok = sum(1 for e in sc["entries"] if e["proofVerified"] and e["signaturesVerified"])
    out = [f"<p><code>{escape(sc['code'])}</code> · "
           + _status(sc["ok"], ("全部核验通过", "every proof and signature verified"),
                     ("有问题", "problems")) +
           f" · {ok} / {len(sc['entries'])} {_bi('条目已核验', 'entries verified')}"
           f" · {_bi('检查点规模', 'checkpoint size')} {sc['checkpoint']['size']}</p>",
           f"<h3>{_bi('流转轨迹', 'Journey')}</h3>",
           _table([("序号", "seq"), ("事件时间", "event time"), ("环节", "stage"),
                   ("活动", "activity"), ("签名方", "signer"), ("经由", "via")],
                  [[str(j["seq"]), j["eventTime"], j["stage"], j["activity"], j["signer"],
                    j["via"] or "—"] for j in sc["journey"]]),
           f"<h3>{_bi('上下游', 'Lineage')}</h3>",
           _table([("方向", "direction"), ("标识", "code"), ("层级", "depth"), ("关系", "via")],
                  [[d, i["code"], str(i["depth"]), i["via"]]
                   for d, items in (("上游 up", sc["upstream"]), ("下游 down", sc["downstream"]))
                   for i in items]),
           f"<h3>{_bi('条目与证明', 'Entries and proofs')}</h3>",
           _table([("序号", "seq"), ("叶哈希", "leaf hash"), ("包含证明", "inclusion proof"),
                   ("签名", "signatures"), ("问题", "problems")],
                  [[str(e["seq"]), _html(f"<code>{e['leafHash'][:16]}…</code>"),
                    "✔ verified" if e["proofVerified"] else "✘ FAILED",
                    "✔ verified" if e["signaturesVerified"] else "✘ FAILED",
                    "; ".join(e["problems"]) or "—"] for e in sc["entries"]])]
    out += [f"<h3>{_bi('相关发现', 'Findings touching these entries')}</h3>",
            _table([("规则", "rule"), ("严重程度", "severity"), ("条目", "seqs"), ("说明", "message")],
                   [[str(f["rule"]), str(f["severity"]), ", ".join(map(str, f["seqs"])),
                     _html(f"{escape(f['message']['zh'])}<br>"
                           f"<span lang=\"en\">{escape(f['message']['en'])}</span>")]
                    for f in sc["findings"]])]
    return "".join(out)


def report_sections(doc: dict[str, Any]) -> str:
    """The report's sections as HTML, for this page and for the regulator console."""
    sections = [
        ("integrity", "一、账本完整性", "1. Integrity", _integrity(doc["integrity"])),
        ("findings", "二、合规发现", "2. Findings", _findings_html(doc["findings"])),
        ("statistics", "三、统计", "3. Statistics", statistics_html(doc["statistics"])),
        ("credit", "四、信用", "4. Credit", _credit(doc["credit"])),
    ]
    if "scope" in doc:
        sections.append(("scope", "五、产品链审计", "5. Product chain audit", _scope(doc["scope"])))
    return "".join(f'<section id="{i}" aria-labelledby="{i}-h"><h2 id="{i}-h">{_bi(z, e)}</h2>'
                   f"{html}</section>" for i, z, e, html in sections)


def report_heading(doc: dict[str, Any]) -> str:
    return (f"<p class=\"muted\">{_bi('生成时间：', 'generated: ')}{escape(doc['generated'])}"
            f" · {_bi('监管方式', 'procedures')} {', '.join(PROCEDURES)}</p>")


def render_html(doc: dict[str, Any]) -> str:
    return ("<!DOCTYPE html>\n"
            '<html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>溯源审计报告 Suyuan audit report</title>"
            f"<style>{CSS}</style></head><body><main>"
            f"<h1>{_bi('溯源账本审计报告', 'Suyuan ledger audit report')}</h1>"
            f"{report_heading(doc)}{report_sections(doc)}</main></body></html>\n")
