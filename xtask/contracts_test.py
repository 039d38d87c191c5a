"""Tests of xtask/contracts.py: recorded exchanges (inline) the checks must
reject, and one they must pass. Run: python -m unittest xtask/contracts_test.py
(from the repository root) or python xtask/contracts_test.py."""

from __future__ import annotations

import io
import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contracts  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "tests" / "contracts"

GUID = "7d1c9a3e-2f4b-4c55-9d3e-0a1b2c3d4e5f"
GUID2 = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"


def exchange(provider, method, path, status=200, request=None, response=None, route=None, query=None):
    return {
        "provider": provider,
        "method": method,
        "path": path,
        "query": query,
        "route": route,
        "request": {"content_type": "application/json" if request is not None else None, "body": request},
        "response": {"status": status, "content_type": "application/json", "body": response},
        "dropped": False,
    }


XERO_ENVELOPE = {
    "Id": GUID,
    "Status": "OK",
    "ProviderName": "hub",
    "DateTimeUTC": "/Date(1552595972952)/",
}


def xero_bank_transaction(with_id: bool) -> dict:
    bt = {
        "Type": "RECEIVE",
        "Contact": {"ContactID": GUID2, "Name": "Daily sales"},
        "BankAccount": {"Code": "090"},
        "Date": "2026-11-30",
        "Reference": "sales 2026-11-30",
        "LineAmountTypes": "Exclusive",
        "LineItems": [{"Description": "Food", "Quantity": 1.0, "UnitAmount": 120.5, "AccountCode": "200", "TaxType": "OUTPUT"}],
    }
    if with_id:
        bt["BankTransactionID"] = GUID
    return bt


def qbo_sales_receipt(**extra) -> dict:
    body = {
        "TxnDate": "2026-11-30",
        "GlobalTaxCalculation": "TaxExcluded",
        "DepositToAccountRef": {"value": "4", "name": "Undeposited Funds"},
        "Line": [
            {
                "Amount": 35.0,
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {"ItemRef": {"value": "10", "name": "Food"}, "Qty": 1, "UnitPrice": 35, "TaxCodeRef": {"value": "NON"}},
            }
        ],
    }
    body.update(extra)
    return body


class ContractsTest(unittest.TestCase):
    checker: contracts.Checker

    @classmethod
    def setUpClass(cls):
        cls.checker = contracts.Checker(SPECS)

    def check(self, *exchanges) -> list[contracts.Finding]:
        """The violations the checker reports for these exchanges (written to
        and read back from a traffic directory, as recorded)."""
        c = self.checker
        c.report = contracts.Report()
        c.seen_shapes.clear()
        with tempfile.TemporaryDirectory() as d:
            with open(Path(d) / "test-1-0.jsonl", "w") as f:
                for ex in exchanges:
                    f.write(json.dumps(ex) + "\n")
            for ex in contracts.load_traffic(Path(d)):
                c.check(ex)
        return [entry[0] for entry in c.report.violations.values()]

    def assertViolation(self, found, kind, side, where, contains=""):
        hits = [f for f in found if f.kind == kind and f.side == side and f.where == where and contains in f.what]
        self.assertTrue(hits, f"no {kind} at {side} {where} ({contains!r}) among:\n" + "\n".join(map(str, found)))

    # -- passes

    def test_valid_exchanges_pass(self):
        found = self.check(
            # Xero createBankTransactions: an element carrying BankTransactionID is
            # fine by the schema (PUT refusing it is behaviour, not shape).
            exchange(
                "xero", "PUT", "/api.xro/2.0/BankTransactions",
                request={"BankTransactions": [xero_bank_transaction(with_id=True)]},
                response={**XERO_ENVELOPE, "BankTransactions": [{**xero_bank_transaction(with_id=True), "StatusAttributeString": "OK", "Total": 120.5}]},
            ),
            exchange(
                "square", "GET", "/v2/payments",
                response={"payments": [{"id": "p1", "status": "COMPLETED", "amount_money": {"amount": 1250, "currency": "USD"},
                                        "created_at": "2026-11-30T12:00:00Z", "location_id": "L1", "order_id": "o1"}],
                          "cursor": "abc"},
            ),
            exchange(
                "quickbooks", "POST", "/v3/company/123/salesreceipt", route="/v3/company/{realmId}/salesreceipt",
                request=qbo_sales_receipt(),
                response={"SalesReceipt": {**qbo_sales_receipt(), "Id": "1000", "SyncToken": "0", "domain": "QBO", "sparse": False},
                          "time": "2026-11-30T17:35:24.649-08:00"},
            ),
        )
        self.assertEqual(found, [])

    # -- rejects

    def test_xero_manual_journal_with_an_unknown_field_is_an_invented_field(self):
        journal = {
            "Narration": "Daily sales",
            "Date": "2026-11-30",
            "LineAmountTypes": "NoTax",
            "Memo": "not a Xero field",
            "JournalLines": [{"LineAmount": 10.0, "AccountCode": "200"}, {"LineAmount": -10.0, "AccountCode": "090"}],
        }
        found = self.check(
            exchange("xero", "PUT", "/api.xro/2.0/ManualJournals", request={"ManualJournals": [journal]},
                     response={**XERO_ENVELOPE, "ManualJournals": [{k: v for k, v in journal.items() if k != "Memo"}]}),
        )
        self.assertViolation(found, "invented field", "request", "/ManualJournals/*/Memo", "'Memo'")
        # The schema alone lets it through: the only finding is the invented field.
        self.assertEqual([f.kind for f in found], ["invented field"])

    def test_toast_menu_item_with_inline_modifier_groups_is_reported(self):
        item = {
            "name": "Burger", "guid": GUID, "price": 12.0,
            "modifierGroups": [{"guid": GUID2, "name": "Sides", "modifierOptions": [{"guid": GUID2, "name": "Fries", "price": 2.0}]}],
        }
        body = {
            "restaurantGuid": GUID, "lastUpdated": "2026-11-30T12:00:00.000+0000", "restaurantTimeZone": "America/New_York",
            "menus": [{"name": "All Day", "guid": GUID, "menuGroups": [{"name": "Mains", "guid": GUID, "menuItems": [item], "menuGroups": []}]}],
            "modifierGroupReferences": {}, "modifierOptionReferences": {},
        }
        found = self.check(exchange("toast", "GET", "/menus/v2/menus", response=body))
        self.assertViolation(found, "invented field", "response", "/menus/*/menuGroups/*/menuItems/*/modifierGroups", "'modifierGroups'")

        # The definition's own shape passes: integer references into the top-level maps.
        item = {k: v for k, v in item.items() if k != "modifierGroups"} | {"modifierGroupReferences": [1]}
        body["menus"][0]["menuGroups"][0]["menuItems"] = [item]
        body["modifierGroupReferences"] = {"1": {"referenceId": 1, "guid": GUID2, "name": "Sides", "modifierOptionReferences": [2]}}
        body["modifierOptionReferences"] = {"2": {"referenceId": 2, "guid": GUID2, "name": "Fries", "price": 2.0}}
        self.assertEqual(self.check(exchange("toast", "GET", "/menus/v2/menus", response=body)), [])

    def test_square_money_amount_as_a_string_is_a_schema_violation(self):
        found = self.check(
            exchange("square", "GET", "/v2/payments",
                     response={"payments": [{"id": "p1", "amount_money": {"amount": "1250", "currency": "USD"}}]}),
        )
        self.assertViolation(found, "schema", "response", "/payments/*/amount_money/amount", "is not of type 'integer'")

    def test_an_unknown_path_is_not_in_the_definition(self):
        found = self.check(
            exchange("square", "GET", "/v2/payments-summary", response={}),
            exchange("xero", "GET", "/api.xro/2.0/BankTransactionz", response={}),
        )
        self.assertEqual(sorted(f.route for f in found if f.kind == "not in the definition"),
                         ["/api.xro/2.0/BankTransactionz", "/v2/payments-summary"])

    def test_allowed_endpoints_are_not_looked_up(self):
        self.assertEqual(self.check(exchange("marketman", "POST", "/v3/buyers/auth/GetToken", request={}, response={})), [])

    def test_quickbooks_invented_property_and_invalid_detail_type(self):
        body = qbo_sales_receipt(RefundFromAccountRef={"value": "4"})
        body["Line"][0]["DetailType"] = "SalesLineDetail"
        found = self.check(
            exchange("quickbooks", "POST", "/v3/company/123/salesreceipt", route="/v3/company/{realmId}/salesreceipt",
                     request=body, response={"SalesReceipt": body, "time": "2026-11-30T17:35:24.649-08:00"}),
        )
        self.assertViolation(found, "invented field", "request", "/RefundFromAccountRef", "not an element of SalesReceipt")
        self.assertViolation(found, "enumeration", "request", "/Line/*/DetailType", "'SalesLineDetail'")
        self.assertViolation(found, "invented field", "response", "/SalesReceipt/RefundFromAccountRef")
        self.assertViolation(found, "enumeration", "response", "/SalesReceipt/Line/*/DetailType")

    def test_quickbooks_batch_items_and_enumerations_inside_them(self):
        item = {"bId": "1", "operation": "create", "SalesReceipt": qbo_sales_receipt(GlobalTaxCalculation="Sometimes")}
        found = self.check(
            exchange("quickbooks", "POST", "/v3/company/123/batch", route="/v3/company/{realmId}/batch",
                     request={"BatchItemRequest": [item]},
                     response={"BatchItemResponse": [{"bId": "1", "Fault": {"Error": [{"Message": "m", "code": "6000"}], "type": "ValidationFault"}}],
                               "time": "2026-11-30T17:35:24.649-08:00"}),
        )
        self.assertViolation(found, "enumeration", "request", "/BatchItemRequest/*/SalesReceipt/GlobalTaxCalculation", "'Sometimes'")
        self.assertEqual(len(found), 1, found)

    def test_quickbooks_journal_entry_and_preferences(self):
        line = {"Id": "0", "Amount": 120.0, "DetailType": "JournalEntryLineDetail", "Description": "Card tenders",
                "JournalEntryLineDetail": {"PostingType": "Debit", "AccountRef": {"value": "98", "name": "Card Clearing"},
                                           "DepartmentRef": {"value": "1", "name": "Downtown"}, "ClassRef": {"value": "2"}}}
        credit = {**line, "JournalEntryLineDetail": {**line["JournalEntryLineDetail"], "PostingType": "Credit"}}
        je = {"TxnDate": "2026-11-30", "DocNumber": "LOC1-20261130", "PrivateNote": "Daily sales", "Line": [line, credit]}
        prefs = {"AccountingInfoPrefs": {"TrackDepartments": True, "DepartmentTerminology": "Location", "ClassTrackingPerTxn": False,
                                         "ClassTrackingPerTxnLine": False, "BookCloseDate": "2026-10-31", "FirstMonthOfFiscalYear": "January"},
                 "Id": "1", "SyncToken": "1", "domain": "QBO", "sparse": False}
        time = "2026-11-30T17:35:24.649-08:00"
        found = self.check(
            exchange("quickbooks", "POST", "/v3/company/123/journalentry", route="/v3/company/{realmId}/journalentry", request=je,
                     response={"JournalEntry": {**je, "Id": "1000", "SyncToken": "0", "TotalAmt": 120.0, "Adjustment": False}, "time": time}),
            exchange("quickbooks", "GET", "/v3/company/123/preferences", route="/v3/company/{realmId}/preferences",
                     response={"Preferences": prefs, "time": time}),
            exchange("quickbooks", "GET", "/v3/company/123/query", route="/v3/company/{realmId}/query",
                     response={"QueryResponse": {"Department": [{"Id": "1", "Name": "Downtown", "SubDepartment": False, "Active": True}],
                                                 "startPosition": 1, "maxResults": 1}, "time": time}),
        )
        self.assertEqual(found, [])

        bad = {**je, "Line": [{**line, "JournalEntryLineDetail": {**line["JournalEntryLineDetail"], "PostingType": "Debt"}}]}
        bad_prefs = {**prefs, "AccountingInfoPrefs": {**prefs["AccountingInfoPrefs"], "ClosingDate": "2026-10-31"}}
        found = self.check(
            exchange("quickbooks", "POST", "/v3/company/123/journalentry", route="/v3/company/{realmId}/journalentry", request=bad,
                     response={"JournalEntry": bad, "time": time}),
            exchange("quickbooks", "GET", "/v3/company/123/preferences", route="/v3/company/{realmId}/preferences",
                     response={"Preferences": bad_prefs, "time": time}),
        )
        self.assertViolation(found, "enumeration", "request", "/Line/*/JournalEntryLineDetail/PostingType", "'Debt'")
        self.assertViolation(found, "invented field", "response", "/Preferences/AccountingInfoPrefs/ClosingDate", "not an element of CompanyAccountingPrefs")

    def test_xero_organisation_and_tracking_categories(self):
        org = {"OrganisationID": GUID, "Name": "Demo Company (US)", "Version": "US", "BaseCurrency": "USD", "CountryCode": "US",
               "OrganisationStatus": "ACTIVE", "PeriodLockDate": "/Date(1748822400000+0000)/", "EndOfYearLockDate": "/Date(1735603200000+0000)/",
               "Timezone": "PACIFICSTANDARDTIME", "Class": "STANDARD", "Edition": "BUSINESS", "Addresses": [], "Phones": [], "PaymentTerms": {}}
        category = {"Name": "Location", "Status": "ACTIVE", "TrackingCategoryID": GUID,
                    "Options": [{"TrackingOptionID": GUID2, "Name": "Downtown", "Status": "ACTIVE"}]}
        found = self.check(
            exchange("xero", "GET", "/api.xro/2.0/Organisation", response={**XERO_ENVELOPE, "Organisations": [org]}),
            exchange("xero", "GET", "/api.xro/2.0/TrackingCategories", response={**XERO_ENVELOPE, "TrackingCategories": [category]}),
        )
        self.assertEqual(found, [])
        invented = {**category, "Options": [{**category["Options"][0], "IsActive": True}]}
        found = self.check(
            exchange("xero", "GET", "/api.xro/2.0/Organisation", response={**XERO_ENVELOPE, "Organisations": [{**org, "Version": "USA"}]}),
            exchange("xero", "GET", "/api.xro/2.0/TrackingCategories", response={**XERO_ENVELOPE, "TrackingCategories": [invented]}),
        )
        self.assertViolation(found, "schema", "response", "/Organisations/*/Version", "'USA'")
        self.assertViolation(found, "invented field", "response", "/TrackingCategories/*/Options/*/IsActive", "'IsActive'")

    def test_a_refused_request_is_a_note_not_a_violation(self):
        found = self.check(
            exchange("square", "POST", "/v2/orders/batch-retrieve", status=400, request={"order_ids": "o1"},
                     response={"errors": [{"category": "INVALID_REQUEST_ERROR", "code": "EXPECTED_ARRAY", "detail": "d", "field": "order_ids"}]}),
        )
        self.assertEqual(found, [])
        self.assertTrue(self.checker.report.notes)

    def test_run_exits_non_zero_and_lists_the_violation(self):
        with tempfile.TemporaryDirectory() as d:
            with open(Path(d) / "square-1-0.jsonl", "w") as f:
                f.write(json.dumps(exchange("square", "GET", "/v2/nowhere", response={})) + "\n")
            out = io.StringIO()
            self.assertEqual(contracts.run(SPECS, Path(d), out), 1)
            self.assertIn("square GET /v2/nowhere: not in the definition", out.getvalue())


if __name__ == "__main__":
    unittest.main()
