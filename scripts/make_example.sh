#!/usr/bin/env bash
# Copies the built-in example study (the miniature study of ../shared/fixtures)
# into public/example and writes its manifest. Run once when the fixtures
# change; the copy is committed so the page works without ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
src=../shared/fixtures
dst=public/example
rm -rf "$dst"; mkdir -p "$dst"
(cd "$src" && find runs logs eval_tokens.safetensors heldout_tokens.safetensors \
   heldout_tokens_simple.safetensors heldout_tokens_complex.safetensors -type f | sort) > /tmp/example_files
while read -r f; do mkdir -p "$dst/$(dirname "$f")"; cp "$src/$f" "$dst/$f"; chmod 644 "$dst/$f"; done < /tmp/example_files
# Each file with its size: the page's progress bar counts bytes of the whole study.
python3 - "$dst" /tmp/example_files <<'PY'
import json, os, sys
paths = [l.strip() for l in open(sys.argv[2]) if l.strip()]
files = [{"path": p, "bytes": os.path.getsize(os.path.join(sys.argv[1], p))} for p in paths]
open(sys.argv[1] + "/manifest.json", "w").write(json.dumps(files, indent=1) + "\n")
PY
echo "example: $(wc -l < /tmp/example_files) files, $(du -sh "$dst" | cut -f1)"
