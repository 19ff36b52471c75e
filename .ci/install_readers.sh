#!/usr/bin/env bash
# Install the external metadata readers tests/readers and tests/media_readers.py drive (research/readers.md
# §1; Debian's ffmpeg for ffprobe, research/video-frontend-engines.md §1.6) and Debian's postgresql, whose
# initdb/pg_ctl tests/pg_cluster.py runs for the catalogue's PostgreSQL tests. Idempotent: each step runs only
# when its reader is missing or at another version.
#
#   PYTHON=...                      interpreter whose environment gets the pip readers (default: python on PATH)
#   PROVENANCE_EXIFREADER_DIR=...   npm prefix for exifreader (default: .ci/node, where tests/readers looks)
#   PROVENANCE_APT_UPDATED=1        skip `apt-get update` (the caller just ran it)
#
# sd-prompt-reader goes in with --no-deps: it pins pillow==10.3.0 and pulls a Tk GUI, while its
# parser needs only Pillow and piexif (and sd-parsers 0.6 needs pillow>=10.4).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$(command -v python || command -v python3)}"
NODE_PREFIX="${PROVENANCE_EXIFREADER_DIR:-$ROOT/.ci/node}"
APT_PACKAGES=(libimage-exiftool-perl exiv2 libexempi8 libexempi-dev ffmpeg postgresql)
PIP_PACKAGES=(pyexiv2==2.16.0 python-xmp-toolkit==2.1.0 sd-parsers==0.6 piexif==1.1.3)
PIP_NO_DEPS=(sd-prompt-reader==1.3.5)
EXIFREADER_VERSION=4.46.0

say() { echo "install_readers: $*"; }

# ---- apt: exiftool, exiv2, exempi, ffmpeg (ffprobe), postgresql; node + npm for exifreader -----
missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "apt-get install ${missing[*]}"
  [ "${PROVENANCE_APT_UPDATED:-0}" = 1 ] || $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- pip: the Python readers ------------------------------------------------------------------
pip=("$PY" -m pip install -q --disable-pip-version-check --no-input)
if ! "$PY" - "${PIP_PACKAGES[@]}" "${PIP_NO_DEPS[@]}" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
for spec in sys.argv[1:]:
    name, _, wanted = spec.partition("==")
    try:
        assert version(name) == wanted
    except (PackageNotFoundError, AssertionError):
        sys.exit(1)
EOF
then
  say "pip install ${PIP_PACKAGES[*]}; --no-deps ${PIP_NO_DEPS[*]}"
  "${pip[@]}" "${PIP_PACKAGES[@]}"
  "${pip[@]}" --no-deps "${PIP_NO_DEPS[@]}"
fi

# ---- npm: exifreader, the reader Civitai uses --------------------------------------------------
have="$(node -e "try { console.log(require('$NODE_PREFIX/node_modules/exifreader/package.json').version) } catch (e) {}")"
if [ "$have" != "$EXIFREADER_VERSION" ]; then
  say "npm install exifreader@$EXIFREADER_VERSION into $NODE_PREFIX"
  mkdir -p "$NODE_PREFIX"
  npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --no-save --loglevel=error \
    "exifreader@$EXIFREADER_VERSION" >/dev/null
fi

# ---- check every reader answers ----------------------------------------------------------------
exiftool -ver >/dev/null
exiv2 --version >/dev/null
ffprobe -version >/dev/null
initdb="$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)"
"$initdb" --version >/dev/null
NODE_PATH="$NODE_PREFIX/node_modules" node -e "require('exifreader')"
"$PY" -c "
import pyexiv2, piexif, sd_parsers
from libxmp import XMPFiles
from sd_prompt_reader.image_data_reader import ImageDataReader
"
say "ok: exiftool $(exiftool -ver), $(exiv2 --version | head -n 1), $(ffprobe -version | head -n 1 | cut -d' ' -f1-3)," \
  "$("$initdb" --version), node $(node --version), exifreader $EXIFREADER_VERSION"
