"""The event body schema, enforced fast, and the JSON Schema that states it for everyone.

``schemas/epcis-event.schema.json`` (draft 2020-12) is the contract other systems validate
against. Checking it with ``jsonschema`` costs far more per event than the ledger can spend
on batches of thousands, so ``validate_event_body`` runs a hand-specialised validator of
the same rules. It takes its vocabularies and each event type's fields from the schema
file itself, so the two cannot drift apart on a word or a field; the structural rules
(required fields, action, what each event type must name) are written out here and
cross-checked against ``jsonschema`` by the tests on every fixture, example and bad input.

``reference_validator`` (needs the ``jsonschema`` package, imported only when called)
compiles the schemas once with draft 2020-12 semantics and date-time format checking.
"""

from __future__ import annotations

import functools
import json
import re
import sysconfig
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final, NoReturn

from ledger.core.errors import ConfigError, MalformedInput

EVENT_SCHEMA: Final = "epcis-event.schema.json"
ENVELOPE_SCHEMA: Final = "envelope.schema.json"
CBEC_NAMESPACE: Final = "https://suyuan.example/cbec#"

# --- Where the schemas are --------------------------------------------------------------


def _candidate_dirs() -> Iterator[Path]:
    # A checkout or an editable install: schemas/ sits beside ledger/.
    yield Path(__file__).resolve().parents[2] / "schemas"
    # An installed wheel: the files are shipped as data files to <prefix>/share/suyuan/schemas.
    yield Path(sysconfig.get_path("data")) / "share" / "suyuan" / "schemas"


@functools.cache
def schema_dir() -> Path:
    """The directory holding the JSON Schemas and the CBEC vocabulary."""
    tried = []
    for d in _candidate_dirs():
        if (d / EVENT_SCHEMA).is_file():
            return d
        tried.append(str(d))
    raise ConfigError(f"the schema files are missing: {EVENT_SCHEMA} is in none of {', '.join(tried)}")


@functools.cache
def load_schema(name: str) -> Mapping[str, Any]:
    """One schema file, parsed once."""
    path = schema_dir() / name
    try:
        schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"schema file {path} cannot be read as JSON: {e}") from None
    return schema


# --- JSON paths in messages ---------------------------------------------------------------

_PLAIN_KEY: Final = re.compile(r"^[A-Za-z_@][A-Za-z0-9_]*$")


@functools.lru_cache(maxsize=1 << 12)
def child_path(parent: str, key: str | int) -> str:
    """``$.a``, ``$['cbec:orderInfo']``, ``$.list[3]``: a JSONPath naming one value."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _PLAIN_KEY.match(key) and not key.startswith("@"):
        return f"{parent}.{key}"
    return parent + "['" + key.replace("\\", "\\\\").replace("'", "\\'") + "']"


def _fail(path: str, what: str) -> NoReturn:
    raise MalformedInput(f"event body {path} {what}")


def _shown(value: object) -> str:
    """A value as a message quotes it: its repr, cut short (a refused value may be 1 MiB)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "\u2026"


# --- The shared primitive checks (the reference validator uses the same date-time check) --

_TIME: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$", re.ASCII)
_LANGUAGE_TAG: Final = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$", re.ASCII)


def is_event_time(value: object) -> bool:
    """An RFC 3339 date-time with seconds and an explicit offset that names a real instant."""
    return type(value) is str and _time_problem(value) is None


# The longest RFC 3339 time the pattern takes has 35 characters (nine fraction digits and
# an offset), and 36 with the newline "$" lets through: anything longer is no time, and is
# not cached (a cache keyed by 1 MB texts would hold gigabytes).
_LONGEST_TIME: Final = 36


def _time_problem(value: str) -> str | None:
    """Why ``value`` is no event time ("form": not RFC 3339 with seconds and offset,
    "date": no real date and time), or None."""
    return _cached_time_problem(value) if len(value) <= _LONGEST_TIME else "form"


@functools.lru_cache(maxsize=1 << 12)
def _cached_time_problem(value: str) -> str | None:
    """``_time_problem``, cached: a batch's events often share their times."""
    if not _TIME.match(value):
        return "form"
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "date"
    return None


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_RESERVED: Final = (
    ("urn:epcglobal:cbv:", "CBV 2.0"),
    ("https://ref.gs1.org/cbv/", "CBV 2.0"),
    ("cbec:", "CBEC"),
    (CBEC_NAMESPACE, "CBEC"),
)
_VOCAB_NAMES: Final = {
    "bizStep": "business step",
    "disposition": "disposition",
    "bizTransactionType": "business transaction type",
    "sourceDestType": "source/destination type",
    "errorReason": "error reason",
}


Check = Callable[[Any, str], None]


class _Compiled:
    """Everything the fast validator needs, derived once from the schema file."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        defs: Mapping[str, Any] = schema["$defs"]
        self.defs = defs
        self.uri = re.compile(defs["uri"]["pattern"])
        self.other_uri = re.compile(defs["otherUri"]["pattern"])
        self.max_uri: int = defs["uri"]["maxLength"]
        assert defs["otherUri"]["maxLength"] == self.max_uri
        self.lot = re.compile(defs["gs1Lot"]["pattern"])
        ext_pattern = next(iter(defs["ObjectEvent"]["patternProperties"]))
        self.ext_key = re.compile(ext_pattern)
        self.offset = re.compile(defs["eventTimeZoneOffset"]["pattern"])
        self.uom = re.compile(defs["quantityElement"]["properties"]["uom"]["pattern"])
        self.hex = re.compile(defs["sensorReport"]["properties"]["hexBinaryValue"]["pattern"])
        self.money = re.compile(defs["cbecMoney"]["pattern"])
        self.currency = re.compile(defs["cbecCurrency"]["pattern"])
        self.keyed_hash = re.compile(defs["cbecKeyedHash"]["pattern"])
        self.hs_code = re.compile(defs["cbec:hsCode"]["pattern"])
        self.weight = re.compile(defs["cbec:waybillInfo"]["properties"]["grossWeightKg"]["pattern"])
        self.countries = frozenset(defs["cbec:countryOfOrigin"]["enum"])
        self.decimal = re.compile(defs["cbecDecimal"]["pattern"])
        self.customs_code = re.compile(defs["cbecCustomsCode"]["pattern"])
        message = defs["cbec:customsMessage"]["properties"]
        self.messages = frozenset(message["message"]["enum"])
        self.app_types = frozenset(message["appType"]["enum"])
        self.message_guid = re.compile(message["guid"]["pattern"])
        self.app_status = re.compile(message["appStatus"]["pattern"])
        self.return_status = re.compile(message["status"]["pattern"])
        self.message_name = re.compile(message["key"]["propertyNames"]["pattern"])
        self.line_unit = re.compile(defs["cbec:lines"]["items"]["properties"]["unit"]["pattern"])
        self.procedures = tuple(defs["cbec:customsProcedure"]["enum"])
        self.measurement = frozenset(defs["measurementType"]["anyOf"][0]["enum"])
        self.alerts = frozenset(defs["sensorReport"]["properties"]["exception"]["anyOf"][0]["enum"])
        self.components = frozenset(defs["sensorReport"]["properties"]["component"]["anyOf"][0]["enum"])
        self.event_types = tuple(schema["properties"]["type"]["enum"])
        self.vocab = {name: self._vocabulary(defs[name]) for name in _VOCAB_NAMES}
        # Each event type's own fields, in the schema's order, and which it requires.
        self.fields = {t: tuple(defs[t]["properties"]) for t in self.event_types}
        self.required = {t: tuple(defs[t]["required"]) for t in self.event_types}
        self.ilmd_fields = frozenset(defs["ilmd"]["properties"])
        self.cbec_fields = frozenset(k for k in self.ilmd_fields if k.startswith("cbec:"))
        self.lot_fields = frozenset(
            k for k, v in defs["ilmd"]["properties"].items() if v == {"$ref": "#/$defs/gs1Lot"}
        )
        self.all_fields = frozenset(f for fs in self.fields.values() for f in fs)

    def _vocabulary(self, d: Mapping[str, Any]) -> frozenset[str]:
        """Every spelling of every term: bare words, CBV web URIs and URNs, cbec: terms."""
        words: set[str] = set()
        for branch in d["anyOf"]:
            if "$ref" in branch and branch["$ref"] != "#/$defs/otherUri":
                words.update(self.defs[branch["$ref"].rsplit("/", 1)[1]]["enum"])
            elif "pattern" in branch:
                # ^(prefix1|prefix2)(word1|word2|…)$ — expand to the finite set it matches.
                m = re.fullmatch(r"\^\((.*?)\)\((.*)\)\$", branch["pattern"])
                assert m is not None, branch["pattern"]
                prefixes = [p.replace("\\.", ".") for p in m.group(1).split("|")]
                terms = m.group(2).split("|")
                words.update(p + t for p in prefixes for t in terms)
        return frozenset(words)


@functools.cache
def _compiled() -> _Compiled:
    return _Compiled(load_schema(EVENT_SCHEMA))


# --- The fast validator -------------------------------------------------------------------


class _FastValidator:
    def __init__(self, c: _Compiled) -> None:
        self.c = c
        self.ext_keys: dict[str, bool] = {}  # extension keys recur in every event of a batch
        self.vocab_checks = {name: self._vocab_check(name) for name in c.vocab}
        self.field_checks: dict[str, Check] = {
            "@context": self._context,
            "type": lambda v, p: None,  # dispatched on before the fields are checked
            "eventTime": self._time,
            "recordTime": self._time,
            "eventTimeZoneOffset": self._offset,
            "eventID": self._uri,
            "certificationInfo": self._certification_info,
            "errorDeclaration": self._error_declaration,
            "action": self._action,
            "epcList": self._uri_list,
            "childEPCs": self._uri_list,
            "inputEPCList": self._uri_list,
            "outputEPCList": self._uri_list,
            "quantityList": self._quantity_list,
            "childQuantityList": self._quantity_list,
            "inputQuantityList": self._quantity_list,
            "outputQuantityList": self._quantity_list,
            "parentID": self._uri,
            "transformationID": self._uri,
            "bizStep": self.vocab_checks["bizStep"],
            "disposition": self.vocab_checks["disposition"],
            "persistentDisposition": self._persistent_disposition,
            "readPoint": self._location,
            "bizLocation": self._location,
            "bizTransactionList": self._biz_transactions,
            "sourceList": self._source_dest("source"),
            "destinationList": self._source_dest("destination"),
            "sensorElementList": self._sensor_elements,
            "ilmd": self._ilmd,
            "cbec:customsProcedure": self._procedure,
            "cbec:hsCode": self._hs_code,
            "cbec:countryOfOrigin": self._country,
            "cbec:orderInfo": self._order_info,
            "cbec:paymentInfo": self._payment_info,
            "cbec:waybillInfo": self._waybill_info,
            "cbec:evaluation": self._evaluation,
            "cbec:recall": self._recall,
            "cbec:customsMessage": self._customs_message,
            "cbec:lines": self._lines,
            **{k: self._lot for k in c.lot_fields},
        }
        self._init_structures()
        missing = c.all_fields - self.field_checks.keys()
        assert not missing, f"schema fields without a fast check: {sorted(missing)}"
        self.allowed = {t: frozenset(fs) for t, fs in c.fields.items()}
        self.paths = {f: child_path("$", f) for f in self.field_checks}
        self.ilmd_checks = {k: self.field_checks[k] for k in c.ilmd_fields}

    def _init_structures(self) -> None:
        """The field tables of the nested objects, built once."""
        uri, num, time = self._uri, self._number, self._time
        self.error_fields: dict[str, Check] = {
            "declarationTime": time,
            "reason": self.vocab_checks["errorReason"],
            "correctiveEventIDs": self._uri_list,
        }
        self.location_fields: dict[str, Check] = {"id": uri}
        self.quantity_fields: dict[str, Check] = {
            "epcClass": uri,
            "quantity": num,
            "uom": self._uom,
        }
        self.bt_fields: dict[str, Check] = {
            "type": self.vocab_checks["bizTransactionType"],
            "bizTransaction": uri,
        }
        self.source_fields: dict[str, Check] = {
            "type": self.vocab_checks["sourceDestType"],
            "source": uri,
        }
        self.destination_fields: dict[str, Check] = {
            "type": self.vocab_checks["sourceDestType"],
            "destination": uri,
        }
        self.pd_fields: dict[str, Check] = {
            "set": self._dispositions,
            "unset": self._dispositions,
        }
        self.sensor_element_fields: dict[str, Check] = {
            "sensorMetadata": self._sensor_metadata,
            "sensorReport": self._sensor_reports,
        }
        self.sensor_metadata_fields: dict[str, Check] = {
            "time": time,
            "startTime": time,
            "endTime": time,
            "deviceID": uri,
            "deviceMetadata": uri,
            "rawData": uri,
            "dataProcessingMethod": uri,
            "bizRules": uri,
        }
        report: dict[str, Check] = {
            "type": self._enum_or_uri(self.c.measurement, "a measurement type"),
            "exception": self._enum_or_uri(self.c.alerts, "a sensor alert type"),
            "component": self._enum_or_uri(self.c.components, "a component"),
            "time": time,
            "stringValue": self._string,
            "booleanValue": self._boolean,
            "hexBinaryValue": self._hex,
            "uom": self._string,
        }
        for k in (
            "deviceID",
            "deviceMetadata",
            "rawData",
            "dataProcessingMethod",
            "bizRules",
            "microorganism",
            "chemicalSubstance",
            "coordinateReferenceSystem",
            "uriValue",
        ):
            report[k] = uri
        for k in ("value", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue"):
            report[k] = num
        self.sensor_report_fields = report
        m = self._money
        self.order_fields: dict[str, Check] = {
            "goods": m,
            "freight": m,
            "tax": m,
            "discount": m,
            "paid": m,
            "currency": self._currency,
            "buyerIdHash": self._keyed_hash,
            "consigneeHash": self._keyed_hash,
        }
        self.payment_fields: dict[str, Check] = {
            "paid": m,
            "currency": self._currency,
            "buyerIdHash": self._keyed_hash,
        }
        self.waybill_fields: dict[str, Check] = {
            "freight": m,
            "currency": self._currency,
            "grossWeightKg": self._weight,
            "consigneeHash": self._keyed_hash,
        }
        self.evaluation_fields: dict[str, Check] = {"rating": self._rating, "text": self._text}
        self.recall_fields: dict[str, Check] = {"reason": self._reason, "scope": self._scope}
        self.message_fields: dict[str, Check] = {
            "message": self._message_type,
            "guid": self._message_guid,
            "document": self._message_guid,
            "appType": self._app_type,
            "appStatus": self._app_status,
            "status": self._return_status,
            "key": self._message_numbers(minimum=1),
            "references": self._message_numbers(),
            "responsible": self._codes(minimum=0),
            "onBehalfOf": self._codes(minimum=1),
            "transmitter": self._customs_code,
            "parties": self._parties,
        }
        self.line_fields: dict[str, Check] = {
            "gnum": self._gnum,
            "name": self._line_name,
            "item": self._uri,
            "quantity": self._decimal,
            "unit": self._line_unit,
            "hsCode": self._hs_code,
            "countryOfOrigin": self._country,
        }

    # -- the event ------------------------------------------------------------------------

    def validate(self, body: object) -> None:
        if not isinstance(body, Mapping):
            _fail("$", f"must be a JSON object holding one EPCIS event, not {_describe(body)}")
        etype = body.get("type")
        if type(etype) is not str or etype not in self.allowed:
            if etype is None:
                _fail("$.type", "is required: one of " + ", ".join(self.c.event_types))
            _fail(
                "$.type",
                f"{_shown(etype)} is not an EPCIS 2.0 event type: one of " + ", ".join(self.c.event_types),
            )
        for name in self.c.required[etype]:
            if name not in body:
                _fail(self.paths[name], f"is required for {_a(etype)}")
        allowed = self.allowed[etype]
        checks = self.field_checks
        paths = self.paths
        for key, value in body.items():
            if key in allowed:
                checks[key](value, paths[key])
            elif not self._extension_key(key):
                self._unknown_field(key, etype, "$", what=_a(etype))
        self._rules(etype, body)

    def _rules(self, etype: str, b: Mapping[str, Any]) -> None:
        action = b.get("action")
        if etype == "ObjectEvent":
            if not (
                "epcList" in b or b.get("quantityList") or (b.get("sensorElementList") and "readPoint" in b)
            ):
                _fail(
                    "$",
                    "must say what it is about: an epcList, a non-empty quantityList, "
                    "or a sensorElementList with a readPoint",
                )
            if "ilmd" in b and action != "ADD":
                _fail("$.ilmd", f"is allowed only when objects are created (action ADD), not with {action}")
        elif etype == "AggregationEvent" or etype == "AssociationEvent":
            if not (b.get("childEPCs") or b.get("childQuantityList") or action == "DELETE"):
                _fail(
                    "$",
                    f"must name its children in childEPCs or childQuantityList "
                    f"(only action DELETE may omit them) in {_a(etype)}",
                )
            if etype == "AggregationEvent" and action != "OBSERVE" and "parentID" not in b:
                _fail("$.parentID", f"is required for an AggregationEvent with action {action}")
        elif etype == "TransactionEvent":
            if not b["bizTransactionList"]:
                _fail("$.bizTransactionList", "must name at least one business transaction")
            if not ("epcList" in b or b.get("quantityList") or action == "DELETE"):
                _fail(
                    "$",
                    "must say what it is about: an epcList or a non-empty quantityList "
                    "(only action DELETE may omit them)",
                )
        else:  # TransformationEvent
            has_in = bool(b.get("inputEPCList") or b.get("inputQuantityList"))
            has_out = bool(b.get("outputEPCList") or b.get("outputQuantityList"))
            if not ((has_in and has_out) or ("transformationID" in b and (has_in or has_out))):
                _fail(
                    "$",
                    "must name inputs and outputs (inputEPCList or inputQuantityList, "
                    "outputEPCList or outputQuantityList), or a transformationID with at "
                    "least one of them",
                )

    def _extension_key(self, key: str) -> bool:
        known = self.ext_keys.get(key)
        if known is None:
            known = self.c.ext_key.match(key) is not None
            if len(self.ext_keys) < 1 << 12:
                self.ext_keys[key] = known
        return known

    def _unknown_field(self, key: str, etype: str | None, parent: str, *, what: str) -> NoReturn:
        path = child_path(parent, key)
        if key.startswith("cbec:") or key.startswith(CBEC_NAMESPACE):
            _fail(
                path,
                f"is not a term of the CBEC vocabulary ({CBEC_NAMESPACE}); "
                "its fields are " + ", ".join(sorted(self.c.cbec_fields)),
            )
        if etype == "TransformationEvent" and key == "action":
            _fail(path, "is not allowed in a TransformationEvent: a transformation has no action; remove it")
        if etype is not None and key in self.c.all_fields:
            _fail(path, f"is not a field of {what}; remove it")
        _fail(
            path, f"is not a field of {what}; an extension field needs a namespace prefix, like example:{key}"
        )

    def _closed_object(
        self,
        v: Any,
        path: str,
        what: str,
        fields: Mapping[str, Check],
        required: tuple[str, ...] = (),
        *,
        extensions: bool = False,
    ) -> None:
        if not isinstance(v, dict):
            _fail(path, f"must be {what} (a JSON object), not {_describe(v)}")
        for r in required:
            if r not in v:
                _fail(child_path(path, r), f"is required in {what}")
        for key, value in v.items():
            check = fields.get(key)
            if check is not None:
                check(value, child_path(path, key))
            elif not (extensions and self._extension_key(key)):
                self._unknown_field(key, None, path, what=what)

    # -- primitives -----------------------------------------------------------------------

    def _time(self, v: Any, path: str) -> None:
        problem = _time_problem(v) if type(v) is str else "form"
        if problem == "form":
            _fail(
                path,
                "must be an RFC 3339 date-time with seconds and its offset, like "
                "2026-11-27T13:05:00+08:00 or 2026-11-27T05:05:00Z",
            )
        if problem is not None:
            _fail(path, f"{_shown(v)} is not a real date and time")

    def _offset(self, v: Any, path: str) -> None:
        if type(v) is not str or not self.c.offset.match(v):
            _fail(path, f"must be a time zone offset from -14:00 to +14:00 like +08:00, not {_shown(v)}")

    def _uri(self, v: Any, path: str) -> None:
        if type(v) is not str or len(v) > self.c.max_uri or not self.c.uri.match(v):
            if type(v) is str and len(v) > self.c.max_uri:
                self._too_long(v, path)
            _fail(
                path, f"must be an absolute URI (an EPC URN, a GS1 Digital Link, urn:uuid:…), not {_shown(v)}"
            )

    def _too_long(self, v: str, path: str) -> NoReturn:
        _fail(
            path,
            f"is {len(v)} characters long; an identifier or URI in an event has at most "
            f"{self.c.max_uri} (the ledger indexes them)",
        )

    def _lot(self, v: Any, path: str) -> None:
        # fullmatch: the schema's "$" would also let a trailing newline through in Python.
        if type(v) is not str or not self.c.lot.fullmatch(v):
            if type(v) is str and v:
                bad = next((ch for ch in v if not self.c.lot.fullmatch(ch)), None)
                if bad is not None:
                    _fail(
                        path,
                        f"contains {bad!r}, which a GS1 lot number (AI 10) may not: "
                        "only letters, digits and !\"%&'()*+,-./:;<=>?_",
                    )
                _fail(path, f"is {len(v)} characters long; a GS1 lot number (AI 10) has at most 20")
            _fail(
                path,
                f"must be a GS1 lot number (AI 10): 1 to 20 letters, digits or "
                f"!\"%&'()*+,-./:;<=>?_, not {_shown(v)}",
            )

    def _uri_list(self, v: Any, path: str) -> None:
        if type(v) is not list:
            _fail(path, f"must be an array of URIs, not {_describe(v)}")
        uri, max_uri = self.c.uri, self.c.max_uri
        for i, x in enumerate(v):
            if type(x) is not str or len(x) > max_uri or not uri.match(x):
                self._uri(x, child_path(path, i))
        if len(set(v)) != len(v):
            _fail(path, "lists the same identifier twice; list each once")

    def _number(self, v: Any, path: str) -> None:
        if type(v) is not int and type(v) is not float:
            _fail(path, f"must be a number, not {_describe(v)}")

    def _string(self, v: Any, path: str) -> None:
        if type(v) is not str:
            _fail(path, f"must be a string, not {_describe(v)}")

    def _boolean(self, v: Any, path: str) -> None:
        if type(v) is not bool:
            _fail(path, f"must be true or false, not {_describe(v)}")

    def _any(self, v: Any, path: str) -> None:
        return None

    def _vocab_check(self, name: str) -> Check:
        accepted = self.c.vocab[name]
        other = self.c.other_uri
        max_uri = self.c.max_uri
        label = _VOCAB_NAMES[name]
        allows_cbec = any(w.startswith("cbec:") for w in accepted)

        def check(v: Any, path: str) -> None:
            if type(v) is not str:
                _fail(path, f"must be a {label} string, not {_describe(v)}")
            if v in accepted or (len(v) <= max_uri and other.match(v)):
                return
            if len(v) > max_uri:
                self._too_long(v, path)
            for prefix, vocabulary in _RESERVED:
                if v.startswith(prefix):
                    _fail(
                        path,
                        f"{_shown(v)} is not a {vocabulary} {label}; check the spelling "
                        "against schemas/README.md",
                    )
            extra = ", a cbec: term" if allows_cbec else ""
            _fail(
                path,
                f"{_shown(v)} is not a CBV 2.0 {label}{extra}, or an absolute URI of an extension vocabulary",
            )

        return check

    def _action(self, v: Any, path: str) -> None:
        if v != "ADD" and v != "OBSERVE" and v != "DELETE":
            _fail(path, f"must be ADD, OBSERVE or DELETE, not {_shown(v)}")

    # -- EPCIS structures -----------------------------------------------------------------

    def _context(self, v: Any, path: str) -> None:
        if type(v) is str:
            self._uri(v, path)
        elif type(v) is list:
            for i, x in enumerate(v):
                if type(x) is not dict:
                    self._uri(x, child_path(path, i))
        elif type(v) is not dict:
            _fail(
                path, f"must be a JSON-LD context: a URI, an object or an array of them, not {_describe(v)}"
            )

    def _certification_info(self, v: Any, path: str) -> None:
        if type(v) is list:
            for i, x in enumerate(v):
                self._uri(x, child_path(path, i))
        else:
            self._uri(v, path)

    def _error_declaration(self, v: Any, path: str) -> None:
        self._closed_object(
            v, path, "an errorDeclaration", self.error_fields, ("declarationTime",), extensions=True
        )

    def _location(self, v: Any, path: str) -> None:
        # The common shape, {"id": a URI}, checked inline; anything else goes the long way.
        if type(v) is dict and len(v) == 1:
            i = v.get("id")
            if type(i) is str and len(i) <= self.c.max_uri and self.c.uri.match(i):
                return
        self._closed_object(v, path, "a location", self.location_fields, ("id",), extensions=True)

    def _quantity_list(self, v: Any, path: str) -> None:
        if type(v) is not list:
            _fail(path, f"must be an array of quantity elements, not {_describe(v)}")
        uri, uom, max_uri = self.c.uri, self.c.uom, self.c.max_uri
        for i, q in enumerate(v):
            # The common shape, checked inline; anything else goes the long way for its message.
            if (
                type(q) is dict
                and len(q) <= 3
                and type(q.get("epcClass")) is str
                and len(q["epcClass"]) <= max_uri
                and uri.match(q["epcClass"])
            ):
                n = len(q) - 1
                if "quantity" in q:
                    if type(q["quantity"]) is int or type(q["quantity"]) is float:
                        n -= 1
                    else:
                        self._number(q["quantity"], child_path(child_path(path, i), "quantity"))
                if "uom" in q:
                    if type(q["uom"]) is str and uom.match(q["uom"]) and "quantity" in q:
                        n -= 1
                    else:
                        self._quantity_element(q, child_path(path, i))
                if n == 0:
                    continue
            self._quantity_element(q, child_path(path, i))

    def _quantity_element(self, q: Any, path: str) -> None:
        self._closed_object(q, path, "a quantity element", self.quantity_fields, ("epcClass",))
        if "uom" in q and "quantity" not in q:
            _fail(child_path(path, "quantity"), "is required when uom is given")

    def _uom(self, v: Any, path: str) -> None:
        if type(v) is not str or not self.c.uom.match(v):
            _fail(path, f"must be a UN/CEFACT Rec. 20 unit code like KGM or EA, not {_shown(v)}")

    def _biz_transactions(self, v: Any, path: str) -> None:
        if type(v) is not list:
            _fail(path, f"must be an array of business transactions, not {_describe(v)}")
        fields = self.bt_fields
        for i, x in enumerate(v):
            self._closed_object(x, child_path(path, i), "a business transaction", fields, ("bizTransaction",))

    def _source_dest(self, name: str) -> Check:
        def check(v: Any, path: str) -> None:
            if type(v) is not list:
                _fail(path, f"must be an array of {name}s, not {_describe(v)}")
            fields = self.source_fields if name == "source" else self.destination_fields
            for i, x in enumerate(v):
                self._closed_object(x, child_path(path, i), f"a {name}", fields, ("type", name))

        return check

    def _dispositions(self, lst: Any, path: str) -> None:
        if type(lst) is not list or not lst:
            _fail(path, "must be a non-empty array of dispositions")
        disposition = self.vocab_checks["disposition"]
        for i, x in enumerate(lst):
            disposition(x, child_path(path, i))
        if len(set(lst)) != len(lst):
            _fail(path, "lists the same disposition twice")

    def _persistent_disposition(self, v: Any, path: str) -> None:
        self._closed_object(v, path, "a persistentDisposition", self.pd_fields)
        if not v:
            _fail(path, "must set or unset at least one disposition")

    def _sensor_elements(self, v: Any, path: str) -> None:
        if type(v) is not list:
            _fail(path, f"must be an array of sensor elements, not {_describe(v)}")
        for i, x in enumerate(v):
            self._closed_object(
                x,
                child_path(path, i),
                "a sensor element",
                self.sensor_element_fields,
                ("sensorReport",),
                extensions=True,
            )

    def _sensor_metadata(self, v: Any, path: str) -> None:
        self._closed_object(v, path, "sensorMetadata", self.sensor_metadata_fields, extensions=True)

    def _sensor_reports(self, v: Any, path: str) -> None:
        if type(v) is not list or not v:
            _fail(path, "must be a non-empty array of sensor reports")
        for i, x in enumerate(v):
            self._closed_object(
                x, child_path(path, i), "a sensor report", self.sensor_report_fields, extensions=True
            )

    def _enum_or_uri(self, words: frozenset[str], what: str) -> Check:
        def check(v: Any, path: str) -> None:
            if type(v) is str and v not in words and len(v) > self.c.max_uri:
                self._too_long(v, path)
            if type(v) is not str or (v not in words and not self.c.uri.match(v)):
                _fail(path, f"{_shown(v)} is not {what} of GS1 or an absolute URI")

        return check

    def _hex(self, v: Any, path: str) -> None:
        if type(v) is not str or not self.c.hex.match(v):
            _fail(path, f"must be hexadecimal digits, not {_shown(v)}")

    def _ilmd(self, v: Any, path: str) -> None:
        if not isinstance(v, dict):
            _fail(path, f"must be an object of master data, not {_describe(v)}")
        for key, value in v.items():
            check = self.ilmd_checks.get(key)
            if check is not None:
                check(value, child_path(path, key))
            elif not self._extension_key(key):
                if key.startswith("cbec:") or key.startswith(CBEC_NAMESPACE):
                    self._unknown_field(key, None, path, what="ilmd")
                _fail(
                    child_path(path, key),
                    "is not a master data attribute: ilmd keys are "
                    f"URIs or prefixed names, like cbvmda:{key}",
                )

    # -- CBEC fields ----------------------------------------------------------------------

    def _procedure(self, v: Any, path: str) -> None:
        if type(v) is not str or v not in self.c.procedures:
            _fail(
                path,
                "must be a CBEC customs procedure code as a string: "
                + ", ".join(self.c.procedures)
                + f", not {_shown(v)}",
            )

    def _hs_code(self, v: Any, path: str) -> None:
        if type(v) is not str or not self.c.hs_code.match(v):
            _fail(path, f"must be an HS code of 6, 8 or 10 digits as a string, not {_shown(v)}")

    def _country(self, v: Any, path: str) -> None:
        if type(v) is not str or v not in self.c.countries:
            _fail(path, f"must be an ISO 3166-1 alpha-2 country code like JP, not {_shown(v)}")

    def _money(self, v: Any, path: str) -> None:
        if type(v) is not str or not self.c.money.match(v):
            _fail(
                path,
                f"must be an amount as a decimal string with at most two decimals, "
                f'like "298.00", not {_shown(v)}',
            )

    def _currency(self, v: Any, path: str) -> None:
        if type(v) is not str or not self.c.currency.match(v):
            _fail(path, f"must be an ISO 4217 currency code like CNY, not {_shown(v)}")

    def _keyed_hash(self, v: Any, path: str) -> None:
        if type(v) is not str or not self.c.keyed_hash.match(v):
            _fail(
                path,
                "must be hmac-sha256: and 64 lowercase hex characters (a keyed hash of "
                "the ID number, never the number itself)",
            )

    def _order_info(self, v: Any, path: str) -> None:
        self._closed_object(
            v,
            path,
            "cbec:orderInfo",
            self.order_fields,
            ("goods", "freight", "tax", "discount", "paid", "currency", "buyerIdHash"),
        )

    def _payment_info(self, v: Any, path: str) -> None:
        self._closed_object(
            v, path, "cbec:paymentInfo", self.payment_fields, ("paid", "currency", "buyerIdHash")
        )

    def _weight(self, w: Any, path: str) -> None:
        if type(w) is not str or not self.c.weight.match(w):
            _fail(path, f'must be a weight in kilograms as a decimal string like "1.250", not {_shown(w)}')

    def _waybill_info(self, v: Any, path: str) -> None:
        self._closed_object(v, path, "cbec:waybillInfo", self.waybill_fields, ("freight", "currency"))

    def _rating(self, r: Any, path: str) -> None:
        whole = type(r) is int or (type(r) is float and r.is_integer())
        if not whole or not 1 <= r <= 5:
            _fail(path, f"must be a whole number of stars from 1 to 5, not {_shown(r)}")

    def _text(self, t: Any, path: str) -> None:
        if type(t) is not str or len(t) > 2000:
            _fail(path, "must be a string of at most 2000 characters")

    def _evaluation(self, v: Any, path: str) -> None:
        self._closed_object(v, path, "cbec:evaluation", self.evaluation_fields, ("rating",))

    def _reason(self, t: Any, path: str) -> None:
        if type(t) is list and 1 <= len(t) <= 10:
            for i, x in enumerate(t):
                where = child_path(path, i)
                if type(x) is not dict or x.keys() != {"@language", "@value"}:
                    _fail(where, 'must be {"@language", "@value"}: the reason in one language')
                if type(x["@language"]) is not str or not _LANGUAGE_TAG.match(x["@language"]):
                    _fail(child_path(where, "@language"), "must be a language tag such as zh or en")
                if type(x["@value"]) is not str or not 1 <= len(x["@value"]) <= 2000:
                    _fail(child_path(where, "@value"), "must say why, in 1 to 2000 characters")
            return
        if type(t) is not str or not 1 <= len(t) <= 2000:
            _fail(
                path,
                "must say why, in 1 to 2000 characters, or be a list of 1 to 10 "
                '{"@language", "@value"} (the reason in several languages)',
            )

    def _scope(self, s: Any, path: str) -> None:
        if type(s) is not list or not s:
            _fail(path, "must list the recalled products, lots or items (at least one URI)")
        self._uri_list(s, path)

    def _recall(self, v: Any, path: str) -> None:
        self._closed_object(v, path, "cbec:recall", self.recall_fields, ("reason", "scope"))

    # -- customs messages (ledger/epcis/ceb.py writes these) ----------------------------------------

    def _customs_message(self, v: Any, path: str) -> None:
        self._closed_object(v, path, "cbec:customsMessage", self.message_fields, ("message", "guid", "key"))

    def _message_type(self, v: Any, path: str) -> None:
        if type(v) is not str or v not in self.c.messages:
            _fail(
                path,
                "must name a customs message: " + ", ".join(sorted(self.c.messages)) + f", not {_shown(v)}",
            )

    def _message_guid(self, v: Any, path: str) -> None:
        if type(v) is not str or not self.c.message_guid.match(v):
            _fail(path, f"must be 1 to 64 characters without white space, not {_shown(v)}")

    def _app_type(self, v: Any, path: str) -> None:
        if type(v) is not str or v not in self.c.app_types:
            _fail(path, f'must be "1" (new), "2" (change) or "3" (delete), not {_shown(v)}')

    def _app_status(self, v: Any, path: str) -> None:
        if type(v) is not str or not self.c.app_status.match(v):
            _fail(path, f"must be 1 to 3 characters without white space, not {_shown(v)}")

    def _return_status(self, v: Any, path: str) -> None:
        if type(v) is not str or not self.c.return_status.match(v):
            _fail(path, f'must be a customs return status such as "800" or "-621004", not {_shown(v)}')

    def _message_numbers(self, *, minimum: int = 0) -> Check:
        def check(v: Any, path: str) -> None:
            if not isinstance(v, dict) or len(v) < minimum:
                _fail(
                    path,
                    "must be an object of field names and their values"
                    + (" (at least one)" if minimum else ""),
                )
            for k, x in v.items():
                if not self.c.message_name.match(k):
                    _fail(child_path(path, k), "is not a message field name (1 to 30 letters)")
                if type(x) is not str or not 1 <= len(x) <= 100:
                    _fail(child_path(path, k), "must be a string of 1 to 100 characters")

        return check

    def _customs_code(self, v: Any, path: str) -> None:
        if type(v) is not str or not self.c.customs_code.match(v):
            _fail(
                path,
                f"must be an enterprise's customs code (1 to 18 characters without white "
                f"space), not {_shown(v)}",
            )

    def _codes(self, *, minimum: int) -> Check:
        def check(v: Any, path: str) -> None:
            if type(v) is not list or not minimum <= len(v) <= 4 or len(set(map(repr, v))) != len(v):
                _fail(path, f"must be a list of {minimum} to 4 distinct customs codes")
            for i, x in enumerate(v):
                self._customs_code(x, child_path(path, i))

        return check

    def _parties(self, v: Any, path: str) -> None:
        if type(v) is not list or not 1 <= len(v) <= 4 or len(set(map(repr, v))) != len(v):
            _fail(path, "must be a list of 1 to 4 distinct party identifiers")
        for i, x in enumerate(v):
            self._uri(x, child_path(path, i))

    def _lines(self, v: Any, path: str) -> None:
        if type(v) is not list or not 1 <= len(v) <= 999:
            _fail(path, "must be a list of 1 to 999 lines")
        for i, x in enumerate(v):
            self._closed_object(x, child_path(path, i), "a line", self.line_fields, ("gnum", "name"))

    def _gnum(self, v: Any, path: str) -> None:
        whole = type(v) is int or (type(v) is float and v.is_integer())
        if not whole or not 1 <= v <= 2147483647:
            _fail(path, f"must be a line number from 1, not {_shown(v)}")

    def _line_name(self, v: Any, path: str) -> None:
        if type(v) is not str or not 1 <= len(v) <= 250:
            _fail(path, "must be a name of 1 to 250 characters")

    def _decimal(self, v: Any, path: str) -> None:
        if type(v) is not str or not self.c.decimal.match(v):
            _fail(path, f"must be a quantity as a decimal string with at most five decimals, not {_shown(v)}")

    def _line_unit(self, v: Any, path: str) -> None:
        if type(v) is not str or not self.c.line_unit.match(v):
            _fail(path, f"must be a unit code of 1 to 3 letters or digits, not {_shown(v)}")


def _a(event_type: str) -> str:
    article = "an" if event_type[0] in "AEIOU" else "a"
    return f"{article} {event_type}"


@functools.cache
def _fast() -> _FastValidator:
    return _FastValidator(_compiled())


def validate_event_body(body: Mapping[str, Any]) -> None:
    """Refuse an event body that is not one well-formed EPCIS 2.0 event with CBEC terms.

    Raises ``MalformedInput`` whose message names the JSON path, e.g.
    ``event body $.bizTransactionList is required for a TransactionEvent``.
    """
    _fast().validate(body)


# --- The reference: jsonschema over the same files --------------------------------------


@functools.cache
def reference_validator(name: str = EVENT_SCHEMA) -> Any:
    """A ``jsonschema`` Draft 2020-12 validator of one schema file, compiled once.

    Both schema files are registered, so the envelope schema's reference to the event
    schema resolves without any network access. date-time is checked by ``is_event_time``.
    """
    import jsonschema  # type: ignore[import-untyped]  # noqa: I001 - optional, tests only
    from referencing import Registry, Resource

    resources = []
    for n in (EVENT_SCHEMA, ENVELOPE_SCHEMA):
        s = load_schema(n)
        resources.append((s["$id"], Resource.from_contents(s)))
    registry: Any = Registry().with_resources(resources)
    formats = jsonschema.FormatChecker(formats=())
    formats.checks("date-time")(is_event_time)
    cls = jsonschema.Draft202012Validator
    schema = load_schema(name)
    cls.check_schema(schema)
    return cls(schema, registry=registry, format_checker=formats)


def reference_error_paths(instance: object, name: str = EVENT_SCHEMA) -> list[str]:
    """The JSON path of every error ``jsonschema`` finds, sub-errors of anyOf included.

    A missing required property and an unexpected property are named by their own path
    (``$.bizTransactionList``), as ``validate_event_body`` names them.
    """
    out: list[str] = []

    def walk(err: Any) -> None:
        path = "$"
        for part in err.absolute_path:
            path = child_path(path, part)
        if err.validator == "required":
            out.extend(child_path(path, r) for r in err.validator_value if r not in err.instance)
        elif err.validator == "dependentRequired":
            out.extend(
                child_path(path, r)
                for k, needs in err.validator_value.items()
                if k in err.instance
                for r in needs
                if r not in err.instance
            )
        elif err.validator == "additionalProperties" and isinstance(err.instance, dict):
            props = err.schema.get("properties", {})
            patterns = [re.compile(p) for p in err.schema.get("patternProperties", {})]
            out.extend(
                child_path(path, k)
                for k in err.instance
                if k not in props and not any(p.search(k) for p in patterns)
            )
        else:
            out.append(path)
        for sub in err.context or ():
            walk(sub)

    for e in reference_validator(name).iter_errors(instance):
        walk(e)
    return out


def validate_event_body_reference(body: object) -> None:
    """``validate_event_body`` done by ``jsonschema``: slower, for cross-checking."""
    import jsonschema

    err = jsonschema.exceptions.best_match(reference_validator().iter_errors(body))
    if err is not None:
        path = "$"
        for part in err.absolute_path:
            path = child_path(path, part)
        raise MalformedInput(f"event body {path} {err.message}")
