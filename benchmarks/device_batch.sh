#!/usr/bin/env bash
# The benchmark rows that do not fit the 2-core machine, run side by side on one machine with a GPU
# within a fixed slot: every job trains for at most MINUTES (the `max_minutes` setting: the epoch that
# ends past it is the last, evaluated and checkpointed), then everything the jobs wrote except weights
# (logs, metrics.jsonl, summaries, benchmark.json, BENCHMARKS rows, figures) is packed into
# OUT/results.tar.gz.
#
#   bash benchmarks/device_batch.sh OUT [MINUTES] [JOBS...]     # default: 6 minutes, the ten jobs below
#   ADVREP_DATA_DIR=... DEVICE=cpu QUICK=1 bash benchmarks/device_batch.sh /tmp/out 0.05   # a dry run
#   MPS=1 THREADS=3 LIMIT=270 bash benchmarks/device_batch.sh OUT 3.2 t-bigan t-d t-lr t-jlr   # four rows
#   RESUME=1 ... (same RUN_ROOT, its runs/ carried back to the machine): continue them for MINUTES more
#   HOLD_OUT=1 ...: the table rows on the authors' held-out protocol (below)
#
# BiGAN-table rows (t-*) train as one process each into RUN_ROOT/table/ROW; afterwards
#   python benchmarks/bigan_table.py --epochs 80 --decay-epochs 80 --keep-best --resume --run-root RUN_ROOT/table
# reads their benchmark.json files and writes the table (with HOLD_OUT=1: add --hold-out-val
# --val-split bigan_code and use RUN_ROOT/table-heldout-bigan_code). AAE jobs write their BENCHMARKS.md row to
# RUN_ROOT/rows/JOB.md, each with its own command, to be copied into BENCHMARKS.md.
# Jobs run as separate processes (one torch thread each); a job that fails does not stop the others,
# and its log ends with its exit code. The rows name the commit that git reports where they run: on a
# copied tree whose .git lags the working files, correct it by hand.
set -u
out=$(realpath -m "${1:?usage: device_batch.sh OUT [MINUTES] [JOBS...]}")  # before the cd below
minutes=${2:-6}
shift $(( $# < 2 ? $# : 2 ))
[[ $minutes =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "MINUTES must be a number of minutes, got '$minutes'" >&2; exit 2; }
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
root=${RUN_ROOT:-runs/device}
mkdir -p "$out" "$root/logs" "$root/rows"
quick=${QUICK:+--quick}
mps=
# A job that overruns its budget by more than this (a slow last epoch, a hung evaluation) is killed.
# LIMIT=seconds sets it outright (to end inside a call's own time limit).
limit=${LIMIT:-$("$py" -c "print(int($minutes * 60 + 150))")}
# THREADS: torch threads per job (CPU-side evaluation: probes); 1 suits ten jobs on 16 cores.
budget=(--set "threads=${THREADS:-1}" --set checkpoint_every=10 --set "max_minutes=$minutes")

# RESUME=1: continue the jobs of an earlier call with the same RUN_ROOT from their checkpoints.
resume=${RESUME:+--resume}
# HOLD_OUT=1: the table rows on the authors' held-out protocol (--hold-out-val on the 10k their code
# holds out, --val-split bigan_code), into RUN_ROOT/table-heldout-bigan_code, so they never mix with rows
# trained on all 60k images or validated on another split.
table_root=$root/table${HOLD_OUT:+-heldout-bigan_code}
table=(benchmarks/bigan_table.py --epochs 80 --decay-epochs 80 --keep-best --eval-every 10 --set "device=$device"
       "${budget[@]}" --no-progress --no-write --run-root "$table_root" $resume
       ${HOLD_OUT:+--hold-out-val --val-split bigan_code})
[ -n "$quick" ] && table+=(--epochs 2 --decay-epochs 1 --eval-every 1 --subset 12000)
aae=(--device "$device" --no-progress "${budget[@]}" --run-root "$root/aae" $quick $resume)
# Each job is a command line quoted word by word (printf %q), so a RUN_ROOT or PYTHON path with spaces
# survives; `eval` below only splits it back into those words.
declare -A jobs=(
  [cluster16]="benchmarks/aae_mnist.py cluster --clusters 16 --epochs 1500 --eval-every 5"
  [cluster30]="benchmarks/aae_mnist.py cluster --clusters 30 --epochs 1500 --eval-every 5"
  [semi100-s0]="benchmarks/aae_mnist.py semi --labels 100 --seeds 0 --epochs 5000 --eval-every 10"
  [semi100-s1]="benchmarks/aae_mnist.py semi --labels 100 --seeds 1 --epochs 5000 --eval-every 10"
  [semi1000-s0]="benchmarks/aae_mnist.py semi --labels 1000 --seeds 0 --epochs 5000 --eval-every 10"
  [parzen-s0]="benchmarks/aae_mnist.py parzen --seeds 0 --epochs 1000 --eval-every 25"
)
for row in bigan d lr jlr ae_l2 ae_l1; do jobs[t-$row]="$(printf '%q ' "${table[@]}") --rows $row"; done
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(t-bigan t-d t-lr t-jlr t-ae_l2 t-ae_l1 cluster16 cluster30 semi100-s0 parzen-s0)
for name in "${names[@]}"; do
  [ -n "${jobs[$name]:-}" ] || { echo "unknown job $name; choose from ${!jobs[*]}" >&2; exit 2; }
done
# MPS=1: try NVIDIA's multi-process service, which lets the jobs' small kernels run side by side;
# without it (or where it does not start) the GPU time-slices between the processes.
if [ -n "${MPS:-}" ] && command -v nvidia-cuda-mps-control >/dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  if nvidia-cuda-mps-control -d && timeout 45 "$py" -c "import torch; torch.ones(1, device='cuda').sum().item()"
  then echo "MPS: on"; mps=1
  else echo "MPS: did not start; going on without it"; echo quit | timeout 10 nvidia-cuda-mps-control
       unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
  fi
fi
pids=()
smi=
# If this script is stopped, its jobs, the load monitor and the MPS daemon go with it.
trap 'kill "${pids[@]}" $smi 2>/dev/null; [ -n "$mps" ] && echo quit | nvidia-cuda-mps-control' EXIT
for name in "${names[@]}"; do
  eval "cmd=(${jobs[$name]})"
  [[ $name == t-* ]] || cmd+=("${aae[@]}" --benchmarks-file "$root/rows/$name.md")
  echo "[$name] ${cmd[*]}" | tee "$root/logs/$name.log"
  ( OMP_NUM_THREADS=${THREADS:-1} PYTHONUNBUFFERED=1 timeout "$limit" "$py" "${cmd[@]}" >> "$root/logs/$name.log" 2>&1
    echo "exit $?" >> "$root/logs/$name.log" ) &
  pids+=($!)
done
# GPU load every 30 s, for the note (absent on a machine without nvidia-smi)
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 30 > "$root/logs/gpu.csv" 2>&1 &
smi=$!
wait "${pids[@]}"
for name in "${names[@]}"; do echo "== $name: $(tail -n 1 "$root/logs/$name.log")"; done
tar czf "$out/results.tar.gz" --exclude='*.safetensors' --exclude='*.pt' --exclude='checkpoints' "$root"
ls -la "$out"
