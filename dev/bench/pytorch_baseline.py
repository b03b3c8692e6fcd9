"""
pytorch_baseline.py: the PyTorch side of dev/bench/gpu_bench.sh: Hugging Face LlamaForCausalLM in bf16 with
torch.optim.AdamW (fused where the installed torch has it), the same model sizes and batch as train_llama,
random tokens. Prints one line: "pytorch <preset> tok/s <value> peak_gib <value>".
  python dev/bench/pytorch_baseline.py --preset 1b --batch 8 --seq 1024 --steps 20
Model sizes are read from the trainer's own dry run (train_llama_cpu --model P --dry-run) so that there is
one place for the presets.
"""
import argparse
import re
import subprocess
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--preset", required=True)
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--seq", type=int, default=1024)
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
ap.add_argument("--device", default="cuda", help="cuda, or cpu to check the script itself on a small preset")
a = ap.parse_args()

line = subprocess.run(["./train_llama_cpu", "--model", a.preset, "--dry-run", "--seq", str(a.seq), "--batch", "1"],
                      capture_output=True, text=True, check=True).stdout.splitlines()[0]
sizes = {k: int(v) for k, v in re.findall(r"(dim|layers|heads|kv-heads|ffn|vocab|max-seq) (\d+)", line)}
cfg = LlamaConfig(hidden_size=sizes["dim"], num_hidden_layers=sizes["layers"], num_attention_heads=sizes["heads"],
                  num_key_value_heads=sizes["kv-heads"], intermediate_size=sizes["ffn"], vocab_size=sizes["vocab"],
                  max_position_embeddings=max(sizes["max-seq"], a.seq), rms_norm_eps=1e-6, tie_word_embeddings=False)
torch.manual_seed(0)
dev = torch.device(a.device)
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
if hasattr(torch.device, "__enter__"):  # torch 2: build the model on the device (no host init of 1e9 weights)
    with dev:
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
else:
    model = LlamaForCausalLM(cfg).to(dev).to(torch.bfloat16)
try:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
except (TypeError, RuntimeError):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
# seq tokens in, the loss over their next-token predictions (HF shifts the labels itself), as train_llama
x = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), device=dev)
if dev.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
for step in range(a.warmup + a.steps):
    if step == a.warmup:
        sync()
        t0 = time.time()
    loss = model(input_ids=x, labels=x).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
sync()
tok_s = a.batch * a.seq * a.steps / (time.time() - t0)
peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
print(f"pytorch {a.preset} tok/s {tok_s:.0f} peak_gib {peak:.2f}")
