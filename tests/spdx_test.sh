#!/bin/sh
# SPDX-License-Identifier: BSL-1.0
# cmake/add-spdx.sh on a scratch tree: adds the line where it is missing
# (after a #! line in scripts), leaves licensed, generated and third-party
# files alone, keeps file modes, and changes nothing when run again.
set -eu
script=$1
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$root/include/concur" "$root/lib/core" "$root/tests/docs" "$root/cmake" \
  "$root/build" "$root/tests/compat/node_modules/x" "$root/examples"
printf '#pragma once\nint a();\n' > "$root/include/concur/a.hpp"
printf '// SPDX-License-Identifier: MIT\nint b;\n' > "$root/lib/core/b.cpp"
printf '' > "$root/examples/empty.cpp"
printf 'add_test(x)\n' > "$root/tests/docs/CMakeLists.txt"
printf '#!/bin/sh\necho hi\n' > "$root/cmake/run.sh"
chmod 755 "$root/cmake/run.sh"
printf 'set(x 1)\n' > "$root/cmake/dep.cmake"
printf 'int generated;\n' > "$root/build/gen.cpp"
printf 'int vendored;\n' > "$root/tests/compat/node_modules/x/v.cpp"

if "$script" --check "$root" > "$root.out" 2>&1; then fail "--check passed on an unlicensed tree"; fi
grep -q '^include/concur/a.hpp$' "$root.out" || fail "--check did not list a.hpp: $(cat "$root.out")"
rm -f "$root.out"

"$script" "$root" > /dev/null
first=$(cd "$root" && find . -type f -exec md5sum {} + | sort)
"$script" "$root" | grep -q "to 0 file" || fail "a second run changed files"
second=$(cd "$root" && find . -type f -exec md5sum {} + | sort)
[ "$first" = "$second" ] || fail "a second run changed the tree"
"$script" --check "$root" > /dev/null || fail "--check fails after adding"

line1() { head -n 1 "$root/$1"; }
[ "$(line1 include/concur/a.hpp)" = "// SPDX-License-Identifier: BSL-1.0" ] || fail "a.hpp: $(line1 include/concur/a.hpp)"
[ "$(sed -n 2p "$root/include/concur/a.hpp")" = "#pragma once" ] || fail "a.hpp lost its first line"
[ "$(line1 lib/core/b.cpp)" = "// SPDX-License-Identifier: MIT" ] || fail "b.cpp's own license was changed"
[ "$(cat "$root/examples/empty.cpp")" = "// SPDX-License-Identifier: BSL-1.0" ] || fail "empty.cpp"
[ "$(line1 tests/docs/CMakeLists.txt)" = "# SPDX-License-Identifier: BSL-1.0" ] || fail "CMakeLists.txt"
[ "$(line1 cmake/dep.cmake)" = "# SPDX-License-Identifier: BSL-1.0" ] || fail "dep.cmake"
[ "$(line1 cmake/run.sh)" = "#!/bin/sh" ] || fail "run.sh lost its #! line"
[ "$(sed -n 2p "$root/cmake/run.sh")" = "# SPDX-License-Identifier: BSL-1.0" ] || fail "run.sh"
[ -x "$root/cmake/run.sh" ] || fail "run.sh is no longer executable"
[ "$(cat "$root/build/gen.cpp")" = "int generated;" ] || fail "a build tree was stamped"
[ "$(cat "$root/tests/compat/node_modules/x/v.cpp")" = "int vendored;" ] || fail "node_modules was stamped"
echo "add-spdx.sh: ok"
