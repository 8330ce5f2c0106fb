"""Cross-checks Athena's S3 presigned POST form with botocore, an independent SigV4 signer.

Usage: s3_post_check.py ACCESS_KEY SECRET_KEY SESSION_TOKEN REGION < form.json

Reads the upload form Athena issued (`{"url", "fields"}`) and checks, with botocore's own
`SigV4Auth` (what `generate_presigned_post` signs with): the credential scope, the signature of
the policy, and that the policy's conditions pin every form field (S3 refuses a form field the
policy does not name). Prints one JSON line `{"ok": true}` or `{"ok": false, "problems": [...]}`.
"""

import base64
import json
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    access_key, secret_key, token, region = sys.argv[1:]
    form = json.load(sys.stdin)
    fields = form["fields"]
    auth = SigV4Auth(Credentials(access_key, secret_key, token or None), "s3", region)
    request = AWSRequest(method="POST", url=form["url"])
    request.context["timestamp"] = fields["x-amz-date"]
    problems = []
    if fields.get("x-amz-credential") != auth.scope(request):
        problems.append(f"credential {fields.get('x-amz-credential')} != {auth.scope(request)}")
    expected = auth.signature(fields["policy"], request)
    if fields.get("x-amz-signature") != expected:
        problems.append(f"signature {fields.get('x-amz-signature')} != {expected}")
    policy = json.loads(base64.b64decode(fields["policy"]))
    pinned = {}
    for condition in policy["conditions"]:
        if isinstance(condition, dict):
            pinned.update(condition)
    for name, value in fields.items():
        if name in ("policy", "x-amz-signature"):
            continue
        if pinned.get(name) != value:
            problems.append(f"field {name} is not pinned by the policy")
    if "expiration" not in policy:
        problems.append("the policy has no expiration")
    print(json.dumps({"ok": not problems, "problems": problems}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
