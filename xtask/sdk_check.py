#!/usr/bin/env python3
"""Official provider SDKs against the sandboxes.

The providers' own Python SDKs (no one here wrote them) must read every
answer the sandboxes give:

- Square (`squareup`, the `Square` client with `base_url` at the sandbox):
  locations; payments of each location (every page, by cursor); one payment
  and its refunds by id; the orders of those payments (batch-retrieve, 100 a
  call); inventory counts (batch-retrieve, every page); a 404's error body.
- Xero (`xero-python`, `AccountingApi` and `IdentityApi` on an `ApiClient`
  with the sandbox's access token): connections; accounts (and a `where`
  filter); a bank transaction created (PUT), updated (POST), read by id and
  listed; a manual journal created (PUT), updated and posted (POST), read by
  id and listed; a ValidationException's body.

Each answer is read twice: by the SDK itself (its call must not raise), and
by a strict walk of the raw JSON against the SDK's own models, which also
catches what the SDKs let through silently (the Square SDK builds its models
without validating; the Xero one drops keys it does not know and takes any
JSON value for a string): a JSON type other than the model's, an enum value
the SDK does not list, a timestamp that does not parse, a key spelled like a
model field in another case. Keys the models do not have are listed as notes
(Xero's own answers carry some too), not failures.

Usage:
    python xtask/sdk_check.py --hub target/debug/hub
    python xtask/sdk_check.py --sandboxes sandboxes.json

With --hub it starts `hub sandboxes --json --out <tmp>` in its own process
group, waits for the file, and ends the group when done, whatever happens.
Exits 1 on any failure, printing the SDK's error and the request behind it.
"""

from __future__ import annotations

import argparse
import collections.abc
import datetime
import decimal
import enum
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import types
import typing
import uuid
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------
# Recording and reporting


@dataclass
class Exchange:
    """One HTTP request the SDK sent and the answer it got."""

    method: str
    url: str
    body: str
    status: int | None = None
    answer: str = ""

    def describe(self, limit: int = 1500) -> str:
        lines = [f"    request: {self.method} {self.url}"]
        if self.body:
            lines.append(f"    request body: {clip(self.body, limit)}")
        if self.status is not None:
            lines.append(f"    answer: HTTP {self.status} {clip(self.answer, limit)}")
        return "\n".join(lines)


def clip(text: str, limit: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


@dataclass
class Issue:
    """Something the strict walk found in one answer."""

    path: str
    message: str


@dataclass
class Report:
    """What one provider's checks found."""

    name: str
    counts: dict = field(default_factory=dict)
    passed: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)
    exchanges: list = field(default_factory=list)

    def mark(self) -> int:
        return len(self.exchanges)

    def since(self, mark: int) -> list:
        return self.exchanges[mark:]

    def last(self) -> Exchange | None:
        return self.exchanges[-1] if self.exchanges else None

    def fail(self, step: str, message: str, exchange: Exchange | None) -> None:
        self.failures.append((step, message, exchange))

    def note(self, key: str) -> None:
        self.notes[key] = self.notes.get(key, 0) + 1


class CheckError(Exception):
    """A check's own assertion failed (the SDK read the answer)."""


def check(cond: bool, message: str) -> bool:
    if not cond:
        raise CheckError(message)
    return True


def generic(path: str) -> str:
    """`a.b[3].c` -> `a.b[].c`, to group issues across list items."""
    return re.sub(r"\[\d+\]", "[]", path)


def step(report: Report, name: str, fn, *args, **kwargs):
    """Runs one check; on an exception records the SDK's error and the
    request that caused it. Returns the function's value or None."""
    mark = report.mark()
    try:
        value = fn(*args, **kwargs)
    except CheckError as e:
        # The answer checked is the last one read (a check of several reads
        # names what it saw in its message).
        report.fail(name, f"check failed: {e}", report.last())
        return None
    except Exception as e:  # the SDK's own error, whatever its type
        tb = traceback.extract_tb(e.__traceback__)
        where = next(
            (f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}"
             for f in reversed(tb)
             if "site-packages" in f.filename),
            "",
        )
        text = f"{type(e).__module__}.{type(e).__name__}: {e}"
        if where:
            text += f"\n    raised at {where}"
        ex = report.last() if report.mark() > mark else None
        report.fail(name, text, ex)
        return None
    report.passed.append(name)
    return value


def strict_failures(report: Report, name: str, issues_by_exchange) -> bool:
    """Records the strict walk's issues of each exchange; True if none."""
    ok = True
    for ex, issues in issues_by_exchange:
        if not issues:
            continue
        ok = False
        grouped: dict = {}
        for i in issues:
            grouped.setdefault(generic(i.path), []).append(i)
        lines = []
        for g, items in grouped.items():
            first = items[0]
            more = f" (and {len(items) - 1} more like it)" if len(items) > 1 else ""
            lines.append(f"{first.path}: {first.message}{more}")
        report.fail(name, "the SDK's models do not fit the answer:\n      " + "\n      ".join(lines), ex)
    return ok


# ---------------------------------------------------------------------------
# Timestamps

RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
)


def is_rfc3339(s: str) -> bool:
    return bool(RFC3339.match(s))


# ---------------------------------------------------------------------------
# Square


def walk_square(ann, value, path: str, issues: list, notes: list) -> None:
    """Checks raw JSON `value` against the Square SDK's annotation `ann`."""
    import pydantic

    if value is None:
        return
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Annotated:
        return walk_square(args[0], value, path, issues, notes)
    if ann is typing.Any or ann is object:
        return
    if isinstance(ann, (typing.ForwardRef, str)):
        notes.append(f"{generic(path)}: unresolved type {ann!r}")
        return
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        arms = [a for a in args if a is not type(None)]
        literals = [a for a in arms if typing.get_origin(a) is typing.Literal]
        if literals and len(arms) == 2 and any(a is typing.Any for a in arms):
            # Fern's open enum: Union[Literal[...], Any].
            allowed = typing.get_args(literals[0])
            if value not in allowed:
                shown = ", ".join(map(str, allowed[:12])) + (", ..." if len(allowed) > 12 else "")
                issues.append(Issue(path, f"{value!r} is not one of the SDK's values ({shown})"))
            return
        if len(arms) == 1:
            return walk_square(arms[0], value, path, issues, notes)
        first = None
        for arm in arms:
            sub: list = []
            sub_notes: list = []
            walk_square(arm, value, path, sub, sub_notes)
            if not sub:
                notes.extend(sub_notes)
                return
            first = first or sub
        issues.extend(first or [])
        return
    if origin is typing.Literal:
        if value not in args:
            issues.append(Issue(path, f"{value!r} is not one of {args}"))
        return
    if origin in (list, typing.List, collections.abc.Sequence, tuple, set):
        if not isinstance(value, list):
            issues.append(Issue(path, f"expected a JSON array, got {type(value).__name__} {value!r:.80}"))
            return
        inner = args[0] if args else typing.Any
        for i, item in enumerate(value):
            walk_square(inner, item, f"{path}[{i}]", issues, notes)
        return
    if origin in (dict, typing.Dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            issues.append(Issue(path, f"expected a JSON object, got {type(value).__name__}"))
            return
        inner = args[1] if len(args) == 2 else typing.Any
        for k, item in value.items():
            walk_square(inner, item, f"{path}.{k}", issues, notes)
        return
    if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel):
        if not isinstance(value, dict):
            issues.append(Issue(path, f"expected a JSON object ({ann.__name__}), got {type(value).__name__} {value!r:.80}"))
            return
        fields = {}
        for name, info in ann.model_fields.items():
            wire = info.alias or name
            for meta in info.metadata:
                alias = getattr(meta, "alias", None)
                if isinstance(alias, str):
                    wire = alias
            fields[wire] = info.annotation
        lower = {k.lower(): k for k in fields}
        for key, item in value.items():
            sub = f"{path}.{key}"
            if key in fields:
                walk_square(fields[key], item, sub, issues, notes)
            elif key.lower() in lower:
                issues.append(Issue(sub, f"the SDK's field is spelled {lower[key.lower()]!r}; it drops this key"))
            else:
                notes.append(f"{generic(sub)}: key not in the SDK's {ann.__name__}")
        return
    leaf = path.rsplit(".", 1)[-1]
    if ann is str:
        if not isinstance(value, str):
            issues.append(Issue(path, f"expected a string, got {type(value).__name__} {value!r:.80}"))
        elif leaf.endswith("_at") and not is_rfc3339(value):
            issues.append(Issue(path, f"{value!r} is not an RFC 3339 timestamp"))
        return
    if ann is bool:
        if not isinstance(value, bool):
            issues.append(Issue(path, f"expected a boolean, got {type(value).__name__} {value!r:.80}"))
        return
    if ann is int:
        if isinstance(value, bool) or not isinstance(value, int):
            issues.append(Issue(path, f"expected an integer, got {type(value).__name__} {value!r:.80}"))
        return
    if ann is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            issues.append(Issue(path, f"expected a number, got {type(value).__name__} {value!r:.80}"))
        return
    if ann in (datetime.datetime, datetime.date):
        if not isinstance(value, str):
            issues.append(Issue(path, f"expected a date string, got {type(value).__name__}"))
        return
    notes.append(f"{generic(path)}: type {ann!r} not walked")


class SquareCheck:
    """The Square checks, on one `Square` client pointed at the sandbox."""

    def __init__(self, base_url: str, token: str, report: Report):
        import httpx
        from square import Square

        self.report = report
        self.raw: dict = {}  # id(exchange) -> parsed JSON

        def on_request(request):
            body = request.content.decode("utf-8", "replace") if request.content else ""
            report.exchanges.append(Exchange(request.method, str(request.url), body))

        def on_response(response):
            response.read()
            ex = report.exchanges[-1]
            ex.status = response.status_code
            ex.answer = response.text

        self.http = httpx.Client(
            timeout=30,
            event_hooks={"request": [on_request], "response": [on_response]},
        )
        self.client = Square(base_url=base_url, token=token, httpx_client=self.http)

    def strict(self, name: str, mark: int, response_type) -> bool:
        """Walks every answer since `mark` against `response_type`."""
        per = []
        for ex in self.report.since(mark):
            issues: list = []
            notes: list = []
            try:
                data = json.loads(ex.answer)
            except ValueError as e:
                issues.append(Issue("$", f"the answer is not JSON: {e}"))
            else:
                walk_square(response_type, data, response_type.__name__, issues, notes)
            for n in notes:
                self.report.note(n)
            per.append((ex, issues))
        return strict_failures(self.report, name, per)

    def run(self) -> None:
        from square.core.api_error import ApiError
        from square.types.batch_get_inventory_counts_response import BatchGetInventoryCountsResponse
        from square.types.batch_get_orders_response import BatchGetOrdersResponse
        from square.types.get_payment_refund_response import GetPaymentRefundResponse
        from square.types.get_payment_response import GetPaymentResponse
        from square.types.list_locations_response import ListLocationsResponse
        from square.types.list_payments_response import ListPaymentsResponse

        r = self.report
        c = self.client

        # Locations.
        mark = r.mark()
        resp = step(r, "locations.list", c.locations.list)
        if resp is None:
            return
        self.strict("locations.list (strict)", mark, ListLocationsResponse)
        locations = resp.locations or []
        r.counts["locations"] = len(locations)
        step(r, "locations non-empty", check, len(locations) > 0 and all(l.id for l in locations),
             "no locations, or one without id")
        if not locations:
            return

        # Payments of each location, every page.
        payments = []
        pages = 0
        for loc in locations:
            mark = r.mark()

            def list_all(loc_id=loc.id):
                out = []
                pager = c.payments.list(location_id=loc_id, limit=10, sort_order="ASC")
                for page in pager.iter_pages():
                    out.extend(page.items or [])
                return out

            got = step(r, f"payments.list location={loc.id}", list_all)
            pages += len(r.since(mark))
            self.strict(f"payments.list location={loc.id} (strict)", mark, ListPaymentsResponse)
            stray = [p.id for p in got or [] if p.location_id != loc.id]
            if stray:
                r.fail(f"payments.list location={loc.id}",
                       f"{len(stray)} payments of other locations listed, e.g. {stray[:3]}", None)
            payments.extend(got or [])
        r.counts["payments"] = len(payments)
        r.counts["payment pages"] = pages
        ids = [p.id for p in payments]
        step(r, "payments non-empty and distinct", check,
             len(payments) > 0 and len(set(ids)) == len(ids),
             f"{len(payments)} payments, {len(set(ids))} distinct ids")
        for p in payments:
            if p.total_money is not None and p.amount_money is not None and p.status == "COMPLETED":
                tip = p.tip_money.amount if p.tip_money and p.tip_money.amount else 0
                if p.total_money.amount != p.amount_money.amount + tip:
                    r.fail("payment totals", f"payment {p.id}: total_money {p.total_money.amount} != "
                           f"amount_money {p.amount_money.amount} + tip_money {tip}", None)
                    break
        if not payments:
            return

        # One payment by id, and every refund the payments name.
        mark = r.mark()
        one = step(r, "payments.get", c.payments.get, payments[0].id)
        self.strict("payments.get (strict)", mark, GetPaymentResponse)
        if one is not None:
            step(r, "payments.get round-trip", check,
                 one.payment is not None and one.payment.id == payments[0].id
                 and one.payment.total_money == payments[0].total_money,
                 "payments.get answered another payment")
        refund_ids = sorted({rid for p in payments for rid in (p.refund_ids or [])})
        refunds = 0
        return_orders: set = set()
        for rid in refund_ids:
            mark = r.mark()
            got = step(r, f"refunds.get {rid}", c.refunds.get, rid)
            self.strict(f"refunds.get {rid} (strict)", mark, GetPaymentRefundResponse)
            if got is not None and got.refund is not None:
                refunds += 1
                if got.refund.order_id:
                    return_orders.add(got.refund.order_id)
                if got.refund.payment_id not in ids:
                    r.fail(f"refunds.get {rid}", f"refund names payment {got.refund.payment_id}, not listed", r.last())
        r.counts["refunds"] = refunds

        # The orders of those payments, 100 ids a call.
        # (and the return orders the refunds name).
        order_ids = sorted({p.order_id for p in payments if p.order_id} | return_orders)
        orders = {}
        for i in range(0, len(order_ids), 100):
            chunk = order_ids[i:i + 100]
            mark = r.mark()
            got = step(r, f"orders.batch_get ({len(chunk)} ids)", c.orders.batch_get, order_ids=chunk)
            self.strict(f"orders.batch_get (strict)", mark, BatchGetOrdersResponse)
            for o in (got.orders if got is not None and got.orders else []):
                orders[o.id] = o
        r.counts["orders"] = len(orders)
        r.counts["return orders"] = sum(1 for o in orders.values() if o.returns)
        lost = sorted(return_orders - set(orders))
        if lost:
            r.fail("refunds' return orders retrieved", f"{len(lost)} not answered, e.g. {lost[:3]}", None)
        missing = [p.id for p in payments if p.order_id and p.order_id not in orders]
        step(r, "every payment's order retrieved", check, not missing and len(orders) > 0,
             f"{len(missing)} payments' orders not retrieved, e.g. payment {missing[:3]}")
        no_order = [p.id for p in payments if not p.order_id]
        if no_order:
            r.fail("payments have order_id", f"{len(no_order)} payments without order_id, e.g. {no_order[:3]}", None)
        # Each order's tenders are payments listed (when it has any).
        by_id = {p.id: p for p in payments}
        stray = []
        for o in orders.values():
            for t in o.tenders or []:
                if t.payment_id and t.payment_id not in by_id:
                    stray.append((o.id, t.payment_id))
        step(r, "order tenders name listed payments", check, not stray,
             f"{len(stray)} tenders name payments not listed, e.g. {stray[:3]}")

        # Inventory counts, every page.
        mark = r.mark()

        def all_counts():
            out = []
            pager = c.inventory.batch_get_counts(location_ids=[l.id for l in locations], limit=10)
            for page in pager.iter_pages():
                out.extend(page.items or [])
            return out

        counts = step(r, "inventory.batch_get_counts", all_counts)
        r.counts["inventory count pages"] = len(r.since(mark))
        self.strict("inventory.batch_get_counts (strict)", mark, BatchGetInventoryCountsResponse)
        counts = counts or []
        r.counts["inventory counts"] = len(counts)
        loc_ids = {l.id for l in locations}
        keys = [(x.catalog_object_id, x.location_id, x.state) for x in counts]
        step(r, "inventory counts non-empty, distinct, at known locations", check,
             len(counts) > 0 and len(set(keys)) == len(keys)
             and all(x.location_id in loc_ids for x in counts)
             and all(x.quantity is not None and re.match(r"^-?\d+(\.\d+)?$", x.quantity) for x in counts),
             f"{len(counts)} counts, {len(set(keys))} distinct, locations "
             f"{sorted({x.location_id for x in counts} - loc_ids)} unknown")

        # An error answer: the SDK reads its body into ApiError.errors.
        mark = r.mark()

        def missing_payment():
            try:
                c.payments.get("no-such-payment-sdk-check")
            except ApiError as e:
                check(e.status_code == 404, f"status {e.status_code}, expected 404")
                check(bool(e.errors) and e.errors[0].code == "NOT_FOUND"
                      and e.errors[0].category == "INVALID_REQUEST_ERROR",
                      f"errors {e.errors!r}")
                return
            raise CheckError("an unknown payment id was answered 2xx")

        step(r, "payments.get unknown id -> ApiError 404", missing_payment)
        from square.types.error import Error as SquareError

        per = []
        for ex in r.since(mark):
            issues: list = []
            notes: list = []
            body = json.loads(ex.answer or "{}")
            walk_square(typing.List[SquareError], body.get("errors"), "errors", issues, notes)
            per.append((ex, issues))
        strict_failures(r, "error body (strict)", per)


# ---------------------------------------------------------------------------
# Xero

MS_DATE = re.compile(r"^/Date\(-?\d+([+-]\d{4})?\)/$")
# The envelope every Accounting API answer has (Xero's own answers too); the
# SDK's collection models do not declare it, so it is no note.
XERO_ENVELOPE = {"Id", "Status", "ProviderName", "DateTimeUTC"}
XERO_LIST = re.compile(r"^list\[(.*)\]$")


def walk_xero(type_str: str, value, path: str, finder, issues: list, notes: list) -> None:
    """Checks raw JSON `value` against the xero-python type `type_str`."""
    if value is None:
        return
    m = XERO_LIST.match(type_str)
    if m:
        if not isinstance(value, list):
            issues.append(Issue(path, f"expected a JSON array, got {type(value).__name__}"))
            return
        for i, item in enumerate(value):
            walk_xero(m.group(1), item, f"{path}[{i}]", finder, issues, notes)
        return
    if type_str == "str":
        if not isinstance(value, str):
            issues.append(Issue(path, f"expected a string, got {type(value).__name__} {value!r:.80} (the SDK takes str() of it)"))
        return
    if type_str == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
            issues.append(Issue(path, f"expected a number, got {type(value).__name__} {value!r:.80}"))
        return
    if type_str == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            issues.append(Issue(path, f"expected an integer, got {type(value).__name__} {value!r:.80}"))
        return
    if type_str == "bool":
        if not isinstance(value, bool):
            issues.append(Issue(path, f"expected a boolean, got {type(value).__name__} {value!r:.80}"))
        return
    if type_str in ("date[ms-format]", "datetime[ms-format]"):
        if not isinstance(value, str) or not MS_DATE.match(value):
            issues.append(Issue(path, f"expected /Date(ms+0000)/, got {value!r:.80}"))
        return
    if type_str in ("date", "datetime"):
        if not isinstance(value, str):
            issues.append(Issue(path, f"expected an ISO 8601 string, got {type(value).__name__}"))
            return
        try:
            from dateutil.parser import isoparse
            isoparse(value)
        except (ValueError, TypeError) as e:
            issues.append(Issue(path, f"{value!r} is not ISO 8601 ({e})"))
        return
    if type_str == "object":
        return
    try:
        model = finder.find_model(type_str)
    except AttributeError:
        notes.append(f"{generic(path)}: unknown SDK type {type_str}")
        return
    if isinstance(model, type) and issubclass(model, enum.Enum):
        allowed = [e.value for e in model]
        if value not in allowed:
            shown = ", ".join(map(str, allowed[:12])) + (", ..." if len(allowed) > 12 else "")
            issues.append(Issue(path, f"{value!r} is not a {model.__name__} ({shown})"))
        return
    if not isinstance(value, dict):
        issues.append(Issue(path, f"expected a JSON object ({type_str}), got {type(value).__name__} {value!r:.80}"))
        return
    wire = {model.attribute_map[a]: t for a, t in model.openapi_types.items()}
    lower = {k.lower(): k for k in wire}
    for key, item in value.items():
        sub = f"{path}.{key}"
        if key in wire:
            walk_xero(wire[key], item, sub, finder, issues, notes)
        elif key.lower() in lower:
            issues.append(Issue(sub, f"the SDK's key is spelled {lower[key.lower()]!r}; it drops this one"))
        elif "." not in path and "[" not in path and key in XERO_ENVELOPE:
            continue
        else:
            notes.append(f"{generic(sub)}: key not in the SDK's {type_str}")


class XeroCheck:
    """The Xero checks, on one `ApiClient` with the sandbox's token."""

    def __init__(self, base_url: str, info: dict, report: Report):
        from xero_python.accounting import AccountingApi
        from xero_python.api_client import ApiClient
        from xero_python.api_client.configuration import Configuration
        from xero_python.api_client.oauth2 import OAuth2Token
        from xero_python.identity import IdentityApi

        self.report = report
        self.tenant = info["tenant_id"]
        token = {
            "access_token": info["access_token"],
            "refresh_token": info.get("refresh_token"),
            "token_type": "Bearer",
            "scope": ["offline_access", "accounting.transactions", "accounting.settings"],
            "expires_in": 1800,
            # No expires_at: the SDK then never tries to refresh (its token
            # URL is Xero's own, not the sandbox's).
        }
        config = Configuration(
            oauth2_token=OAuth2Token(client_id=info["client_id"], client_secret=info["client_secret"])
        )
        client = ApiClient(
            config,
            pool_threads=1,
            oauth2_token_getter=lambda: token,
            oauth2_token_saver=lambda t: token.update(t),
        )
        self.walked: list = []  # (exchange, response_type, data)
        original_request = client.request
        original_deserialize = client.deserialize

        def request(method, url, query_params=None, headers=None, post_params=None, body=None, **kw):
            q = ""
            if query_params:
                from urllib.parse import urlencode
                q = "?" + urlencode(query_params)
            text = json.dumps(body, default=str) if body is not None and not isinstance(body, str) else (body or "")
            ex = Exchange(method, url + q, text)
            report.exchanges.append(ex)
            try:
                resp = original_request(method, url, query_params=query_params, headers=headers,
                                        post_params=post_params, body=body, **kw)
            except Exception as e:
                http = getattr(e, "http_resp", None)
                if http is not None:
                    ex.status = http.status
                    ex.answer = http.data.decode("utf-8", "replace")
                raise
            ex.status = resp.status
            ex.answer = resp.data.decode("utf-8", "replace")
            return resp

        def deserialize(response, response_type, response_model_finder):
            ex = report.last()
            self.walked.append((ex, response_type, response_model_finder))
            return original_deserialize(response, response_type, response_model_finder)

        client.request = request
        client.deserialize = deserialize
        self.client = client
        root = base_url.rstrip("/")
        self.accounting = AccountingApi(client, base_url=f"{root}/api.xro/2.0")
        self.identity = IdentityApi(client, base_url=root)

    def strict(self, name: str, mark: int) -> bool:
        """Walks the answers since `mark` against the types the SDK read them as."""
        per = []
        wanted = set(map(id, self.report.since(mark)))
        for ex, response_type, finder in self.walked:
            if id(ex) not in wanted:
                continue
            issues: list = []
            notes: list = []
            try:
                data = json.loads(ex.answer, parse_float=decimal.Decimal)
            except ValueError as e:
                issues.append(Issue("$", f"the answer is not JSON: {e}"))
            else:
                walk_xero(response_type, data, response_type, finder, issues, notes)
            for n in notes:
                self.report.note(n)
            per.append((ex, issues))
        return strict_failures(self.report, name, per)

    def call(self, name: str, fn, *args, **kwargs):
        mark = self.report.mark()
        value = step(self.report, name, fn, *args, **kwargs)
        self.strict(f"{name} (strict)", mark)
        return value

    def run(self) -> None:
        from xero_python.accounting import (
            Account,
            AccountType,
            BankTransaction,
            BankTransactions,
            Contact,
            ManualJournalLine,
            LineAmountTypes,
            LineItem,
            ManualJournal,
            ManualJournals,
        )
        from xero_python.exceptions import HTTPStatusException

        r = self.report
        a = self.accounting
        t = self.tenant
        D = decimal.Decimal
        today = datetime.date.today()

        # Connections (identity API).
        conns = self.call("identity.get_connections", self.identity.get_connections)
        if conns is None and r.last() is not None and r.last().status == 404:
            # Xero's paths are case-insensitive and the SDK asks for
            # /Connections: read the lowercase path's answer with the SDK's
            # own deserializer too, so the report says whether the body parses.
            conns = self.call(
                "identity connections via GET /connections (SDK deserializer)",
                self.client.call_api,
                self.identity.base_url + "/connections", "GET",
                header_params={"Accept": "application/json"},
                response_type="list[Connection]",
                response_model_finder=self.identity.get_model_finder(),
                auth_settings=["OAuth2"],
                _return_http_data_only=True,
            )
        if conns is not None:
            r.counts["connections"] = len(conns)
            step(r, "connections name the tenant", check,
                 any(str(c.tenant_id) == t for c in conns)
                 and all(c.tenant_type == "ORGANISATION" and c.created_date_utc is not None for c in conns),
                 f"tenants {[str(c.tenant_id) for c in conns]}, expected {t}")

        # Accounts.
        accounts = self.call("accounting.get_accounts", a.get_accounts, t)
        if accounts is None:
            return
        accs = accounts.accounts or []
        r.counts["accounts"] = len(accs)
        codes = {x.code: x for x in accs}
        step(r, "accounts hold a bank account and sales", check,
             "090" in codes and codes["090"].type == AccountType.BANK and "200" in codes
             and all(x.account_id and x.status is not None for x in accs),
             f"codes {sorted(codes)}")
        banks = self.call("accounting.get_accounts where Type==BANK", a.get_accounts, t, where='Type=="BANK"')
        if banks is not None:
            step(r, "where filter answers only BANK accounts", check,
                 bool(banks.accounts) and all(x.type == AccountType.BANK for x in banks.accounts),
                 f"types {[x.type for x in banks.accounts or []]}")

        # Bank transaction: create (PUT), update (POST), read, list.
        ref = f"sdk-check-{uuid.uuid4().hex[:8]}"
        new = BankTransaction(
            type="RECEIVE",
            contact=Contact(name="Walk-in Customers"),
            bank_account=Account(code="090"),
            line_amount_types=LineAmountTypes.NOTAX,
            date=today,
            reference=ref,
            status="AUTHORISED",
            line_items=[LineItem(description="SDK check sale", quantity=D("1"),
                                 unit_amount=D("123.45"), account_code="200", tax_type="NONE")],
        )
        created = self.call("accounting.create_bank_transactions (PUT)", a.create_bank_transactions,
                            t, BankTransactions(bank_transactions=[new]))
        bt = None
        if created is not None:
            items = created.bank_transactions or []

            def created_ok():
                check(len(items) == 1, f"{len(items)} elements answered")
                b = items[0]
                check(b.bank_transaction_id and str(b.bank_transaction_id) != "00000000-0000-0000-0000-000000000000",
                      f"id {b.bank_transaction_id}")
                check(b.total == D("123.45") and b.sub_total == D("123.45") and b.total_tax == D("0"),
                      f"totals {b.sub_total}/{b.total_tax}/{b.total}, expected 123.45/0/123.45")
                check(b.status == "AUTHORISED" and b.type == "RECEIVE" and b.reference == ref,
                      f"status {b.status} type {b.type} reference {b.reference}")
                check(b.line_amount_types == LineAmountTypes.NOTAX, f"line_amount_types {b.line_amount_types}")
                check(b.date == today, f"date {b.date!r}, expected {today}")
                check(isinstance(b.updated_date_utc, datetime.datetime), f"updated_date_utc {b.updated_date_utc!r}")
                check(b.bank_account is not None and b.bank_account.code == "090", "bank account")
                check(len(b.line_items or []) == 1 and b.line_items[0].line_amount == D("123.45")
                      and b.line_items[0].account_code == "200", "line items")
                check(b.contact is not None and b.contact.contact_id is not None, "contact id")
                return b

            bt = step(r, "bank transaction created round-trips", created_ok)
        if bt is not None:
            bid = bt.bank_transaction_id
            upd = BankTransaction(
                bank_transaction_id=bid,
                type="RECEIVE",
                contact=Contact(contact_id=bt.contact.contact_id),
                bank_account=Account(code="090"),
                line_amount_types=LineAmountTypes.NOTAX,
                date=today,
                reference=ref + "-updated",
                line_items=[LineItem(description="SDK check sale, corrected", quantity=D("2"),
                                     unit_amount=D("150.00"), account_code="200", tax_type="NONE")],
            )
            updated = self.call("accounting.update_or_create_bank_transactions (POST)",
                                a.update_or_create_bank_transactions, t, BankTransactions(bank_transactions=[upd]))
            if updated is not None:
                u = (updated.bank_transactions or [None])[0]
                step(r, "bank transaction updated round-trips", check,
                     u is not None and u.bank_transaction_id == bid and u.total == D("300.00")
                     and u.reference == ref + "-updated" and u.line_items[0].quantity == D("2"),
                     f"answered {u and (u.bank_transaction_id, u.total, u.reference)}")
            upd2 = BankTransaction(
                bank_transaction_id=bid,
                type="RECEIVE",
                contact=Contact(contact_id=bt.contact.contact_id),
                bank_account=Account(code="090"),
                line_amount_types=LineAmountTypes.NOTAX,
                date=today,
                reference=ref + "-by-id",
                line_items=[LineItem(description="SDK check sale, by id", quantity=D("1"),
                                     unit_amount=D("310.25"), account_code="200", tax_type="NONE")],
            )
            by_id = self.call("accounting.update_bank_transaction (POST /BankTransactions/{id})",
                              a.update_bank_transaction, t, bid, BankTransactions(bank_transactions=[upd2]))
            expected_total, expected_ref = D("300.00"), ref + "-updated"
            if by_id is not None:
                u = (by_id.bank_transactions or [None])[0]
                step(r, "bank transaction updated by id round-trips", check,
                     u is not None and u.bank_transaction_id == bid and u.total == D("310.25"),
                     f"answered {u and (u.bank_transaction_id, u.total)}")
                expected_total, expected_ref = D("310.25"), ref + "-by-id"
            one = self.call("accounting.get_bank_transaction", a.get_bank_transaction, t, bid)
            if one is not None:
                o = (one.bank_transactions or [None])[0]
                step(r, "bank transaction read by id", check,
                     o is not None and o.bank_transaction_id == bid and o.total == expected_total
                     and o.reference == expected_ref,
                     f"answered {o and (o.bank_transaction_id, o.total, o.reference)}")

            def list_all_bank():
                out = []
                for page in range(1, 1000):
                    got = a.get_bank_transactions(t, page=page)
                    batch = got.bank_transactions or []
                    out.extend(batch)
                    if len(batch) < 100:
                        return out
                raise CheckError("more than 999 pages")

            listed = self.call("accounting.get_bank_transactions (every page)", list_all_bank)
            if listed is not None:
                r.counts["bank transactions listed"] = len(listed)
                mine = [x for x in listed if x.bank_transaction_id == bid]
                step(r, "created bank transaction listed once", check,
                     len(mine) == 1 and mine[0].total == expected_total,
                     f"{len(mine)} listed with its id")
            since = bt.updated_date_utc - datetime.timedelta(seconds=1)
            recent = self.call("accounting.get_bank_transactions (If-Modified-Since)",
                               a.get_bank_transactions, t, if_modified_since=since)
            if recent is not None:
                step(r, "If-Modified-Since lists the updated bank transaction", check,
                     any(x.bank_transaction_id == bid for x in recent.bank_transactions or [])
                     and all(x.updated_date_utc > since for x in recent.bank_transactions or []),
                     f"{len(recent.bank_transactions or [])} listed since {since.isoformat()}")

        # An invalid element: 400 ValidationException, read into the SDK's Error.
        bad = BankTransaction(
            type="SPEND",
            contact=Contact(name="Sysco"),
            bank_account=Account(code="090"),
            line_items=[LineItem(description="bad account", quantity=D("1"),
                                 unit_amount=D("5.00"), account_code="999")],
        )
        mark = r.mark()

        def rejected():
            try:
                a.create_bank_transactions(t, BankTransactions(bank_transactions=[bad]))
            except HTTPStatusException as e:
                check(e.status == 400, f"status {e.status}, expected 400")
                data = e.error_data if hasattr(e, "error_data") else json.loads(e.body)
                check(data.get("Type") == "ValidationException", f"Type {data.get('Type')!r}")
                msg = data["Elements"][0]["ValidationErrors"][0]["Message"]
                check("999" in msg, f"message {msg!r}")
                from xero_python.api_client.deserializer import deserialize
                err = deserialize("Error", data, a.get_model_finder())
                check(err.elements and err.elements[0].validation_errors, "no validation errors read")
                return
            raise CheckError("an invalid account code was answered 2xx")

        step(r, "invalid bank transaction -> 400 ValidationException (SDK Error model)", rejected)
        per = []
        for ex in r.since(mark):
            issues: list = []
            notes: list = []
            walk_xero("Error", json.loads(ex.answer or "{}", parse_float=decimal.Decimal), "Error",
                      a.get_model_finder(), issues, notes)
            for n in notes:
                r.note(n)
            per.append((ex, issues))
        strict_failures(r, "ValidationException body (strict)", per)

        # summarizeErrors=false: 200 with each element OK or ERROR.
        good = BankTransaction(
            type="SPEND",
            contact=Contact(name="Sysco"),
            bank_account=Account(code="090"),
            line_amount_types=LineAmountTypes.EXCLUSIVE,
            date=today,
            reference=ref + "-mixed",
            line_items=[LineItem(description="produce", quantity=D("3"), unit_amount=D("4.1234"),
                                 account_code="310", tax_type="NONE", tax_amount=D("1.00"))],
        )
        mixed = self.call("accounting.create_bank_transactions summarize_errors=False unitdp=4",
                          a.create_bank_transactions, t, BankTransactions(bank_transactions=[good, bad]),
                          summarize_errors=False, unitdp=4)
        if mixed is not None:
            els = mixed.bank_transactions or []

            def mixed_ok():
                check(len(els) == 2, f"{len(els)} elements answered")
                ok_el, err_el = els
                check(ok_el.status_attribute_string == "OK" and not ok_el.validation_errors,
                      f"first element {ok_el.status_attribute_string} {ok_el.validation_errors}")
                check(ok_el.line_items[0].unit_amount == D("4.1234") and ok_el.sub_total == D("12.37")
                      and ok_el.total_tax == D("1.00") and ok_el.total == D("13.37"),
                      f"amounts unit {ok_el.line_items[0].unit_amount} sub {ok_el.sub_total} "
                      f"tax {ok_el.total_tax} total {ok_el.total}, expected 4.1234 12.37 1.00 13.37")
                check(err_el.status_attribute_string == "ERROR" and err_el.validation_errors
                      and "999" in err_el.validation_errors[0].message,
                      f"second element {err_el.status_attribute_string} {err_el.validation_errors}")
                return True

            step(r, "summarize_errors=False answers OK and ERROR elements", mixed_ok)

        # Manual journal: create (PUT), update (POST), read, list.
        narration = f"SDK check journal {uuid.uuid4().hex[:8]}"
        journal = ManualJournal(
            narration=narration,
            date=today,
            status="DRAFT",
            line_amount_types=LineAmountTypes.NOTAX,
            journal_lines=[
                ManualJournalLine(line_amount=D("100.00"), account_code="610", description="card clearing"),
                ManualJournalLine(line_amount=D("-100.00"), account_code="200", description="sales"),
            ],
        )
        made = self.call("accounting.create_manual_journals (PUT)", a.create_manual_journals,
                         t, ManualJournals(manual_journals=[journal]))
        mj = None
        if made is not None:
            js = made.manual_journals or []

            def journal_ok():
                check(len(js) == 1, f"{len(js)} elements answered")
                j = js[0]
                check(j.manual_journal_id and str(j.manual_journal_id) != "00000000-0000-0000-0000-000000000000",
                      f"id {j.manual_journal_id}")
                check(j.narration == narration and j.status == "DRAFT", f"narration {j.narration!r} status {j.status}")
                check(j.line_amount_types == LineAmountTypes.NOTAX, f"line_amount_types {j.line_amount_types}")
                check(j.date == today, f"date {j.date!r}")
                amounts = sorted(l.line_amount for l in j.journal_lines or [])
                check(amounts == [D("-100.00"), D("100.00")], f"line amounts {amounts}")
                check(all(l.account_id and l.account_code in ("610", "200") for l in j.journal_lines),
                      "journal lines' accounts")
                return j

            mj = step(r, "manual journal created round-trips", journal_ok)
        if mj is not None:
            jid = mj.manual_journal_id
            upd = ManualJournal(
                manual_journal_id=jid,
                narration=narration + " (posted)",
                status="POSTED",
                journal_lines=[
                    ManualJournalLine(line_amount=D("250.00"), account_code="610"),
                    ManualJournalLine(line_amount=D("-200.00"), account_code="200"),
                    ManualJournalLine(line_amount=D("-50.00"), account_code="201"),
                ],
            )
            done = self.call("accounting.update_or_create_manual_journals (POST)",
                             a.update_or_create_manual_journals, t, ManualJournals(manual_journals=[upd]))
            if done is not None:
                j = (done.manual_journals or [None])[0]
                step(r, "manual journal updated round-trips", check,
                     j is not None and j.manual_journal_id == jid and j.status == "POSTED"
                     and j.narration == narration + " (posted)" and len(j.journal_lines or []) == 3
                     and sum(l.line_amount for l in j.journal_lines) == 0 and j.date == today,
                     f"answered {j and (j.manual_journal_id, j.status, j.narration, len(j.journal_lines or []))}")
            one = self.call("accounting.get_manual_journal", a.get_manual_journal, t, jid)
            if one is not None:
                j = (one.manual_journals or [None])[0]
                step(r, "manual journal read by id", check,
                     j is not None and j.manual_journal_id == jid and j.status == "POSTED",
                     f"answered {j and (j.manual_journal_id, j.status)}")

            def list_all_journals():
                out = []
                for page in range(1, 1000):
                    got = a.get_manual_journals(t, page=page)
                    batch = got.manual_journals or []
                    out.extend(batch)
                    if len(batch) < 100:
                        return out
                raise CheckError("more than 999 pages")

            listed = self.call("accounting.get_manual_journals (every page)", list_all_journals)
            if listed is not None:
                r.counts["manual journals listed"] = len(listed)
                mine = [x for x in listed if x.manual_journal_id == jid]
                step(r, "created manual journal listed once", check,
                     len(mine) == 1 and mine[0].status == "POSTED", f"{len(mine)} listed with its id")
            since = mj.updated_date_utc - datetime.timedelta(seconds=1)
            recent = self.call("accounting.get_manual_journals (If-Modified-Since)",
                               a.get_manual_journals, t, if_modified_since=since)
            if recent is not None:
                step(r, "If-Modified-Since lists the updated manual journal", check,
                     any(x.manual_journal_id == jid for x in recent.manual_journals or [])
                     and all(x.updated_date_utc > since for x in recent.manual_journals or []),
                     f"{len(recent.manual_journals or [])} listed since {since.isoformat()}")
            where = self.call("accounting.get_manual_journals (where Status==POSTED)",
                              a.get_manual_journals, t, where='Status=="POSTED"')
            if where is not None:
                step(r, "where filter answers only POSTED journals", check,
                     any(x.manual_journal_id == jid for x in where.manual_journals or [])
                     and all(x.status == "POSTED" for x in where.manual_journals or []),
                     f"statuses {[x.status for x in where.manual_journals or []]}")


# ---------------------------------------------------------------------------
# Driver


def start_hub(hub: str, timeout: float, extra: list | None = None):
    """Starts `hub sandboxes` in its own process group; returns (proc, info)."""
    out_dir = tempfile.mkdtemp(prefix="sdk-check-")
    out = os.path.join(out_dir, "sandboxes.json")
    log = open(os.path.join(out_dir, "hub.log"), "w+")
    proc = subprocess.Popen(
        [hub, "sandboxes", "--json", "--out", out, *(extra or [])],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    proc.sdk_check_log = log
    proc.sdk_check_dir = out_dir
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            text = log.read()[-3000:]
            stop_hub(proc)
            raise RuntimeError(f"`{hub} sandboxes` exited with {proc.returncode}:\n{text}")
        try:
            with open(out) as f:
                return proc, json.load(f)
        except (FileNotFoundError, ValueError):
            time.sleep(0.1)  # not written yet, or half written
    stop_hub(proc)
    raise RuntimeError(f"`{hub} sandboxes` wrote no {out} in {timeout:.0f}s")


def stop_hub(proc) -> None:
    """Ends the process group `start_hub` made (the hub and anything it
    started), and removes its temporary folder."""
    if proc is None:
        return
    try:
        # The group outlives its leader if a child is left: end it even when
        # the hub itself has exited.
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)
    log = getattr(proc, "sdk_check_log", None)
    if log is not None and not log.closed:
        log.close()
    folder = getattr(proc, "sdk_check_dir", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def sdk_versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("squareup", "xero-python", "pydantic", "httpx", "urllib3"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def print_report(r: Report, seconds: float, max_notes: int) -> None:
    counts = ", ".join(f"{v} {k}" for k, v in r.counts.items())
    state = "ok" if not r.failures else f"FAILED ({len(r.failures)})"
    print(f"{r.name}: {state} in {seconds:.1f}s; {len(r.passed)} checks passed, "
          f"{len(r.exchanges)} requests; {counts}")
    for name, message, ex in r.failures:
        print(f"  FAIL {name}: {message}")
        if ex is not None:
            print(ex.describe())
    if r.notes:
        keys = sorted(r.notes)
        print(f"  note: {len(keys)} answer keys the SDK's models do not have (not failures):")
        for k in keys[:max_notes]:
            print(f"    {k} (x{r.notes[k]})")
        if len(keys) > max_notes:
            print(f"    ... and {len(keys) - max_notes} more (--notes N shows more)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--hub", help="the hub binary: start `hub sandboxes` and stop it at the end")
    src.add_argument("--sandboxes", help="the JSON file of running sandboxes (`hub sandboxes --out`)")
    p.add_argument("--only", choices=["square", "xero"], action="append",
                   help="run only this provider (repeatable)")
    p.add_argument("--start-timeout", type=float, default=60.0,
                   help="seconds to wait for `hub sandboxes` to write its file")
    p.add_argument("--seed", type=int, help="with --hub: `hub sandboxes --seed` (other data)")
    p.add_argument("--days", type=int, help="with --hub: `hub sandboxes --days` (more sales)")
    p.add_argument("--notes", type=int, default=20, help="unknown-key notes to print per provider")
    args = p.parse_args(argv)

    try:
        versions = sdk_versions()
        import square  # noqa: F401
        import xero_python  # noqa: F401
    except ImportError as e:
        print(f"sdk_check: the SDKs are not installed ({e}); pip install -r xtask/python-requirements.txt",
              file=sys.stderr)
        return 2

    # A SIGTERM (a timeout of the runner) still ends the hub's group.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    proc = None
    started = time.monotonic()
    try:
        if args.hub:
            extra = []
            if args.seed is not None:
                extra += ["--seed", str(args.seed)]
            if args.days is not None:
                extra += ["--days", str(args.days)]
            proc, info = start_hub(args.hub, args.start_timeout, extra)
        else:
            with open(args.sandboxes) as f:
                info = json.load(f)
        settings = info["settings"]
        print("sdk_check: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        reports = []
        wanted = args.only or ["square", "xero"]
        if "square" in wanted:
            r = Report("square")
            t0 = time.monotonic()
            try:
                SquareCheck(settings["HUB_ENDPOINT_SQUARE"], info["square"]["access_token"], r).run()
            except Exception as e:  # a bug of this script, or an SDK import
                r.fail("square (setup)", "".join(traceback.format_exception(type(e), e, e.__traceback__)).strip(), r.last())
            print_report(r, time.monotonic() - t0, args.notes)
            reports.append(r)
        if "xero" in wanted:
            r = Report("xero")
            t0 = time.monotonic()
            try:
                XeroCheck(settings["HUB_ENDPOINT_XERO"], info["xero"], r).run()
            except Exception as e:
                r.fail("xero (setup)", "".join(traceback.format_exception(type(e), e, e.__traceback__)).strip(), r.last())
            print_report(r, time.monotonic() - t0, args.notes)
            reports.append(r)
    except Exception as e:
        print(f"sdk_check: {e}", file=sys.stderr)
        return 1
    finally:
        stop_hub(proc)
    failed = sum(len(r.failures) for r in reports)
    passed = sum(len(r.passed) for r in reports)
    print(f"sdk_check: {passed} passed, {failed} failed in {time.monotonic() - started:.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
