#!/usr/bin/env bash
# The FMRGB steps in order, as a user chains them by hand:
#   resize_video -> delete_not_resized -> create_fmrgbdata -> visualize -> delete_allmp4 -> train -> predict
#
#   ./pipeline.sh DATA_DIR [options passed to train.py]
#   AUDIOMETHOD=mel FMRGB=3 ./pipeline.sh data --learnmethod vivit --epochs 30
#
# Settings, as environment variables (default in brackets):
#   PYTHON           the interpreter                                 [.venv/bin/python if present, else python3]
#   MAG              resize factor for resize_video.py --mag          [2]
#   AUDIOMETHOD      simple | mel, create_fmrgbdata.py --audiomethod  [simple]
#   FMRGB            5 (RGB) | 3 (grey), create_fmrgbdata.py --fmrgb  [5]
#   FREQUENCY_PARAM  create_fmrgbdata.py --frequency_param            [100]
#   JOBS             videos converted at once (--jobs)                [2]
#   OUT              train.py's output folder                         [runs/pipeline-<date>-<time>]
#   PREDICT          what predict.py classifies at the end            [DATA_DIR]
#   KEEP_VIDEOS=1    keep every video: no resizing and no delete steps (the originals are converted)
# Without KEEP_VIDEOS the pipeline ends with only the .pt files: the originals are deleted once their
# resized copy is verified, and the resized copies once their .pt holds their frames as they are (a clip
# stretched to a longer one's length keeps its video). Stops at the first step that fails, with that
# step's message.
set -euo pipefail

if [[ $# -lt 1 || "$1" == -* ]]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
DATA=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$here/.venv/bin/python" ]]; then PYTHON="$here/.venv/bin/python"; else PYTHON=python3; fi
fi
MAG=${MAG:-2}
AUDIOMETHOD=${AUDIOMETHOD:-simple}
FMRGB=${FMRGB:-5}
FREQUENCY_PARAM=${FREQUENCY_PARAM:-100}
JOBS=${JOBS:-2}
OUT=${OUT:-runs/pipeline-$(date +%Y%m%d-%H%M%S)}
PREDICT=${PREDICT:-$DATA}

step() {
    echo "+ $*" >&2
    "$@"
}

if [[ -z "${KEEP_VIDEOS:-}" ]]; then
    # resizing without deleting the originals would convert every clip twice (train/test leakage)
    step "$PYTHON" "$here/resize_video.py" --target "$DATA" --mag "$MAG" --jobs "$JOBS"
    step "$PYTHON" "$here/delete_not_resized.py" --target "$DATA"
fi
step "$PYTHON" "$here/create_fmrgbdata.py" --target "$DATA" --audiomethod "$AUDIOMETHOD" \
    --frequency_param "$FREQUENCY_PARAM" --fmrgb "$FMRGB" --jobs "$JOBS"
step "$PYTHON" "$here/visualize.py" --target "$DATA" --out "$OUT/pictures"
[[ -n "${KEEP_VIDEOS:-}" ]] || step "$PYTHON" "$here/delete_allmp4.py" --target "$DATA"
step "$PYTHON" "$here/train.py" --data "$DATA" --out "$OUT" "$@"
step "$PYTHON" "$here/predict.py" --model "$OUT/best.pt" --data "$PREDICT" --out "$OUT/predictions.csv"
echo "pipeline finished: $OUT" >&2
