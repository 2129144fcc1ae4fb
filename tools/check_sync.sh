#!/usr/bin/env bash
# Fails when `nbdev_export` or `nbdev_clean` would change anything: the library must be in sync
# with the notebooks, and notebooks must be clean. Compares the working tree before and after, so it
# works on a fresh clone and on a tree with uncommitted notebook edits alike.
set -euo pipefail
BIN=${1:-.venv/bin}
snapshot() { { git status --porcelain --untracked-files=all -- freetickets_nb nbs; git diff HEAD -- freetickets_nb nbs; git ls-files --others --exclude-standard -- freetickets_nb nbs | xargs -r cat; } | sha256sum; }
before=$(snapshot)
"$BIN/nbdev_export"
if [ "$before" != "$(snapshot)" ]; then
  git status --short -- freetickets_nb nbs
  echo "ERROR: notebooks and library are not in sync: run nbdev_export and commit the regenerated files." >&2
  exit 1
fi
"$BIN/nbdev_clean"
if [ "$before" != "$(snapshot)" ]; then
  git status --short -- nbs
  echo "ERROR: notebooks are not clean: run nbdev_clean and commit the notebooks." >&2
  exit 1
fi
big=$(find nbs -name '*.ipynb' -size +1000k)
if [ -n "$big" ]; then echo "ERROR: notebooks over 1 MB: $big (clear large outputs)" >&2; exit 1; fi
echo "sync: notebooks clean, library in sync with notebooks"
