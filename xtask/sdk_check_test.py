#!/usr/bin/env python3
"""sdk_check.py's strict walks catch what they exist for, and `--hub` always
ends the process group it started.

Each walk test takes a well-formed answer (which the walk passes) and puts
one defect in it: a JSON type other than the SDK model's, an enum value the
SDK does not list, a timestamp that does not parse, a key cased unlike the
SDK's field. No sandbox, no network.

Run: `.venv-tools/bin/python xtask/sdk_check_test.py` (needs the SDKs of
xtask/python-requirements.txt).
"""

from __future__ import annotations

import copy
import decimal
import json
import os
import signal
import sys
import tempfile
import textwrap
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sdk_check as sc  # noqa: E402

PAYMENTS = {
    "payments": [
        {
            "id": "P1",
            "location_id": "L1",
            "order_id": "O1",
            "status": "COMPLETED",
            "source_type": "CARD",
            "created_at": "2024-05-01T12:00:00.000Z",
            "updated_at": "2024-05-01T12:00:01Z",
            "amount_money": {"amount": 1000, "currency": "USD"},
            "tip_money": {"amount": 100, "currency": "USD"},
            "total_money": {"amount": 1100, "currency": "USD"},
            "card_details": {
                "status": "CAPTURED",
                "card": {"card_brand": "VISA", "last_4": "1111", "exp_month": 1, "exp_year": 2030},
            },
            "refund_ids": ["R1"],
        }
    ],
    "cursor": "abc",
}

BANK = {
    "Id": "e6b5a8f4-0000-0000-0000-000000000000",
    "Status": "OK",
    "ProviderName": "x",
    "DateTimeUTC": "/Date(1714564800000)/",
    "BankTransactions": [
        {
            "BankTransactionID": "0442ef7c-7965-4cf3-a492-6b348315180f",
            "Type": "RECEIVE",
            "Status": "AUTHORISED",
            "Date": "/Date(1714521600000+0000)/",
            "UpdatedDateUTC": "/Date(1714564800000+0000)/",
            "LineAmountTypes": "NoTax",
            "Reference": "r",
            "IsReconciled": False,
            "Total": decimal.Decimal("12.50"),
            "LineItems": [{"LineAmount": decimal.Decimal("12.50"), "AccountCode": "200", "Quantity": 1}],
            "BankAccount": {"AccountID": "a", "Code": "090"},
            "Contact": {"ContactID": "c", "Name": "n"},
        }
    ],
}


def square_issues(data) -> list:
    from square.types.list_payments_response import ListPaymentsResponse

    issues: list = []
    notes: list = []
    sc.walk_square(ListPaymentsResponse, data, "ListPaymentsResponse", issues, notes)
    return issues


def xero_issues(data, type_str: str = "BankTransactions") -> tuple:
    from xero_python.accounting import AccountingApi

    issues: list = []
    notes: list = []
    finder = AccountingApi(api_client=object()).get_model_finder()
    sc.walk_xero(type_str, data, type_str, finder, issues, notes)
    return issues, notes


class SquareWalk(unittest.TestCase):
    def defect(self, change) -> list:
        data = copy.deepcopy(PAYMENTS)
        change(data["payments"][0])
        issues = square_issues(data)
        self.assertTrue(issues, "the defect went unseen")
        return issues

    def test_well_formed_passes(self):
        self.assertEqual(square_issues(PAYMENTS), [])

    def test_amount_as_string(self):
        (i,) = self.defect(lambda p: p["amount_money"].update(amount="1000"))
        self.assertEqual(i.path, "ListPaymentsResponse.payments[0].amount_money.amount")
        self.assertIn("integer", i.message)

    def test_enum_value_unknown(self):
        (i,) = self.defect(lambda p: p["card_details"]["card"].update(card_brand="VISA_CARD"))
        self.assertIn("card_brand", i.path)
        self.assertIn("not one of the SDK's values", i.message)

    def test_currency_unknown(self):
        (i,) = self.defect(lambda p: p["total_money"].update(currency="usd"))
        self.assertIn("total_money.currency", i.path)

    def test_timestamp_not_rfc3339(self):
        (i,) = self.defect(lambda p: p.update(created_at="2024-05-01 12:00:00"))
        self.assertIn("RFC 3339", i.message)

    def test_key_cased_unlike_the_sdk(self):
        (i,) = self.defect(lambda p: p.update(Order_Id=p.pop("order_id")))
        self.assertIn("spelled 'order_id'", i.message)

    def test_list_not_a_list(self):
        (i,) = self.defect(lambda p: p.update(refund_ids="R1"))
        self.assertIn("JSON array", i.message)

    def test_unknown_key_is_a_note(self):
        data = copy.deepcopy(PAYMENTS)
        data["payments"][0]["sandbox_only"] = 1
        issues: list = []
        notes: list = []
        from square.types.list_payments_response import ListPaymentsResponse

        sc.walk_square(ListPaymentsResponse, data, "ListPaymentsResponse", issues, notes)
        self.assertEqual(issues, [])
        self.assertEqual(notes, ["ListPaymentsResponse.payments[].sandbox_only: key not in the SDK's Payment"])


class XeroWalk(unittest.TestCase):
    def defect(self, change) -> list:
        data = copy.deepcopy(BANK)
        change(data["BankTransactions"][0])
        issues, _ = xero_issues(data)
        self.assertTrue(issues, "the defect went unseen")
        return issues

    def test_well_formed_passes(self):
        self.assertEqual(xero_issues(BANK), ([], []))

    def test_amount_as_string(self):
        (i,) = self.defect(lambda b: b.update(Total="12.50"))
        self.assertEqual(i.path, "BankTransactions.BankTransactions[0].Total")

    def test_string_as_number(self):
        (i,) = self.defect(lambda b: b.update(Reference=12))
        self.assertIn("expected a string", i.message)

    def test_date_not_ms_format(self):
        (i,) = self.defect(lambda b: b.update(Date="2024-05-01"))
        self.assertIn("/Date(", i.message)

    def test_enum_value_unknown(self):
        (i,) = self.defect(lambda b: b.update(LineAmountTypes="NOTAX"))
        self.assertIn("LineAmountTypes", i.message)

    def test_bool_as_string(self):
        (i,) = self.defect(lambda b: b.update(IsReconciled="false"))
        self.assertIn("boolean", i.message)

    def test_key_cased_unlike_the_sdk(self):
        (i,) = self.defect(lambda b: b.update(BankTransactionId=b.pop("BankTransactionID")))
        self.assertIn("spelled 'BankTransactionID'", i.message)

    def test_the_sdk_itself_raises_on_a_bad_status(self):
        # What the SDK checks by itself (the walk need not): str fields with
        # allowed values, such as Status.
        from xero_python.accounting import AccountingApi
        from xero_python.api_client.deserializer import deserialize

        finder = AccountingApi(api_client=object()).get_model_finder()
        data = copy.deepcopy(BANK)
        data["BankTransactions"][0]["Status"] = "PAID"
        with self.assertRaises(ValueError):
            deserialize("BankTransactions", data, finder)


class HubProcessGroup(unittest.TestCase):
    def test_group_ended_after_the_checks(self):
        # A stand-in hub that writes the file and leaves a grandchild behind.
        with tempfile.TemporaryDirectory() as d:
            pids = os.path.join(d, "pids")
            hub = os.path.join(d, "hub")
            with open(hub, "w") as f:
                f.write(textwrap.dedent(f"""\
                    #!{sys.executable}
                    import json, os, subprocess, sys, time
                    out = sys.argv[sys.argv.index("--out") + 1]
                    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
                    open({pids!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
                    json.dump({{"settings": {{}}}}, open(out + ".part", "w"))
                    os.rename(out + ".part", out)
                    time.sleep(600)
                    """))
            os.chmod(hub, 0o755)
            proc, info = sc.start_hub(hub, 20)
            self.assertEqual(info, {"settings": {}})
            sc.stop_hub(proc)
            with open(pids) as f:
                parent, child = map(int, f.read().split())
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and alive(child):
                time.sleep(0.05)
            self.assertFalse(alive(parent))
            self.assertFalse(alive(child), "the hub's child outlived it")

    def test_hub_that_exits_is_reported(self):
        with self.assertRaisesRegex(RuntimeError, "exited with 1"):
            sc.start_hub("/bin/false", 5)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


if __name__ == "__main__":
    unittest.main()
