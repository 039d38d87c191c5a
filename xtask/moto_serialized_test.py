"""The emulator the AWS adapters are tested against keeps DynamoDB's promise.

Twenty clients race a conditional `PutItem` (`attribute_not_exists(id)`) on
one key, round after round, against `xtask/moto_serialized.py`: exactly one
must win each round, as on DynamoDB. The same race is run against plain
`moto_server` and its doubled wins are printed, to show what the wrapper is
for (that count depends on thread timing, so it is reported, not asserted).

Usage: python moto_serialized_test.py   (from the venv that has moto)
"""

import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
ROUNDS = 60
RACERS = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        cmd + ["-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{cmd} exited with {proc.returncode} before it was ready")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{cmd} did not answer on port {port}")


def doubled_wins(port: int) -> int:
    """Rounds in which more than one racer's conditional put succeeded."""
    client = boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(max_pool_connections=RACERS * 2, retries={"max_attempts": 1}),
    )
    table = f"race-{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    doubled = 0
    for round_ in range(ROUNDS):
        key = f"lease-{round_}"
        wins = []
        barrier = threading.Barrier(RACERS)

        def race(i: int) -> None:
            barrier.wait()
            try:
                client.put_item(
                    TableName=table,
                    Item={"id": {"S": key}, "racer": {"N": str(i)}},
                    ConditionExpression="attribute_not_exists(id)",
                )
                wins.append(i)
            except client.exceptions.ConditionalCheckFailedException:
                pass

        threads = [threading.Thread(target=race, args=(i,)) for i in range(RACERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if not wins:
            raise AssertionError(f"round {round_}: no racer won the put")
        stored = client.get_item(TableName=table, Key={"id": {"S": key}})["Item"]
        if len(wins) > 1:
            doubled += 1
        elif stored["racer"]["N"] != str(wins[0]):
            raise AssertionError(f"round {round_}: the winner's item was overwritten")
    return doubled


def main() -> int:
    # A tiny switch interval makes the interpreter hand the GIL between
    # moto's request threads thousands of times more often than it does by
    # default, so a window between check and store is hit in a few rounds
    # rather than once in a long, loaded test run.
    prelude = f"import sys; sys.setswitchinterval(1e-6); sys.path.insert(0, {HERE!r}); "
    runs = {
        "plain moto_server": [
            sys.executable, "-c", prelude + "from moto import server; server.main(sys.argv[1:])",
        ],
        "moto_serialized.py": [
            sys.executable, "-c", prelude + "import moto_serialized; moto_serialized.serve(sys.argv[1:])",
        ],
    }
    results = {}
    for name, cmd in runs.items():
        port = free_port()
        proc = start(cmd, port)
        try:
            results[name] = doubled_wins(port)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        print(f"{name}: {results[name]} of {ROUNDS} rounds had more than one winner")
    if results["moto_serialized.py"] != 0:
        print("FAIL: the serialized emulator let two conditional puts win", file=sys.stderr)
        return 1
    print("ok: one conditional put wins each round on the serialized emulator")
    return 0


if __name__ == "__main__":
    sys.exit(main())
