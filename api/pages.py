"""Server-rendered HTML: the consumer page of a product code and the resolver's error
pages, in Chinese (default) or English. No JavaScript, no external assets: one document
with inline CSS. Jinja2 with autoescape on renders every value the ledger holds (party
and product names are whatever their signers wrote), and ``CSP`` lets the browser run
nothing else: no script at all, and only the one stylesheet, by its hash."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

LANGS = ("zh", "en")
HTML_LANG = {"zh": "zh-CN", "en": "en"}

_env = Environment(loader=PackageLoader("api", "templates"),
                   autoescape=select_autoescape(["html"], default=True),
                   trim_blocks=True, lstrip_blocks=True, auto_reload=False)


def _style_source() -> str:
    """The page's one stylesheet, exactly as base.html holds it (and every page sends it)."""
    assert _env.loader is not None
    source = _env.loader.get_source(_env, "base.html")[0]
    found = re.search(r"<style>(.*?)</style>", source, re.S)
    assert found is not None, "base.html has its stylesheet in one <style> element"
    return found.group(1)


STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_style_source().encode()).digest()).decode()
# Nothing runs, loads, embeds or submits but the stylesheet: a value a signer wrote that
# escaped the escaping would still be inert, and no other site may frame the page.
CSP = (f"default-src 'none'; style-src '{STYLE_HASH}'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "brand": "溯源 · 跨境商品质量安全追溯",
        "colon": "：",
        "switch": "English",
        "product": "商品信息",
        "producer": "生产商",
        "origin": "原产国（地区）",
        "lot": "批号",
        "serial": "单品序列号",
        "produced": "生产日期",
        "expires": "保质期至",
        "hs": "商品编码",
        "clearance": "海关通关",
        "procedure": "监管方式",
        "declaration": "申报单号",
        "declared": "申报时间",
        "released": "放行时间",
        "not_released": "尚未放行",
        "inspection": "查验结果",
        "timeline": "流转记录",
        "verified_title": "“已验证”是什么意思",
        "verified_badge": "✓ 已验证",
        "unverified_badge": "✗ 未能验证",
        "recalled": "此商品已被召回",
        "recall_reason": "原因",
        "recall_when": "召回时间",
        "recall_by": "发起方",
        "recall_advice": "请立即停止使用，并联系购买平台退换。",
        "fake_title": "注意：可能是仿冒品",
        "fake_regions": "此追溯码已在 {regions} 个不同地区被扫描。",
        "fake_scans": "此商品售出后，已有 {scans} 位不同的消费者扫描了此追溯码。",
        "fake_advice": "正品的追溯码通常只会被一位消费者扫描。请核对包装，并联系商家或拨打 12315 举报。",
        "verified_sentence": (
            "本页 {entries} 条记录的 {signatures} 个数字签名均已核验有效；每条记录都包含在账本第 "
            "{checkpoint} 号检查点中，该检查点由账本签名，并由 {k}/{n} 个独立见证方联署"
            "（至少需要 {quorum} 个）。"),
        "verified_sentence_nw": (
            "本页 {entries} 条记录的 {signatures} 个数字签名均已核验有效；每条记录都包含在账本第 "
            "{checkpoint} 号检查点中，该检查点由账本签名（尚未配置独立见证方）。"),
        "unverified_sentence": "有 {bad} 条记录未能通过核验，本页不显示其内容，请谨慎对待本页信息：",
        "unverified_other": "本页信息未能全部通过核验，请谨慎对待：",
        "explain": (
            "每条记录都由负责该环节的企业或机关用自己登记的密钥签名；账本把全部记录串成不可篡改的"
            "哈希链，并定期签发检查点（默克尔树根）。独立见证方（如海关、市场监管部门）只会联署与"
            "此前历史一致的检查点，所以任何人都无法悄悄改写或对不同的人展示不同的记录。本页在服务器上"
            "重新核验了以上每个签名和每条记录的包含证明。"),
        "code": "追溯码",
        "data": "数据",
        "place": "地点",
        "unknown": "未知",
        "gln": "GLN",
        "not_found_title": "未找到此追溯码",
        "not_found": "账本中没有关于 {code} 的记录。请核对标签上的追溯码，或联系商家。",
        "bad_title": "追溯码有误",
        "bad_digit": ("{key} {value} 的校验位是 {given}，正确的应为 {expected}。"
                      "请核对标签上的号码后重新输入。"),
        "bad_other": "无法识别这个追溯码，请核对标签后重试。",
        "bad_link_type": "不支持这种链接类型。",
        "failed_title": "暂时无法显示",
        "lang_nav": "语言",
    },
    "en": {
        "brand": "Suyuan · CBEC product traceability",
        "colon": ": ",
        "switch": "中文",
        "product": "Product",
        "producer": "Producer",
        "origin": "Country of origin",
        "lot": "Lot",
        "serial": "Serial number",
        "produced": "Produced",
        "expires": "Best before",
        "hs": "HS code",
        "clearance": "Customs clearance",
        "procedure": "Customs procedure",
        "declaration": "Declaration no.",
        "declared": "Declared",
        "released": "Released",
        "not_released": "not released yet",
        "inspection": "Inspection",
        "timeline": "Journey",
        "verified_title": "What “verified” means",
        "verified_badge": "✓ Verified",
        "unverified_badge": "✗ Not verified",
        "recalled": "This product has been recalled",
        "recall_reason": "Reason",
        "recall_when": "Recalled on",
        "recall_by": "Recalled by",
        "recall_advice": "Stop using it now and contact the seller for a refund or exchange.",
        "fake_title": "Caution: this may be a counterfeit",
        "fake_regions": "This code has been scanned in {regions} different regions.",
        "fake_scans": "{scans} different people have scanned this code since the product was sold.",
        "fake_advice": ("A genuine code is normally scanned by one household. Check the packaging "
                        "and report it to the seller or to 12315."),
        "verified_sentence": (
            "All {signatures} digital signatures on the {entries} records of this page are valid, "
            "and every record is included in checkpoint {checkpoint}, signed by the ledger and "
            "cosigned by {k} of {n} independent witnesses ({quorum} required)."),
        "verified_sentence_nw": (
            "All {signatures} digital signatures on the {entries} records of this page are valid, "
            "and every record is included in checkpoint {checkpoint}, signed by the ledger (no "
            "independent witnesses are configured)."),
        "unverified_sentence": ("{bad} records failed verification and are not shown; "
                                "treat this page with care:"),
        "unverified_other": "This page could not be fully verified; treat it with care:",
        "explain": (
            "Each record is signed with the registered key of the company or authority "
            "responsible for that step. The ledger chains every record into a tamper-evident "
            "hash chain and regularly signs a checkpoint (a Merkle tree root). Independent "
            "witnesses, such as customs and the market regulator, cosign only checkpoints "
            "consistent with the history they saw before, so nobody can quietly rewrite records "
            "or show different histories to different people. This page re-checked every "
            "signature and every record's inclusion proof on the server."),
        "code": "Trace code",
        "data": "Data",
        "place": "Place",
        "unknown": "unknown",
        "gln": "GLN",
        "not_found_title": "Code not found",
        "not_found": "The ledger holds nothing about {code}. Check the code on the label, or ask the seller.",
        "bad_title": "This code has a typo",
        "bad_digit": ("{key} {value} has check digit {given}; the correct one is {expected}. "
                      "Check the number on the label and try again."),
        "bad_other": "This is not a trace code we can read; check the label and try again.",
        "bad_link_type": "This link type is not supported.",
        "failed_title": "Cannot show this now",
        "lang_nav": "Language",
    },
}

STAGES = {
    "production": ("生产", "Production"), "transaction": ("交易", "Sale"),
    "clearance": ("通关", "Customs"), "logistics": ("物流", "Logistics"),
    "payment": ("支付", "Payment"), "evaluation": ("评价", "Review"),
    "recall": ("召回", "Recall"),
}

ACTIVITIES = {
    "commissioning": ("生产赋码", "Produced and coded"),
    "packing": ("装箱", "Packed"), "unpacking": ("拆箱", "Unpacked"),
    "aggregation": ("组托", "Grouped"), "loading": ("装载", "Loaded"),
    "unloading": ("卸载", "Unloaded"), "shipping": ("发运", "Shipped"),
    "departing": ("启运", "Departed"), "arriving": ("到达", "Arrived"),
    "receiving": ("收货入库", "Received"), "storing": ("仓储", "Stored"),
    "stocking": ("上架", "Stocked"), "picking": ("拣货", "Picked"),
    "staging_outbound": ("待出库", "Staged for dispatch"), "accepting": ("签收", "Accepted"),
    "transporting": ("运输", "In transport"), "transformation": ("加工", "Processed"),
    "declaration": ("向海关申报", "Declared to customs"),
    "release": ("海关放行", "Released by customs"),
    "inspection": ("海关查验", "Inspected by customs"),
    "hold": ("海关暂停放行", "Held by customs"), "order": ("消费者下单", "Ordered"),
    "return": ("海关退单", "Returned by customs"), "receipt": ("海关回执", "Customs receipt"),
    "payment": ("支付完成", "Paid"), "waybill": ("生成运单", "Waybill issued"),
    "retail_selling": ("零售售出", "Sold"), "evaluation": ("消费者评价", "Reviewed"),
    "recall": ("召回", "Recalled"), "delivered": ("送达消费者", "Delivered to the consumer"),
    "inspecting": ("检验", "Inspected"), "sampling": ("抽样", "Sampled"),
    "decommissioning": ("注销", "Decommissioned"), "destroying": ("销毁", "Destroyed"),
}

PROCEDURES = {
    "1210": ("保税备货进口", "bonded import"),
    "9610": ("跨境直购", "direct purchase, by parcel"),
    "9710": ("跨境电商B2B直接出口", "B2B direct export"),
    "9810": ("跨境电商出口海外仓", "export to an overseas warehouse"),
}

COUNTRIES = {
    "JP": ("日本", "Japan"), "KR": ("韩国", "South Korea"), "CN": ("中国", "China"),
    "DE": ("德国", "Germany"), "US": ("美国", "United States"), "AU": ("澳大利亚", "Australia"),
    "NZ": ("新西兰", "New Zealand"), "FR": ("法国", "France"), "NL": ("荷兰", "Netherlands"),
    "IE": ("爱尔兰", "Ireland"), "GB": ("英国", "United Kingdom"), "IT": ("意大利", "Italy"),
    "CH": ("瑞士", "Switzerland"), "DK": ("丹麦", "Denmark"), "TH": ("泰国", "Thailand"),
    "VN": ("越南", "Vietnam"), "CA": ("加拿大", "Canada"), "ES": ("西班牙", "Spain"),
    "BE": ("比利时", "Belgium"), "SE": ("瑞典", "Sweden"),
}

INSPECTION = {"conformant": ("合格", "conformant"), "non_conformant": ("不合格", "non-conformant")}


def choose_lang(query: str | None, accept_language: str | None) -> str:
    """``?lang=`` wins; else the first of zh/en the browser prefers; else Chinese."""
    if query in LANGS:
        return query
    best, best_q = "zh", -1.0
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        base = tag.strip().lower().split("-")[0]
        # Earlier entries win ties: browsers list preferences in order.
        if base in LANGS and q > 0 and q - i * 1e-6 > best_q:
            best, best_q = base, q - i * 1e-6
    return best


def _pair(table: dict[str, tuple[str, str]], key: str | None, lang: str) -> str | None:
    if key is None:
        return None
    v = table.get(key)
    return None if v is None else v[0 if lang == "zh" else 1]


def _date(t: str | None) -> str | None:
    return t[:10] if t else None


def _minute(t: str) -> str:
    return t[:16].replace("T", " ")


def _name(names: dict[str, str], lang: str) -> tuple[str | None, str | None]:
    """(text, its lang attribute when it differs from the page's)."""
    if lang in names:
        return names[lang], None
    if "und" in names:
        return names["und"], None
    for other, text in names.items():
        return text, HTML_LANG.get(other, other)
    return None, None


def _activity(step: dict[str, Any]) -> str:
    if step["disposition"] == "retail_sold" and step["stage"] == "logistics":
        return "delivered"
    if step["activity"] == "waybill" and step.get("bizStep") in ACTIVITIES:
        return str(step["bizStep"])
    return str(step["activity"])


def page_view(facts: dict[str, Any], *, lang: str, path: str) -> dict[str, Any]:
    """The template's variables: facts turned into display strings in one language."""
    t = TEXT[lang]
    other = "en" if lang == "zh" else "zh"
    p = facts["product"]
    name, name_lang = _name(p["names"], lang)
    producer = p["producer"]
    origin = p["origin"]
    rows: list[tuple[str, str | None, str | None]] = []
    if producer:
        rows.append((t["producer"], producer["name"] or producer["id"], None))
    if origin:
        rows.append((t["origin"], f"{_pair(COUNTRIES, origin, lang) or origin} ({origin})", None))
    if p["lot"]:
        rows.append((t["lot"], p["lot"], None))
    if facts["kind"] == "item":
        rows.append((t["serial"], facts["code"].rsplit("/21/", 1)[-1], None))
    if p["productionDate"]:
        rows.append((t["produced"], _date(p["productionDate"]), None))
    if p["expiryDate"]:
        rows.append((t["expires"], p["expiryDate"], None))
    clearance = None
    c = facts["clearance"]
    if c:
        proc = c["procedure"]
        words = PROCEDURES.get(proc or "")
        clearance = {
            "procedure": proc, "words": words[0 if lang == "zh" else 1] if words else None,
            "other_words": words[1 if lang == "zh" else 0] if words else None,
            "other_lang": HTML_LANG[other],
            "rows": [(t["declaration"], c["declaration"]),
                     (t["declared"], _minute(c["declaredAt"]) if c["declaredAt"] else None),
                     (t["released"], _minute(c["releasedAt"]) if c["releasedAt"]
                      else t["not_released"])],
        }
        if c.get("inspection"):
            clearance["rows"].append((t["inspection"],
                                      _pair(INSPECTION, c["inspection"], lang) or c["inspection"]))
    timeline = []
    for s in facts["timeline"]:
        act = _activity(s)
        place = s["place"]
        who = s["signer"]["name"] or s["signer"]["id"]
        where = (place["name"] or f"{t['gln']} {place['gln']}") if place else None
        timeline.append({
            "when": _minute(s["eventTime"]), "datetime": s["eventTime"],
            "stage": _pair(STAGES, s["stage"], lang) or s["stage"],
            "stage_key": s["stage"],
            "what": _pair(ACTIVITIES, act, lang) or act.replace("_", " "),
            "who": who,
            "where": None if where == who else where,  # at its own site: said once
        })
    v = facts["verification"]
    if v["verified"]:
        w = v["witnesses"]
        key = "verified_sentence" if w["of"] else "verified_sentence_nw"
        sentence = t[key].format(entries=v["entries"], signatures=v["signatures"],
                                 checkpoint=v["checkpoint"], k=w["cosigned"], n=w["of"],
                                 quorum=w["quorum"])
    else:
        bad = v["entries"] - v["entriesVerified"]
        # Entries that fail show nothing (page_facts); the problems below name them.
        sentence = (t["unverified_sentence"].format(bad=bad) if bad
                    else t["unverified_other"])
    recalls = [{"when": _date(r["eventTime"]), "reason": r["reason"],
                "by": r["by"]["name"] or r["by"]["id"]} for r in facts["recall"]["recalls"]]
    fake = facts["counterfeit"]
    fake_lines = []
    if fake:
        if fake["regions"] >= 3:
            fake_lines.append(t["fake_regions"].format(regions=fake["regions"]))
        if fake["scansAfterSale"] > 20:
            fake_lines.append(t["fake_scans"].format(scans=fake["scansAfterSale"]))
    return {
        "t": t, "lang": lang, "html_lang": HTML_LANG[lang], "other": other,
        "other_html_lang": HTML_LANG[other], "switch_href": f"{path}?lang={other}",
        "title": name or facts["code"], "name": name, "name_lang": name_lang,
        "rows": rows, "clearance": clearance, "timeline": timeline, "sentence": sentence,
        "verified": v["verified"], "problems": v["problems"][:5], "recalls": recalls,
        "fake": fake_lines, "code": facts["code"], "path": path,
    }


def render_page(facts: dict[str, Any], *, lang: str, path: str) -> str:
    return _env.get_template("page.html").render(**page_view(facts, lang=lang, path=path))


def render_error(*, lang: str, status: int, title_key: str, message: str, path: str) -> str:
    t = TEXT[lang]
    other = "en" if lang == "zh" else "zh"
    return _env.get_template("error.html").render(
        t=t, lang=lang, html_lang=HTML_LANG[lang], other_html_lang=HTML_LANG[other],
        switch_href=f"{path}?lang={other}", title=t[title_key], message=message,
        status=status)
