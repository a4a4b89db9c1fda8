#!/bin/sh
# SPDX-License-Identifier: BSL-1.0
# Adds the SPDX license line (BSL-1.0, see LICENSE) to every source file that
# lacks it, so each file says its license when copied out of the tree:
#   // SPDX-License-Identifier: BSL-1.0     first line of C++ files under
#                                           include/ lib/ demos/ tests/ examples/
#   # SPDX-License-Identifier: BSL-1.0      CMakeLists.txt, *.cmake, *.cmake.in
#                                           and *.sh anywhere (after a #! line)
# Idempotent: a file whose first line (second after #!) is an SPDX line is
# left alone, so running it again changes nothing.
#
#   cmake/add-spdx.sh [ROOT]      add the lines (ROOT: the source tree, default
#                                 the one holding this script)
#   cmake/add-spdx.sh --check [ROOT]
#                                 list the files that lack one; exit 1 if any
set -eu

check=0
if [ "${1:-}" = "--check" ]; then
  check=1
  shift
fi
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
[ -d "$root" ] || { echo "add-spdx.sh: no such directory: $root" >&2; exit 2; }
cd "$root"

id="SPDX-License-Identifier: BSL-1.0"
missing=0

# add_line FILE COMMENT-MARKER
add_line() {
  file=$1
  line="$2 $id"
  # Already licensed: an SPDX line first, or second after a #! line.
  if head -n 2 "$file" | grep -q '^\(//\|#\) SPDX-License-Identifier:'; then
    return 0
  fi
  missing=$((missing + 1))
  if [ "$check" = 1 ]; then
    echo "$file"
    return 0
  fi
  tmp="$file.spdx-tmp"
  if head -n 1 "$file" | grep -q '^#!'; then
    { head -n 1 "$file"; echo "$line"; tail -n +2 "$file"; } > "$tmp"
  else
    { echo "$line"; cat "$file"; } > "$tmp"
  fi
  # Keep the file's mode (executable scripts stay executable).
  chmod "$(stat -c %a "$file")" "$tmp"
  mv "$tmp" "$file"
}

# find DIR, skipping generated and third-party trees, printing files that
# match the name tests given after DIR.
find_sources() {
  dir=$1
  shift
  find "$dir" \( -name .git -o -name node_modules -o -name build -o -name 'build-*' \
    -o -name _deps \) -prune -o -type f \( "$@" \) -print | sed 's|^\./||' | sort
}

list=$(mktemp)
trap 'rm -f "$list"' EXIT
for dir in include lib demos tests examples; do
  [ -d "$dir" ] || continue
  find_sources "$dir" -name '*.hpp' -o -name '*.cpp' -o -name '*.h' -o -name '*.cc' \
    -o -name '*.ipp' > "$list"
  while IFS= read -r f; do add_line "$f" "//"; done < "$list"
done
find_sources . -name CMakeLists.txt -o -name '*.cmake' -o -name '*.cmake.in' -o -name '*.sh' > "$list"
while IFS= read -r f; do add_line "$f" "#"; done < "$list"

if [ "$check" = 1 ]; then
  [ "$missing" = 0 ] || { echo "add-spdx.sh: $missing file(s) lack an SPDX line" >&2; exit 1; }
else
  echo "add-spdx.sh: added the SPDX line to $missing file(s)"
fi
