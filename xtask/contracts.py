#!/usr/bin/env python3
"""Contract checks: the sandboxes' answers and the hub's requests against the
providers' own published API definitions.

    python xtask/contracts.py --specs tests/contracts --traffic <dir>

`<dir>` holds the JSON-lines files the sandboxes write when the environment
variable HUB_SANDBOX_RECORD names it (sandboxes/src/common/record.rs): one
exchange a line. For each exchange:

- Square, Xero, Toast (OpenAPI 3 / Swagger 2): the operation is found by
  method and path template; an exchange matching none is a violation ("not in
  the definition") unless `allowed-endpoints.txt` lists it with a reason. The
  request body is validated against the operation's requestBody (Swagger 2:
  `in: body` parameter) schema, and the response body against the schema of
  its status (else `NXX`, else `default`), with `$ref`s resolved and the
  schemas converted to JSON Schema (`nullable`, `x-nullable`, boolean
  `exclusiveMinimum`, ...). Formats are not checked.
- "Fields we invent": every property name of a request or response body, at
  any depth where the schema defines `properties` (and no
  `additionalProperties` schema), that the schema does not define is a
  violation unless `allowed-extra-fields.txt` lists it with a reason.
- QuickBooks (XSD): the entity bodies (writes, reads, query responses, batch
  requests and responses, faults) are walked against the complex types of
  Finance.xsd / IntuitBaseTypes.xsd / IntuitRestServiceDef.xsd (following
  `extension base`, element refs and substitution groups, attributes and
  simpleContent `value`): every property must be an element or attribute of
  its type, and every value of an enumerated simple type must be in the
  enumeration.

Exits 1 listing each violation (grouped: provider, method, route, what, where
in the body, how many exchanges, one example path), 0 when there is none.
Prints a summary: exchanges checked per provider and operation, operations
of each definition covered.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

try:
    _YamlLoader = yaml.CSafeLoader
except AttributeError:  # PyYAML without libyaml
    _YamlLoader = yaml.SafeLoader

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

# The OpenAPI / Swagger definitions of each provider, relative to --specs.
OPENAPI_DOCS = {
    "square": ["square/api.json"],
    "xero": ["xero/xero_accounting.yaml", "xero/xero-identity.yaml"],
    "toast": [
        "toast/toast-authentication-openapi.yaml",
        "toast/toast-menus-openapi.yaml",
        "toast/toast-orders-openapi.yaml",
        "toast/toast-restaurants-openapi.yaml",
    ],
}
QBO_XSDS = [
    "quickbooks/IntuitBaseTypes.xsd",
    "quickbooks/IntuitNamesTypes.xsd",
    "quickbooks/Finance.xsd",
    "quickbooks/Report.xsd",
    "quickbooks/IntuitRestServiceDef.xsd",
]

# Statuses a definition rarely lists (transport, auth, throttling, injected
# faults): an undeclared one of these is a note, not a violation.
GENERIC_STATUSES = {401, 403, 404, 429, 500, 502, 503, 504}

# Providers whose servers match paths in any letter case (.NET services):
# Xero's definitions spell `/Connections`, Xero's docs and the hub `/connections`.
CASE_INSENSITIVE_PATHS = {"xero"}

# Square documents its errors inside each operation's response type (every
# `...Response` has `errors: [Error]`) and lists only `200`: a body of another
# status is checked against the `200` schema.
ERRORS_IN_RESPONSE_TYPE = {"square"}


# --------------------------------------------------------------------------
# Findings


@dataclasses.dataclass(frozen=True)
class Finding:
    provider: str
    method: str
    route: str  # the definition's template, or the recorded path
    kind: str  # "not in the definition", "schema", "invented field", ...
    side: str  # "request", "response", ""
    where: str  # JSON pointer in the body, indices as *
    what: str

    def key(self) -> tuple:
        return (self.provider, self.method, self.route, self.kind, self.side, self.where, self.what)


class Report:
    def __init__(self) -> None:
        self.violations: dict[tuple, list] = {}  # key -> [finding, count, example path]
        self.notes: dict[tuple, list] = {}
        self.checked: collections.Counter = collections.Counter()  # (provider, op label)
        self.allowed: collections.Counter = collections.Counter()  # (provider, reason)
        self.allowed_fields: collections.Counter = collections.Counter()
        self.skipped = 0  # bodies whose every shape was already validated

    def add(self, f: Finding, path: str, note: bool = False) -> None:
        bucket = self.notes if note else self.violations
        entry = bucket.setdefault(f.key(), [f, 0, path])
        entry[1] += 1


_DIGIT = re.compile(r"[0-9]")


def shape(value: Any, where: str = "", out: set | None = None) -> set:
    """What a body's validity depends on, short of its unique values: every
    (pointer with indices as *, JSON type, and for objects the key set, for
    short digit-free strings the value, which may be an enumeration's)."""
    if out is None:
        out = set()
    if isinstance(value, dict):
        out.add((where, "object", frozenset(value)))
        for k, v in value.items():
            shape(v, where + "/" + k, out)
    elif isinstance(value, list):
        out.add((where, "array", None))
        for v in value:
            shape(v, where + "/*", out)
    elif isinstance(value, str):
        out.add((where, "string", value if len(value) <= 40 and not _DIGIT.search(value) else None))
    elif isinstance(value, bool):
        out.add((where, "boolean", None))
    elif isinstance(value, (int, float)):
        out.add((where, "number", isinstance(value, int)))
    else:
        out.add((where, "null", None))
    return out


def refused_elements(ex: dict) -> bool:
    """Whether a 200 answer refused any of its elements (Xero,
    `summarizeErrors=false`: `StatusAttributeString` ERROR)."""
    body = (ex.get("response") or {}).get("body")
    if not isinstance(body, dict):
        return False
    for value in body.values():
        if isinstance(value, list) and any(
            isinstance(e, dict) and e.get("StatusAttributeString") == "ERROR" for e in value
        ):
            return True
    return False


def norm_where(parts: Iterable[Any]) -> str:
    return "".join("/*" if isinstance(p, int) else "/" + str(p) for p in parts)


# --------------------------------------------------------------------------
# Allow-lists


@dataclasses.dataclass
class AllowedEndpoint:
    provider: str
    method: str
    pattern: re.Pattern
    reason: str


def template_regex(template: str, ignore_case: bool = False) -> re.Pattern:
    out = ""
    for piece in re.split(r"(\{[^}/]+\}|\*\*|\*)", template):
        if piece == "**":
            out += ".*"
        elif piece == "*" or (piece.startswith("{") and piece.endswith("}")):
            out += "[^/]+"
        else:
            out += re.escape(piece)
    return re.compile("^" + out + "$", re.IGNORECASE if ignore_case else 0)


def load_allowed_endpoints(path: Path) -> list[AllowedEndpoint]:
    """`provider METHOD path-template reason...` a line (`*` any method,
    `{x}` or `*` one segment, `**` anything)."""
    out = []
    if not path.exists():
        return out
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 3)
        if len(parts) < 4:
            raise SystemExit(f"{path}:{n}: want `provider METHOD path reason`, got {line!r}")
        provider, method, template, reason = parts
        out.append(AllowedEndpoint(provider, method.upper(), template_regex(template), reason))
    return out


@dataclasses.dataclass
class AllowedField:
    provider: str
    side: str
    pattern: re.Pattern
    reason: str


def load_allowed_fields(path: Path) -> list[AllowedField]:
    """`provider side pointer reason...` a line: side `request`, `response`
    or `*`; pointer as reported (`/a/*/b`), `*` one segment, `**` any."""
    out = []
    if not path.exists():
        return out
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 3)
        if len(parts) < 4:
            raise SystemExit(f"{path}:{n}: want `provider side pointer reason`, got {line!r}")
        provider, side, pointer, reason = parts
        out.append(AllowedField(provider, side, template_regex(pointer), reason))
    return out


# --------------------------------------------------------------------------
# OpenAPI 3 / Swagger 2 -> JSON Schema

_SCHEMA_REF = re.compile(r"^#/(?:components/schemas|definitions)/([^/]+)$")
_KEEP = {
    "type", "enum", "const", "required", "minimum", "maximum", "minLength", "maxLength",
    "pattern", "minItems", "maxItems", "uniqueItems", "multipleOf", "minProperties",
    "maxProperties", "format",
}


def _pointer(doc: dict, ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"external $ref not supported: {ref}")
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part]
    return node


def deref(doc: dict, node: Any) -> Any:
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        node = _pointer(doc, node["$ref"])
        seen += 1
        if seen > 50:
            raise ValueError("$ref loop")
    return node


def _or_null(out: dict) -> dict:
    if "type" in out:
        t = out["type"]
        out = {**out, "type": [t, "null"] if isinstance(t, str) else list(t) + ["null"]}
        if "enum" in out and None not in out["enum"]:
            out["enum"] = list(out["enum"]) + [None]
        return out
    if any(k in out for k in ("allOf", "anyOf", "oneOf", "$ref")):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def convert(doc: dict, s: Any, depth: int = 0, optional_null: bool = False) -> Any:
    """An OpenAPI 3.0 / Swagger 2 schema object as JSON Schema 2020-12
    (component refs point into `$defs`).

    `optional_null` (Swagger 2, which cannot say `nullable`): a property not
    listed in `required` may be null. Toast's own responses carry nulls for
    absent optional members (`"voidDate": null`, `"externalId": null`)."""
    if not isinstance(s, dict):
        return s
    nullable = bool(s.get("nullable") or s.get("x-nullable"))
    if "$ref" in s:
        m = _SCHEMA_REF.match(s["$ref"])
        if m:
            out: dict = {"$ref": "#/$defs/" + m.group(1)}
        elif depth < 20:
            out = convert(doc, _pointer(doc, s["$ref"]), depth + 1, optional_null)
        else:
            out = {}
        return {"anyOf": [out, {"type": "null"}]} if nullable else out
    out = {}
    required = s.get("required") if isinstance(s.get("required"), list) else []
    for k, v in s.items():
        if k in ("properties", "patternProperties"):
            out[k] = {}
            for pk, pv in (v or {}).items():
                c = convert(doc, pv, depth, optional_null)
                if optional_null and k == "properties" and pk not in required and isinstance(c, dict):
                    c = _or_null(c)
                out[k][pk] = c
        elif k in ("items", "additionalProperties", "not"):
            out[k] = convert(doc, v, depth, optional_null) if isinstance(v, dict) else v
        elif k in ("allOf", "anyOf", "oneOf"):
            out[k] = [convert(doc, x, depth, optional_null) for x in v]
        elif k in _KEEP:
            out[k] = v
    if out.get("type") == "file":
        del out["type"]
    if isinstance(out.get("required"), list) and not out["required"]:
        del out["required"]
    if isinstance(out.get("required"), bool):  # Swagger 2 parameter-style
        del out["required"]
    for bound, excl in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if s.get(excl) is True and bound in out:
            out[excl] = out.pop(bound)
    if "items" in out and out.get("type") is None and "properties" not in out:
        out["type"] = "array"
    if nullable:
        out = _or_null(out)
    return out


@dataclasses.dataclass
class Operation:
    provider: str
    doc: "OpenApiDoc"
    method: str
    template: str  # full path as served (prefix + definition path)
    regex: re.Pattern
    literal: int
    op: dict
    path_item: dict

    @property
    def label(self) -> str:
        oid = self.op.get("operationId")
        return f"{self.method} {self.template}" + (f" ({oid})" if oid else "")


class OpenApiDoc:
    def __init__(self, provider: str, path: Path):
        self.provider = provider
        self.path = path
        text = path.read_text()
        self.raw: dict = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_YamlLoader)
        self.swagger2 = str(self.raw.get("swagger", "")).startswith("2")
        if self.swagger2:
            prefix = self.raw.get("basePath", "") or ""
            schemas = self.raw.get("definitions", {}) or {}
        else:
            servers = self.raw.get("servers") or [{"url": ""}]
            prefix = re.sub(r"^[a-z]+://[^/]+", "", servers[0].get("url", ""))
            schemas = (self.raw.get("components") or {}).get("schemas", {}) or {}
        self.prefix = prefix.rstrip("/")
        self.defs = {name: self.convert(sch) for name, sch in schemas.items()}
        self.schemas_raw = schemas
        self.ops: list[Operation] = []
        for p, item in (self.raw.get("paths") or {}).items():
            item = deref(self.raw, item)
            full = self.prefix + p
            literal = len(re.sub(r"\{[^}]+\}", "", full))
            for m in HTTP_METHODS:
                if m in item:
                    regex = template_regex(full, provider in CASE_INSENSITIVE_PATHS)
                    self.ops.append(Operation(provider, self, m.upper(), full, regex, literal, item[m], item))
        self._validators: dict = {}

    def convert(self, schema: Any) -> Any:
        return convert(self.raw, schema, 0, self.swagger2)

    def with_defs(self, schema: dict) -> dict:
        return {**schema, "$defs": self.defs}

    def validator(self, key: tuple, schema: dict):
        v = self._validators.get(key)
        if v is None:
            v = jsonschema.Draft202012Validator(self.with_defs(schema))
            self._validators[key] = v
        return v

    # -- the schemas of an operation

    def response_schema(self, op: Operation, status: int) -> tuple[str | None, dict | None]:
        """(the response key used, its JSON schema) or (None, None) when the
        status is not declared."""
        responses = op.op.get("responses") or {}
        for key in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default"):
            if key in responses:
                resp = deref(self.raw, responses[key])
                if self.swagger2:
                    sch = resp.get("schema")
                else:
                    sch = _json_content_schema(resp.get("content"))
                return key, (self.convert(sch) if sch is not None else None)
        if self.provider in ERRORS_IN_RESPONSE_TYPE and status != 200 and "200" in responses:
            return "200", self.response_schema(op, 200)[1]
        return None, None

    def request_schema(self, op: Operation) -> dict | None:
        if self.swagger2:
            for prm in list(op.path_item.get("parameters") or []) + list(op.op.get("parameters") or []):
                prm = deref(self.raw, prm)
                if prm.get("in") == "body" and "schema" in prm:
                    return self.convert(prm["schema"])
            return None
        body = op.op.get("requestBody")
        if body is None:
            return None
        body = deref(self.raw, body)
        sch = _json_content_schema(body.get("content"))
        return self.convert(sch) if sch is not None else None

    def resolve(self, schema: Any) -> Any:
        """Follows `#/$defs/` refs of a converted schema."""
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 50:
            ref = schema["$ref"]
            if not ref.startswith("#/$defs/"):
                return {}
            schema = self.defs.get(ref[len("#/$defs/"):], {})
            seen += 1
        return schema


def _json_content_schema(content: dict | None) -> dict | None:
    if not content:
        return None
    for ct in ("application/json", "application/json; charset=utf-8", "text/json", "*/*"):
        if ct in content and "schema" in content[ct]:
            return content[ct]["schema"]
    for ct, media in content.items():
        if "json" in ct and "schema" in media:
            return media["schema"]
    return None


# -- the "fields we invent" walk


def _collect(doc: OpenApiDoc, schema: Any, props: dict, state: dict, depth: int = 0) -> None:
    """Merges, into `props`, the properties a (converted) schema and its
    allOf/anyOf/oneOf branches define; notes whether it defines any
    (`state['defined']`), leaves extra keys free (`state['free']`), or gives
    item schemas (`state['items']`)."""
    s = doc.resolve(schema)
    if not isinstance(s, dict) or depth > 30:
        return
    if "properties" in s:
        state["defined"] = True
        for k, v in s["properties"].items():
            props.setdefault(k, v)
    addl = s.get("additionalProperties")
    if addl is True or (isinstance(addl, dict) and addl):
        state["free"] = True
        state.setdefault("addl", addl if isinstance(addl, dict) else None)
    if "patternProperties" in s:
        state["free"] = True
    if isinstance(s.get("items"), dict):
        state.setdefault("items", s["items"])
    for comb in ("allOf", "anyOf", "oneOf"):
        for branch in s.get(comb, []):
            _collect(doc, branch, props, state, depth + 1)


def invented_fields(doc: OpenApiDoc, instance: Any, schema: Any, where: list, out: list, depth: int = 0) -> None:
    if depth > 60 or schema is None:
        return
    props: dict = {}
    state: dict = {}
    _collect(doc, schema, props, state)
    if isinstance(instance, dict):
        for k, v in instance.items():
            sub = props.get(k)
            if sub is None and state.get("defined") and not state.get("free"):
                close = [p for p in props if p.lower() == k.lower()]
                hint = f" (the definition spells it {close[0]!r})" if close else ""
                out.append((where + [k], f"field {k!r} is not in the definition{hint}"))
                continue
            if sub is None:
                sub = state.get("addl")
            if sub is not None:
                invented_fields(doc, v, sub, where + [k], out, depth + 1)
    elif isinstance(instance, list) and state.get("items") is not None:
        for i, x in enumerate(instance):
            invented_fields(doc, x, state["items"], where + [i], out, depth + 1)


def canonical_case(doc: OpenApiDoc, instance: Any, schema: Any, renamed: list, where: list, depth: int = 0) -> Any:
    """`instance` with each key the definition spells otherwise (ignoring
    case) renamed to the definition's spelling, recording each renaming in
    `renamed`. Xero reads request field names regardless of case (its own
    published request example spells `Lineitems`), so a request is checked
    as Xero reads it and the casing is reported as a note."""
    if depth > 60 or schema is None:
        return instance
    props: dict = {}
    state: dict = {}
    _collect(doc, schema, props, state)
    if isinstance(instance, dict):
        out = {}
        for k, v in instance.items():
            name = k
            if k not in props:
                close = [p for p in props if p.lower() == k.lower()]
                if close:
                    name = close[0]
                    renamed.append((where + [k], f"field {k!r} is spelled {name!r} in the definition (Xero reads names regardless of case)"))
            sub = props.get(name) or state.get("addl")
            out[name] = canonical_case(doc, v, sub, renamed, where + [name], depth + 1) if sub is not None else v
        return out
    if isinstance(instance, list) and state.get("items") is not None:
        return [canonical_case(doc, x, state["items"], renamed, where + [i], depth + 1) for i, x in enumerate(instance)]
    return instance


def schema_errors(validator, instance: Any) -> list[tuple[list, str]]:
    out = []
    for err in validator.iter_errors(instance):
        e = err
        # anyOf/oneOf: report the branch that failed deepest, never the
        # `{"type": "null"}` branch a nullable field got.
        while e.context:
            branches = e.validator_value if isinstance(e.validator_value, list) else []
            ctx = [
                c for c in e.context
                if not (c.relative_schema_path and isinstance(c.relative_schema_path[0], int)
                        and c.relative_schema_path[0] < len(branches)
                        and branches[c.relative_schema_path[0]] == {"type": "null"})
            ]
            best = jsonschema.exceptions.best_match(ctx or e.context)
            if best is None or best is e:
                break
            e = best
        msg = e.message
        if len(msg) > 220:
            msg = msg[:200] + " ..."
        out.append((list(e.absolute_path), f"{e.validator}: {msg}"))
    return out


# --------------------------------------------------------------------------
# QuickBooks XSD

XS = "{http://www.w3.org/2001/XMLSchema}"


def _local(name: str | None) -> str | None:
    return name.split(":", 1)[1] if name and ":" in name else name


@dataclasses.dataclass
class Member:
    type: str | None  # named type (local name), or None with `inline`
    inline: Any = None  # an anonymous complexType / simpleType element
    many: bool = False


class Xsd:
    def __init__(self, files: list[Path]):
        self.complex: dict[str, ET.Element] = {}
        self.simple: dict[str, ET.Element] = {}
        self.elements: dict[str, ET.Element] = {}
        self.groups: dict[str, ET.Element] = {}
        self.attr_groups: dict[str, ET.Element] = {}
        self.subst: dict[str, list[str]] = collections.defaultdict(list)
        for f in files:
            root = ET.parse(f).getroot()
            for child in root:
                name = child.get("name")
                if child.tag == XS + "complexType":
                    self.complex[name] = child
                elif child.tag == XS + "simpleType":
                    self.simple[name] = child
                elif child.tag == XS + "element":
                    self.elements[name] = child
                    head = _local(child.get("substitutionGroup"))
                    if head:
                        self.subst[head].append(name)
                elif child.tag == XS + "group":
                    self.groups[name] = child
                elif child.tag == XS + "attributeGroup":
                    self.attr_groups[name] = child
        self._members: dict = {}
        self._enums: dict = {}
        self.by_lower = {n.lower(): n for n in self.elements}

    # -- members of a complex type

    def members(self, type_name: str | None = None, node: ET.Element | None = None) -> dict[str, Member]:
        key = type_name or id(node)
        if key in self._members:
            return self._members[key]
        out: dict[str, Member] = {}
        self._members[key] = out  # recursion guard
        node = node if node is not None else self.complex.get(type_name or "")
        if node is not None:
            self._walk(node, out)
        return out

    def _walk(self, node: ET.Element, out: dict, many: bool = False) -> None:
        for c in node:
            tag = c.tag[len(XS):] if c.tag.startswith(XS) else c.tag
            if tag in ("annotation",):
                continue
            if tag in ("complexContent", "simpleContent"):
                self._walk(c, out, many)
            elif tag in ("extension", "restriction"):
                base = _local(c.get("base"))
                parent = node.tag == XS + "simpleContent"
                if parent:
                    out.setdefault("value", Member(base))
                elif base in self.complex:
                    out.update(self.members(base))
                self._walk(c, out, many)
            elif tag in ("sequence", "choice", "all"):
                m = many or c.get("maxOccurs") not in (None, "1")
                self._walk(c, out, m)
            elif tag == "group":
                g = self.groups.get(_local(c.get("ref")) or "")
                if g is not None:
                    self._walk(g, out, many)
            elif tag == "attributeGroup":
                g = self.attr_groups.get(_local(c.get("ref")) or "")
                if g is not None:
                    self._walk(g, out, many)
            elif tag == "element":
                m = many or c.get("maxOccurs") not in (None, "1")
                if c.get("ref"):
                    for name in self._substitutes(_local(c.get("ref"))):
                        el = self.elements[name]
                        out.setdefault(name, self._member_of(el, m))
                else:
                    out.setdefault(c.get("name"), self._member_of(c, m))
            elif tag == "attribute":
                name = c.get("name") or _local(c.get("ref"))
                out.setdefault(name, self._member_of(c, False))
            elif tag == "any":
                out.setdefault("*", Member(None))

    def _member_of(self, el: ET.Element, many: bool) -> Member:
        t = _local(el.get("type"))
        if t:
            return Member(t, None, many)
        for c in el:
            if c.tag in (XS + "complexType", XS + "simpleType"):
                return Member(None, c, many)
        return Member("string", None, many)

    def _substitutes(self, head: str) -> list[str]:
        """The element `head` and every element that may stand for it."""
        out, todo = [], [head]
        while todo:
            h = todo.pop()
            if h in out:
                continue
            el = self.elements.get(h)
            if el is not None and el.get("abstract") != "true":
                out.append(h)
            elif el is None:
                continue
            else:
                out.append(h)  # keep the abstract head too, harmless
            todo.extend(self.subst.get(h, []))
        return [h for h in out if h in self.elements and self.elements[h].get("abstract") != "true"] or [head]

    # -- enumerations

    def enum(self, type_name: str | None = None, node: ET.Element | None = None) -> set[str] | None:
        key = type_name or id(node)
        if key in self._enums:
            return self._enums[key]
        self._enums[key] = None
        node = node if node is not None else self.simple.get(type_name or "")
        values = None
        if node is not None:
            r = node.find(XS + "restriction")
            if r is not None:
                vals = [e.get("value") for e in r.findall(XS + "enumeration")]
                if vals:
                    values = set(vals)
                elif _local(r.get("base")) in self.simple:
                    values = self.enum(_local(r.get("base")))
        self._enums[key] = values
        return values

    def is_complex(self, m: Member) -> bool:
        if m.inline is not None:
            return m.inline.tag == XS + "complexType"
        return m.type in self.complex

    # -- checking a JSON body

    def check(self, value: Any, type_name: str | None, where: list, out: list, node: ET.Element | None = None, depth: int = 0) -> None:
        if depth > 40:
            return
        if isinstance(value, list):
            for i, x in enumerate(value):
                self.check(x, type_name, where + [i], out, node, depth + 1)
            return
        if not isinstance(value, dict):
            return
        members = self.members(type_name, node)
        for k, v in value.items():
            m = members.get(k)
            if m is None:
                if "*" in members:
                    continue
                close = [n for n in members if n.lower() == k.lower()]
                hint = f" (the XSD spells it {close[0]!r})" if close else ""
                out.append((where + [k], "invented field", f"{k!r} is not an element of {type_name or 'its type'}{hint}"))
                continue
            self.check_value(v, m, where + [k], out, depth + 1)

    def check_value(self, v: Any, m: Member, where: list, out: list, depth: int) -> None:
        if isinstance(v, list):
            for i, x in enumerate(v):
                self.check_value(x, m, where + [i], out, depth + 1)
            return
        if self.is_complex(m):
            self.check(v, m.type, where, out, m.inline, depth)
            return
        enum = self.enum(m.type, m.inline if m.inline is not None else None)
        if enum is not None and isinstance(v, str) and v not in enum:
            shown = ", ".join(sorted(enum))
            if len(shown) > 300:
                shown = shown[:300] + ", ..."
            out.append((where, "enumeration", f"{v!r} is not a value of {m.type or 'the enumeration'} ({shown})"))

    def entity(self, name: str) -> tuple[str, str] | None:
        """(element name, type) of a top-level entity named like `name`."""
        el_name = self.by_lower.get(name.lower())
        if not el_name:
            return None
        t = _local(self.elements[el_name].get("type"))
        return (el_name, t) if t else None


# --------------------------------------------------------------------------
# The checker


def load_traffic(traffic: Path) -> list[dict]:
    out = []
    for f in sorted(traffic.glob("*.jsonl")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                ex = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{f}:{n}: not JSON: {e}")
            ex["_source"] = f"{f.name}:{n}"
            out.append(ex)
    return out


class Checker:
    def __init__(self, specs: Path, full: bool = False):
        self.specs = specs
        self.full = full
        self.seen_shapes: dict[tuple, set] = collections.defaultdict(set)
        self.docs: dict[str, list[OpenApiDoc]] = {}
        for provider, files in OPENAPI_DOCS.items():
            self.docs[provider] = [OpenApiDoc(provider, specs / f) for f in files if (specs / f).exists()]
        qbo = [specs / f for f in QBO_XSDS if (specs / f).exists()]
        self.xsd = Xsd(qbo) if qbo else None
        self.allowed_endpoints = load_allowed_endpoints(specs / "allowed-endpoints.txt")
        self.allowed_fields = load_allowed_fields(specs / "allowed-extra-fields.txt")
        self.report = Report()
        self.refused = False

    # -- allow-lists

    def endpoint_allowed(self, ex: dict) -> AllowedEndpoint | None:
        for a in self.allowed_endpoints:
            if a.provider in (ex["provider"], "*") and a.method in (ex["method"], "*") and a.pattern.match(ex["path"]):
                return a
        return None

    def field_allowed(self, provider: str, side: str, where: str) -> AllowedField | None:
        for a in self.allowed_fields:
            if a.provider in (provider, "*") and a.side in (side, "*") and a.pattern.match(where):
                return a
        return None

    # -- one exchange

    def check(self, ex: dict) -> None:
        provider = ex["provider"]
        status = int((ex.get("response") or {}).get("status") or 0)
        # A request the provider refused (4xx) is expected to break the
        # definition: the test sent it to see it refused. Notes, not violations.
        self.refused = 400 <= status < 500 and not ex.get("dropped")
        # Xero's summarizeErrors=false answers 200 and refuses per element
        # (`StatusAttributeString: ERROR`): such an exchange's findings (the
        # test's bad input, and the element echoed back as sent) are notes.
        self.refused_items = status == 200 and refused_elements(ex)
        allowed = self.endpoint_allowed(ex)
        if allowed is not None:
            self.report.allowed[(provider, f"{allowed.method} {allowed.pattern.pattern}", allowed.reason)] += 1
            return
        if provider == "quickbooks" and self.xsd is not None:
            self.check_qbo(ex)
        elif provider in self.docs and self.docs[provider]:
            self.check_openapi(ex)
        else:
            self.violation(ex, ex["path"], "not in the definition", "", [], f"no definition for provider {provider!r}")

    def violation(self, ex: dict, route: str, kind: str, side: str, where: list, what: str, note: bool = False) -> None:
        if side == "request" and self.refused:
            note, what = True, f"(refused with {ex['response']['status']}) {what}"
        elif side in ("request", "response") and getattr(self, "refused_items", False):
            note, what = True, f"(an element refused with ValidationErrors) {what}"
        f = Finding(ex["provider"], ex["method"], route, kind, side, norm_where(where), what)
        self.report.add(f, ex["path"] + (f" @ {ex['_source']}"), note)

    def find_op(self, ex: dict) -> tuple[Operation | None, bool]:
        """(operation, whether the path matched some template with another method)."""
        best, path_matched = None, False
        for doc in self.docs[ex["provider"]]:
            for op in doc.ops:
                if op.regex.match(ex["path"]):
                    if op.method == ex["method"]:
                        if best is None or op.literal > best.literal:
                            best = op
                    else:
                        path_matched = True
        return best, path_matched

    def check_openapi(self, ex: dict) -> None:
        op, other_method = self.find_op(ex)
        if op is None:
            what = "path is in the definition, method is not" if other_method else "no operation of the definition has this method and path"
            self.violation(ex, ex.get("route") or ex["path"], "not in the definition", "", [], what)
            return
        doc = op.doc
        self.report.checked[(ex["provider"], op.label)] += 1
        # request
        req = ex.get("request") or {}
        body = req.get("body")
        if body is not None and not isinstance(body, str):
            sch = doc.request_schema(op)
            if sch is None:
                self.violation(ex, op.template, "schema", "request", [], "a JSON body is sent, the operation defines none")
            else:
                self.validate(ex, op, "request", sch, body, ("req", op.method, op.template))
        # response
        if ex.get("dropped"):
            return
        resp = ex.get("response") or {}
        status = int(resp.get("status", 0))
        key, sch = doc.response_schema(op, status)
        rbody = resp.get("body")
        if key is None:
            generic = status in GENERIC_STATUSES
            self.violation(ex, op.template, "status not declared", "response", [], f"status {status} is not among the operation's responses", note=generic)
            return
        if sch is None:
            return
        if rbody is None or isinstance(rbody, str):
            if sch and status != 204:
                self.violation(ex, op.template, "schema", "response", [], f"status {status}: the definition gives a JSON schema, the body is {'empty' if rbody is None else 'not JSON'}")
            return
        self.validate(ex, op, "response", sch, rbody, ("resp", op.method, op.template, key))

    def validate(self, ex: dict, op: Operation, side: str, schema: dict, body: Any, key: tuple) -> None:
        doc = op.doc
        if not self.full:
            sig = shape(body)
            seen = self.seen_shapes[key]
            if sig <= seen:
                self.report.skipped += 1
                return
            seen |= sig
        if ex["provider"] == "xero" and side == "request":
            renamed: list = []
            body = canonical_case(doc, body, schema, renamed, [])
            for where, what in renamed:
                self.violation(ex, op.template, "casing", side, where, what, note=True)
        v = doc.validator(key, schema)
        for where, what in schema_errors(v, body):
            self.violation(ex, op.template, "schema", side, where, what)
        found: list = []
        invented_fields(doc, body, schema, [], found)
        for where, what in found:
            self.invented(ex, op.template, side, where, what)

    def invented(self, ex: dict, route: str, side: str, where: list, what: str) -> None:
        w = norm_where(where)
        a = self.field_allowed(ex["provider"], side, w)
        if a is not None:
            self.report.allowed_fields[(ex["provider"], side, w, a.reason)] += 1
            return
        self.violation(ex, route, "invented field", side, where, what)

    # -- QuickBooks

    QBO_ROUTE = re.compile(r"^/v3/company/[^/]+/([a-z]+)(?:/([^/]+))?$")

    def check_qbo(self, ex: dict) -> None:
        m = self.QBO_ROUTE.match(ex["path"])
        if not m:
            self.violation(ex, ex["path"], "not in the definition", "", [], "not a /v3/company/{realmId}/<entity> path")
            return
        kind, _id = m.group(1), m.group(2)
        xsd = self.xsd
        assert xsd is not None
        route = ex.get("route") or ex["path"]
        if kind == "query":
            req_type = None
        elif kind == "batch":
            req_type = "IntuitBatchRequest"
        else:
            ent = xsd.entity(kind)
            if ent is None:
                self.violation(ex, route, "not in the definition", "", [], f"no entity {kind!r} in Finance.xsd")
                return
            req_type = ent[1]
        self.report.checked[("quickbooks", f"{ex['method']} {route}")] += 1
        found: list = []
        body = (ex.get("request") or {}).get("body")
        if req_type and isinstance(body, (dict, list)):
            xsd.check(body, req_type, [], found)
            for where, k, what in found:
                self.qbo_finding(ex, route, "request", where, k, what)
        if ex.get("dropped"):
            return
        resp = ex.get("response") or {}
        rbody = resp.get("body")
        if isinstance(rbody, dict):
            found = []
            xsd.check(rbody, "IntuitResponse", [], found)
            for where, k, what in found:
                self.qbo_finding(ex, route, "response", where, k, what)

    def qbo_finding(self, ex: dict, route: str, side: str, where: list, kind: str, what: str) -> None:
        if kind == "invented field":
            self.invented(ex, route, side, where, what)
        else:
            self.violation(ex, route, kind, side, where, what)

    # -- summary

    def coverage(self) -> dict[str, tuple[int, int]]:
        out = {}
        for provider, docs in self.docs.items():
            total = sum(len(d.ops) for d in docs)
            seen = {label for (p, label) in self.report.checked if p == provider}
            out[provider] = (len(seen), total)
        return out


def run(specs: Path, traffic: Path, out=sys.stdout, full: bool = False) -> int:
    t0 = time.monotonic()
    checker = Checker(specs, full)
    t_load = time.monotonic() - t0
    exchanges = load_traffic(traffic)
    for ex in exchanges:
        checker.check(ex)
    elapsed = time.monotonic() - t0
    rep = checker.report
    w = out.write

    w(f"contracts: {len(exchanges)} exchanges from {traffic}\n\n")
    w("exchanges checked, per provider and operation:\n")
    for (provider, label), n in sorted(rep.checked.items()):
        w(f"  {provider:12} {n:6}  {label}\n")
    if rep.allowed:
        w("\nendpoints with no definition (allowed-endpoints.txt):\n")
        for (provider, pattern, reason), n in sorted(rep.allowed.items()):
            w(f"  {provider:12} {n:6}  {pattern}  -- {reason}\n")
    w("\noperations covered:\n")
    for provider, (seen, total) in sorted(checker.coverage().items()):
        w(f"  {provider:12} {seen} of the {total} operations in its definitions\n")
    qbo = {label for (p, label) in rep.checked if p == "quickbooks"}
    if qbo:
        w(f"  {'quickbooks':12} {len(qbo)} routes checked against the XSD\n")
    if rep.allowed_fields:
        w("\nextra fields allowed (allowed-extra-fields.txt):\n")
        for (provider, side, where, reason), n in sorted(rep.allowed_fields.items()):
            w(f"  {provider:12} {side:8} {where}  ({n}x) -- {reason}\n")
    if rep.notes:
        w("\nnotes (not violations):\n")
        for f, n, example in sorted(rep.notes.values(), key=lambda e: e[0].key()):
            w(f"  {f.provider} {f.method} {f.route}: {f.kind}: {f.what} ({n}x, e.g. {example})\n")
    if rep.violations:
        w(f"\n{len(rep.violations)} VIOLATIONS ({sum(e[1] for e in rep.violations.values())} occurrences):\n")
        for f, n, example in sorted(rep.violations.values(), key=lambda e: e[0].key()):
            where = f" at {f.side} {f.where or '/'}" if f.side else ""
            w(f"  {f.provider} {f.method} {f.route}: {f.kind}{where}: {f.what}\n      {n}x, e.g. {example}\n")
    else:
        w("\nno violations\n")
    if rep.skipped:
        w(f"\n({rep.skipped} bodies not re-validated: every shape in them, down to key sets and\n"
          " short enum-like values, was already validated for the same operation; --full checks all)\n")
    w(f"\n(loading the definitions {t_load:.1f} s, total {elapsed:.1f} s)\n")
    return 1 if rep.violations else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--specs", type=Path, required=True, help="the copied definitions (tests/contracts)")
    ap.add_argument("--traffic", type=Path, required=True, help="the HUB_SANDBOX_RECORD directory")
    ap.add_argument("--full", action="store_true", help="validate every body, even one whose shapes were all seen")
    args = ap.parse_args(argv)
    if not args.traffic.is_dir():
        print(f"contracts: {args.traffic} is not a directory", file=sys.stderr)
        return 2
    return run(args.specs, args.traffic, full=args.full)


if __name__ == "__main__":
    sys.exit(main())
