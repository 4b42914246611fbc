"""Server-rendered HTML: the consumer page of a product code and the resolver's error
pages, in Chinese (default) or English. No JavaScript, no external assets: one document
with inline CSS. Jinja2 with autoescape on renders every value the ledger holds (party
and product names are whatever their signers wrote), and ``CSP`` lets the browser run
nothing else: no script at all, and only the one stylesheet, by its hash."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from api.templating import environment, style_hash

LANGS = ("zh", "en")
HTML_LANG = {"zh": "zh-CN", "en": "en"}

_env = environment()
STYLE_HASH = style_hash(_env, "base.html")  # the page's one stylesheet, as every page sends it
# Nothing runs, loads, embeds or submits but the stylesheet: a value a signer wrote that
# escaped the escaping would still be inert, and no other site may frame the page.
CSP = (
    f"default-src 'none'; style-src '{STYLE_HASH}'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "brand": "溯源 · 跨境商品质量安全追溯",
        "colon": "：",
        "switch": "English",
        "product": "商品信息",
        "product_title": "商品 GTIN {gtin}",
        "unit_title": "物流单元 SSCC {sscc}",
        "brand_name": "品牌",
        "net_content": "净含量",
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
        "lot_released": "放行情况",
        "lot_released_count": "本批 {n} 件中 {k} 件已由海关放行",
        "inspection": "查验结果",
        "timeline": "流转记录",
        "documents": "单据",
        "records_title": "记录核验",
        "verified_badge": "✓ 记录已核验",
        "unverified_badge": "✗ 记录未能全部核验",
        "records_scope": (
            "核验的是本页记录的真实性与完整性：谁在何时签署了什么、记录有没有被改动，而不是商品本身的质量。"
        ),
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
            "（至少需要 {quorum} 个）。"
        ),
        "verified_sentence_nw": (
            "本页 {entries} 条记录的 {signatures} 个数字签名均已核验有效；每条记录都包含在账本第 "
            "{checkpoint} 号检查点中，该检查点由账本签名（本账本未配置独立见证方）。"
        ),
        "unverified_sentence": "有 {bad} 条记录未能通过核验，本页不显示其内容，请谨慎对待本页信息：",
        "unverified_other": "本页信息未能全部通过核验，请谨慎对待：",
        "explain": (
            "每条记录都由负责该环节的企业或机关用自己登记的密钥签名；账本把全部记录串成不可篡改的"
            "哈希链，并定期签发检查点（默克尔树根）。本页在服务器上重新核验了以上每个签名和每条记录的"
            "包含证明。"
        ),
        "explain_witnesses": (
            "本账本配置了 {n} 个独立见证方（{names}），检查点须有其中至少 {quorum} 个联署才算见证。"
            "见证方只会联署与此前历史一致的检查点，所以任何人都无法悄悄改写记录，或对不同的人展示"
            "不同的记录。"
        ),
        "explain_no_witnesses": (
            "本账本未配置独立见证方：检查点只由账本运营方签名。记录一旦被改动仍会被发现，但运营方"
            "若对不同的人展示不同的历史，只有独立见证方才能发现。"
        ),
        "list_sep": "、",
        "code": "追溯码",
        "data": "数据",
        "place": "地点",
        "unknown": "未知",
        "gln": "GLN",
        "utc": "UTC",
        "not_found_title": "未找到此追溯码",
        "not_found": "账本中没有关于 {code} 的记录。请核对标签上的追溯码，或联系商家。",
        "bad_title": "追溯码有误",
        "bad_digit": (
            "{key} {value} 的校验位是 {given}，正确的应为 {expected}。请核对标签上的号码后重新输入。"
        ),
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
        "product_title": "Product GTIN {gtin}",
        "unit_title": "Logistic unit SSCC {sscc}",
        "brand_name": "Brand",
        "net_content": "Net content",
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
        "lot_released": "Released",
        "lot_released_count": "{k} of the {n} items of this lot released by customs",
        "inspection": "Inspection",
        "timeline": "Journey",
        "documents": "Documents",
        "records_title": "Record verification",
        "verified_badge": "✓ Records verified",
        "unverified_badge": "✗ Records not all verified",
        "records_scope": (
            "This checks that the records on this page are authentic and complete "
            "(who signed what, and when, and that nothing was changed), not the "
            "quality of the product itself."
        ),
        "recalled": "This product has been recalled",
        "recall_reason": "Reason",
        "recall_when": "Recalled on",
        "recall_by": "Recalled by",
        "recall_advice": "Stop using it now and contact the seller for a refund or exchange.",
        "fake_title": "Caution: this may be a counterfeit",
        "fake_regions": "This code has been scanned in {regions} different regions.",
        "fake_scans": "{scans} different people have scanned this code since the product was sold.",
        "fake_advice": (
            "A genuine code is normally scanned by one household. Check the packaging "
            "and report it to the seller or to 12315."
        ),
        "verified_sentence": (
            "All {signatures} digital signatures on the {entries} records of this page are valid, "
            "and every record is included in checkpoint {checkpoint}, signed by the ledger and "
            "cosigned by {k} of {n} independent witnesses ({quorum} required)."
        ),
        "verified_sentence_nw": (
            "All {signatures} digital signatures on the {entries} records of this page are valid, "
            "and every record is included in checkpoint {checkpoint}, signed by the ledger (this "
            "ledger has no independent witnesses)."
        ),
        "unverified_sentence": (
            "{bad} records failed verification and are not shown; treat this page with care:"
        ),
        "unverified_other": "This page could not be fully verified; treat it with care:",
        "explain": (
            "Each record is signed with the registered key of the company or authority "
            "responsible for that step. The ledger chains every record into a tamper-evident "
            "hash chain and regularly signs a checkpoint (a Merkle tree root). This page "
            "re-checked every signature and every record's inclusion proof on the server."
        ),
        "explain_witnesses": (
            "This ledger has {n} independent witnesses ({names}); a checkpoint counts as "
            "witnessed when at least {quorum} of them cosign it. Witnesses cosign only "
            "checkpoints consistent with the history they saw before, so nobody can quietly "
            "rewrite records or show different histories to different people."
        ),
        "explain_no_witnesses": (
            "This ledger has no independent witnesses: its checkpoints are signed by its "
            "operator alone. A changed record would still be detected, but only independent "
            "witnesses could detect the operator showing different histories to different "
            "people."
        ),
        "list_sep": ", ",
        "code": "Trace code",
        "data": "Data",
        "place": "Place",
        "unknown": "unknown",
        "gln": "GLN",
        "utc": "UTC",
        "not_found_title": "Code not found",
        "not_found": "The ledger holds nothing about {code}. Check the code on the label, or ask the seller.",
        "bad_title": "This code has a typo",
        "bad_digit": (
            "{key} {value} has check digit {given}; the correct one is {expected}. "
            "Check the number on the label and try again."
        ),
        "bad_other": "This is not a trace code we can read; check the label and try again.",
        "bad_link_type": "This link type is not supported.",
        "failed_title": "Cannot show this now",
        "lang_nav": "Language",
    },
}

STAGES = {
    "production": ("生产", "Production"),
    "transaction": ("交易", "Sale"),
    "clearance": ("通关", "Customs"),
    "logistics": ("物流", "Logistics"),
    "payment": ("支付", "Payment"),
    "evaluation": ("评价", "Review"),
    "recall": ("召回", "Recall"),
}

# Every activity ``ledger.epcis.stages.classify`` returns (STAGE_ACTIVITIES), and "delivered".
ACTIVITIES = {
    "commissioning": ("生产赋码", "Produced and coded"),
    "creating_class_instance": ("生产", "Produced"),
    "encoding": ("赋码", "Coded"),
    "reserving": ("预留编码", "Codes reserved"),
    "assembling": ("组装", "Assembled"),
    "disassembling": ("拆解", "Disassembled"),
    "repackaging": ("重新包装", "Repackaged"),
    "repairing": ("维修", "Repaired"),
    "replacing": ("更换", "Replaced"),
    "installing": ("安装", "Installed"),
    "removing": ("拆除", "Removed"),
    "killing": ("停用编码", "Code retired"),
    "sensor_reporting": ("传感器记录", "Sensor readings"),
    "packing": ("装箱", "Packed"),
    "unpacking": ("拆箱", "Unpacked"),
    "aggregation": ("组托", "Grouped"),
    "loading": ("装载", "Loaded"),
    "unloading": ("卸载", "Unloaded"),
    "shipping": ("发运", "Shipped"),
    "departing": ("启运", "Departed"),
    "arriving": ("到达", "Arrived"),
    "receiving": ("收货入库", "Received"),
    "storing": ("仓储", "Stored"),
    "stocking": ("上架", "Stocked"),
    "picking": ("拣货", "Picked"),
    "staging_outbound": ("待出库", "Staged for dispatch"),
    "accepting": ("签收", "Accepted"),
    "transporting": ("运输", "In transport"),
    "transformation": ("加工", "Processed"),
    "void_shipping": ("取消发运", "Shipment cancelled"),
    "holding": ("暂扣", "Held"),
    "stock_taking": ("盘点", "Stock taken"),
    "cycle_counting": ("循环盘点", "Counted"),
    "entering_exiting": ("进出场", "Entered or left"),
    "collecting": ("揽收", "Collected"),
    "consigning": ("托运", "Consigned"),
    "declaration": ("向海关申报", "Declared to customs"),
    "release": ("海关放行", "Released by customs"),
    "inspection": ("海关查验", "Inspected by customs"),
    "hold": ("海关暂停放行", "Held by customs"),
    "order": ("消费者下单", "Ordered"),
    "return": ("海关退单", "Returned by customs"),
    "receipt": ("海关回执", "Customs receipt"),
    "transaction": ("交易单据", "Business transaction"),
    "payment": ("支付完成", "Paid"),
    "waybill": ("生成运单", "Waybill issued"),
    "retail_selling": ("零售售出", "Sold"),
    "dispensing": ("配发", "Dispensed"),
    "evaluation": ("消费者评价", "Reviewed"),
    "recall": ("召回", "Recalled"),
    "delivered": ("送达消费者", "Delivered to the consumer"),
    "inspecting": ("检验", "Inspected"),
    "sampling": ("抽样", "Sampled"),
    "decommissioning": ("注销", "Decommissioned"),
    "destroying": ("销毁", "Destroyed"),
    "other": ("其他记录", "Other record"),
}

# CBV 2.0 business transaction types (and the CBEC ones), as a step names its documents.
DOCUMENTS = {
    "po": ("采购订单", "purchase order"),
    "poc": ("采购变更单", "purchase order change"),
    "inv": ("发票", "invoice"),
    "bol": ("提单", "bill of lading"),
    "desadv": ("发货通知", "despatch advice"),
    "recadv": ("收货通知", "receiving advice"),
    "prodorder": ("生产订单", "production order"),
    "rma": ("退货授权", "return authorisation"),
    "pedigree": ("药品谱系", "pedigree"),
    "testprd": ("检测报告", "test report"),
    "upevt": ("上游事件", "upstream event"),
    "cert": ("证书", "certificate"),
    "cbec:order": ("订单", "order"),
    "cbec:payment": ("支付单", "payment"),
    "cbec:waybill": ("运单", "waybill"),
    "cbec:declaration": ("申报清单", "declaration"),
}

PROCEDURES = {
    "1210": ("保税备货进口", "bonded import"),
    "9610": ("跨境直购", "direct purchase, by parcel"),
    "9710": ("跨境电商B2B直接出口", "B2B direct export"),
    "9810": ("跨境电商出口海外仓", "export to an overseas warehouse"),
}

COUNTRIES = {
    "JP": ("日本", "Japan"),
    "KR": ("韩国", "South Korea"),
    "CN": ("中国", "China"),
    "DE": ("德国", "Germany"),
    "US": ("美国", "United States"),
    "AU": ("澳大利亚", "Australia"),
    "NZ": ("新西兰", "New Zealand"),
    "FR": ("法国", "France"),
    "NL": ("荷兰", "Netherlands"),
    "IE": ("爱尔兰", "Ireland"),
    "GB": ("英国", "United Kingdom"),
    "IT": ("意大利", "Italy"),
    "CH": ("瑞士", "Switzerland"),
    "DK": ("丹麦", "Denmark"),
    "TH": ("泰国", "Thailand"),
    "VN": ("越南", "Vietnam"),
    "CA": ("加拿大", "Canada"),
    "ES": ("西班牙", "Spain"),
    "BE": ("比利时", "Belgium"),
    "SE": ("瑞典", "Sweden"),
    "MN": ("蒙古", "Mongolia"),
    "RU": ("俄罗斯", "Russia"),
    "PL": ("波兰", "Poland"),
    "BY": ("白俄罗斯", "Belarus"),
    "KZ": ("哈萨克斯坦", "Kazakhstan"),
    "SG": ("新加坡", "Singapore"),
    "MY": ("马来西亚", "Malaysia"),
}

# UN/ECE units of net content, as each language writes them after the number.
UNITS = {
    "GRM": ("克", "g"),
    "KGM": ("千克", "kg"),
    "MGM": ("毫克", "mg"),
    "MLT": ("毫升", "ml"),
    "LTR": ("升", "l"),
    "CLT": ("厘升", "cl"),
    "H87": ("件", "pieces"),
    "MTR": ("米", "m"),
    "CMT": ("厘米", "cm"),
    "MMT": ("毫米", "mm"),
}

# CBV 2.0 dispositions an inspection ends in, as words.
INSPECTION = {
    "conformant": ("合格", "passed"),
    "non_conformant": ("不合格", "failed"),
    "mismatch_instance": ("与单据不符", "did not match the documents"),
    "mismatch_class": ("与单据不符", "did not match the documents"),
    "mismatch_quantity": ("数量不符", "quantity did not match"),
    "needs_replacement": ("需要更换", "needs replacement"),
    "in_progress": ("进行中", "in progress"),
}


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


def zone(t: str, lang: str = "en") -> str:
    """The offset an RFC 3339 time was written in, as its label: ``UTC+09:00``, ``UTC``."""
    utc = TEXT[lang]["utc"]
    if t.endswith(("Z", "z")):
        return utc
    off = t[-6:]
    return utc if off in ("+00:00", "-00:00") else utc + off


def when(t: str, lang: str = "en") -> str:
    """A time to the minute in its own offset, with that offset's label:
    ``2026-09-03 14:05 (UTC+09:00)``."""
    return f"{t[:16].replace('T', ' ')} ({zone(t, lang)})"


def _name(names: dict[str, str], lang: str) -> tuple[str | None, str | None]:
    """(text, its lang attribute when it differs from the page's)."""
    if lang in names:
        return names[lang], None
    if "und" in names:
        return names["und"], None
    for other, text in names.items():
        return text, HTML_LANG.get(other, other)
    return None, None


def _party_name(p: dict[str, Any] | None, lang: str) -> str | None:
    """A party as the page names it: its registered English name on the English page
    (when it gave one), else its registered name, else its id."""
    if not p:
        return None
    if lang == "en" and p.get("nameEn"):
        return str(p["nameEn"])
    return str(p.get("name") or p["id"])


def _country(code: str | None, lang: str) -> str | None:
    return (_pair(COUNTRIES, code, lang) or code) if code else None


def _place_words(place: dict[str, Any] | None, t: dict[str, str], lang: str) -> str | None:
    """A place as words: its master-data name (and city, country), else the name of the
    party whose id is its GLN, else its GLN."""
    if not place:
        return None
    name, _ = _name(place.get("names") or {}, lang)
    city, _ = _name(place.get("city") or {}, lang)
    country = _country(place.get("country"), lang)
    if name is None:
        name = _party_name(
            {"id": f"{t['gln']} {place['gln']}", "name": place.get("name"), "nameEn": place.get("nameEn")},
            lang,
        )
    around = [x for x in (city, country) if x and x != name]
    if not around:
        return name
    return f"{name}（{'，'.join(around)}）" if lang == "zh" else f"{name}, {', '.join(around)}"


def _activity(step: dict[str, Any]) -> str:
    if step["disposition"] == "retail_sold" and step["stage"] == "logistics":
        return "delivered"
    if step["activity"] == "waybill" and step.get("bizStep") in ACTIVITIES:
        return str(step["bizStep"])
    return str(step["activity"])


def _what(step: dict[str, Any], lang: str) -> str:
    act = _activity(step)
    words = _pair(ACTIVITIES, act, lang) or act.replace("_", " ")
    if act == "transaction":
        docs = [d for d in (_pair(DOCUMENTS, k, lang) for k in step.get("documents") or ()) if d]
        if docs:
            sep = TEXT[lang]["list_sep"]
            return f"{words}{TEXT[lang]['colon']}{sep.join(dict.fromkeys(docs))}"
    return words


def _title(facts: dict[str, Any], name: str | None, t: dict[str, str]) -> str:
    if name:
        return name
    code = str(facts["code"])
    if facts["kind"] in ("class", "lot", "item") and "/01/" in code:
        return t["product_title"].format(gtin=code.split("/01/", 1)[1][:14])
    if facts["kind"] == "sscc" and "/00/" in code:
        return t["unit_title"].format(sscc=code.split("/00/", 1)[1][:18])
    return code


def page_view(facts: dict[str, Any], *, lang: str, path: str) -> dict[str, Any]:
    """The template's variables: facts turned into display strings in one language."""
    t = TEXT[lang]
    other = "en" if lang == "zh" else "zh"
    p = facts["product"]
    name, name_lang = _name(p["names"], lang)
    md = p.get("masterData") or {}
    origin = p["origin"]
    rows: list[tuple[str, str | None, str | None]] = []
    brand, brand_lang = _name(md.get("brand") or {}, lang)
    if brand:
        rows.append((t["brand_name"], brand, brand_lang))
    net = md.get("netQuantity")
    if net and net["unitCode"] in UNITS:
        unit = _pair(UNITS, net["unitCode"], lang)
        rows.append(
            (t["net_content"], f"{net['value']}{unit}" if lang == "zh" else f"{net['value']} {unit}", None)
        )
    elif md.get("netContent"):
        rows.append((t["net_content"], md["netContent"], None))
    if p["producer"]:
        rows.append((t["producer"], _party_name(p["producer"], lang), None))
    if origin:
        rows.append((t["origin"], f"{_country(origin, lang)} ({origin})", None))
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
        crow: list[tuple[str, str | None]] = [
            (t["declaration"], c["declaration"]),
            (t["declared"], when(c["declaredAt"], lang) if c["declaredAt"] else None),
        ]
        if facts["kind"] == "lot":
            if c.get("items"):
                crow.append(
                    (t["lot_released"], t["lot_released_count"].format(n=c["items"], k=c["itemsReleased"]))
                )
        else:
            crow.append(
                (t["released"], when(c["releasedAt"], lang) if c["releasedAt"] else t["not_released"])
            )
        if c.get("inspection"):
            crow.append(
                (
                    t["inspection"],
                    _pair(INSPECTION, c["inspection"], lang) or c["inspection"].replace("_", " "),
                )
            )
        clearance = {
            "procedure": proc,
            "words": words[0 if lang == "zh" else 1] if words else None,
            "other_words": words[1 if lang == "zh" else 0] if words else None,
            "other_lang": HTML_LANG[other],
            "rows": crow,
        }
    timeline = []
    for s in facts["timeline"]:
        who = _party_name(s["signer"], lang) or s["signer"]["id"]
        where = _place_words(s["place"], t, lang)
        timeline.append(
            {
                "when": when(s["eventTime"], lang),
                "datetime": s["eventTime"],
                "stage": _pair(STAGES, s["stage"], lang) or s["stage"],
                "stage_key": s["stage"],
                "what": _what(s, lang),
                "who": who,
                "where": None if where == who else where,  # at its own site: said once
            }
        )
    v = facts["verification"]
    w = v["witnesses"]
    if v["verified"]:
        key = "verified_sentence" if w["of"] else "verified_sentence_nw"
        sentence = t[key].format(
            entries=v["entries"],
            signatures=v["signatures"],
            checkpoint=v["checkpoint"],
            k=w["cosigned"],
            n=w["of"],
            quorum=w["quorum"],
        )
    else:
        bad = v["entries"] - v["entriesVerified"]
        # Entries that fail show nothing (page_facts); the problems below name them.
        sentence = t["unverified_sentence"].format(bad=bad) if bad else t["unverified_other"]
    configured = w.get("configured") or []
    witnesses = (
        t["explain_witnesses"].format(n=w["of"], quorum=w["quorum"], names=t["list_sep"].join(configured))
        if w["of"]
        else t["explain_no_witnesses"]
    )
    recalls = []
    for r in facts["recall"]["recalls"]:
        reason, reason_lang = _name(r["reason"] or {}, lang)
        recalls.append(
            {
                "when": _date(r["eventTime"]),
                "reason": reason,
                "reason_lang": reason_lang,
                "by": _party_name(r["by"], lang),
            }
        )
    fake = facts["counterfeit"]
    fake_lines = []
    if fake:
        if fake["regions"] >= 3:
            fake_lines.append(t["fake_regions"].format(regions=fake["regions"]))
        if fake["scansAfterSale"] > 20:
            fake_lines.append(t["fake_scans"].format(scans=fake["scansAfterSale"]))
    title = _title(facts, name, t)
    return {
        "t": t,
        "lang": lang,
        "html_lang": HTML_LANG[lang],
        "other": other,
        "other_html_lang": HTML_LANG[other],
        "switch_href": f"{path}?lang={other}",
        "title": title,
        "name": name,
        "name_lang": name_lang,
        "rows": rows,
        "clearance": clearance,
        "timeline": timeline,
        "sentence": sentence,
        "verified": v["verified"],
        "problems": v["problems"][:5],
        "recalls": recalls,
        "fake": fake_lines,
        "code": facts["code"],
        "path": path,
        "witnesses": witnesses,
    }


# The template reads its words and each step's fields as attributes (``t.colon``,
# ``s.when``): Jinja tries an attribute first, and on a dict every such read would raise and
# catch an AttributeError before the lookup that succeeds (about 90 on a page).
_WORDS = {lang: SimpleNamespace(**words) for lang, words in TEXT.items()}


def render_page(facts: dict[str, Any], *, lang: str, path: str) -> str:
    view = page_view(facts, lang=lang, path=path)
    view["t"] = _WORDS[lang]
    view["timeline"] = [SimpleNamespace(**s) for s in view["timeline"]]
    view["recalls"] = [SimpleNamespace(**r) for r in view["recalls"]]
    if view["clearance"] is not None:
        view["clearance"] = SimpleNamespace(**view["clearance"])
    return _env.get_template("page.html").render(**view)


def render_error(*, lang: str, status: int, title_key: str, message: str, path: str) -> str:
    t = TEXT[lang]
    other = "en" if lang == "zh" else "zh"
    return _env.get_template("error.html").render(
        t=t,
        lang=lang,
        html_lang=HTML_LANG[lang],
        other_html_lang=HTML_LANG[other],
        switch_href=f"{path}?lang={other}",
        title=t[title_key],
        message=message,
        status=status,
    )
