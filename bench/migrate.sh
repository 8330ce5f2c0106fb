#!/usr/bin/env bash
# athena-migrate's memory: builds a Prisma-shaped SQLite database (tests/fixtures/prisma/sqlite-001.sql)
# of CONVERSATIONS x MESSAGES_EACH messages (default 2,000 x 50 = 100,000 messages of ~400 bytes)
# and analytics events (a conversation_created per conversation, an api_call per assistant
# message; spread over the last 80 days, so within the event retention),
# migrates it into a fresh embedded store and prints the peak RSS and wall time
# (/usr/bin/time -v), then a rerun (everything skipped). Usage:
#   bench/migrate.sh [CONVERSATIONS] [MESSAGES_EACH] [BINARY]
# BINARY defaults to target/debug/athena-migrate (build it with `cargo build -p athena-migrate`).
set -euo pipefail
cd "$(dirname "$0")/.."
conversations="${1:-2000}"
each="${2:-50}"
binary="${3:-target/debug/athena-migrate}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
python3 - "$dir/dev.db" "$conversations" "$each" <<'PY'
import sqlite3, sys
path, conversations, each = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect(path)
db.executescript(open("tests/fixtures/prisma/sqlite-001.sql").read())
import time
t0 = int(time.time() * 1000) - 80 * 86_400_000
text = ("The press line 2 maintenance window moves to the night shift; " * 7)[:400]
for c in range(conversations):
    cid = f"cm{c:010d}bench"
    db.execute(
        'INSERT INTO conversations (id, title, "isPinned", "isShared", model, "solutionType", "createdAt", "updatedAt") '
        "VALUES (?, ?, ?, 0, 'us.anthropic.claude-sonnet-4-5-20250929-v1:0', 'manufacturing', ?, ?)",
        (cid, f"Conversation {c}", int(c % 50 == 0), t0 + c * 1000, t0 + c * 1000 + each * 10),
    )
    at = t0 + c * (80 * 86_400_000 // max(conversations, 1))
    events = [(f"ce{c:010d}", "conversation_created", None, at)]
    events += [(f"ae{c:08d}{m:05d}", "api_call", '{"inputTokens":120,"outputTokens":300,"latencyMs":900}', at + m)
               for m in range(1, each, 2)]
    db.executemany(
        'INSERT INTO analytics_events (id, "eventType", "solutionType", "conversationId", model, metadata, timestamp) '
        "VALUES (?, ?, 'manufacturing', ?, 'us.anthropic.claude-sonnet-4-5-20250929-v1:0', ?, ?)",
        [(eid, kind, cid, meta, t) for (eid, kind, meta, t) in events],
    )
    db.executemany(
        'INSERT INTO messages (id, "conversationId", role, content, "createdAt") VALUES (?, ?, ?, ?, ?)',
        [(f"cmm{c:08d}{m:05d}", cid, "user" if m % 2 == 0 else "assistant", text, t0 + c * 1000 + m * 10) for m in range(each)],
    )
db.commit()
PY
echo "source: $((conversations * each)) messages in $conversations conversations, $(du -h "$dir/dev.db" | cut -f1) (with events)"
for run in first rerun; do
  ATHENA_DB="$dir/athena.db" /usr/bin/time -v "$binary" --from "sqlite:$dir/dev.db" >"$dir/report.txt" 2>"$dir/time.txt"
  echo "== $run"
  head -3 "$dir/report.txt"
  grep -E "Maximum resident set size|Elapsed \(wall clock\)" "$dir/time.txt"
done
