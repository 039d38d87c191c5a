#!/usr/bin/env python3
"""Each check of template_check.py catches the defect it exists for: the real
infra/template.yaml passes, and a copy with one defect put back fails that
check, and only that one, with a message naming the defect.

Run: `.venv-tools/bin/python xtask/template_check_test.py` (`cargo xtask infra`
does).
"""

from __future__ import annotations

import copy
import sys
import unittest
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import template_check as tc  # noqa: E402

SAM = tc.load_sam(tc.DEFAULT_TEMPLATE)


def res(sam: dict, name: str) -> dict:
    return sam["Resources"][name]


def props(sam: dict, name: str) -> dict:
    return sam["Resources"][name]["Properties"]


class TemplateCheckTest(unittest.TestCase):
    def results(self, mutate: Callable[[dict], None] | None = None) -> list[tc.Result]:
        sam = copy.deepcopy(SAM)
        if mutate:
            mutate(sam)
        return tc.run_checks(tc.to_cloudformation(sam))

    def assert_fails(self, mutate: Callable[[dict], None], check: str, *fragments: str) -> None:
        results = self.results(mutate)
        failed = {r.name for r in results if r.failures}
        self.assertEqual(failed, {check}, f"expected only {check!r} to fail:\n" + "\n".join(tc.failures(results)))
        messages = next(r for r in results if r.name == check).failures
        self.assertTrue(
            any(all(f in m for f in fragments) for m in messages),
            f"no {check!r} failure mentions {fragments}:\n" + "\n".join(messages),
        )

    # ------------------------------------------------------------ the template

    def test_the_template_passes_every_check(self) -> None:
        results = self.results()
        self.assertEqual(tc.failures(results), [])
        self.assertEqual(len(results), len(tc.CHECKS))

    # ------------------------------------------------------------ dependency graph

    def test_the_api_url_in_the_connect_function_is_a_cycle(self) -> None:
        def mutate(sam: dict) -> None:
            props(sam, "ConnectFunction")["Environment"]["Variables"]["HUB_PUBLIC_URL"] = {
                "Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
            }

        self.assert_fails(
            mutate,
            "dependency graph",
            "dependency cycle: ConnectFunction -> HttpApi -> ConnectFunction",
            "HUB_PUBLIC_URL",
            "x-amazon-apigateway-integration.uri",
        )

    def test_a_reference_to_nothing_is_found(self) -> None:
        def mutate(sam: dict) -> None:
            props(sam, "IntakeFunction").setdefault("Environment", {"Variables": {}})["Variables"]["HUB_X"] = {
                "Ref": "NoSuchQueue"
            }

        self.assert_fails(mutate, "dependency graph", "IntakeFunction", "'NoSuchQueue'")

    # ------------------------------------------------------------ SQS consumers

    def test_a_visibility_timeout_under_six_function_timeouts_fails(self) -> None:
        self.assert_fails(
            lambda sam: props(sam, "PushQueue").update(VisibilityTimeout=900),
            "SQS consumers",
            "PushQueue -> PushFunction",
            "VisibilityTimeout 900 < 6 x function Timeout 900 + MaximumBatchingWindowInSeconds 5 = 5405",
        )

    def test_a_longer_function_timeout_needs_a_longer_visibility(self) -> None:
        self.assert_fails(
            lambda sam: props(sam, "ProcessEventsFunction").update(Timeout=300),
            "SQS consumers",
            "WorkQueue -> ProcessEventsFunction",
            "VisibilityTimeout 720 < 6 x function Timeout 300",
        )

    def test_an_event_source_without_maximum_concurrency_fails(self) -> None:
        self.assert_fails(
            lambda sam: props(sam, "ProcessEventsWork").pop("ScalingConfig"),
            "SQS consumers",
            "WorkQueue -> ProcessEventsFunction (ProcessEventsWork): no ScalingConfig.MaximumConcurrency",
        )

    def test_a_maximum_concurrency_under_two_fails(self) -> None:
        self.assert_fails(
            lambda sam: props(sam, "PushPushes").update(ScalingConfig={"MaximumConcurrency": 1}),
            "SQS consumers",
            "PushPushes",
            "is not 2..1000",
        )

    # ------------------------------------------------------------ alarm topics

    def test_the_alarm_topic_on_the_aws_managed_key_fails(self) -> None:
        self.assert_fails(
            lambda sam: props(sam, "AlarmTopic").update(KmsMasterKeyId="alias/aws/sns"),
            "alarm topics",
            "AlarmTopic",
            "AWS managed key alias/aws/sns",
        )

    def test_a_key_policy_without_cloudwatch_fails(self) -> None:
        def mutate(sam: dict) -> None:
            policy = props(sam, "AlarmTopicKey")["KeyPolicy"]
            policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != "CloudWatchPublishesAlarms"]

        self.assert_fails(
            mutate,
            "alarm topics",
            "AlarmTopicKey",
            "does not let cloudwatch.amazonaws.com kms:Decrypt or kms:GenerateDataKey",
        )

    def test_a_topic_policy_without_cloudwatch_fails(self) -> None:
        def mutate(sam: dict) -> None:
            for s in props(sam, "AlarmTopicPolicy")["PolicyDocument"]["Statement"]:
                s["Principal"] = {"Service": "events.amazonaws.com"}

        self.assert_fails(mutate, "alarm topics", "AlarmTopicPolicy", "sns:Publish")

    # ------------------------------------------------------------ API routes

    def test_the_iam_route_turned_public_fails(self) -> None:
        self.assert_fails(
            lambda sam: props(sam, "IntakeFunction")["Events"]["Submit"]["Properties"].update(Auth={"Authorizer": "NONE"}),
            "API routes",
            "POST /intake/{tenant}/{kind} is NONE, expected AWS_IAM",
        )

    def test_an_unlisted_public_route_fails(self) -> None:
        def mutate(sam: dict) -> None:
            props(sam, "ConnectFunction")["Events"]["Admin"] = {
                "Type": "HttpApi",
                "Properties": {
                    "ApiId": {"Ref": "HttpApi"},
                    "Method": "GET",
                    "Path": "/connect/{provider}/tokens",
                    "Auth": {"Authorizer": "NONE"},
                },
            }

        self.assert_fails(mutate, "API routes", "GET /connect/{provider}/tokens is NONE, expected AWS_IAM")

    def test_a_new_route_is_iam_authorized_by_default(self) -> None:
        def mutate(sam: dict) -> None:
            props(sam, "ConnectFunction")["Events"]["Admin"] = {
                "Type": "HttpApi",
                "Properties": {"ApiId": {"Ref": "HttpApi"}, "Method": "GET", "Path": "/connect/{provider}/tokens"},
            }

        self.assertEqual(tc.failures(self.results(mutate)), [])

    def test_a_webhook_route_behind_iam_fails(self) -> None:
        self.assert_fails(
            lambda sam: props(sam, "WebhookToastFunction")["Events"]["Delivery"]["Properties"].pop("Auth"),
            "API routes",
            "POST /webhooks/toast is AWS_IAM, but it is a public route",
        )

    # ------------------------------------------------------------ log groups

    def test_a_function_without_its_log_group_fails(self) -> None:
        def mutate(sam: dict) -> None:
            del sam["Resources"]["WebhookToastLogGroup"]
            props(sam, "WebhookToastFunction").pop("LoggingConfig")

        self.assert_fails(mutate, "log groups", "WebhookToastFunction: no log group")

    def test_a_log_group_found_by_name_counts(self) -> None:
        # No LoggingConfig: Lambda writes to /aws/lambda/<FunctionName>.
        self.assertEqual(
            tc.failures(self.results(lambda sam: props(sam, "PushFunction").pop("LoggingConfig"))), []
        )

    def test_a_log_group_kept_forever_fails(self) -> None:
        self.assert_fails(
            lambda sam: props(sam, "PushLogGroup").pop("RetentionInDays"),
            "log groups",
            "PushFunction: its log group PushLogGroup has no RetentionInDays",
        )

    # ------------------------------------------------------------ parameters

    def test_the_alert_webhook_url_echoed_fails(self) -> None:
        self.assert_fails(
            lambda sam: sam["Parameters"]["AlertWebhookUrl"].pop("NoEcho"),
            "credential parameters",
            "AlertWebhookUrl has no NoEcho",
        )

    # ------------------------------------------------------------ schedules

    def test_a_schedule_without_input_fails(self) -> None:
        self.assert_fails(
            lambda sam: props(sam, "HealthMonitorFunction")["Events"]["Schedule"]["Properties"].pop("Input"),
            "schedules",
            "HealthMonitorFunctionSchedule: no Input",
        )

    def test_a_schedule_input_that_is_not_json_fails(self) -> None:
        self.assert_fails(
            lambda sam: props(sam, "PullToastFunction")["Events"]["Schedule"]["Properties"].update(Input="schedule"),
            "schedules",
            "PullToastFunctionSchedule: Input 'schedule' is not JSON",
        )

    # ------------------------------------------------------------ role scope

    def test_a_sam_sqs_event_grants_every_queue(self) -> None:
        def mutate(sam: dict) -> None:
            esm = sam["Resources"].pop("ProcessEventsWork")["Properties"]
            props(sam, "ProcessEventsFunction")["Events"] = {
                "Work": {
                    "Type": "SQS",
                    "Properties": {
                        "Queue": esm["EventSourceArn"],
                        "BatchSize": esm["BatchSize"],
                        "FunctionResponseTypes": esm["FunctionResponseTypes"],
                        "ScalingConfig": esm["ScalingConfig"],
                    },
                }
            }

        self.assert_fails(
            mutate, "role scope", "ProcessEventsFunctionRole", "AWSLambdaSQSQueueExecutionRole", "every queue"
        )

    def test_a_data_action_on_every_resource_fails(self) -> None:
        def mutate(sam: dict) -> None:
            props(sam, "IntakeFunction")["Policies"].append(
                {"Statement": [{"Effect": "Allow", "Action": "dynamodb:Scan", "Resource": "*"}]}
            )

        self.assert_fails(mutate, "role scope", "IntakeFunctionRole", 'allows dynamodb:Scan on every resource ("*")')


if __name__ == "__main__":
    unittest.main(verbosity=2)
