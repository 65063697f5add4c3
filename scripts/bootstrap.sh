# Sourced by scripts/demo and scripts/test: makes a fresh Debian machine ready.
#   bootstrap_debian PKG...   installs the Debian packages that are missing (as root),
#                             or says which apt-get line is missing.
#   bootstrap_venv EXTRAS     creates .venv and installs Sésame with the extras.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

missing_debian() {
  local pkg missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  echo "${missing[@]:-}"
}

bootstrap_debian() {
  local missing
  missing="$(missing_debian "$@")"
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing Debian packages: $missing"
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
      apt-get update -qq
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "missing Debian packages; run as root:  apt-get install -y $missing" >&2
    exit 1
  fi
}

bootstrap_venv() {
  local extras="$1" stamp="$VENV/.sesame-installed-$1"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    python3 -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ] || [ "$ROOT/setup.cfg" -nt "$stamp" ]; then
    echo "==> installing Python packages (.[${extras}])"
    # pip's exit status is kept; only the lines a machine's own pip configuration makes
    # it print about index locations it ignores are left out of the first run's output.
    "$VENV/bin/python" -m pip install -q --upgrade pip 2> >(grep -v "^WARNING: Location '.*' is ignored" >&2)
    "$VENV/bin/python" -m pip install -q -e "$ROOT[$extras]" 2> >(grep -v "^WARNING: Location '.*' is ignored" >&2)
    touch "$stamp"
  fi
}
