#!/usr/bin/env python3
"""The template's tables and queues in the AWS emulator, and what the
functions' recorded AWS calls need of their roles.

The Rust tests run against tables and queues that `hub aws bootstrap`
(shared/src/adapters/aws/schema.rs) creates; AWS runs the functions against
the ones infra/template.yaml declares, with the roles the template gives them.
This script closes both gaps against moto:

- `create`: transforms the template (SAM -> CloudFormation, with
  template_check's helpers), deploys only its AWS::DynamoDB::Table and
  AWS::SQS::Queue resources (with the parameters and conditions they use) as a
  stack in moto's CloudFormation, and writes `resources.json` (each resource's
  name, ARN and URL), `function-env.json` (the environment the functions get,
  resolved against the stack) and `transformed.json` (the whole transformed
  template, for `iam`).
- `iam`: checks each AWS call the functions recorded (HUB_AWS_CALL_LOG, one
  JSON line per call: caller, service, operation, resources) against the IAM
  statements of that function's role in the transformed template: a call no
  statement allows fails; an action granted that no call used is listed.
- `drift`: compares the tables and queues `hub aws bootstrap` made with the
  ones the template made, attribute by attribute.

Usage:
  stack.py create --endpoint URL --out DIR [--template infra/template.yaml]
                  [--transformed FILE] [--stage e2e] [--stack-name NAME]
  stack.py iam --calls FILE.jsonl --resources DIR/resources.json
               --template DIR/transformed.json [--stage e2e]
               [--sam infra/template.yaml] [--expect-callers a,b,c]
  stack.py drift --endpoint URL --resources DIR/resources.json
                 --bootstrap FILE [--env DIR/function-env.json]

Run with .venv-tools/bin/python (boto3, aws-sam-translator, cfn-lint). Exit
status 1 when a check fails, 2 on a usage or setup problem.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

import template_check as tc  # noqa: E402  (also sets AWS_DEFAULT_REGION)

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as e:  # pragma: no cover - a setup problem, said plainly
    sys.exit(f"stack: {e}; run it with .venv-tools/bin/python (made from xtask/python-requirements.txt)")

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
DEFAULT_STAGE = "e2e"
DEFAULT_ACCOUNT = "123456789012"  # moto's
TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
STACK_TYPES = (TABLE, QUEUE)

# Properties moto's CloudFormation cannot take, dropped from the stack's
# template. None, with moto 5.2.5: it passes every AWS::SQS::Queue property to
# CreateQueue as an attribute (KmsMasterKeyId alias/aws/sqs, and
# SqsManagedSseEnabled, are accepted), and takes a table's KeySchema,
# AttributeDefinitions, indexes, BillingMode, SSESpecification and streams.
# A property that names a resource outside the subset (a KMS key of the
# template, say) is dropped too, and said so, by `subset_template`.
MOTO_UNSUPPORTED: dict[str, set[str]] = {TABLE: set(), QUEUE: set()}

# Properties moto's CloudFormation accepts but ignores: applied through the
# service's own API once the stack is up (`apply_ignored`), then checked.
#   TimeToLiveSpecification -> UpdateTimeToLive
#   PointInTimeRecoverySpecification -> UpdateContinuousBackups

STACK_TIMEOUT = 120.0  # seconds for CREATE_COMPLETE


def session_clients(endpoint: str, *services: str) -> list[Any]:
    config = Config(retries={"max_attempts": 2, "mode": "standard"})
    return [
        boto3.client(s, endpoint_url=endpoint, region_name=REGION, config=config, **CREDENTIALS)
        for s in services
    ]


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def shown(path: Path | str) -> str:
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


# ================================================================= expressions


class Unresolved(Exception):
    """A template value that cannot be worked out here; the message says why."""


@dataclass
class Context:
    """What Ref, Fn::GetAtt and Fn::Sub resolve to."""

    params: dict[str, Any]
    resources: dict[str, dict]  # resources.json
    template_resources: set[str] = field(default_factory=set)
    account: str = DEFAULT_ACCOUNT
    stack_name: str | None = None

    def pseudo(self, name: str) -> str:
        values = {
            "AWS::Partition": "aws",
            "AWS::Region": REGION,
            "AWS::AccountId": self.account,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if self.stack_name:
            values["AWS::StackName"] = self.stack_name
        if name in values:
            return values[name]
        raise Unresolved(f"the pseudo parameter {name} has no value here")

    def ref(self, name: str) -> Any:
        if name in self.params:
            return self.params[name]
        if name.startswith("AWS::"):
            return self.pseudo(name)
        r = self.resources.get(name)
        if r is not None:
            return r["url"] if r["type"] == QUEUE else r["physical_id"]
        return self._missing(name)

    def get_att(self, name: str, attr: str) -> Any:
        r = self.resources.get(name)
        if r is None:
            return self._missing(name, f".{attr}")
        value = {"Arn": r.get("arn"), "QueueName": r.get("name") if r["type"] == QUEUE else None,
                 "QueueUrl": r.get("url")}.get(attr)
        if value is None:
            raise Unresolved(f"{name}.{attr} is not known (resources.json has its name, ARN and URL)")
        return value

    def _missing(self, name: str, attr: str = "") -> Any:
        if name in self.template_resources:
            raise Unresolved(f"{name}{attr} names a resource the stack does not create (it has only tables and queues)")
        raise Unresolved(f"{name}{attr} is neither a parameter, a pseudo parameter nor a resource of the template")


SUB_VAR = re.compile(r"\$\{([^}]*)\}")


def _sub(ctx: Context, text: str, variables: dict) -> str:
    def one(m: re.Match) -> str:
        inner = m.group(1).strip()
        if inner.startswith("!"):
            return "${" + inner[1:] + "}"
        if inner in variables:
            return str(evaluate(ctx, variables[inner]))
        if "." in inner and not inner.startswith("AWS::"):
            name, attr = inner.split(".", 1)
            return str(ctx.get_att(name, attr))
        return str(ctx.ref(inner))

    return SUB_VAR.sub(one, text)


def evaluate(ctx: Context, value: Any) -> Any:
    """A template value with its intrinsic functions worked out, or Unresolved."""
    if isinstance(value, list):
        return [evaluate(ctx, v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref":
            return ctx.ref(arg)
        if fn == "Fn::GetAtt":
            name, attr = (arg[0], arg[1]) if isinstance(arg, list) else str(arg).split(".", 1)
            return ctx.get_att(name, attr)
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1] or {})
            return _sub(ctx, text, variables)
        if fn == "Fn::Join":
            sep, parts = arg
            return str(sep).join(str(p) for p in evaluate(ctx, parts))
        if fn == "Fn::Select":
            index, items = arg
            return evaluate(ctx, items)[int(evaluate(ctx, index))]
        if fn == "Fn::If":
            raise Unresolved(f"Fn::If on condition {arg[0]!r}: conditions are not evaluated here")
        if fn.startswith("Fn::") or fn == "Condition":
            raise Unresolved(f"{fn} is not evaluated here")
    return {k: evaluate(ctx, v) for k, v in value.items()}


def parameter_values(cfn: dict, stage: str) -> dict[str, Any]:
    out = {}
    for name, p in cfn.get("Parameters", {}).items():
        if name == "Stage":
            out[name] = stage
        elif "Default" in p:
            out[name] = p["Default"]
    return out


def account_of(resources: dict[str, dict]) -> str:
    for r in resources.values():
        parts = str(r.get("arn") or "").split(":")
        if len(parts) > 4 and parts[4].isdigit():
            return parts[4]
    return DEFAULT_ACCOUNT


# ================================================================= the live resources, comparable


def _keys(schema: Iterable[dict]) -> list[tuple[str, str]]:
    order = {"HASH": 0, "RANGE": 1}
    return sorted(((k["AttributeName"], k["KeyType"]) for k in schema or []), key=lambda k: order.get(k[1], 2))


def _projection(p: dict | None) -> tuple[str, tuple[str, ...]]:
    p = p or {}
    return (p.get("ProjectionType", "ALL"), tuple(sorted(p.get("NonKeyAttributes") or [])))


def _indexes(indexes: Iterable[dict] | None) -> dict[str, dict]:
    return {
        i["IndexName"]: {"KeySchema": _keys(i.get("KeySchema")), "Projection": _projection(i.get("Projection"))}
        for i in indexes or []
    }


def live_table(ddb: Any, name: str) -> dict:
    t = ddb.describe_table(TableName=name)["Table"]
    ttl = ddb.describe_time_to_live(TableName=name).get("TimeToLiveDescription") or {}
    return {
        "KeySchema": _keys(t.get("KeySchema")),
        "AttributeDefinitions": sorted((a["AttributeName"], a["AttributeType"]) for a in t.get("AttributeDefinitions") or []),
        "GlobalSecondaryIndexes": _indexes(t.get("GlobalSecondaryIndexes")),
        "LocalSecondaryIndexes": _indexes(t.get("LocalSecondaryIndexes")),
        "BillingMode": (t.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED"),
        "TimeToLive": ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") else None,
    }


TABLE_KEYS = ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "LocalSecondaryIndexes",
              "BillingMode", "TimeToLiveSpecification")
QUEUE_KEYS = ("FifoQueue", "VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize",
              "ReceiveMessageWaitTimeSeconds", "RedrivePolicy", "KmsMasterKeyId", "SqsManagedSseEnabled")


def _declared(ctx: Context, p: dict, keys: tuple[str, ...]) -> dict:
    """The properties `keys` of a resource, resolved (Unresolved if one cannot be)."""
    return {k: evaluate(ctx, p[k]) for k in keys if k in p}


def declared_table(ctx: Context, p: dict) -> dict:
    p = _declared(ctx, p, TABLE_KEYS)
    ttl = p.get("TimeToLiveSpecification") or {}
    return {
        "KeySchema": _keys(p.get("KeySchema")),
        "AttributeDefinitions": sorted((a["AttributeName"], a["AttributeType"]) for a in p.get("AttributeDefinitions") or []),
        "GlobalSecondaryIndexes": _indexes(p.get("GlobalSecondaryIndexes")),
        "LocalSecondaryIndexes": _indexes(p.get("LocalSecondaryIndexes")),
        "BillingMode": p.get("BillingMode", "PROVISIONED"),
        "TimeToLive": ttl.get("AttributeName") if str(ttl.get("Enabled")).lower() == "true" else None,
    }


QUEUE_DEFAULTS = {
    "FifoQueue": "false",
    "VisibilityTimeout": "30",
    "MessageRetentionPeriod": "345600",
    "DelaySeconds": "0",
    "MaximumMessageSize": "262144",
    "ReceiveMessageWaitTimeSeconds": "0",
}


def _redrive(value: Any) -> dict | None:
    if value in (None, ""):
        return None
    policy = json.loads(value) if isinstance(value, str) else value
    return {"deadLetterTargetArn": policy.get("deadLetterTargetArn"), "maxReceiveCount": int(policy.get("maxReceiveCount"))}


def _sse(attrs: dict) -> str:
    if attrs.get("KmsMasterKeyId"):
        return f"KMS {attrs['KmsMasterKeyId']}"
    if str(attrs.get("SqsManagedSseEnabled")).lower() == "true":
        return "SSE-SQS"
    return "none"


def live_queue(sqs: Any, url: str) -> dict:
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get("Attributes") or {}
    out = {k: str(a.get(k, d)).lower() if k == "FifoQueue" else str(a.get(k, d)) for k, d in QUEUE_DEFAULTS.items()}
    out["RedrivePolicy"] = _redrive(a.get("RedrivePolicy"))
    out["SSE"] = _sse(a)
    out["QueueArn"] = a.get("QueueArn")
    return out


def declared_queue(ctx: Context, p: dict) -> dict:
    """The attributes the template sets (others are the service's defaults,
    which differ between AWS and the emulator: MaximumMessageSize, say)."""
    p = _declared(ctx, p, QUEUE_KEYS)
    out = {k: str(p[k]).lower() if k == "FifoQueue" else str(p[k]) for k in QUEUE_DEFAULTS if k in p}
    out["RedrivePolicy"] = _redrive(p.get("RedrivePolicy"))
    if "KmsMasterKeyId" in p or "SqsManagedSseEnabled" in p:
        out["SSE"] = _sse(p)
    return out


def _dlq_url(sqs: Any, redrive: dict | None) -> str | None:
    if not redrive or not redrive.get("deadLetterTargetArn"):
        return None
    parts = redrive["deadLetterTargetArn"].split(":")
    return sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]


# ================================================================= create


def _walk_conditions(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for v in node:
            yield from _walk_conditions(v)
    elif isinstance(node, dict):
        for k, v in node.items():
            if k == "Fn::If" and isinstance(v, list) and v:
                yield v[0]
            elif k == "Condition" and isinstance(v, str):
                yield v
            yield from _walk_conditions(v)


def subset_template(cfn: dict) -> tuple[dict, list[str]]:
    """Only the tables and queues, as the transformed template writes them,
    with the parameters and conditions they use. Returns the template and what
    was dropped (and why)."""
    names = set(cfn.get("Resources", {}))
    keep = {n: copy.deepcopy(r) for n, r in tc.resources(cfn, *STACK_TYPES)}
    dropped: list[str] = []
    for name, r in keep.items():
        p = r.get("Properties") or {}
        for prop in list(p):
            if prop in MOTO_UNSUPPORTED.get(r["Type"], set()):
                p.pop(prop)
                dropped.append(f"{name}.{prop}: moto's CloudFormation cannot take it")
                continue
            outside = sorted({n for n, _, _ in tc._refs(p[prop], prop) if n in names and n not in keep})
            if outside:
                p.pop(prop)
                dropped.append(f"{name}.{prop}: names {', '.join(outside)}, which the stack does not create")
        if r.get("DependsOn"):
            deps = [d for d in tc.as_list(r["DependsOn"]) if d in keep]
            if deps:
                r["DependsOn"] = deps
            else:
                r.pop("DependsOn")
    conditions = cfn.get("Conditions", {})
    used_conditions: set[str] = set()
    todo = list(_walk_conditions(keep))
    while todo:
        c = todo.pop()
        if c in conditions and c not in used_conditions:
            used_conditions.add(c)
            todo += list(_walk_conditions(conditions[c]))
    params = cfn.get("Parameters", {})
    refs = {n for n, _, _ in tc._refs(keep, "Resources")}
    refs |= {n for c in used_conditions for n, _, _ in tc._refs(conditions[c], "Conditions")}
    out: dict[str, Any] = {"AWSTemplateFormatVersion": "2010-09-09",
                           "Description": "Integration Hub: the template's tables and queues (xtask/stack.py)"}
    used_params = {n: params[n] for n in params if n in refs}
    if used_params:
        out["Parameters"] = used_params
    if used_conditions:
        out["Conditions"] = {c: conditions[c] for c in conditions if c in used_conditions}
    out["Resources"] = keep
    return out, dropped


def _failure_events(cf: Any, stack: str) -> list[str]:
    try:
        events = cf.describe_stack_events(StackName=stack)["StackEvents"]
    except (ClientError, BotoCoreError):
        return []
    return [
        f"{e['LogicalResourceId']} {e['ResourceStatus']}: {e.get('ResourceStatusReason') or '(no reason given)'}"
        for e in reversed(events)
        if "FAILED" in e["ResourceStatus"] or "ROLLBACK" in e["ResourceStatus"]
    ]


def _stack_exists(cf: Any, stack: str) -> str | None:
    try:
        s = cf.describe_stacks(StackName=stack)["Stacks"]
    except ClientError:
        return None
    return s[0]["StackStatus"] if s and s[0]["StackStatus"] != "DELETE_COMPLETE" else None


def deploy(cf: Any, stack: str, template: dict, parameters: dict[str, str]) -> tuple[bool, list[str], float]:
    """create_stack and wait for CREATE_COMPLETE. Returns (ok, reasons, seconds)."""
    start = time.monotonic()
    try:
        cf.create_stack(
            StackName=stack,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items()],
        )
    except (ClientError, BotoCoreError) as e:
        # moto creates the resources inside CreateStack, so a resource it
        # refuses fails the call itself (and leaves the stack IN_PROGRESS).
        return False, [f"CreateStack: {e}"] + _failure_events(cf, stack), time.monotonic() - start
    status = "CREATE_IN_PROGRESS"
    while time.monotonic() - start < STACK_TIMEOUT:
        s = cf.describe_stacks(StackName=stack)["Stacks"][0]
        status = s["StackStatus"]
        if status == "CREATE_COMPLETE":
            return True, [], time.monotonic() - start
        if not status.endswith("IN_PROGRESS"):
            reasons = [f"stack {status}: {s.get('StackStatusReason') or '(no reason given)'}"]
            return False, reasons + _failure_events(cf, stack), time.monotonic() - start
        time.sleep(0.2)
    return False, [f"still {status} after {STACK_TIMEOUT:.0f} s"] + _failure_events(cf, stack), time.monotonic() - start


def collect_resources(cf: Any, ddb: Any, sqs: Any, stack: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in sorted(cf.describe_stack_resources(StackName=stack)["StackResources"], key=lambda r: r["LogicalResourceId"]):
        kind, physical = r["ResourceType"], r["PhysicalResourceId"]
        if kind == TABLE:
            t = ddb.describe_table(TableName=physical)["Table"]
            out[r["LogicalResourceId"]] = {"type": kind, "physical_id": t["TableName"], "arn": t["TableArn"], "name": t["TableName"]}
        elif kind == QUEUE:
            # moto's physical id is the AWS-style URL (https://sqs.us-east-1...);
            # the URL the emulator answers on is GetQueueUrl's.
            name = physical.rstrip("/").rsplit("/", 1)[-1]
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            out[r["LogicalResourceId"]] = {"type": kind, "physical_id": physical, "arn": arn, "url": url, "name": name}
    return out


def apply_ignored(ctx: Context, subset: dict, res: dict[str, dict], ddb: Any) -> list[str]:
    """Applies what moto's CloudFormation ignores; says what it applied."""
    notes: list[tuple[str, str, str]] = []
    for name, r in subset["Resources"].items():
        if r["Type"] != TABLE or name not in res:
            continue
        p = _declared(ctx, r.get("Properties") or {}, ("TimeToLiveSpecification", "PointInTimeRecoverySpecification"))
        table = res[name]["physical_id"]
        ttl = p.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled")).lower() == "true":
            now = ddb.describe_time_to_live(TableName=table).get("TimeToLiveDescription") or {}
            if now.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or now.get("AttributeName") != ttl["AttributeName"]:
                ddb.update_time_to_live(
                    TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
                )
                notes.append(("TimeToLiveSpecification", "UpdateTimeToLive", name))
        pitr = p.get("PointInTimeRecoverySpecification")
        if pitr and str(pitr.get("PointInTimeRecoveryEnabled")).lower() == "true":
            desc = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
            status = (desc.get("PointInTimeRecoveryDescription") or {}).get("PointInTimeRecoveryStatus")
            if status != "ENABLED":
                ddb.update_continuous_backups(
                    TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
                )
                notes.append(("PointInTimeRecoverySpecification", "UpdateContinuousBackups", name))
    grouped: dict[tuple[str, str], list[str]] = {}
    for prop, api, name in notes:
        grouped.setdefault((prop, api), []).append(name)
    return [f"{prop} of {', '.join(sorted(names))} (with {api})" for (prop, api), names in grouped.items()]


def verify_stack(ctx: Context, subset: dict, res: dict[str, dict], ddb: Any, sqs: Any) -> list[str]:
    """What the emulator holds that the template does not declare (what
    `drift` compares, and queue timings): each a line."""
    problems = []
    for name, r in subset["Resources"].items():
        if name not in res:
            problems.append(f"{name}: not in the stack")
            continue
        p = r.get("Properties") or {}
        if r["Type"] == TABLE:
            live, want = live_table(ddb, res[name]["physical_id"]), declared_table(ctx, p)
        else:
            live, want = live_queue(sqs, res[name]["url"]), declared_queue(ctx, p)
            # The encryption moto reports is not what AWS would (it says
            # SqsManagedSseEnabled next to a KMS key); not compared.
            want.pop("SSE", None)
        for k in want:
            if live.get(k) != want[k]:
                problems.append(f"{name}.{k}: the template declares {want[k]!r}, the emulator has {live.get(k)!r}")
    return problems


def function_environment(ctx: Context, cfn: dict) -> tuple[dict[str, str], list[str], dict[str, list[str]]]:
    """The union of every function's resolved environment; the variables that
    could not be resolved (or disagree between functions); which variables only
    some functions get."""
    env: dict[str, str] = {}
    where: dict[str, list[str]] = {}
    problems: list[str] = []
    functions = list(tc.resources(cfn, "AWS::Lambda::Function"))
    unresolved: dict[str, str] = {}
    for fname, fn in functions:
        variables = ((tc.props(fn).get("Environment") or {}).get("Variables")) or {}
        for k, v in variables.items():
            where.setdefault(k, []).append(fname)
            try:
                value = evaluate(ctx, v)
            except Unresolved as e:
                unresolved.setdefault(k, f"{k} ({fname}): {json.dumps(v)}: {e}")
                continue
            if isinstance(value, bool):
                value = str(value).lower()
            if isinstance(value, (dict, list)):
                unresolved.setdefault(k, f"{k} ({fname}): {json.dumps(v)} is not a string")
                continue
            value = str(value)
            if k in env and env[k] != value:
                problems.append(f"{k}: {fname} gets {value!r}, another function {env[k]!r} (kept the first)")
                continue
            env.setdefault(k, value)
    problems = [u for k, u in unresolved.items() if k not in env] + problems
    partial = {k: fs for k, fs in where.items() if len(fs) < len(functions)}
    return dict(sorted(env.items())), problems, partial


def cmd_create(args: argparse.Namespace) -> int:
    if args.transformed:
        cfn = json.loads(Path(args.transformed).read_text())
        source = f"{shown(args.transformed)} (already transformed)"
    else:
        try:
            cfn = tc.to_cloudformation(tc.load_sam(Path(args.template)))
        except tc.TemplateError as e:
            print(f"stack create: {args.template}: {e}")
            return 1
        source = f"{shown(args.template)} after the SAM transform"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stack = args.stack_name or f"integration-hub-{args.stage}"
    subset, dropped = subset_template(cfn)
    cf, ddb, sqs = session_clients(args.endpoint, "cloudformation", "dynamodb", "sqs")
    cf_once = boto3.client("cloudformation", endpoint_url=args.endpoint, region_name=REGION,
                           config=Config(retries={"max_attempts": 1}), **CREDENTIALS)
    existing = _stack_exists(cf, stack)
    if existing:
        print(f"stack create: stack {stack} already exists in {args.endpoint} ({existing}): "
              "its tables and queues hold the same names; pass another --stage or --stack-name")
        return 1
    parameters = {"Stage": args.stage} if "Stage" in subset.get("Parameters", {}) else {}
    write_json(out / "transformed.json", cfn)
    write_json(out / "stack-template.json", subset)
    ok, reasons, seconds = deploy(cf_once, stack, subset, parameters)
    if not ok:
        print(f"stack create: {stack} from {source} FAILED after {seconds:.1f} s:")
        for r in reasons:
            print(f"  {r}")
        return 1
    res = collect_resources(cf, ddb, sqs, stack)
    ctx = Context(parameter_values(cfn, args.stage), res, set(cfn.get("Resources", {})), account_of(res), stack)
    applied = apply_ignored(ctx, subset, res, ddb)
    problems = verify_stack(ctx, subset, res, ddb, sqs)
    env, unresolved, partial = function_environment(ctx, cfn)
    write_json(out / "resources.json", res)
    write_json(out / "function-env.json", env)

    tables = [n for n, r in res.items() if r["type"] == TABLE]
    queues = [n for n, r in res.items() if r["type"] == QUEUE]
    print(f"stack create: {stack} CREATE_COMPLETE in {seconds:.1f} s at {args.endpoint}: "
          f"{len(tables)} table(s), {len(queues)} queue(s) from {source} (stage {args.stage})")
    print("  dropped: " + ("; ".join(dropped) if dropped else "nothing (moto's CloudFormation took every property as written)"))
    if applied:
        print(f"  applied what moto's CloudFormation ignores: {'; '.join(applied)}")
    width = max(len(n) for n in res) if res else 0
    for n in tables + queues:
        r = res[n]
        print(f"  {n:<{width}}  {r['url'] if r['type'] == QUEUE else r['physical_id']}")
    print(f"  environment: {len(env)} variable(s) -> {shown(out / 'function-env.json')}"
          + (f" ({', '.join(f'{k} only in {len(v)} function(s)' for k, v in sorted(partial.items()))})" if partial else ""))
    for u in unresolved:
        print(f"  not resolved, left out: {u}")
    print(f"  wrote {shown(out / 'resources.json')}, {shown(out / 'function-env.json')}, {shown(out / 'transformed.json')}")
    if problems:
        print("stack create: the emulator's resources differ from the template's declaration (an emulator gap; "
              "`drift` would compare the wrong thing):")
        for p in problems:
            print(f"  {p}")
        return 1
    return 0


# ================================================================= iam

SERVICE_PREFIX = {"dynamodb": "dynamodb", "sqs": "sqs", "secretsmanager": "secretsmanager"}

# Operations IAM authorizes as other actions. A transaction is authorized per
# item: Put -> PutItem, Update -> UpdateItem, Delete -> DeleteItem,
# ConditionCheck -> ConditionCheckItem, Get -> GetItem (there is no
# dynamodb:TransactWriteItems action). The call log names the tables, not each
# item's kind, so a transaction passes when one of them is granted per table.
AUTHORIZED_AS = {
    ("dynamodb", "transactwriteitems"): ["PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"],
    ("dynamodb", "transactgetitems"): ["GetItem"],
    ("sqs", "sendmessagebatch"): ["SendMessage"],
    ("sqs", "deletemessagebatch"): ["DeleteMessage"],
    ("sqs", "changemessagevisibilitybatch"): ["ChangeMessageVisibility"],
}

# What Lambda itself does with a function's role (not the code): an event
# source mapping polls its queue; failed asynchronous invocations go to the
# dead-letter queue.
ESM_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
# AWS managed policies that grant only CloudWatch Logs actions: not a data
# service's, so not evaluated and not mentioned.
LOGS_ONLY_MANAGED_POLICIES = {"service-role/AWSLambdaBasicExecutionRole"}
SECRET_SUFFIX = "-XXXXXX"  # Secrets Manager appends - and 6 random characters to a secret's ARN


def glob_regex(pattern: str, ignore_case: bool = False) -> re.Pattern:
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    return bool(glob_regex(pattern, ignore_case=True).fullmatch(action))


@dataclass
class Pattern:
    text: str  # the resolved ARN pattern
    label: str  # how it reads: a logical id, `secret <name pattern>`, "*"

    def matches(self, arn: str) -> bool:
        return bool(glob_regex(self.text).fullmatch(arn))


@dataclass
class Statement:
    where: str
    effect: str
    actions: list[str] | None  # None with NotAction
    not_actions: list[str] | None
    resources: list[Pattern] | None  # None with NotResource
    not_resources: list[Pattern] | None
    unresolved: list[str]
    condition: bool

    def matches_action(self, action: str) -> bool:
        if self.not_actions is not None:
            return not any(action_matches(a, action) for a in self.not_actions)
        return any(action_matches(a, action) for a in self.actions or [])

    def action_patterns(self, action: str) -> list[str]:
        if self.not_actions is not None:
            return [f"NotAction {','.join(self.not_actions)}"] if self.matches_action(action) else []
        return [a for a in self.actions or [] if action_matches(a, action)]

    def resource_hits(self, arns: list[str]) -> list[tuple[Pattern, str]]:
        if self.not_resources is not None:
            if any(p.matches(a) for p in self.not_resources for a in arns):
                return []
            return [(Pattern("*", "NotResource " + ",".join(p.label for p in self.not_resources)), arns[0])]
        return [(p, a) for p in self.resources or [] for a in arns if p.matches(a)]

    def covers_everything(self) -> bool:
        if self.not_resources is not None:
            return not self.not_resources
        return any(p.text == "*" for p in self.resources or [])


@dataclass
class Index:
    """resources.json, looked up by what a call names."""

    resources: dict[str, dict]
    account: str

    def __post_init__(self) -> None:
        self.tables = {r["physical_id"]: n for n, r in self.resources.items() if r["type"] == TABLE}
        self.queues: dict[str, str] = {}
        self.queue_names: dict[str, str] = {}
        for n, r in self.resources.items():
            if r["type"] == QUEUE:
                for key in (r.get("url"), r.get("physical_id")):
                    if key:
                        self.queues[key.rstrip("/")] = n
                self.queue_names[r.get("name") or r["physical_id"].rstrip("/").rsplit("/", 1)[-1]] = n
        self.by_arn = {r["arn"]: n for n, r in self.resources.items() if r.get("arn")}
        self.secret_prefix = f"arn:aws:secretsmanager:{REGION}:{self.account}:secret:"

    def label(self, pattern: str) -> str:
        if pattern == "*":
            return "*"
        if pattern in self.by_arn:
            return self.by_arn[pattern]
        for arn, n in self.by_arn.items():
            if pattern.startswith(arn + "/"):
                return n + pattern[len(arn):]
        if pattern.startswith(self.secret_prefix):
            return "secret " + pattern[len(self.secret_prefix):]
        return pattern


@dataclass
class Target:
    label: str
    arns: list[str]  # what IAM would compare; for a secret by name, the name bare and with a suffix
    bare: str | None = None  # the suffix-less candidate of a secret named without its ARN
    note: str = ""


def call_target(index: Index, prefix: str, resource: str) -> Target:
    if prefix == "secretsmanager":
        if resource.startswith("arn:"):
            name = resource.split(":secret:", 1)[-1]
            return Target(f"secret {re.sub(r'-[A-Za-z0-9]{6}$', '', name)}", [resource])
        arn = index.secret_prefix + resource
        return Target(f"secret {resource}", [arn + SECRET_SUFFIX, arn], bare=arn)
    if resource.startswith("arn:"):
        return Target(index.label(resource), [resource])
    if prefix == "dynamodb":
        table, _, rest = resource.partition("/")
        if table in index.tables:
            n = index.tables[table]
            arn = index.resources[n]["arn"]
            return Target(n + (f"/{rest}" if rest else ""), [arn + (f"/{rest}" if rest else "")])
        arn = f"arn:aws:dynamodb:{REGION}:{index.account}:table/{resource}"
        return Target(f"table {resource} (not in the stack)", [arn])
    if prefix == "sqs":
        n = index.queues.get(resource.rstrip("/"))
        name = resource.rstrip("/").rsplit("/", 1)[-1]
        note = ""
        if n is None and name in index.queue_names:
            n, note = index.queue_names[name], f"the URL {resource} is not the stack's; matched by the queue name"
        if n is not None:
            return Target(n, [index.resources[n]["arn"]], note=note)
        parts = resource.rstrip("/").split("/")
        account = parts[-2] if len(parts) >= 2 and parts[-2].isdigit() else index.account
        return Target(f"queue {resource} (not in the stack)", [f"arn:aws:sqs:{REGION}:{account}:{name}"])
    return Target(resource, [resource])


def role_policies(cfn: dict, role: str) -> tuple[list[tuple[str, dict]], list[str]]:
    """The role's policy documents (inline, and AWS::IAM::Policy /
    ManagedPolicy / RolePolicy resources attached to it); and notes on the
    managed policies it attaches that are not in the template."""
    docs: list[tuple[str, dict]] = []
    notes: list[str] = []
    rp = tc.props(cfn["Resources"][role])
    for i, pol in enumerate(tc.as_list(rp.get("Policies"))):
        docs.append((f"{role}/{pol.get('PolicyName', i)}", pol.get("PolicyDocument") or {}))

    def names_role(v: Any) -> bool:
        return tc.target(cfn, v) == role

    attached_managed = {tc.target(cfn, a) for a in tc.as_list(rp.get("ManagedPolicyArns"))}
    for n, r in tc.resources(cfn, "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
        p = tc.props(r)
        if any(names_role(v) for v in tc.as_list(p.get("Roles"))) or names_role(p.get("RoleName")) or n in attached_managed:
            docs.append((n, p.get("PolicyDocument") or {}))
    for a in tc.as_list(rp.get("ManagedPolicyArns")):
        if tc.target(cfn, a) is None:
            text = (tc.name_pattern(a) or json.dumps(a)).split(":policy/", 1)[-1]
            if text not in LOGS_ONLY_MANAGED_POLICIES:
                notes.append(f"attaches {text} (not in the template: its statements are not evaluated)")
    return docs, notes


def statements(ctx: Context, index: Index, docs: list[tuple[str, dict]]) -> list[Statement]:
    out = []
    for where, doc in docs:
        for i, s in enumerate(tc.as_list(doc.get("Statement"))):
            if not isinstance(s, dict):
                continue
            unresolved: list[str] = []

            def patterns(values: Any) -> list[Pattern]:
                got = []
                for v in tc.as_list(values):
                    try:
                        text = evaluate(ctx, v)
                    except Unresolved as e:
                        unresolved.append(f"{where} statement {i + 1}: Resource {json.dumps(v)} cannot be resolved: {e}")
                        continue
                    if not isinstance(text, str):
                        unresolved.append(f"{where} statement {i + 1}: Resource {json.dumps(v)} is not a string")
                        continue
                    got.append(Pattern(text, index.label(text)))
                return got

            out.append(Statement(
                where=f"{where} statement {i + 1}",
                effect=str(s.get("Effect")),
                actions=[str(a) for a in tc.as_list(s.get("Action"))] if "NotAction" not in s else None,
                not_actions=[str(a) for a in tc.as_list(s.get("NotAction"))] if "NotAction" in s else None,
                resources=patterns(s.get("Resource")) if "NotResource" not in s else None,
                not_resources=patterns(s.get("NotResource")) if "NotResource" in s else None,
                unresolved=unresolved,
                condition="Condition" in s,
            ))
    return out


def code_name(code: Any) -> str | None:
    """`push` for code at target/lambda/push/ (an S3 key or a local path)."""
    for v in ([code.get("S3Key"), code.get("ImageUri")] if isinstance(code, dict) else [code]):
        if isinstance(v, str):
            m = re.search(r"target/lambda/([^/]+)/?$", v)
            if m:
                return m.group(1)
    return None


@dataclass
class Function:
    logical: str
    names: set[str]  # the callers that mean it
    role: str | None
    role_problem: str = ""
    lambda_uses: list[tuple[str, str, str]] = field(default_factory=list)  # (action, arn, why)


def functions_of(cfn: dict, sam: dict | None, ctx: Context) -> dict[str, Function]:
    out = {}
    sam_resources = (sam or {}).get("Resources", {})
    for name, fn in tc.resources(cfn, "AWS::Lambda::Function"):
        p = tc.props(fn)
        names = {name}
        binary = code_name(p.get("Code")) or code_name(tc.props(sam_resources.get(name, {})).get("CodeUri"))
        if binary:
            names.add(binary)
        try:
            names.add(str(evaluate(ctx, p["FunctionName"])))
        except (Unresolved, KeyError):
            pass
        role = tc.target(cfn, p.get("Role"))
        f = Function(name, names, role if role and cfn["Resources"][role]["Type"] == "AWS::IAM::Role" else None)
        if f.role is None:
            f.role_problem = f"its Role {json.dumps(p.get('Role'))} is not an AWS::IAM::Role of the template"
        try:
            dlq = (p.get("DeadLetterConfig") or {}).get("TargetArn")
            if dlq:
                f.lambda_uses.append(("sqs:SendMessage", evaluate(ctx, dlq), "Lambda sends failed asynchronous invocations there"))
        except Unresolved:
            pass
        out[name] = f
    for esm_name, esm in tc.resources(cfn, "AWS::Lambda::EventSourceMapping"):
        p = tc.props(esm)
        fname = tc.target(cfn, p.get("FunctionName"))
        if fname in out:
            try:
                arn = evaluate(ctx, p.get("EventSourceArn"))
            except Unresolved:
                continue
            for a in ESM_ACTIONS:
                out[fname].lambda_uses.append((a, arn, f"the event source mapping {esm_name} polls with the role"))
    return out


@dataclass
class Row:
    action: str
    target: str
    count: int = 0
    allowed: bool = False
    detail: str = ""


def decide(stmts: list[Statement], actions: list[str], target: Target | None,
           used: set[tuple[str, str, str]]) -> tuple[bool, str]:
    """Whether one of `actions` is allowed on `target` (None: no resource
    recorded) and not denied; records the (statement, action pattern,
    resource pattern) that allowed it in `used`."""
    denied_by: list[str] = []
    hits: list[tuple[Statement, str, Pattern, str]] = []
    for action in actions:
        deny = []
        for s in stmts:
            if s.effect != "Deny" or not s.matches_action(action):
                continue
            if target is None and s.covers_everything() or target is not None and s.resource_hits(target.arns):
                deny.append(s.where)
        if deny:
            denied_by += deny
            continue
        for s in stmts:
            if s.effect != "Allow" or not s.matches_action(action):
                continue
            if target is None:
                for a in s.action_patterns(action):
                    for p in s.resources or [Pattern("*", "*")]:
                        hits.append((s, a, p, ""))
                continue
            for p, arn in s.resource_hits(target.arns):
                for a in s.action_patterns(action):
                    hits.append((s, a, p, arn))
    if not hits:
        if denied_by:
            return False, "denied by " + ", ".join(sorted(set(denied_by)))
        return False, ""
    notes = []
    for s, a, p, arn in hits:
        if target is None:
            if p.text == "*":
                used.add((s.where, a, p.text))
        else:
            used.add((s.where, a, p.text))
    if target is None:
        notes.append("no resource recorded: checked on the action only")
    elif target.bare and all(arn == target.bare for _, _, _, arn in hits):
        notes.append("matches the bare name only: AWS compares the secret's ARN, which ends in -XXXXXX (a pattern needs -* or -??????)")
    if any(s.condition for s, _, _, _ in hits):
        notes.append("by a statement with a Condition (not evaluated)")
    if denied_by:
        notes.append("some actions denied by " + ", ".join(sorted(set(denied_by))))
    return True, "; ".join(notes)


def why_not(stmts: list[Statement], role: str, actions: list[str], target: Target | None) -> str:
    elsewhere = sorted({p.label for s in stmts if s.effect == "Allow" for a in actions if s.matches_action(a)
                        for p in (s.resources or [])})
    want = " or ".join(actions)
    msg = f"no Allow statement of {role} grants {want}" + (f" on {target.label}" if target else "")
    if elsewhere:
        msg += f" (granted on {', '.join(elsewhere)} only)"
    elif target is not None and not any(s.effect == "Allow" and s.matches_action(a) for s in stmts for a in actions):
        msg += " (on nothing at all)"
    maybe = [s.where for s in stmts if s.unresolved and any(s.matches_action(a) for a in actions)]
    if maybe:
        msg += f"; {', '.join(maybe)} has a resource that cannot be resolved and may be the one"
    return msg


def check_stage(ctx: Context, cfn: dict, res: dict[str, dict]) -> list[str]:
    wrong = []
    for name, r in res.items():
        t = cfn.get("Resources", {}).get(name)
        if not t:
            wrong.append(f"{name} is in resources.json but not in the template")
            continue
        key = "TableName" if r["type"] == TABLE else "QueueName"
        declared = tc.props(t).get(key)
        if declared is None:
            continue
        try:
            want = evaluate(ctx, declared)
        except Unresolved:
            continue
        if want != r.get("name", r["physical_id"]):
            wrong.append(f"{name}: the template with stage {ctx.params.get('Stage')!r} names {want!r}, resources.json {r.get('name')!r}")
    return wrong


def read_calls(path: Path) -> tuple[list[dict], list[str]]:
    calls, bad = [], []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            c = json.loads(line)
        except ValueError as e:
            bad.append(f"{path}:{i}: not JSON ({e})")
            continue
        if not isinstance(c, dict) or not c.get("caller") or not c.get("service") or not c.get("operation"):
            bad.append(f"{path}:{i}: needs caller, service and operation: {line.strip()[:200]}")
            continue
        calls.append(c)
    return calls, bad


def _grant_lines(grants: dict[str, list[str]]) -> list[str]:
    """`actions on resources`, resources with the same actions together."""
    by_actions: dict[tuple[str, ...], list[str]] = {}
    for label, actions in grants.items():
        by_actions.setdefault(tuple(sorted(actions)), []).append(label)
    lines = [(sorted(labels), actions) for actions, labels in by_actions.items()]
    return [f"{', '.join(actions)} on {', '.join(labels)}" for labels, actions in sorted(lines)]


def cmd_iam(args: argparse.Namespace) -> int:
    cfn = json.loads(Path(args.template).read_text())
    res = json.loads(Path(args.resources).read_text())
    sam = None
    if args.sam and Path(args.sam).exists():
        sam = tc.load_sam(Path(args.sam))
    ctx = Context(parameter_values(cfn, args.stage), res, set(cfn.get("Resources", {})), account_of(res))
    wrong = check_stage(ctx, cfn, res)
    if wrong:
        print(f"stack iam: {shown(args.resources)} was not made from {shown(args.template)} with --stage {args.stage}:")
        for w in wrong:
            print(f"  {w}")
        return 2
    index = Index(res, ctx.account)
    functions = functions_of(cfn, sam, ctx)
    by_caller: dict[str, Function] = {}
    for f in functions.values():
        for n in f.names:
            by_caller.setdefault(n, f)
    calls, bad = read_calls(Path(args.calls))

    unknown: dict[str, int] = {}
    grouped: dict[str, dict[tuple[str, str, tuple[str, ...]], int]] = {}
    callers_of: dict[str, set[str]] = {}
    for c in calls:
        f = by_caller.get(c["caller"])
        if f is None:
            unknown[c["caller"]] = unknown.get(c["caller"], 0) + 1
            continue
        callers_of.setdefault(f.logical, set()).add(c["caller"])
        service = re.sub(r"[\s_-]", "", str(c["service"]).lower())
        prefix = SERVICE_PREFIX.get(service, service)
        resources = [str(r) for r in tc.as_list(c.get("resources")) if r]
        if prefix == "dynamodb":
            # A query of an index is authorized on the index, not the table.
            indexed = {r.split("/index/", 1)[0] for r in resources if "/index/" in r}
            resources = [r for r in resources if r not in indexed]
        key = (prefix, str(c["operation"]), tuple(sorted(set(resources))))
        g = grouped.setdefault(f.logical, {})
        g[key] = g.get(key, 0) + 1

    failures = 0
    allowed_rows = 0
    unused_total = 0
    print(f"stack iam: {len(calls)} recorded call(s) from {shown(args.calls)} against the roles in "
          f"{shown(args.template)} (stage {args.stage})")
    for line in bad:
        print(f"  unreadable: {line}")
    for logical in sorted(grouped):
        f = functions[logical]
        print()
        print(f"{', '.join(sorted(callers_of[logical]))} -> {logical}" + (f" (role {f.role})" if f.role else ""))
        if f.role is None:
            print(f"  NOT CHECKED: {f.role_problem}")
            failures += sum(grouped[logical].values())
            continue
        docs, notes = role_policies(cfn, f.role)
        stmts = statements(ctx, index, docs)
        used: set[tuple[str, str, str]] = set()
        rows: dict[tuple[str, str], Row] = {}
        for (prefix, operation, resources), count in sorted(grouped[logical].items()):
            action = f"{prefix}:{operation}"
            authorized = [f"{prefix}:{a}" for a in AUTHORIZED_AS.get((prefix, operation.lower()), [operation])]
            targets: list[Target | None] = [call_target(index, prefix, r) for r in resources] or [None]
            for t in targets:
                ok, detail = decide(stmts, authorized, t, used)
                if not ok:
                    detail = (detail + "; " if detail else "") + why_not(stmts, f.role, authorized, t)
                if authorized != [action]:
                    detail = f"authorized as {' / '.join(authorized)}" + (f"; {detail}" if detail else "")
                if t is not None and t.note:
                    detail = (detail + "; " if detail else "") + t.note
                row = rows.setdefault((action, t.label if t else "(no resource)"), Row(action, t.label if t else "(no resource)"))
                row.count += count
                row.allowed, row.detail = ok, detail
        wa = max(len(r.action) for r in rows.values())
        wt = max(len(r.target) for r in rows.values())
        for r in rows.values():
            status = "allowed" if r.allowed else "NOT ALLOWED"
            if r.allowed:
                allowed_rows += 1
            else:
                failures += 1
            extra = f"  ({r.detail})" if r.detail else ""
            print(f"  {status:<11}  {r.action:<{wa}}  {r.target:<{wt}}  x{r.count}{extra}")
        # What the role grants that no call used.
        unused: dict[str, list[str]] = {}
        for_lambda: dict[str, list[str]] = {}
        for s in stmts:
            if s.effect != "Allow":
                continue
            for a in (s.actions if s.actions is not None else [f"NotAction {','.join(s.not_actions or [])}"]):
                for p in (s.resources if s.resources is not None else [Pattern("*", "NotResource ...")]):
                    if (s.where, a, p.text) in used:
                        continue
                    why = next((w for la, arn, w in f.lambda_uses
                                if action_matches(a, la) and p.matches(arn)), None)
                    bucket = for_lambda if why else unused
                    key = p.label + (f" ({why})" if why else "")
                    if a not in bucket.setdefault(key, []):
                        bucket[key].append(a)
        if unused:
            print("  granted, unused:")
            unused_total += sum(len(a) for a in unused.values())
            for line in _grant_lines(unused):
                print(f"    {line}")
        if for_lambda:
            print("  granted for Lambda itself (not the code's calls):")
            for line in _grant_lines(for_lambda):
                print(f"    {line}")
        for s in stmts:
            for u in s.unresolved:
                print(f"  cannot resolve: {u}")
        for n in notes:
            print(f"  note: {f.role} {n}")

    for caller, count in sorted(unknown.items()):
        print()
        print(f"{caller}: maps to no AWS::Lambda::Function (by code at target/lambda/<name>/, FunctionName or logical id): "
              f"{count} call(s) NOT CHECKED")
    expected = [e.strip() for e in (args.expect_callers or "").split(",") if e.strip()]
    silent = []
    for e in expected:
        f = by_caller.get(e)
        if f is None:
            silent.append(f"{e} (no such function)")
        elif f.logical not in grouped:
            silent.append(f"{e} ({f.logical}) recorded no call")
    if silent:
        print()
        for s in silent:
            print(f"expected caller {s}")
    print()
    n_functions = len(grouped)
    if failures or unknown or silent or bad:
        parts = []
        if failures:
            parts.append(f"{failures} call(s) NOT ALLOWED")
        if unknown:
            parts.append(f"{len(unknown)} caller(s) map to no function ({', '.join(sorted(unknown))})")
        if silent:
            parts.append(f"{len(silent)} expected caller(s) without a call")
        if bad:
            parts.append(f"{len(bad)} unreadable line(s)")
        print(f"stack iam: FAIL: {'; '.join(parts)}; {allowed_rows} allowed, in {n_functions} function(s)")
        return 1
    print(f"stack iam: ok: {allowed_rows} distinct call(s) of {n_functions} function(s) allowed; "
          f"{unused_total} granted action(s) unused")
    return 0


# ================================================================= drift

# Settings the template tunes per consumer: a difference is reported, not a failure.
INFORMATIONAL = {
    "VisibilityTimeout": "the template sets it per consumer (6 x its timeout + batching window)",
    "MessageRetentionPeriod": "the template keeps each queue's messages as long as its use needs",
    "ReceiveMessageWaitTimeSeconds": "a polling setting",
    "SSE": "the template encrypts with alias/aws/sqs; the emulator's queues need no key",
}


def parse_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*(?:export\s+)?([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip().strip('"').strip("'")
    return out


def is_table_var(k: str) -> bool:
    return k.startswith("HUB_") and k.endswith("_TABLE")


def is_queue_var(k: str) -> bool:
    return k.startswith("HUB_") and (k.endswith("_QUEUE_URL") or k.endswith("_DLQ_URL"))


def _fmt_keys(keys: list[tuple[str, str]]) -> str:
    return ", ".join(f"{a} {t}" for a, t in keys) or "-"


def _fmt_indexes(ix: dict[str, dict]) -> str:
    if not ix:
        return "none"
    return "; ".join(
        f"{n}({_fmt_keys(i['KeySchema'])}; {i['Projection'][0]}{' ' + ','.join(i['Projection'][1]) if i['Projection'][1] else ''})"
        for n, i in sorted(ix.items())
    )


@dataclass
class DriftRow:
    status: str  # match, DIFFERS, info
    pair: str
    attribute: str
    schema: str
    template: str
    note: str = ""


def compare_tables(pair: str, s: dict, t: dict) -> list[DriftRow]:
    rows = []

    def row(attr: str, a: Any, b: Any, fmt=str) -> None:
        rows.append(DriftRow("match" if a == b else "DIFFERS", pair, attr, fmt(a), fmt(b)))

    row("KeySchema", s["KeySchema"], t["KeySchema"], _fmt_keys)
    row("AttributeDefinitions", s["AttributeDefinitions"], t["AttributeDefinitions"], _fmt_keys)
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if s[kind] or t[kind]:
            row(kind, s[kind], t[kind], _fmt_indexes)
            if s[kind] != t[kind]:
                only_s = sorted(set(s[kind]) - set(t[kind]))
                only_t = sorted(set(t[kind]) - set(s[kind]))
                differ = sorted(n for n in set(s[kind]) & set(t[kind]) if s[kind][n] != t[kind][n])
                rows[-1].note = "; ".join(
                    ([f"{', '.join(only_s)} only in the Rust schema"] if only_s else [])
                    + ([f"{', '.join(only_t)} only in the template"] if only_t else [])
                    + ([f"{', '.join(differ)} differ in keys or projection"] if differ else [])
                )
    row("BillingMode", s["BillingMode"], t["BillingMode"])
    row("TimeToLive", s["TimeToLive"], t["TimeToLive"], lambda v: v or "disabled")
    return rows


def compare_queues(pair: str, s: dict, t: dict, s_dlq: dict | None, t_dlq: dict | None) -> list[DriftRow]:
    rows = []

    def row(attr: str, a: Any, b: Any, key: str | None = None) -> None:
        info = INFORMATIONAL.get(key or attr)
        status = "match" if a == b else ("info" if info else "DIFFERS")
        rows.append(DriftRow(status, pair, attr, str(a), str(b), info if status == "info" else ""))

    row("FifoQueue", s["FifoQueue"], t["FifoQueue"])
    row("RedrivePolicy", "yes" if s["RedrivePolicy"] else "no", "yes" if t["RedrivePolicy"] else "no")
    if s["RedrivePolicy"] and t["RedrivePolicy"]:
        row("maxReceiveCount", s["RedrivePolicy"]["maxReceiveCount"], t["RedrivePolicy"]["maxReceiveCount"])
    if s_dlq and t_dlq:
        row("DLQ MessageRetentionPeriod", s_dlq["MessageRetentionPeriod"], t_dlq["MessageRetentionPeriod"])
        row("DLQ FifoQueue", s_dlq["FifoQueue"], t_dlq["FifoQueue"])
    row("DelaySeconds", s["DelaySeconds"], t["DelaySeconds"])
    row("MaximumMessageSize", s["MaximumMessageSize"], t["MaximumMessageSize"])
    row("VisibilityTimeout", s["VisibilityTimeout"], t["VisibilityTimeout"])
    row("MessageRetentionPeriod", s["MessageRetentionPeriod"], t["MessageRetentionPeriod"])
    row("ReceiveMessageWaitTimeSeconds", s["ReceiveMessageWaitTimeSeconds"], t["ReceiveMessageWaitTimeSeconds"])
    row("SSE", s["SSE"], t["SSE"])
    if s_dlq and t_dlq:
        row("DLQ SSE", s_dlq["SSE"], t_dlq["SSE"], key="SSE")
    return rows


def cmd_drift(args: argparse.Namespace) -> int:
    res = json.loads(Path(args.resources).read_text())
    env_path = Path(args.env) if args.env else Path(args.resources).parent / "function-env.json"
    env = json.loads(env_path.read_text())
    boot = parse_env_file(Path(args.bootstrap))
    ddb, sqs = session_clients(args.endpoint, "dynamodb", "sqs")
    index = Index(res, account_of(res))
    by_arn = {r["arn"]: n for n, r in res.items()}

    rows: list[DriftRow] = []
    problems: list[str] = []
    compared_dlqs: set[str] = set()
    headers: dict[str, str] = {}
    pairs = 0
    for var in sorted(k for k in boot if is_table_var(k) or is_queue_var(k)):
        value = boot[var]
        if var not in env:
            problems.append(f"{var}: the Rust schema makes {value}, but no function of the template gets {var}")
            continue
        if is_table_var(var):
            logical = index.tables.get(env[var])
        else:
            logical = index.queues.get(env[var].rstrip("/"))
        if logical is None:
            problems.append(f"{var}: the template sets it to {env[var]}, which is not a resource in {shown(args.resources)}")
            continue
        r = res[logical]
        pair = f"{var} {logical}"
        shown_value = value.rstrip("/").rsplit("/", 1)[-1] if is_queue_var(var) else value
        headers[pair] = f"{var}: {shown_value} (Rust schema)  <->  {logical} {r.get('name', r['physical_id'])} (template)"
        pairs += 1
        try:
            if is_table_var(var):
                rows += compare_tables(pair, live_table(ddb, value), live_table(ddb, r["physical_id"]))
            else:
                s, t = live_queue(sqs, value), live_queue(sqs, r["url"])
                s_dlq_url, t_dlq_url = _dlq_url(sqs, s["RedrivePolicy"]), _dlq_url(sqs, t["RedrivePolicy"])
                s_dlq = live_queue(sqs, s_dlq_url) if s_dlq_url else None
                t_dlq = live_queue(sqs, t_dlq_url) if t_dlq_url else None
                if t["RedrivePolicy"] and t["RedrivePolicy"]["deadLetterTargetArn"] in by_arn:
                    compared_dlqs.add(by_arn[t["RedrivePolicy"]["deadLetterTargetArn"]])
                if s_dlq_url or t_dlq_url:
                    names = [u.rstrip("/").rsplit("/", 1)[-1] if u else "none" for u in (s_dlq_url, t_dlq_url)]
                    headers[pair] += f"; dead-letter queues {names[0]} <-> {names[1]}"
                rows += compare_queues(pair, s, t, s_dlq, t_dlq)
        except ClientError as e:
            problems.append(f"{var}: {e}")
    # The template's tables and queues the Rust schema has no variable for:
    # dead-letter queues are compared through their source's RedrivePolicy.
    for var in sorted(k for k in env if (is_table_var(k) or is_queue_var(k)) and k not in boot):
        logical = index.tables.get(env[var]) or index.queues.get(env[var].rstrip("/"))
        if logical in compared_dlqs:
            continue
        problems.append(f"{var}: the template's functions get {logical or env[var]}, which `hub aws bootstrap` does not make")

    print(f"stack drift: the Rust schema's resources ({shown(args.bootstrap)}, from `hub aws bootstrap`) "
          f"against the template's ({shown(args.resources)}, variables from {shown(env_path)})")
    if rows:
        wa = max(len(r.attribute) for r in rows)
        ws = max(max(len(r.schema) for r in rows), len("Rust schema"))
        print(f"  {'':<7}  {'attribute':<{wa}}  {'Rust schema':<{ws}}  template")
        for pair, title in headers.items():
            print(f"  {title}")
            for r in (r for r in rows if r.pair == pair):
                note = f"  ({r.note})" if r.note and r.status != "info" else ""
                print(f"  {r.status:<7}  {r.attribute:<{wa}}  {r.schema:<{ws}}  {r.template}{note}")
    for p in problems:
        print(f"  DIFFERS  {p}")
    differs = [r for r in rows if r.status == "DIFFERS"]
    infos = [r for r in rows if r.status == "info"]
    print()
    if infos:
        print(f"  {len(infos)} informational difference(s) (info), in settings the template tunes per consumer; not failures:")
        for attr in sorted({r.attribute for r in infos}):
            print(f"    {attr}: {INFORMATIONAL.get(attr.replace('DLQ ', ''), '')}")
    if differs or problems:
        named = [f"{r.pair.split(' ', 1)[1]} {r.attribute}" for r in differs]
        print(f"stack drift: FAIL: {len(differs) + len(problems)} difference(s): {'; '.join(named + problems)}")
        return 1
    print(f"stack drift: ok: {pairs} pair(s) ({len(compared_dlqs)} dead-letter queue(s) through their redrive) "
          f"match in keys, indexes, TTL, billing, FIFO and redrive")
    return 0


# ================================================================= main


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stack.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("create", help="deploy the template's tables and queues to the emulator; write resources.json, function-env.json, transformed.json")
    c.add_argument("--endpoint", required=True, help="the emulator's URL, e.g. http://127.0.0.1:5055")
    c.add_argument("--out", required=True, help="directory for resources.json, function-env.json, transformed.json")
    c.add_argument("--template", default=str(tc.DEFAULT_TEMPLATE), help="the SAM template (default infra/template.yaml)")
    c.add_argument("--transformed", help="an already transformed template (JSON) to use instead of --template")
    c.add_argument("--stage", default=DEFAULT_STAGE, help=f"the Stage parameter (default {DEFAULT_STAGE})")
    c.add_argument("--stack-name", help="default integration-hub-<stage>")
    c.set_defaults(run=cmd_create)

    i = sub.add_parser("iam", help="check recorded AWS calls against each function's role")
    i.add_argument("--calls", required=True, help="the call log (JSON lines: caller, service, operation, resources)")
    i.add_argument("--resources", required=True, help="resources.json from create")
    i.add_argument("--template", required=True, help="transformed.json from create")
    i.add_argument("--stage", default=DEFAULT_STAGE, help=f"the stage create used (default {DEFAULT_STAGE})")
    i.add_argument("--sam", default=str(tc.DEFAULT_TEMPLATE),
                   help="the SAM template, for CodeUris the transform lost (default infra/template.yaml)")
    i.add_argument("--expect-callers", help="comma-separated callers that must each have recorded a call")
    i.set_defaults(run=cmd_iam)

    d = sub.add_parser("drift", help="compare the Rust schema's tables and queues with the template's")
    d.add_argument("--endpoint", required=True, help="the emulator's URL")
    d.add_argument("--resources", required=True, help="resources.json from create")
    d.add_argument("--bootstrap", required=True, help="KEY=VALUE lines `hub aws bootstrap` printed")
    d.add_argument("--env", help="function-env.json from create (default: next to resources.json)")
    d.set_defaults(run=cmd_drift)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (ClientError, BotoCoreError) as e:
        print(f"stack {args.command}: the emulator answered: {e}")
        return 2
    except (OSError, ValueError) as e:
        print(f"stack {args.command}: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
