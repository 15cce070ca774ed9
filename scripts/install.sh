#!/usr/bin/env bash
# Puts `ptune` on the PATH: builds the release binary (unless --binary names one) and links it
# as PREFIX/bin/ptune (default PREFIX: ~/.local), so a rebuild is picked up without reinstalling.
# Says what to add to the PATH when PREFIX/bin is not on it yet.
#
#   scripts/install.sh [--prefix PREFIX] [--binary PATH]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
prefix="$HOME/.local"
binary=""
while (( $# > 0 )); do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --binary) binary="$2"; shift 2 ;;
        *) echo "install.sh: unknown option $1 (--prefix PREFIX, --binary PATH)" >&2; exit 2 ;;
    esac
done
if [[ -z "$binary" ]]; then
    scripts/setup.sh
    swift build -c release --product ptune >&2
    binary="$(swift build -c release --show-bin-path)/ptune"
fi
[[ -x "$binary" ]] || { echo "install.sh: $binary is not an executable" >&2; exit 1; }
binary="$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"
mkdir -p "$prefix/bin"
ln -sfn "$binary" "$prefix/bin/ptune.partial"
mv -Tf "$prefix/bin/ptune.partial" "$prefix/bin/ptune"
echo "installed: $prefix/bin/ptune -> $binary"
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "add it to your PATH: export PATH=\"$prefix/bin:\$PATH\" (in ~/.bashrc to keep it)" ;;
esac
