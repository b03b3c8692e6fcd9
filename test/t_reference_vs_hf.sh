#!/usr/bin/env bash
# Validates the PyTorch reference (dev/reference/llama_ref.py) against HF transformers: for GQA, MHA and MQA
# configs with odd sizes (ffn 172, vocab 301, ...) it writes a checkpoint and debug state, and
# test/hf_compare.py must find the same logits, loss and gradients in LlamaForCausalLM. The Llama-3 options
# too: tied embeddings (one gradient, the sum of both uses), RoPE scaling `linear` and `llama3` (whose inverse
# frequencies must equal transformers' bit for bit, with all three llama3 bands present), and all of them
# together with Grass training the tied model. It also checks the reference's training steps: its own AdamW
# matches torch.optim.AdamW, and the loss falls on the fixed batch.
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
# Llama-3: head_dim 16 everywhere. llama3 with original length 32 (factors 1 and 4: wavelengths below 8 kept,
# above 32 divided) over 64 positions, and with 64 at theta 5e5 over 96: each has all three bands.
run tie --tie-word-embeddings --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 172 --vocab 512 --max-seq 64 \
        --batch 2 --seq 16 --steps 2
run llama3 --rope-scaling llama3 --rope-factor 8 --rope-low-freq-factor 1 --rope-high-freq-factor 4 \
        --rope-original-max-seq 32 --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 172 --vocab 512 --max-seq 64 \
        --batch 2 --seq 64 --steps 2
run linear --rope-scaling linear --rope-factor 2 --dim 48 --layers 2 --heads 3 --kv-heads 3 --ffn 100 --vocab 301 \
        --max-seq 64 --batch 2 --seq 40 --steps 2
run llama3_tie --tie-word-embeddings --rope-scaling llama3 --rope-factor 8 --rope-low-freq-factor 1 \
        --rope-high-freq-factor 4 --rope-original-max-seq 64 --rope-theta 500000 --dim 64 --layers 2 --heads 4 \
        --kv-heads 2 --ffn 100 --vocab 301 --max-seq 128 --batch 1 --seq 96 --steps 6 \
        --optimizer grass --grass-interval 3 --grass-rank 8

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
for name in ("gqa", "mha", "mqa", "llama3_tie"):
    s = load_file(f"{out}/{name}/debug_state.safetensors")
    first, last = s["losses"][0].item(), s["losses"][-1].item()
    print(f"{name}: loss {first:.4f} -> {last:.4f}")
    assert s["losses"][0] == s["loss"][0], "losses[0] must be the initial loss"
    assert last < first - 0.1, "training steps did not lower the loss on the fixed batch"

# The scaled inverse frequencies against transformers' own, and the llama3 bands each case exercises.
import dataclasses, math, torch
sys.path.insert(0, "dev/reference")
from llama_ref import LlamaConfig, rope_inv_freq
from transformers import AutoConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
for name in ("linear", "llama3", "llama3_tie"):
    hf = AutoConfig.from_pretrained(f"{out}/{name}")
    rs = hf.rope_scaling
    c = LlamaConfig(dim=hf.hidden_size, heads=hf.num_attention_heads, kv_heads=hf.num_key_value_heads,
                    rope_theta=hf.rope_theta, rope_scaling=rs["rope_type"], rope_factor=rs["factor"])
    if c.rope_scaling == "llama3":
        c = dataclasses.replace(c, rope_low_freq_factor=rs["low_freq_factor"],
                                rope_high_freq_factor=rs["high_freq_factor"],
                                rope_original_max_seq=rs["original_max_position_embeddings"])
    ours, theirs = rope_inv_freq(c), LlamaRotaryEmbedding(config=hf).inv_freq
    diff = (ours - theirs).abs().max().item()
    print(f"{name}: inverse frequencies max |diff| {diff:.3e} (must be 0: the same fp32 operations)")
    assert ours.dtype == theirs.dtype == torch.float32 and torch.equal(ours, theirs)
    if c.rope_scaling == "llama3":
        L = c.rope_original_max_seq
        wavelength = 2 * math.pi / rope_inv_freq(dataclasses.replace(c, rope_scaling="none"))
        kept = int((wavelength < L / c.rope_high_freq_factor).sum())
        divided = int((wavelength > L / c.rope_low_freq_factor).sum())
        between = len(wavelength) - kept - divided
        print(f"{name}: llama3 bands of {len(wavelength)} frequencies: "
              f"{kept} kept, {between} interpolated, {divided} divided")
        assert kept and between and divided, "a llama3 band is not exercised"
EOF
echo "PASS"
