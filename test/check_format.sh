#!/bin/sh
# TAP: every C source and header matches the committed .clang-format.
cd "${srcdir:-$(dirname "$0")/..}" || exit 1
if ! command -v clang-format >/dev/null 2>&1; then
	echo "1..0 # SKIP clang-format is not installed"
	exit 0
fi
bad=""
for f in src/*.c include/*.h test/*.c test/*.h; do
	clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
done
echo "1..1"
if [ -z "$bad" ]; then
	echo "ok 1 - every C file matches .clang-format"
else
	echo "not ok 1 - not formatted (run clang-format -i):$bad"
fi
