#!/usr/bin/env bash
# Release build of kubectl-credential for krew: binaries, the archives the krew manifest names,
# their sha256 checksums, and the manifest with every {{ .TagName }} / addURIAndSha filled in.
#
#   kubectl-plugin/release.sh build <tag> [dist]      build, package and fill (tag like v0.1.0)
#   kubectl-plugin/release.sh manifest <tag> <dist>   only fill the manifest from archives in <dist>
#
# Output in <dist> (default: target/release-dist/<tag>): kubectl-credential_<tag>_<os>_<arch>.tar.gz
# (.zip for Windows), each holding kubectl-credential[.exe] and LICENSE at the top level (what the
# manifest's `files:` move), SHA256SUMS, and credential.yaml (the filled manifest, to submit to
# krew-index or to install from: `kubectl krew install --manifest credential.yaml --archive <archive>`).
#
# Platforms: PLATFORMS (default all five the manifest lists), each os/arch=rust-target. A platform
# whose Rust target or linker is not installed fails the build (cross-compiling darwin and windows
# needs their SDKs: build those on their own runners and collect the archives in one <dist>, then
# run `manifest`). `manifest` drops the platforms with no archive in <dist> and fails if none is left.
#
# The archives need the repository's LICENSE file (krew-index requires one; Cargo.toml declares
# Apache-2.0).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
template="$here/krew/credential.yaml"
homepage_repo="https://github.com/k0rdent/credential-guard"
default_platforms="linux/amd64=x86_64-unknown-linux-gnu linux/arm64=aarch64-unknown-linux-gnu \
darwin/amd64=x86_64-apple-darwin darwin/arm64=aarch64-apple-darwin windows/amd64=x86_64-pc-windows-gnu"

usage() { sed -n '5,7p' "$0" | sed 's/^# *//' >&2; exit 2; }

check_tag() {
  [[ "$1" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
    { echo "release.sh: tag $1 is not a semantic version with a leading v (krew requires e.g. v0.1.0)" >&2; exit 2; }
}

archive_name() { # tag os arch
  if [ "$2" = windows ]; then echo "kubectl-credential_$1_$2_$3.zip"; else echo "kubectl-credential_$1_$2_$3.tar.gz"; fi
}

build() {
  local tag="$1" dist="$2"
  local version="${tag#v}"
  local cargo_version
  cargo_version="$(awk -F'"' '/^\[workspace.package\]/ { w = 1 } w && /^version/ { print $2; exit }' "$repo/Cargo.toml")"
  [ "$version" = "$cargo_version" ] ||
    { echo "release.sh: tag $tag does not match the workspace version $cargo_version (Cargo.toml)" >&2; exit 2; }
  [ -f "$repo/LICENSE" ] ||
    { echo "release.sh: $repo/LICENSE is missing: krew-index requires a license file in every archive (Cargo.toml declares Apache-2.0); add it first" >&2; exit 2; }
  mkdir -p "$dist"
  local stage
  stage="$(mktemp -d)"
  trap 'rm -rf "$stage"' RETURN
  for entry in ${PLATFORMS:-$default_platforms}; do
    local platform="${entry%%=*}" target="${entry#*=}"
    local os="${platform%/*}" arch="${platform#*/}"
    local exe=kubectl-credential
    [ "$os" = windows ] && exe=kubectl-credential.exe
    echo "release.sh: building $platform ($target)" >&2
    cargo build --manifest-path "$repo/Cargo.toml" --release --locked -p kubectl-credential --target "$target"
    local target_dir="${CARGO_TARGET_DIR:-$repo/target}"
    rm -rf "${stage:?}/$platform" && mkdir -p "$stage/$platform"
    cp "$target_dir/$target/release/$exe" "$stage/$platform/$exe"
    cp "$repo/LICENSE" "$stage/$platform/LICENSE"
    local archive
    archive="$dist/$(archive_name "$tag" "$os" "$arch")"
    rm -f "$archive"
    if [ "$os" = windows ]; then
      (cd "$stage/$platform" && zip -q -X "$archive" "$exe" LICENSE)
    else
      # Reproducible: fixed owner, order and timestamps.
      tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$stage/$platform" -czf "$archive" "$exe" LICENSE
    fi
  done
  manifest "$tag" "$dist"
}

manifest() {
  local tag="$1" dist="$2"
  (cd "$dist" && ls -1 kubectl-credential_"$tag"_* 2>/dev/null | LC_ALL=C sort | xargs -r sha256sum >SHA256SUMS)
  [ -s "$dist/SHA256SUMS" ] || { echo "release.sh: no kubectl-credential_${tag}_* archive in $dist" >&2; exit 1; }
  python3 - "$template" "$tag" "$dist" "$homepage_repo" <<'PY'
import hashlib, os, re, sys

template, tag, dist, repo = sys.argv[1:]
text = open(template).read()
head, sep, platforms = text.partition("  platforms:\n")
if not sep:
    sys.exit("release.sh: no `  platforms:` in %s" % template)
blocks = re.split(r"(?m)^(?=  - selector:)", platforms)
kept = []
for block in blocks:
    if not block.strip():
        continue
    os_ = re.search(r"(?m)^\s+os: (\S+)", block).group(1)
    arch = re.search(r"(?m)^\s+arch: (\S+)", block).group(1)
    m = re.search(r'\{\{addURIAndSha "([^"]+)" \.TagName \}\}', block)
    if not m:
        sys.exit("release.sh: platform %s/%s has no addURIAndSha line in %s" % (os_, arch, template))
    uri = m.group(1).replace("{{ .TagName }}", tag)
    if not uri.startswith(repo + "/releases/download/%s/" % tag):
        sys.exit("release.sh: %s/%s downloads from %s, not from %s's release %s" % (os_, arch, uri, repo, tag))
    archive = os.path.join(dist, uri.rsplit("/", 1)[1])
    if not os.path.exists(archive):
        print("release.sh: no %s: platform %s/%s left out of the manifest" % (archive, os_, arch), file=sys.stderr)
        continue
    sha = hashlib.sha256(open(archive, "rb").read()).hexdigest()
    indent = m.string[: m.start()].rsplit("\n", 1)[1]
    block = block.replace(m.group(0), "uri: %s\n%ssha256: %s" % (uri, indent, sha))
    kept.append(block)
if not kept:
    sys.exit("release.sh: no platform of %s has an archive in %s" % (template, dist))
out = (head + sep + "".join(kept)).replace("{{ .TagName }}", tag)
if "{{" in out:
    sys.exit("release.sh: unfilled template expression left in the manifest")
# Leading comment lines describe the template, not the release.
out = re.sub(r"\A(#[^\n]*\n)+", "# kubectl-credential %s for krew, generated by kubectl-plugin/release.sh.\n" % tag, out)
open(os.path.join(dist, "credential.yaml"), "w").write(out)
print(os.path.join(dist, "credential.yaml"))
PY
}

cmd="${1:-}"
case "$cmd" in
  build)
    [ $# -ge 2 ] || usage
    check_tag "$2"
    build "$2" "${3:-${CARGO_TARGET_DIR:-$repo/target}/release-dist/$2}"
    ;;
  manifest)
    [ $# -eq 3 ] || usage
    check_tag "$2"
    manifest "$2" "$3"
    ;;
  *) usage ;;
esac
