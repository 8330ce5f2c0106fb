"""Cross-checks the local Bedrock mock's event-stream framing with boto3, an independent parser.

Usage: bedrock_boto3_check.py ENDPOINT_URL

Calls ConverseStream on the endpoint and prints each event of the stream as one JSON line
(`{"messageStart": {...}}`, `{"contentBlockDelta": {...}}`, ...). An exception frame ends the
output with `{"error": {"code": ..., "message": ...}}`. Exits non-zero only when boto3 itself
cannot talk to the endpoint or parse its frames.
"""

import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import EventStreamError


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=sys.argv[1],
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    response = client.converse_stream(
        modelId="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        messages=[{"role": "user", "content": [{"text": "What is the weather in Paris?"}]}],
        system=[{"text": "You are Athena."}],
        inferenceConfig={"maxTokens": 256},
    )
    try:
        for event in response["stream"]:
            print(json.dumps(event, sort_keys=True), flush=True)
    except EventStreamError as err:
        error = err.response.get("Error", {})
        print(json.dumps({"error": {"code": error.get("Code"), "message": error.get("Message")}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
