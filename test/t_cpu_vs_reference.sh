# train_llama_cpu against the PyTorch reference (dev/reference/llama_ref.py): logits, loss, every gradient and
# 10 AdamW steps (with warmup, cosine decay, weight decay and clipping active), for a GQA and an MHA model
# with sizes that are not multiples of 8, and a Llama-3-style one: tied embeddings (the shared matrix's gradient is
# the sum of its two uses, and AdamW updates it once), llama3 RoPE scaling with its three frequency bands at head
# dim 16 (original length 32), theta 5e5, eps 1e-5. Bounds are in test/test_reference.c.
source test/lib.sh
need_python_module torch
need_python_module safetensors
run() {  # NAME then llama_ref.py flags
  local name=$1; shift
  "$PYTHON" dev/reference/llama_ref.py --out "$TMP/$name" "$@"
  test/bin/test_reference compare "$TMP/$name"
}
run gqa --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 172 --vocab 512 --batch 2 --seq 16 --steps 10
run llama3 --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 172 --vocab 512 --batch 2 --seq 48 --max-seq 64 --steps 10 --lr 3e-3 \
  --tie-word-embeddings --rope-scaling llama3 --rope-factor 8 --rope-original-max-seq 32 --rope-theta 500000 --norm-eps 1e-5
run mha --dim 48 --layers 3 --heads 3 --kv-heads 3 --ffn 100 --vocab 300 --batch 3 --seq 11 --steps 10 --grad-clip 0 --weight-decay 0 --lr 3e-3
