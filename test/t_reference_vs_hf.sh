#!/usr/bin/env bash
# Validates the PyTorch reference (dev/reference/llama_ref.py) against HF transformers: for GQA, MHA and MQA
# configs with odd sizes (ffn 172, vocab 301, ...) it writes a checkpoint and debug state, and
# test/hf_compare.py must find the same logits, loss and gradients in LlamaForCausalLM. It also checks the
# reference's training steps: its own AdamW matches torch.optim.AdamW, and the loss falls on the fixed batch.
source test/lib.sh
need_python_module torch
need_python_module safetensors
need_python_module transformers

run() {  # NAME ARGS...: reference run into $TMP/NAME, then the HF comparison of its initial state
  local name=$1; shift
  echo "== $name: $*"
  "$PYTHON" dev/reference/llama_ref.py --out "$TMP/$name" "$@"
  "$PYTHON" test/hf_compare.py "$TMP/$name" "$TMP/$name/debug_state.safetensors" --grads
}
run gqa --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 172 --vocab 512 --max-seq 64 --batch 2 --seq 16 --steps 10
run mha --dim 48 --layers 3 --heads 3 --kv-heads 3 --ffn 100 --vocab 301 --max-seq 16 --batch 3 --seq 11 --steps 6 \
        --rope-theta 500000 --norm-eps 1e-5 --seed 7
run mqa --dim 32 --layers 1 --heads 4 --kv-heads 1 --ffn 90 --vocab 257 --max-seq 9 --batch 1 --seq 9 --steps 4 \
        --warmup 0 --weight-decay 0 --grad-clip 0

echo "== gqa again with torch.optim.AdamW"
"$PYTHON" dev/reference/llama_ref.py --out "$TMP/gqa_torch_adamw" --torch-adamw \
  --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 172 --vocab 512 --max-seq 64 --batch 2 --seq 16 --steps 10
"$PYTHON" - "$TMP" <<'EOF'
import sys
from safetensors.torch import load_file
out = sys.argv[1]
own, ref = load_file(f"{out}/gqa/debug_state.safetensors"), load_file(f"{out}/gqa_torch_adamw/debug_state.safetensors")
err = max((own[k] - ref[k]).abs().max().item() / ref[k].abs().max().item() for k in ("losses", "norms"))
print(f"own AdamW vs torch.optim.AdamW: max rel diff of losses and norms {err:.3e} (bound 1e-6)")
assert err <= 1e-6
for name in ("gqa", "mha", "mqa"):
    s = load_file(f"{out}/{name}/debug_state.safetensors")
    first, last = s["losses"][0].item(), s["losses"][-1].item()
    print(f"{name}: loss {first:.4f} -> {last:.4f}")
    assert s["losses"][0] == s["loss"][0], "losses[0] must be the initial loss"
    assert last < first - 0.1, "training steps did not lower the loss on the fixed batch"
EOF
echo "PASS"
