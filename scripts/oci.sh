#!/usr/bin/env bash
# Package tollgate.wasm for OCI registries (`make oci`; docs/deploy.md says how to push).
#
# Writes two OCI image layouts by hand (sha256sum, tar and python3 only; no container engine):
#   target/oci/        the Wasm OCI artifact (CNCF TAG Runtime "Wasm OCI Artifact layout"):
#                      config application/vnd.wasm.config.v0+json, one layer that is
#                      tollgate.wasm itself (media type application/wasm, see below)
#   target/oci-istio/  the same module as the image Istio's WasmPlugin pulls (oci://...): one
#                      tar+gzip layer holding /plugin.wasm, what `docker build -f Dockerfile.wasm`
#                      makes (Istio's agent reads this "compat" variant, not the artifact above)
# Each layout holds one manifest, tagged with the version (org.opencontainers.image.ref.name).
# When a container engine works here (docker with buildx and a running daemon, or podman), it
# also builds the image $IMAGE:$TAG from Dockerfile.wasm into the engine's local store.
#
# Environment:
#   WASM       the module (default target/wasm32-wasip1/release/tollgate.wasm; `make build`)
#   OUT        where the layouts go (default target)
#   TAG        the tag (default: the version in Cargo.toml)
#   IMAGE      the engine image name (default tollgate-wasm)
#   OCI_ENGINE auto (default) | docker | podman | none
#   OCI_WASM_LAYER_MEDIA_TYPE  the artifact's layer media type: application/wasm (default, as the
#              CNCF layout and its reference implementation specify) or
#              application/vnd.wasm.content.layer.v1+wasm (the older wasm-to-oci type)
#   SOURCE_DATE_EPOCH  the "created" time (default: the last commit's time, else 0), so the same
#              module gives the same digests
set -euo pipefail
cd "$(dirname "$0")/.."

WASM=${WASM:-target/wasm32-wasip1/release/tollgate.wasm}
OUT=${OUT:-target}
IMAGE=${IMAGE:-tollgate-wasm}
OCI_ENGINE=${OCI_ENGINE:-auto}
LAYER_TYPE=${OCI_WASM_LAYER_MEDIA_TYPE:-application/wasm}
if [ -z "${TAG:-}" ]; then
  TAG=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
fi
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH

[ -f "$WASM" ] || { echo "oci: $WASM not found: run 'make build'" >&2; exit 1; }
command -v python3 >/dev/null || { echo "oci: python3 not found: run 'apt-get install -y python3'" >&2; exit 1; }
case "$LAYER_TYPE" in
  application/wasm|application/vnd.wasm.content.layer.v1+wasm) ;;
  *) echo "oci: OCI_WASM_LAYER_MEDIA_TYPE=$LAYER_TYPE: expected application/wasm or application/vnd.wasm.content.layer.v1+wasm" >&2; exit 2 ;;
esac

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# new_layout DIR: an empty OCI layout.
new_layout() {
  rm -rf "$1"
  mkdir -p "$1/blobs/sha256"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$1/oci-layout"
}

# add_blob DIR FILE: copy FILE into DIR's blobs under its digest; prints the hex digest.
add_blob() {
  local hex
  hex=$(sha "$2")
  cp "$2" "$1/blobs/sha256/$hex"
  chmod 0644 "$1/blobs/sha256/$hex"
  echo "$hex"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- target/oci: the Wasm OCI artifact --------------------------------------------------------
art="$OUT/oci"
new_layout "$art"
wasm_hex=$(add_blob "$art" "$WASM")
wasm_size=$(size "$WASM")
python3 - "$work/config.json" "$wasm_hex" <<'EOF'
import json, os, sys, time
created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(os.environ["SOURCE_DATE_EPOCH"])))
config = {"created": created, "architecture": "wasm", "os": "wasip1",
          "layerDigests": ["sha256:" + sys.argv[2]]}
open(sys.argv[1], "w").write(json.dumps(config, separators=(",", ":")))
EOF
config_hex=$(add_blob "$art" "$work/config.json")
python3 - "$work/manifest.json" "$config_hex" "$(size "$work/config.json")" "$wasm_hex" "$wasm_size" "$LAYER_TYPE" "$TAG" <<'EOF'
import json, os, sys, time
out, config_hex, config_size, wasm_hex, wasm_size, layer_type, tag = sys.argv[1:]
created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(os.environ["SOURCE_DATE_EPOCH"])))
manifest = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.wasm.config.v0+json",
               "digest": "sha256:" + config_hex, "size": int(config_size)},
    "layers": [{"mediaType": layer_type, "digest": "sha256:" + wasm_hex, "size": int(wasm_size),
                "annotations": {"org.opencontainers.image.title": "tollgate.wasm"}}],
    "annotations": {"org.opencontainers.image.title": "tollgate",
                    "org.opencontainers.image.version": tag,
                    "org.opencontainers.image.created": created},
}
open(out, "w").write(json.dumps(manifest, separators=(",", ":")))
EOF
art_manifest_hex=$(add_blob "$art" "$work/manifest.json")
art_manifest_size=$(size "$work/manifest.json")

# ---- target/oci-istio: one tar+gzip layer with /plugin.wasm ----------------------------------
compat="$OUT/oci-istio"
new_layout "$compat"
mkdir -p "$work/rootfs"
cp "$WASM" "$work/rootfs/plugin.wasm"
chmod 0644 "$work/rootfs/plugin.wasm"
tar --format=ustar --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
  -C "$work/rootfs" -cf "$work/layer.tar" plugin.wasm
python3 - "$work/layer.tar" "$work/layer.tar.gz" <<'EOF'
import gzip, sys
data = open(sys.argv[1], "rb").read()
# mtime=0 and no file name in the gzip header: the same tar always gives the same digest.
with open(sys.argv[2], "wb") as f:
    with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
        gz.write(data)
EOF
diff_hex=$(sha "$work/layer.tar")
layer_hex=$(add_blob "$compat" "$work/layer.tar.gz")
python3 - "$work/image-config.json" "$diff_hex" <<'EOF'
import json, os, sys, time
created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(os.environ["SOURCE_DATE_EPOCH"])))
config = {"created": created, "architecture": "wasm", "os": "wasip1", "config": {},
          "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sys.argv[2]]}}
open(sys.argv[1], "w").write(json.dumps(config, separators=(",", ":")))
EOF
image_config_hex=$(add_blob "$compat" "$work/image-config.json")
python3 - "$work/image-manifest.json" "$image_config_hex" "$(size "$work/image-config.json")" \
  "$layer_hex" "$(size "$work/layer.tar.gz")" "$TAG" <<'EOF'
import json, sys
out, config_hex, config_size, layer_hex, layer_size, tag = sys.argv[1:]
manifest = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": "sha256:" + config_hex, "size": int(config_size)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + layer_hex, "size": int(layer_size)}],
    "annotations": {"module.wasm.image/variant": "compat",
                    "org.opencontainers.image.title": "tollgate",
                    "org.opencontainers.image.version": tag},
}
open(out, "w").write(json.dumps(manifest, separators=(",", ":")))
EOF
compat_manifest_hex=$(add_blob "$compat" "$work/image-manifest.json")
compat_manifest_size=$(size "$work/image-manifest.json")

# index.json of each layout: its one manifest, tagged.
write_index() { # DIR MANIFEST_HEX MANIFEST_SIZE ARTIFACT_TYPE
  python3 - "$1/index.json" "$2" "$3" "$TAG" "$4" <<'EOF'
import json, sys
out, hex_, size, tag, artifact_type = sys.argv[1:]
entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + hex_,
         "size": int(size), "annotations": {"org.opencontainers.image.ref.name": tag}}
if artifact_type:
    entry["artifactType"] = artifact_type
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [entry]}
open(out, "w").write(json.dumps(index, indent=2) + "\n")
EOF
}
write_index "$art" "$art_manifest_hex" "$art_manifest_size" "application/vnd.wasm.config.v0+json"
write_index "$compat" "$compat_manifest_hex" "$compat_manifest_size" ""

echo "oci: $WASM ($wasm_size bytes) sha256 $wasm_hex"
echo "oci: $art/        Wasm OCI artifact, tag $TAG, manifest sha256:$art_manifest_hex"
echo "oci: $compat/  Istio (plugin.wasm) image, tag $TAG, manifest sha256:$compat_manifest_hex"
echo "oci: WasmPlugin sha256: https:// url -> $wasm_hex (the module); oci:// url -> the pushed manifest's digest"

# ---- a container engine, when one really works here -------------------------------------------
engine=""
case "$OCI_ENGINE" in
  none) ;;
  docker) engine=docker ;;
  podman) engine=podman ;;
  auto)
    if command -v docker >/dev/null && docker buildx version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
      engine=docker
    elif command -v podman >/dev/null && podman info >/dev/null 2>&1; then
      engine=podman
    fi ;;
  *) echo "oci: OCI_ENGINE=$OCI_ENGINE: expected auto, docker, podman or none" >&2; exit 2 ;;
esac
if [ -n "$engine" ]; then
  mkdir -p "$work/context"
  cp "$WASM" "$work/context/tollgate.wasm"
  if [ "$engine" = docker ]; then
    docker buildx build --load -f Dockerfile.wasm -t "$IMAGE:$TAG" "$work/context"
  else
    podman build -f Dockerfile.wasm -t "$IMAGE:$TAG" "$work/context"
  fi
  echo "oci: built $IMAGE:$TAG with $engine; push it with: $engine tag $IMAGE:$TAG REGISTRY/tollgate:$TAG && $engine push REGISTRY/tollgate:$TAG"
else
  echo "oci: no working docker buildx or podman here: the layouts above are the result"
fi
