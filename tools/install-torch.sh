#!/usr/bin/env bash
# Install PyTorch (the torch and torchvision versions pyproject.toml pins) into the environment of PYTHON.
#   usage: tools/install-torch.sh PYTHON [auto|cpu|cuda]      (run from the folder with pyproject.toml)
#   cpu:   the CPU-only build from PyTorch's own index (TORCH_CPU_INDEX): no CUDA libraries, a fraction of the size
#   cuda:  the default build from the package index (with NVIDIA's CUDA libraries, several GB)
#   auto:  cuda where `nvidia-smi -L` lists a GPU, else cpu (the default)
# Where PyTorch's index cannot be reached, the cpu choice falls back to the default index, and says so.
set -euo pipefail
py="${1:?usage: tools/install-torch.sh PYTHON [auto|cpu|cuda]}"
want="${2:-auto}"
index="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
if [ "$want" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then want=cuda; else want=cpu; fi
fi
pins="$("$py" - <<'EOF'
import re
import tomllib

with open("pyproject.toml", "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
print(" ".join(d for d in deps if re.match(r"torch(vision)?\b", d)))
EOF
)"
case "$want" in
  cuda)
    echo "install: PyTorch with CUDA ($pins) from the default index (TORCH=cpu for the CPU-only build)"
    "$py" -m pip install -q $pins
    ;;
  cpu)
    # a quick look first (5 s at most): pip itself would wait on an index it cannot reach for a minute or more
    if "$py" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=5)" \
        "$index" >/dev/null 2>&1; then
      echo "install: PyTorch for the CPU ($pins) from $index (TORCH=cuda for the CUDA build)"
      "$py" -m pip install -q --index-url "$index" --extra-index-url https://pypi.org/simple $pins
    else
      echo "install: $index could not be reached; PyTorch from the default index instead (it may bring CUDA libraries)"
      "$py" -m pip install -q $pins
    fi
    ;;
  *)
    echo "install: TORCH=$want: expected auto, cpu or cuda" >&2
    exit 2
    ;;
esac
