#!/usr/bin/env python3
"""The SAM template as AWS reads it.

CloudFormation never sees `infra/template.yaml` itself: it first runs the SAM
transform, which writes the HTTP API's OpenAPI body (naming every function it
routes to), the roles, the event source mappings and the schedules. cfn-lint
validates the SAM form, so a dependency cycle that only exists after the
transform, or a route whose authorization SAM derives from a default, passes
it. This script transforms the template with aws-sam-translator (the library
`sam validate` and CloudFormation's own transform are built on) and checks the
plain CloudFormation:

- dependency graph: Ref, Fn::GetAtt, Fn::Sub (`${X}`, `${X.Attr}`) and
  DependsOn between resources; no cycle, no reference to nothing;
- SQS consumers: every event source mapping from a queue has the queue's
  VisibilityTimeout >= 6 x the function's Timeout + its batching window (AWS's
  guidance), and a ScalingConfig.MaximumConcurrency of 2..1000;
- alarm topics: CloudWatch can publish to every topic an alarm notifies (no
  key, or a key in the template whose policy lets cloudwatch.amazonaws.com
  Decrypt and GenerateDataKey*; AWS managed keys such as alias/aws/sns cannot);
- API routes: only the routes in PUBLIC_ROUTES are unauthenticated, every
  other one is AWS_IAM;
- log groups: every function has a log group with a retention;
- credential parameters: NoEcho;
- schedules: every schedule's target passes an explicit Input (JSON);
- role scope: no role attaches a managed policy beyond the basic execution
  role, and no role allows a data action on every resource ("*").

Run: `.venv-tools/bin/python xtask/template_check.py [infra/template.yaml]`
(`cargo xtask infra` does, then runs template_check_test.py, which shows each
check catching the defect it exists for). Exit status 1 on any failure.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

# The transform asks boto3 for the partition; no credentials or network needed.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

try:
    from cfnlint.decode import cfn_yaml
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform
except ImportError as e:  # pragma: no cover - a setup problem, said plainly
    sys.exit(
        f"template_check: {e}; run it with .venv-tools/bin/python "
        "(`cargo xtask infra` makes the venv from xtask/python-requirements.txt)"
    )

# The transform records usage metrics for a publisher that is not there, and
# warns about them when it is collected.
logging.getLogger("samtranslator.metrics.metrics").setLevel(logging.ERROR)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = ROOT / "infra" / "template.yaml"

# The only unauthenticated doors, and what guards each instead. Anything else
# on an API must be AWS_IAM. `METHOD path`, path patterns as fnmatch.
PUBLIC_ROUTES = {
    "POST /webhooks/*": "provider webhooks: the provider's signature, verified in code",
    "GET /connect/{provider}": "connect start: a link signed with the links/connect key, checked in code",
    "GET /connect/{provider}/callback": "OAuth callback: bound to its start by the state",
}

# Parameters that carry a credential: CloudFormation must not echo them.
CREDENTIAL_PARAMETERS = {
    "AlertWebhookUrl": "an incoming-webhook URL is its own credential",
}
CREDENTIAL_NAME = re.compile(r"(Secret|Password|Token|ApiKey|PrivateKey)$")

# AWS guidance for SQS event sources: visibility >= 6 x timeout + window.
VISIBILITY_FACTOR = 6
LAMBDA_DEFAULT_TIMEOUT = 3
SQS_DEFAULT_VISIBILITY = 30

# Managed policies a role may attach: CloudWatch Logs only.
ALLOWED_MANAGED_POLICIES = {"service-role/AWSLambdaBasicExecutionRole"}
# Services whose actions must name their resources.
DATA_SERVICES = {"dynamodb", "sqs", "sns", "secretsmanager", "kms", "s3", "lambda", "ssm"}

PSEUDO = re.compile(r"^AWS::")
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


# ----------------------------------------------------------------- loading


def load_sam(path: Path) -> dict:
    """The template as plain JSON data (short-form tags made long-form)."""
    return json.loads(json.dumps(cfn_yaml.loads(Path(path).read_text(), str(path))))


class _NoManagedPolicies:
    """The transform looks policy names up in IAM; the template names none."""

    def load(self) -> dict:
        return {}


def to_cloudformation(sam: dict) -> dict:
    """The SAM transform, as CloudFormation runs it. Local CodeUris (built by
    `cargo xtask package`) stand in as S3 locations, as `sam validate` does."""
    sam = copy.deepcopy(sam)
    for r in sam.get("Resources", {}).values():
        props = r.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            uri = props.get(key)
            if isinstance(uri, str) and not uri.startswith("s3://"):
                props[key] = "s3://template-check/" + uri.strip("./").rstrip("/")
    try:
        return transform(sam, {}, _NoManagedPolicies())
    except InvalidDocumentException as e:
        causes = "; ".join(c.message for c in e.causes)
        raise TemplateError(f"the SAM transform refused the template: {causes}") from e


class TemplateError(Exception):
    """The template could not be transformed."""


# ----------------------------------------------------------------- helpers


def resources(cfn: dict, *types: str) -> Iterator[tuple[str, dict]]:
    for name, r in cfn.get("Resources", {}).items():
        if not types or r.get("Type") in types:
            yield name, r


def props(r: dict) -> dict:
    return r.get("Properties") or {}


def target(cfn: dict, value: Any) -> str | None:
    """The resource a `Ref` or `Fn::GetAtt` names."""
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref" and isinstance(arg, str) and arg in cfn.get("Resources", {}):
            return arg
        if fn == "Fn::GetAtt":
            name = arg[0] if isinstance(arg, list) else str(arg).split(".")[0]
            if name in cfn.get("Resources", {}):
                return name
    return None


def number(cfn: dict, value: Any, default: int | None = None) -> int | None:
    """An integer property: a literal, or a parameter's default."""
    if value is None:
        return default
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, dict) and set(value) == {"Ref"}:
        param = cfn.get("Parameters", {}).get(value["Ref"])
        if param is not None:
            return number(cfn, param.get("Default"))
    return None


def name_pattern(value: Any) -> str | None:
    """A physical name as its Sub pattern: `hub-push-${Stage}`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Fn::Sub":
            if isinstance(arg, str):
                return arg
            if isinstance(arg, list) and len(arg) == 2 and not arg[1]:
                return arg[0]
        if fn == "Ref" and isinstance(arg, str):
            return "${" + arg + "}"
        if fn == "Fn::Join" and isinstance(arg, list) and len(arg) == 2:
            parts = [name_pattern(p) for p in arg[1]]
            if all(p is not None for p in parts):
                return str(arg[0]).join(parts)  # type: ignore[arg-type]
    return None


def as_list(v: Any) -> list:
    return v if isinstance(v, list) else [] if v is None else [v]


def allows(statement: dict, principal_service: str, action: str) -> bool:
    """Whether an Allow statement grants `action` to the service principal."""
    if statement.get("Effect") != "Allow":
        return False
    principal = statement.get("Principal") or {}
    services = as_list(principal.get("Service")) if isinstance(principal, dict) else []
    if principal != "*" and principal_service not in services:
        return False
    return any(
        isinstance(a, str) and fnmatch.fnmatchcase(action.lower(), a.lower())
        for a in as_list(statement.get("Action"))
    )


@dataclass
class Result:
    """One check: what it looked at, and what it found wrong."""

    name: str
    summary: str = ""
    details: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


# ----------------------------------------------------------------- dependency graph


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    how: str  # "Ref", "Fn::GetAtt", "Fn::Sub", "DependsOn"
    where: str  # the property path


def _sub_names(template: str) -> Iterator[str]:
    for m in re.finditer(r"\$\{([^}]*)\}", template):
        inner = m.group(1).strip()
        if inner.startswith("!"):
            continue  # ${!Literal}
        yield inner.split(".")[0]


def _refs(node: Any, path: str) -> Iterator[tuple[str, str, str]]:
    """(name, how, where) for every reference below `node`."""
    if isinstance(node, list):
        for i, v in enumerate(node):
            yield from _refs(v, f"{path}[{i}]")
    elif isinstance(node, dict):
        if len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref" and isinstance(arg, str):
                yield arg, "Ref", path
                return
            if fn == "Fn::GetAtt":
                name = arg[0] if isinstance(arg, list) and arg else str(arg).split(".")[0]
                yield name, "Fn::GetAtt", path
                if isinstance(arg, list):
                    yield from _refs(arg[1:], path)
                return
            if fn == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1] or {})
                for name in _sub_names(text if isinstance(text, str) else ""):
                    if name not in variables:
                        yield name, "Fn::Sub", path
                yield from _refs(variables, path)
                return
            if fn == "Fn::If" and isinstance(arg, list) and len(arg) == 3:
                yield from _refs(arg[1:], path)  # arg[0] names a condition
                return
        for k, v in node.items():
            yield from _refs(v, f"{path}.{k}")


def dependency_edges(cfn: dict) -> tuple[list[Edge], list[str]]:
    """The edges between resources, and references to nothing."""
    names = set(cfn.get("Resources", {}))
    params = set(cfn.get("Parameters", {}))
    edges, dangling = [], []
    for source, r in resources(cfn):
        found = list(_refs(r.get("Properties", {}), "Properties"))
        found += [(d, "DependsOn", "DependsOn") for d in as_list(r.get("DependsOn"))]
        for name, how, where in found:
            if name in names:
                edges.append(Edge(source, name, how, where))
            elif not PSEUDO.match(name) and name not in params:
                dangling.append(f"{source}: {how} at {where} names {name!r}, which is neither a resource nor a parameter")
    return edges, dangling


def find_cycles(nodes: list[str], edges: list[Edge]) -> list[list[Edge]]:
    """One shortest cycle per strongly connected component (Tarjan)."""
    out: dict[str, list[Edge]] = {n: [] for n in nodes}
    for e in edges:
        out[e.source].append(e)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for e in out[v]:
            w = e.target
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            components.append(comp)

    sys.setrecursionlimit(max(10_000, 4 * len(nodes)))
    for v in nodes:
        if v not in index:
            strongconnect(v)

    cycles = []
    for comp in components:
        members = set(comp)
        start = sorted(comp)[0]
        self_loop = [e for e in out[start] if e.target == start]
        if len(comp) == 1 and not self_loop:
            continue
        if self_loop:
            cycles.append(self_loop[:1])
            continue
        # Breadth-first from `start` back to it, inside the component.
        previous: dict[str, Edge] = {}
        frontier = [start]
        done = False
        while frontier and not done:
            nxt = []
            for v in frontier:
                for e in out[v]:
                    if e.target not in members:
                        continue
                    if e.target == start:
                        path = [e]
                        while path[0].source != start:
                            path.insert(0, previous[path[0].source])
                        cycles.append(path)
                        done = True
                        break
                    if e.target not in previous:
                        previous[e.target] = e
                        nxt.append(e.target)
                if done:
                    break
            frontier = nxt
    return cycles


def check_graph(cfn: dict) -> Result:
    res = Result("dependency graph")
    edges, dangling = dependency_edges(cfn)
    res.failures += dangling
    for cycle in find_cycles(list(cfn.get("Resources", {})), edges):
        chain = " -> ".join([cycle[0].source] + [e.target for e in cycle])
        lines = [f"dependency cycle: {chain} (CloudFormation cannot create any of them)"]
        lines += [f"    {e.source} needs {e.target}: {e.how} at {e.where}" for e in cycle]
        res.failures.append("\n".join(lines))
    res.summary = f"{len(cfn.get('Resources', {}))} resources, {len(edges)} references between them"
    if not res.failures:
        res.summary += ", no cycle"
    return res


# ----------------------------------------------------------------- SQS consumers


def check_sqs_consumers(cfn: dict) -> Result:
    res = Result("SQS consumers")
    count = 0
    for name, esm in resources(cfn, "AWS::Lambda::EventSourceMapping"):
        p = props(esm)
        queue = target(cfn, p.get("EventSourceArn"))
        if queue is None or cfn["Resources"][queue].get("Type") != "AWS::SQS::Queue":
            if ":sqs:" in json.dumps(p.get("EventSourceArn")):
                res.failures.append(f"{name}: its queue {p.get('EventSourceArn')} is not in the template; its visibility cannot be checked")
            continue
        count += 1
        function = target(cfn, p.get("FunctionName"))
        if function is None:
            res.failures.append(f"{name}: its function {p.get('FunctionName')} is not in the template")
            continue
        fp = props(cfn["Resources"][function])
        timeout = number(cfn, fp.get("Timeout"), LAMBDA_DEFAULT_TIMEOUT)
        window = number(cfn, p.get("MaximumBatchingWindowInSeconds"), 0)
        visibility = number(cfn, props(cfn["Resources"][queue]).get("VisibilityTimeout"), SQS_DEFAULT_VISIBILITY)
        what = f"{queue} -> {function} ({name})"
        if None in (timeout, window, visibility):
            res.failures.append(f"{what}: Timeout, batching window or VisibilityTimeout is not a number here")
            continue
        need = VISIBILITY_FACTOR * timeout + window  # type: ignore[operator]
        if visibility < need:  # type: ignore[operator]
            res.failures.append(
                f"{what}: queue VisibilityTimeout {visibility} < {VISIBILITY_FACTOR} x function Timeout {timeout}"
                f" + MaximumBatchingWindowInSeconds {window} = {need}: a message still being worked on is handed out again"
            )
        concurrency = (p.get("ScalingConfig") or {}).get("MaximumConcurrency")
        n = number(cfn, concurrency)
        if concurrency is None:
            res.failures.append(f"{what}: no ScalingConfig.MaximumConcurrency: the queue may scale its consumer to the account's limit")
        elif n is None or not 2 <= n <= 1000:
            res.failures.append(f"{what}: ScalingConfig.MaximumConcurrency {concurrency} is not 2..1000")
        res.details.append(f"{what}: visibility {visibility} >= {VISIBILITY_FACTOR} x {timeout} + {window} = {need}; MaximumConcurrency {concurrency}")
    res.summary = f"{count} event source mapping(s) from SQS queues"
    return res


# ----------------------------------------------------------------- alarm topics


def _key_resource(cfn: dict, value: Any) -> str | None:
    """The AWS::KMS::Key a KmsMasterKeyId names (directly or by an alias)."""
    name = target(cfn, value)
    if name is None:
        return None
    r = cfn["Resources"][name]
    if r.get("Type") == "AWS::KMS::Alias":
        return _key_resource(cfn, props(r).get("TargetKeyId"))
    return name if r.get("Type") == "AWS::KMS::Key" else None


def _topic_problems(cfn: dict, topic: str) -> tuple[list[str], str]:
    p = props(cfn["Resources"][topic])
    problems = []
    key = p.get("KmsMasterKeyId")
    if key is None:
        how = "unencrypted"
    elif isinstance(key, str):
        how = f"key {key}"
        if "alias/aws/" in key:
            problems.append(
                f"topic {topic} is encrypted with the AWS managed key {key}, whose key policy does not let "
                "CloudWatch use it: alarm notifications are dropped (use a customer managed key that allows "
                "cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey*)"
            )
        else:
            problems.append(f"topic {topic} is encrypted with {key}, which is not in the template: its policy cannot be checked")
    else:
        k = _key_resource(cfn, key)
        how = f"key {k}"
        if k is None:
            problems.append(f"topic {topic}: KmsMasterKeyId {json.dumps(key)} does not name a KMS key in the template")
        else:
            statements = as_list((props(cfn["Resources"][k]).get("KeyPolicy") or {}).get("Statement"))
            missing = [a for a in ("kms:Decrypt", "kms:GenerateDataKey") if not any(allows(s, "cloudwatch.amazonaws.com", a) for s in statements)]
            if missing:
                problems.append(
                    f"topic {topic}: the policy of its key {k} does not let cloudwatch.amazonaws.com "
                    f"{' or '.join(missing)}: alarm notifications are dropped"
                )
    policies = [
        n for n, tp in resources(cfn, "AWS::SNS::TopicPolicy")
        if any(target(cfn, t) == topic for t in as_list(props(tp).get("Topics")))
    ]
    for n in policies:
        statements = as_list((props(cfn["Resources"][n]).get("PolicyDocument") or {}).get("Statement"))
        if not any(allows(s, "cloudwatch.amazonaws.com", "sns:Publish") for s in statements):
            problems.append(f"topic {topic}: its policy {n} replaces the default one and does not let cloudwatch.amazonaws.com sns:Publish")
        else:
            how += f", policy {n} lets CloudWatch publish"
    return problems, how


def check_alarm_topics(cfn: dict) -> Result:
    res = Result("alarm topics")
    by_topic: dict[str, list[str]] = {}
    alarms = 0
    for name, alarm in resources(cfn, "AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
        alarms += 1
        p = props(alarm)
        for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
            for action in as_list(p.get(key)):
                topic = target(cfn, action)
                if topic and cfn["Resources"][topic].get("Type") == "AWS::SNS::Topic":
                    by_topic.setdefault(topic, []).append(name)
                elif ":sns:" in json.dumps(action):
                    res.failures.append(f"{name}: {key} {action} is a topic outside the template; whether CloudWatch may publish to it cannot be checked")
    for topic, users in sorted(by_topic.items()):
        problems, how = _topic_problems(cfn, topic)
        res.failures += [f"{p} (alarms: {', '.join(sorted(set(users)))})" for p in problems]
        res.details.append(f"{topic} ({how}) <- {len(set(users))} alarm(s)")
    res.summary = f"{alarms} alarm(s) notify {len(by_topic)} topic(s)"
    return res


# ----------------------------------------------------------------- API routes


def _public_reason(route: str) -> str | None:
    for pattern, reason in PUBLIC_ROUTES.items():
        if fnmatch.fnmatchcase(route, pattern):
            return reason
    return None


def _body_routes(body: dict) -> Iterator[tuple[str, str]]:
    """(`METHOD path`, authorization) of every operation in an OpenAPI body."""
    schemes = dict((body.get("components") or {}).get("securitySchemes") or {})
    schemes.update(body.get("securityDefinitions") or {})
    default = body.get("security")
    for path, item in (body.get("paths") or {}).items():
        for method, op in (item or {}).items():
            m = method.lower()
            if m == "x-amazon-apigateway-any-method":
                m = "any"
            elif m not in HTTP_METHODS:
                continue
            security = op.get("security", default) or []
            kinds = set()
            for requirement in security:
                for scheme_name in requirement or {}:
                    scheme = schemes.get(scheme_name)
                    if scheme is None:
                        continue  # SAM writes {"NONE": []}: no scheme, no auth
                    authtype = str(scheme.get("x-amazon-apigateway-authtype", "")).lower()
                    if authtype == "awssigv4":
                        kinds.add("AWS_IAM")
                    else:
                        kinds.add(f"{scheme.get('type', 'custom')}:{scheme_name}")
            yield f"{m.upper()} {path}", "+".join(sorted(kinds)) or "NONE"


def check_routes(cfn: dict) -> Result:
    res = Result("API routes")
    routes: list[tuple[str, str, str]] = []  # (api, route, auth)
    for name, api in resources(cfn, "AWS::ApiGatewayV2::Api", "AWS::ApiGateway::RestApi"):
        body = props(api).get("Body")
        if isinstance(body, dict):
            routes += [(name, route, auth) for route, auth in _body_routes(body)]
        elif props(api).get("BodyS3Location"):
            res.failures.append(f"{name}: its routes are in S3, where they cannot be checked")
    for name, route in resources(cfn, "AWS::ApiGatewayV2::Route"):
        p = props(route)
        routes.append((name, str(p.get("RouteKey")), str(p.get("AuthorizationType", "NONE"))))
    for name, url in resources(cfn, "AWS::Lambda::Url"):
        routes.append((name, f"function URL of {props(url).get('TargetFunctionArn')}", str(props(url).get("AuthType"))))
    for api, route, auth in routes:
        reason = _public_reason(route)
        expected = "NONE" if reason else "AWS_IAM"
        if auth != expected:
            if reason:
                res.failures.append(f"{api}: {route} is {auth}, but it is a public route ({reason}): callers cannot sign AWS requests")
            else:
                res.failures.append(
                    f"{api}: {route} is {auth}, expected AWS_IAM: only {', '.join(PUBLIC_ROUTES)} may be unauthenticated"
                    " (list a new public route in PUBLIC_ROUTES with what guards it)"
                )
        res.details.append(f"{route}: {auth}" + (f" ({reason})" if reason and auth == "NONE" else ""))
    public = sum(1 for _, _, a in routes if a == "NONE")
    res.summary = f"{len(routes)} route(s): {public} public as listed, {len(routes) - public} AWS_IAM"
    return res


# ----------------------------------------------------------------- log groups


def check_log_groups(cfn: dict) -> Result:
    res = Result("log groups")
    groups = dict(resources(cfn, "AWS::Logs::LogGroup"))
    by_name = {name_pattern(props(g).get("LogGroupName")): n for n, g in groups.items()}
    functions = list(resources(cfn, "AWS::Lambda::Function"))
    for name, fn in functions:
        p = props(fn)
        configured = (p.get("LoggingConfig") or {}).get("LogGroup")
        group = target(cfn, configured) if configured is not None else None
        if group is None:
            pattern = name_pattern(configured) if configured is not None else None
            fname = name_pattern(p.get("FunctionName")) or "${" + name + "}"
            group = by_name.get(pattern) if pattern else by_name.get("/aws/lambda/" + fname)
        if group is None or group not in groups:
            res.failures.append(
                f"{name}: no log group in the template (LoggingConfig.LogGroup, or /aws/lambda/<FunctionName>): "
                "Lambda makes one that keeps logs forever"
            )
            continue
        days = props(groups[group]).get("RetentionInDays")
        if days is None:
            res.failures.append(f"{name}: its log group {group} has no RetentionInDays: logs are kept forever")
        else:
            res.details.append(f"{name}: {group}, {days} days")
    res.summary = f"{len(functions)} function(s), each with a log group that expires" if not res.failures else f"{len(functions)} function(s)"
    return res


# ----------------------------------------------------------------- parameters


def _no_echo(param: dict) -> bool:
    return param.get("NoEcho") in (True, "true", "True")


def check_parameters(cfn: dict) -> Result:
    res = Result("credential parameters")
    params = cfn.get("Parameters", {})
    for name, why in CREDENTIAL_PARAMETERS.items():
        if name not in params:
            res.failures.append(f"parameter {name} is gone: update CREDENTIAL_PARAMETERS in xtask/template_check.py")
        elif not _no_echo(params[name]):
            res.failures.append(f"parameter {name} has no NoEcho: true ({why}); CloudFormation would show it to anyone who can describe the stack")
        else:
            res.details.append(f"{name}: NoEcho")
    for name, p in params.items():
        if CREDENTIAL_NAME.search(name) and name not in CREDENTIAL_PARAMETERS and not _no_echo(p):
            res.failures.append(f"parameter {name} is named like a credential but has no NoEcho: true")
    res.summary = f"{len(params)} parameter(s), credentials NoEcho"
    return res


# ----------------------------------------------------------------- schedules


def check_schedules(cfn: dict) -> Result:
    res = Result("schedules")
    targets = []
    for name, s in resources(cfn, "AWS::Scheduler::Schedule"):
        targets.append((name, props(s).get("Target") or {}))
    for name, rule in resources(cfn, "AWS::Events::Rule"):
        if props(rule).get("ScheduleExpression") is not None:
            targets += [(f"{name} target {t.get('Id')}", t) for t in as_list(props(rule).get("Targets"))]
    for name, t in targets:
        value = t.get("Input")
        if value is None or value == "":
            res.failures.append(f"{name}: no Input: the function gets whatever the scheduler sends by default, not an event its handler is written for")
            continue
        if isinstance(value, str):
            try:
                json.loads(value)
            except ValueError as e:
                res.failures.append(f"{name}: Input {value!r} is not JSON ({e})")
                continue
        res.details.append(f"{name}: Input {value}")
    res.summary = f"{len(targets)} schedule target(s), each with an explicit Input" if not res.failures else f"{len(targets)} schedule target(s)"
    return res


# ----------------------------------------------------------------- role scope


def _statements(policy_document: Any) -> list[dict]:
    return [s for s in as_list((policy_document or {}).get("Statement")) if isinstance(s, dict)]


def check_role_scope(cfn: dict) -> Result:
    res = Result("role scope")
    roles = 0
    documents: list[tuple[str, dict]] = []
    for name, role in resources(cfn, "AWS::IAM::Role"):
        roles += 1
        p = props(role)
        for arn in as_list(p.get("ManagedPolicyArns")):
            text = name_pattern(arn) or json.dumps(arn)
            policy = text.split(":policy/", 1)[-1]
            if policy not in ALLOWED_MANAGED_POLICIES:
                res.failures.append(
                    f"{name}: attaches the managed policy {policy}, beyond what its statements grant"
                    + (" (SAM's SQS event source attaches it: it may receive and delete on every queue in the account;"
                       " declare an AWS::Lambda::EventSourceMapping and grant the queue's actions instead)"
                       if "SQSQueueExecutionRole" in policy else "")
                )
        for pol in as_list(p.get("Policies")):
            documents.append((f"{name} {pol.get('PolicyName')}", pol.get("PolicyDocument")))
    for name, pol in resources(cfn, "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
        documents.append((name, props(pol).get("PolicyDocument")))
    for where, doc in documents:
        for s in _statements(doc):
            if s.get("Effect") != "Allow" or "*" not in as_list(s.get("Resource")):
                continue
            broad = [a for a in as_list(s.get("Action")) if isinstance(a, str) and (a == "*" or a.split(":")[0].lower() in DATA_SERVICES)]
            if broad:
                res.failures.append(f"{where}: allows {', '.join(broad)} on every resource (\"*\")")
    res.summary = f"{roles} role(s): no managed policy beyond {', '.join(sorted(ALLOWED_MANAGED_POLICIES))}, no data action on \"*\""
    return res


# ----------------------------------------------------------------- running

CHECKS: list[Callable[[dict], Result]] = [
    check_graph,
    check_sqs_consumers,
    check_alarm_topics,
    check_routes,
    check_log_groups,
    check_parameters,
    check_schedules,
    check_role_scope,
]


def run_checks(cfn: dict) -> list[Result]:
    return [check(cfn) for check in CHECKS]


def failures(results: list[Result]) -> list[str]:
    return [f"{r.name}: {f}" for r in results for f in r.failures]


def main(argv: list[str]) -> int:
    verbose = "-q" not in argv
    paths = [a for a in argv if not a.startswith("-")]
    path = Path(paths[0]) if paths else DEFAULT_TEMPLATE
    try:
        cfn = to_cloudformation(load_sam(path))
    except TemplateError as e:
        print(f"template check: {path}: {e}")
        return 1
    try:
        shown = path.resolve().relative_to(Path.cwd())
    except ValueError:
        shown = path
    print(f"template check: {shown} after the SAM transform: {len(cfn.get('Resources', {}))} CloudFormation resources")
    results = run_checks(cfn)
    for r in results:
        if r.failures:
            print(f"FAIL {r.name}: {r.summary}")
            for f in r.failures:
                print("       " + f.replace("\n", "\n       "))
        else:
            print(f"ok   {r.name}: {r.summary}")
            if verbose:
                for d in sorted(r.details):
                    print(f"       {d}")
    bad = [r for r in results if r.failures]
    if bad:
        print(f"template check: {len(failures(results))} problem(s) in {len(bad)} of {len(results)} checks")
        return 1
    print(f"template check: all {len(results)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
