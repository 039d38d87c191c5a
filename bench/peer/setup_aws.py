"""Makes the peer's resources on its emulator and prints its settings as
KEY=VALUE lines: the Powertools idempotency table (partition key `id`, as
DynamoDBPersistenceLayer expects), the queue, and the Square signing key
secret. Run by `cargo xtask bench` with the peer's venv (boto3) and
AWS_ENDPOINT_URL set; the key is read from standard input."""

import sys

import boto3

prefix = sys.argv[1] if len(sys.argv) > 1 else "peer"
key = sys.stdin.read()

ddb = boto3.client("dynamodb")
table = f"{prefix}-idempotency"
ddb.create_table(
    TableName=table,
    KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    BillingMode="PAY_PER_REQUEST",
)
ddb.update_time_to_live(
    TableName=table,
    TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
)
queue = boto3.client("sqs").create_queue(QueueName=f"{prefix}-work")["QueueUrl"]
secret = f"{prefix}/webhooks/square"
boto3.client("secretsmanager").create_secret(Name=secret, SecretString=key)

print(f"PEER_IDEMPOTENCY_TABLE={table}")
print(f"PEER_QUEUE_URL={queue}")
print(f"PEER_SIGNING_KEY_SECRET={secret}")
