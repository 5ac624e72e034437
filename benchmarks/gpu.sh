#!/usr/bin/env bash
# GPU benchmark cases in one go (target: under 12 minutes on one GPU; the timeouts add up to 11.7 min),
# all results into one folder.
#   bash benchmarks/gpu.sh [OUT_DIR]        (default: benchmarks/results/gpu-<date>)
# 1. training throughput: the paper's six pairs at 512 px, batch 16, fp32 vs AMP + channels_last
#    (images/s, peak memory, share of step time waiting for data);
# 2. counterfactual heatmap on CUDA: UNet-ResNet50 and DeepLabV3+ at 512x512, strides 16/8/4, full grids;
# 3. the heatmap pairs table on CUDA at 512 px (every paper pair and the demo stand-ins against Captum's best
#    batched setting, with the counted FLOPs per location): heatmap_pairs_cuda.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/results/gpu-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run the CPU cases with python -m benchmarks')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" || true
# sample GPU utilisation once a second while the cases run
( nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 1 > "$OUT/utilisation.csv" 2>/dev/null ) &
SMI=$!
trap 'kill $SMI 2>/dev/null || true' EXIT
timeout 260 "$PY" benchmarks/train_throughput.py --device cuda --size 512 --batch 16 --workers 4 --out "$OUT" 2>&1 | tee "$OUT/train_throughput.log" || true
# one model per run, so that a slow one cannot take the other's results with it
for model in unet deeplabv3plus; do
  timeout 100 "$PY" -m benchmarks.heatmap --device cuda --full --ppe 64 --n-sub 64 --models "$model" \
    --out-name "heatmap_cuda_$model" 2>&1 | tee "$OUT/heatmap_cuda_$model.log" || true
  cp "benchmarks/results/heatmap_cuda_$model.json" "$OUT/" 2>/dev/null || true
done
timeout 240 "$PY" -m benchmarks.heatmap --pairs --device cuda --size 512 --captum-ppe 16 64 --n-sub 64 \
  --out-dir "$OUT" 2>&1 | tee "$OUT/heatmap_pairs_cuda.log" || true
echo "results in $OUT"
