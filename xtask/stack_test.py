#!/usr/bin/env python3
"""stack.py against the AWS emulator: `create` deploys the template's tables
and queues and resolves the functions' environment; `iam` passes the calls the
template's roles allow and fails, naming it, a call one of them does not;
`drift` finds the Rust schema (`hub aws bootstrap`) and the template alike, and
fails, naming it, when one of the template's keys, indexes, TTL or redrives is
changed.

Run: `.venv-tools/bin/python xtask/stack_test.py --endpoint URL` (a moto
server). Without --endpoint it starts its own moto on a free port and stops it
after. With HUB_BIN naming the hub binary, the Rust schema's side is made by
`$HUB_BIN aws bootstrap`; otherwise by `schema_rs_bootstrap` below, which
mirrors shared/src/adapters/aws/schema.rs.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from typing import Callable, Iterator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import stack  # noqa: E402
import template_check as tc  # noqa: E402

ROOT = HERE.parent
SCRIPT = HERE / "stack.py"
ENDPOINT = ""  # set by main()
RUN = secrets.token_hex(2)  # stacks of one run never meet another run's
STAGE = f"e2e{RUN}"
TMP = Path(tempfile.mkdtemp(prefix="stack-test-"))
OUT = TMP / "e2e"
SAM = tc.load_sam(tc.DEFAULT_TEMPLATE)
CREATED: dict = {}  # rc and output of the subprocess `create`

# What every function must get, whatever else the template adds.
EXPECTED_VARIABLES = [
    "HUB_STATE_TABLE", "HUB_IDEMPOTENCY_TABLE",
    "HUB_WORK_QUEUE_URL", "HUB_PUSH_QUEUE_URL", "HUB_PULL_QUEUE_URL", "HUB_UNROUTED_QUEUE_URL", "HUB_OUTBOUND_QUEUE_URL",
    "HUB_WORK_DLQ_URL", "HUB_PUSH_DLQ_URL", "HUB_PULL_DLQ_URL",
]


def run(*argv: str) -> tuple[int, str]:
    """stack.main in this process (no second SAM import): exit status, output."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = stack.main([str(a) for a in argv])
    return rc, buf.getvalue()


def run_cli(*argv: str) -> tuple[int, str]:
    """stack.py as its own process: exit status, output."""
    p = subprocess.run([sys.executable, str(SCRIPT), *map(str, argv)], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr


def clients(*services: str) -> list:
    return stack.session_clients(ENDPOINT, *services)


def transformed() -> dict:
    return json.loads((OUT / "transformed.json").read_text())


def resources() -> dict:
    return json.loads((OUT / "resources.json").read_text())


def create_mutated(name: str, mutate: Callable[[dict], None]) -> Path:
    """A stack from the transformed template with one change; its out dir."""
    cfn = transformed()
    mutate(cfn)
    out = TMP / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "input.json").write_text(json.dumps(cfn))
    rc, text = run("create", "--endpoint", ENDPOINT, "--out", out, "--transformed", out / "input.json",
                   "--stage", f"{name}{RUN}")
    assert rc == 0, f"create of the mutated template {name} failed:\n{text}"
    return out


def lines_with(text: str, *fragments: str) -> list[str]:
    return [line for line in text.splitlines() if all(f in line for f in fragments)]


def not_allowed_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("  NOT ALLOWED ")]


def setUpModule() -> None:  # noqa: N802 - unittest's name
    rc, text = run_cli("create", "--endpoint", ENDPOINT, "--out", OUT, "--stage", STAGE)
    CREATED.update(rc=rc, text=text)
    if rc != 0:
        raise RuntimeError(f"stack.py create failed ({rc}):\n{text}")


# ================================================================= create


class CreateTest(unittest.TestCase):
    def test_create_deploys_every_table_and_queue_of_the_template(self) -> None:
        self.assertEqual(CREATED["rc"], 0, CREATED["text"])
        self.assertIn(f"integration-hub-{STAGE} CREATE_COMPLETE", CREATED["text"])
        res = resources()
        for kind in stack.STACK_TYPES:
            want = {n for n, r in SAM["Resources"].items() if r["Type"] == kind}
            self.assertEqual({n for n, r in res.items() if r["type"] == kind}, want, kind)
        for n, r in res.items():
            self.assertTrue(r["arn"].startswith("arn:aws:"), n)
            if r["type"] == stack.QUEUE:
                self.assertTrue(r["url"].startswith(ENDPOINT), f"{n}: {r['url']} is not the emulator's URL")

    def test_the_environment_names_every_table_and_queue_the_stack_made(self) -> None:
        env = json.loads((OUT / "function-env.json").read_text())
        ddb, sqs = clients("dynamodb", "sqs")
        globals_vars = SAM["Globals"]["Function"]["Environment"]["Variables"]
        names = sorted(set(EXPECTED_VARIABLES) | {k for k in globals_vars if stack.is_table_var(k) or stack.is_queue_var(k)})
        for k in names:
            self.assertIn(k, env, f"{k} not resolved:\n{CREATED['text']}")
            if stack.is_table_var(k):
                self.assertEqual(ddb.describe_table(TableName=env[k])["Table"]["TableStatus"], "ACTIVE")
            else:
                self.assertIn("QueueArn", sqs.get_queue_attributes(QueueUrl=env[k], AttributeNames=["QueueArn"])["Attributes"])
        self.assertEqual(env["HUB_SECRET_PREFIX"], f"integration-hub/{STAGE}/")
        self.assertEqual(env["HUB_STATE_TABLE"], f"hub-state-{STAGE}")
        self.assertEqual(env["HUB_PUSH_DLQ_URL"], resources()["PushDeadLetterQueue"]["url"])
        self.assertEqual(env["HUB_BACKEND"], "aws")

    def test_what_moto_cloudformation_ignores_is_applied(self) -> None:
        (ddb,) = clients("dynamodb")
        ttl = ddb.describe_time_to_live(TableName=f"hub-state-{STAGE}")["TimeToLiveDescription"]
        self.assertEqual((ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")), ("ENABLED", "expiration"))

    def test_a_stack_that_exists_is_not_created_again(self) -> None:
        rc, text = run("create", "--endpoint", ENDPOINT, "--out", TMP / "again", "--transformed", OUT / "transformed.json",
                       "--stage", STAGE)
        self.assertEqual(rc, 1, text)
        self.assertIn(f"stack integration-hub-{STAGE} already exists", text)

    def test_a_refused_resource_fails_with_the_reason(self) -> None:
        cfn = transformed()
        # Two queues of one name, with different attributes.
        tc.props(cfn["Resources"]["UnroutedQueue"])["QueueName"] = tc.props(cfn["Resources"]["OutboundQueue"])["QueueName"]
        tc.props(cfn["Resources"]["UnroutedQueue"])["VisibilityTimeout"] = 31
        (TMP / "refused.json").write_text(json.dumps(cfn))
        rc, text = run("create", "--endpoint", ENDPOINT, "--out", TMP / "refused", "--transformed", TMP / "refused.json",
                       "--stage", f"refused{RUN}")
        self.assertEqual(rc, 1, text)
        self.assertIn("FAILED", text)
        self.assertIn("QueueAlreadyExists", text)

    def test_a_property_naming_a_resource_outside_the_stack_is_dropped(self) -> None:
        cfn = transformed()
        tc.props(cfn["Resources"]["PushQueue"])["KmsMasterKeyId"] = {"Ref": "AlarmTopicKey"}
        subset, dropped = stack.subset_template(cfn)
        self.assertNotIn("KmsMasterKeyId", subset["Resources"]["PushQueue"]["Properties"])
        self.assertIn("KmsMasterKeyId", subset["Resources"]["WorkQueue"]["Properties"])
        self.assertTrue(any("PushQueue.KmsMasterKeyId" in d and "AlarmTopicKey" in d for d in dropped), dropped)
        self.assertEqual(set(subset["Parameters"]), {"Stage", "MaxReceives"})


# ================================================================= iam


def sample_calls() -> list[dict]:
    res = resources()
    state, idem = res["StateTable"]["physical_id"], res["IdempotencyTable"]["physical_id"]
    acct = res["StateTable"]["arn"].split(":")[4]
    return [
        {"caller": "push", "service": "DynamoDB", "operation": "GetItem", "resources": [state]},
        {"caller": "push", "service": "DynamoDB", "operation": "GetItem", "resources": [state]},
        {"caller": "push", "service": "SQS", "operation": "SendMessage", "resources": [res["PushDeadLetterQueue"]["url"]]},
        {"caller": "push", "service": "Secrets Manager", "operation": "GetSecretValue",
         "resources": [f"integration-hub/{STAGE}/tenants/bistro/books"]},
        {"caller": "webhook-toast", "service": "DynamoDB", "operation": "PutItem", "resources": [idem]},
        {"caller": "webhook-toast", "service": "SQS", "operation": "SendMessageBatch", "resources": [res["WorkQueue"]["url"]]},
        {"caller": "webhook-toast", "service": "secrets manager", "operation": "GetSecretValue",
         "resources": [f"arn:aws:secretsmanager:us-east-1:{acct}:secret:integration-hub/{STAGE}/webhooks/toast-AbC123"]},
        {"caller": "pull-toast", "service": "DynamoDB", "operation": "Query", "resources": [state, f"{state}/index/gsi1"]},
        {"caller": "pull-toast", "service": "SQS", "operation": "ReceiveMessage", "resources": [res["PullQueue"]["url"]]},
        {"caller": "pull-toast", "service": "Secrets Manager", "operation": "PutSecretValue",
         "resources": [f"integration-hub/{STAGE}/tenants/bistro/square"]},
        {"caller": "connect", "service": "DynamoDB", "operation": "TransactWriteItems", "resources": [state]},
    ]


def role_statements(cfn: dict, role: str) -> Iterator:
    for pol in tc.props(cfn["Resources"][role])["Policies"]:
        yield pol, pol["PolicyDocument"]["Statement"]


class IamTest(unittest.TestCase):
    def iam(self, calls: list[dict], mutate: Callable[[dict], None] | None = None, *extra: str,
            stage: str = STAGE) -> tuple[int, str]:
        name = secrets.token_hex(3)
        path = TMP / f"calls-{name}.jsonl"
        path.write_text("".join(json.dumps(c) + "\n" for c in calls))
        template = OUT / "transformed.json"
        if mutate:
            cfn = transformed()
            mutate(cfn)
            template = TMP / f"transformed-{name}.json"
            template.write_text(json.dumps(cfn))
        return run("iam", "--calls", path, "--resources", OUT / "resources.json", "--template", template,
                   "--stage", stage, *extra)

    def assert_not_allowed(self, text: str, *fragments: str) -> None:
        self.assertTrue(lines_with(text, "NOT ALLOWED", *fragments), f"no NOT ALLOWED line with {fragments}:\n{text}")

    def test_the_template_allows_the_sample_calls(self) -> None:
        rc, text = self.iam(sample_calls(), None, "--expect-callers", "push,webhook-toast,pull-toast,connect")
        self.assertEqual(rc, 0, text)
        self.assertNotIn("NOT ALLOWED", text)
        self.assertIn("stack iam: ok: 10 distinct call(s) of 4 function(s) allowed", text)
        for fragments in [
            ("dynamodb:GetItem", "StateTable", "x2"),
            ("sqs:SendMessage", "PushDeadLetterQueue"),
            ("secretsmanager:GetSecretValue", f"secret integration-hub/{STAGE}/tenants/bistro/books"),
            ("sqs:SendMessageBatch", "WorkQueue", "authorized as sqs:SendMessage"),
            ("secretsmanager:GetSecretValue", f"secret integration-hub/{STAGE}/webhooks/toast"),
            ("dynamodb:Query", "StateTable/index/gsi1"),
            ("dynamodb:TransactWriteItems", "StateTable", "authorized as"),
        ]:
            self.assertTrue(lines_with(text, "allowed", *fragments), f"no allowed line with {fragments}:\n{text}")
        push = text.split("-> PushFunction", 1)[1].split("\n\n", 1)[0]
        unused = push.split("granted, unused:", 1)[1].split("granted for Lambda itself", 1)[0]
        self.assertIn("dynamodb:DeleteItem, dynamodb:GetItem, dynamodb:PutItem, dynamodb:UpdateItem on IdempotencyTable", unused)
        self.assertNotIn("PushDeadLetterQueue", unused)  # used by the call
        self.assertIn("on PushQueue (the event source mapping PushPushes polls with the role)", push)

    def test_without_send_on_the_push_dlq_the_push_call_fails(self) -> None:
        def mutate(cfn: dict) -> None:
            role = tc.props(cfn["Resources"]["PushFunctionRole"])
            before = len(role["Policies"])
            role["Policies"] = [p for p in role["Policies"] if "PushDeadLetterQueue" not in json.dumps(p)]
            assert len(role["Policies"]) == before - 1

        rc, text = self.iam(sample_calls(), mutate)
        self.assertEqual(rc, 1, text)
        self.assert_not_allowed(text, "sqs:SendMessage", "PushDeadLetterQueue", "no Allow statement of PushFunctionRole")
        self.assertEqual(len(not_allowed_rows(text)), 1, text)
        self.assertIn("stack iam: FAIL: 1 call(s) NOT ALLOWED", text)

    def test_without_the_tenants_grant_the_secret_read_fails(self) -> None:
        def mutate(cfn: dict) -> None:
            for _, statements in role_statements(cfn, "PushFunctionRole"):
                statements[:] = [s for s in statements if "/tenants/*" not in json.dumps(s.get("Resource"))]

        rc, text = self.iam(sample_calls(), mutate)
        self.assertEqual(rc, 1, text)
        self.assert_not_allowed(text, "secretsmanager:GetSecretValue", f"secret integration-hub/{STAGE}/tenants/bistro/books")
        self.assertEqual(len(not_allowed_rows(text)), 1, text)

    def test_an_unknown_caller_fails(self) -> None:
        path = TMP / "unknown.jsonl"
        calls = sample_calls()[:1] + [{"caller": "nosuch", "service": "SQS", "operation": "SendMessage",
                                       "resources": [resources()["WorkQueue"]["url"]]}]
        path.write_text("".join(json.dumps(c) + "\n" for c in calls))
        rc, text = run_cli("iam", "--calls", path, "--resources", OUT / "resources.json",
                           "--template", OUT / "transformed.json", "--stage", STAGE)
        self.assertEqual(rc, 1, text)
        self.assertIn("nosuch: maps to no AWS::Lambda::Function", text)
        self.assertIn("1 caller(s) map to no function (nosuch)", text)

    def test_an_expected_caller_without_calls_fails(self) -> None:
        rc, text = self.iam(sample_calls(), None, "--expect-callers", "push,intake")
        self.assertEqual(rc, 1, text)
        self.assertIn("expected caller intake (IntakeFunction) recorded no call", text)
        rc, text = self.iam(sample_calls(), None, "--expect-callers", "push,webhook-nosuch")
        self.assertEqual(rc, 1, text)
        self.assertIn("expected caller webhook-nosuch (no such function)", text)

    def test_a_deny_wins(self) -> None:
        def mutate(cfn: dict) -> None:
            tc.props(cfn["Resources"]["PushFunctionRole"])["Policies"].append(
                {"PolicyName": "NoSends", "PolicyDocument": {"Statement": [
                    {"Effect": "Deny", "Action": "sqs:send*", "Resource": {"Fn::GetAtt": ["PushDeadLetterQueue", "Arn"]}}]}})

        rc, text = self.iam(sample_calls(), mutate)
        self.assertEqual(rc, 1, text)
        self.assert_not_allowed(text, "sqs:SendMessage", "PushDeadLetterQueue", "denied by PushFunctionRole/NoSends statement 1")

    def test_a_query_of_an_index_needs_the_index(self) -> None:
        state = resources()["StateTable"]["physical_id"]
        calls = [{"caller": "process-events", "service": "DynamoDB", "operation": "Query", "resources": [state, f"{state}/index/gsi1"]}]
        rc, text = self.iam(calls)
        self.assertEqual(rc, 1, text)
        self.assert_not_allowed(text, "dynamodb:Query", "StateTable/index/gsi1", "granted on StateTable only")

    def test_a_transaction_needs_an_item_action_on_each_table(self) -> None:
        state = resources()["StateTable"]["physical_id"]
        calls = [{"caller": "webhook-toast", "service": "DynamoDB", "operation": "TransactWriteItems", "resources": [state]}]
        rc, text = self.iam(calls)
        self.assertEqual(rc, 1, text)
        self.assert_not_allowed(text, "dynamodb:TransactWriteItems", "StateTable", "dynamodb:PutItem or dynamodb:UpdateItem")

    def test_a_secret_pattern_without_a_suffix_matches_the_name_only(self) -> None:
        def mutate(cfn: dict) -> None:
            for _, statements in role_statements(cfn, "WebhookToastFunctionRole"):
                for s in statements:
                    if "webhooks/toast-*" in json.dumps(s.get("Resource")):
                        s["Resource"]["Fn::Sub"] = s["Resource"]["Fn::Sub"].replace("toast-*", "toast")

        by_name = [{"caller": "webhook-toast", "service": "Secrets Manager", "operation": "GetSecretValue",
                    "resources": [f"integration-hub/{STAGE}/webhooks/toast"]}]
        rc, text = self.iam(by_name, mutate)
        self.assertEqual(rc, 0, text)
        self.assertTrue(lines_with(text, "allowed", "matches the bare name only"), text)
        by_arn = [dict(by_name[0], resources=[sample_calls()[6]["resources"][0]])]
        rc, text = self.iam(by_arn, mutate)
        self.assertEqual(rc, 1, text)
        self.assert_not_allowed(text, "secretsmanager:GetSecretValue", f"integration-hub/{STAGE}/webhooks/toast")

    def test_a_statement_resource_that_cannot_be_resolved_is_named(self) -> None:
        def mutate(cfn: dict) -> None:
            tc.props(cfn["Resources"]["PushFunctionRole"])["Policies"].append(
                {"PolicyName": "Keys", "PolicyDocument": {"Statement": [
                    {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": {"Fn::GetAtt": ["AlarmTopicKey", "Arn"]}}]}})

        rc, text = self.iam(sample_calls()[:1], mutate)
        self.assertEqual(rc, 0, text)
        self.assertTrue(lines_with(text, "cannot resolve: PushFunctionRole/Keys statement 1", "AlarmTopicKey",
                                   "the stack does not create"), text)

    def test_resources_of_another_stage_are_refused(self) -> None:
        rc, text = self.iam(sample_calls(), None, stage="prod")
        self.assertEqual(rc, 2, text)
        self.assertIn("was not made from", text)


# ================================================================= drift


def schema_rs_bootstrap(prefix: str, max_receives: int = 5) -> str:
    """What `hub aws bootstrap --prefix <prefix>` makes and prints, as
    shared/src/adapters/aws/schema.rs and cli/src/commands.rs (fn bootstrap)
    do it."""
    ddb, sqs = clients("dynamodb", "sqs")

    def attr(n: str) -> dict:
        return {"AttributeName": n, "AttributeType": "S"}

    def key(n: str, t: str) -> dict:
        return {"AttributeName": n, "KeyType": t}

    def ttl(table: str) -> None:
        ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"})

    state, idem = f"{prefix}-state", f"{prefix}-idempotency"
    ddb.create_table(
        TableName=state, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[attr("pk"), attr("sk"), attr("gsi1pk"), attr("gsi1sk")],
        KeySchema=[key("pk", "HASH"), key("sk", "RANGE")],
        GlobalSecondaryIndexes=[{"IndexName": "gsi1", "KeySchema": [key("gsi1pk", "HASH"), key("gsi1sk", "RANGE")],
                                 "Projection": {"ProjectionType": "ALL"}}],
    )
    ttl(state)
    ddb.create_table(TableName=idem, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=[attr("id")],
                     KeySchema=[key("id", "HASH")])
    ttl(idem)

    def queue_with_dlq(name: str) -> str:
        dlq = sqs.create_queue(QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives})
        return sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})["QueueUrl"]

    def queue(name: str) -> str:
        return sqs.create_queue(QueueName=name, Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]

    work = queue_with_dlq(f"{prefix}-work")
    push = queue_with_dlq(f"{prefix}-push")
    unrouted = queue(f"{prefix}-unrouted")
    pull = queue_with_dlq(f"{prefix}-pull")
    outbound = queue(f"{prefix}-outbound")
    return "".join(f"{k}={v}\n" for k, v in [
        ("HUB_BACKEND", "aws"), ("HUB_STATE_TABLE", state), ("HUB_IDEMPOTENCY_TABLE", idem),
        ("HUB_WORK_QUEUE_URL", work), ("HUB_PUSH_QUEUE_URL", push), ("HUB_UNROUTED_QUEUE_URL", unrouted),
        ("HUB_PULL_QUEUE_URL", pull), ("HUB_OUTBOUND_QUEUE_URL", outbound), ("HUB_SECRET_PREFIX", f"{prefix}/"),
    ])


def hub_bootstrap(hub: str, prefix: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_ENDPOINT_URL": ENDPOINT, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    p = subprocess.run([hub, "aws", "bootstrap", "--prefix", prefix], env=env, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"{hub} aws bootstrap failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p.stdout


class DriftTest(unittest.TestCase):
    bootstrap: Path

    @classmethod
    def setUpClass(cls) -> None:
        prefix = f"schema{RUN}"
        hub = os.environ.get("HUB_BIN")
        cls.made_by = f"{hub} aws bootstrap" if hub else "schema_rs_bootstrap (HUB_BIN not set)"
        text = hub_bootstrap(hub, prefix) if hub else schema_rs_bootstrap(prefix)
        cls.bootstrap = TMP / "bootstrap.env"
        cls.bootstrap.write_text(text)

    def drift(self, out: Path = OUT, bootstrap: Path | None = None) -> tuple[int, str]:
        return run("drift", "--endpoint", ENDPOINT, "--resources", out / "resources.json",
                   "--bootstrap", bootstrap or self.bootstrap, "--env", out / "function-env.json")

    def assert_differs(self, text: str, *fragments: str) -> None:
        self.assertTrue(lines_with(text, "DIFFERS", *fragments), f"no DIFFERS line with {fragments}:\n{text}")

    def test_the_template_matches_the_rust_schema(self) -> None:
        rc, text = self.drift()
        self.assertEqual(rc, 0, f"(Rust side by {self.made_by})\n{text}")
        self.assertNotIn("DIFFERS", text)
        self.assertIn("stack drift: ok: 7 pair(s) (3 dead-letter queue(s) through their redrive)", text)
        for fragments in [("match", "KeySchema", "pk HASH, sk RANGE"),
                          ("match", "GlobalSecondaryIndexes", "gsi1(gsi1pk HASH, gsi1sk RANGE; ALL)"),
                          ("match", "TimeToLive", "expiration"), ("match", "maxReceiveCount", "5"),
                          ("info", "VisibilityTimeout", "30", "5405")]:
            self.assertTrue(lines_with(text, *fragments), f"no line with {fragments}:\n{text}")
        self.assertIn("in settings the template tunes per consumer; not failures", text)

    def test_a_renamed_index_fails(self) -> None:
        def mutate(cfn: dict) -> None:
            tc.props(cfn["Resources"]["StateTable"])["GlobalSecondaryIndexes"][0]["IndexName"] = "byDate"

        rc, text = self.drift(create_mutated("gsi", mutate))
        self.assertEqual(rc, 1, text)
        self.assert_differs(text, "GlobalSecondaryIndexes", "gsi1 only in the Rust schema", "byDate only in the template")
        self.assertIn("StateTable GlobalSecondaryIndexes", text.splitlines()[-1])

    def test_a_changed_sort_key_fails(self) -> None:
        def mutate(cfn: dict) -> None:
            p = tc.props(cfn["Resources"]["StateTable"])
            p["KeySchema"][1]["AttributeName"] = "sort"
            p["AttributeDefinitions"] = [a if a["AttributeName"] != "sk" else {"AttributeName": "sort", "AttributeType": "S"}
                                         for a in p["AttributeDefinitions"]]

        rc, text = self.drift(create_mutated("sortkey", mutate))
        self.assertEqual(rc, 1, text)
        self.assert_differs(text, "KeySchema", "pk HASH, sk RANGE", "pk HASH, sort RANGE")
        self.assert_differs(text, "AttributeDefinitions")

    def test_a_table_without_ttl_fails(self) -> None:
        rc, text = self.drift(create_mutated(
            "nottl", lambda cfn: tc.props(cfn["Resources"]["IdempotencyTable"]).pop("TimeToLiveSpecification")))
        self.assertEqual(rc, 1, text)
        self.assert_differs(text, "TimeToLive", "expiration", "disabled")

    def test_a_queue_without_redrive_fails(self) -> None:
        rc, text = self.drift(create_mutated("noredrive", lambda cfn: tc.props(cfn["Resources"]["PushQueue"]).pop("RedrivePolicy")))
        self.assertEqual(rc, 1, text)
        self.assert_differs(text, "RedrivePolicy", "yes", "no")
        self.assertIn("PushQueue RedrivePolicy", text.splitlines()[-1])

    def test_a_tuned_visibility_timeout_is_not_a_failure(self) -> None:
        rc, text = self.drift(create_mutated("visibility", lambda cfn: tc.props(cfn["Resources"]["UnroutedQueue"]).update(VisibilityTimeout=77)))
        self.assertEqual(rc, 0, text)
        self.assertTrue(lines_with(text, "info", "VisibilityTimeout", "30", "77"), text)

    def test_a_resource_only_one_side_has_fails(self) -> None:
        extra = TMP / "bootstrap-extra.env"
        extra.write_text(self.bootstrap.read_text() + "HUB_AUDIT_TABLE=schema-audit\n")
        rc, text = self.drift(bootstrap=extra)
        self.assertEqual(rc, 1, text)
        self.assert_differs(text, "HUB_AUDIT_TABLE", "no function of the template gets HUB_AUDIT_TABLE")
        fewer = TMP / "bootstrap-fewer.env"
        fewer.write_text("".join(line + "\n" for line in self.bootstrap.read_text().splitlines()
                                 if not line.startswith("HUB_OUTBOUND_QUEUE_URL=")))
        rc, text = self.drift(bootstrap=fewer)
        self.assertEqual(rc, 1, text)
        self.assert_differs(text, "HUB_OUTBOUND_QUEUE_URL", "OutboundQueue", "does not make")


# ================================================================= running


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    python = ROOT / ".venv-tools" / "bin" / "python"
    moto = ROOT / "xtask" / "moto_serialized.py"
    proc = subprocess.Popen([str(python), str(moto), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{moto} exited ({proc.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return proc, f"http://127.0.0.1:{port}"
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{moto} did not answer on port {port}")


def main() -> int:
    global ENDPOINT
    argv = sys.argv[1:]
    if "--endpoint" in argv:
        i = argv.index("--endpoint")
        ENDPOINT = argv[i + 1]
        del argv[i:i + 2]
    else:
        ENDPOINT = os.environ.get("STACK_TEST_ENDPOINT", "")
    moto = None
    if not ENDPOINT:
        moto, ENDPOINT = start_moto()
    try:
        result = unittest.main(module=sys.modules[__name__], argv=[sys.argv[0], *argv], exit=False).result
        if result.wasSuccessful():
            shutil.rmtree(TMP, ignore_errors=True)
            return 0
        print(f"stack_test: the files are kept in {TMP}", file=sys.stderr)
        return 1
    finally:
        if moto is not None:
            moto.kill()
            moto.wait()


if __name__ == "__main__":
    sys.exit(main())
