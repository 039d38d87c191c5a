"""The peer of the hub's `webhook-square`: the same job written the way the
Python Lambda world writes it, with Powertools for AWS Lambda (Python) 3.

Per invocation (API Gateway HTTP API v2 / Function URL payload):
1. Square's signature on the raw body: base64(HMAC-SHA256(key, notification
   URL + body)) against `x-square-hmacsha256-signature`, compared in
   constant time; the key is a Secrets Manager secret read through
   Powertools' parameters utility and cached for 300 s (the hub's
   HUB_SECRETS_TTL_SECONDS default).
2. Idempotency on the event id: Powertools' idempotency utility with its
   DynamoDB persistence layer (a conditional PutItem claims the key; the
   result is saved when the function returns; a redelivery gets the saved
   result back from the failed conditional write).
3. The event on SQS (one SendMessage), then 200 with a small JSON body.

Started by `cargo xtask bench` as `python -m awslambdaric handler.handler`
against its loopback Lambda Runtime API, with boto3 pointed at its own moto
(AWS_ENDPOINT_URL). Environment: PEER_IDEMPOTENCY_TABLE, PEER_QUEUE_URL,
PEER_SIGNING_KEY_SECRET, PEER_NOTIFICATION_URL.
"""

import base64
import hashlib
import hmac
import json
import os
import time

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

logger = Logger(service="webhook-square-peer")

QUEUE_URL = os.environ["PEER_QUEUE_URL"]
SECRET = os.environ["PEER_SIGNING_KEY_SECRET"]
NOTIFICATION_URL = os.environ["PEER_NOTIFICATION_URL"].encode()

sqs = boto3.client("sqs")
persistence = DynamoDBPersistenceLayer(table_name=os.environ["PEER_IDEMPOTENCY_TABLE"])
config = IdempotencyConfig(
    event_key_jmespath="event_id",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=7 * 24 * 3600,
)


def _answer(status, body):
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }


def _verified(headers, raw):
    signature = headers.get("x-square-hmacsha256-signature", "")
    key = parameters.get_secret(SECRET, max_age=300)
    expected = base64.b64encode(
        hmac.new(key.encode(), NOTIFICATION_URL + raw, hashlib.sha256).digest()
    ).decode()
    return hmac.compare_digest(expected, signature)


@idempotent_function(data_keyword_argument="webhook", config=config, persistence_store=persistence)
def accept(webhook):
    """Enqueues one event; run once per event id."""
    message = {
        "provider": "square",
        "event_id": webhook["event_id"],
        "merchant_id": webhook["merchant_id"],
        "type": webhook["type"],
        "resource_id": (webhook.get("data") or {}).get("id"),
        "occurred_at": webhook.get("created_at"),
        "received_at": time.time(),
        "event": webhook,
    }
    sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=json.dumps(message))
    return {"accepted": 1}


@logger.inject_lambda_context
def handler(event, context):
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    if not _verified(headers, raw):
        logger.warning("webhook refused", extra={"status": 401})
        return _answer(401, {"error": "signature mismatch"})
    try:
        webhook = json.loads(raw)
    except ValueError:
        return _answer(400, {"error": "body is not JSON"})
    if not isinstance(webhook, dict) or not webhook.get("event_id"):
        return _answer(400, {"error": "no event_id"})
    config.register_lambda_context(context)
    result = accept(webhook=webhook)
    logger.info("webhook accepted", extra={"event_id": webhook["event_id"], **result})
    return _answer(200, result)
