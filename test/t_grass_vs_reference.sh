# Grass in train_llama_cpu against the PyTorch Grass reference (dev/reference/grass_ref.py) for every
# selector, over 8 steps with refreshes at steps 0, 3 and 6: the same indices (exactly), scales, losses and
# gradient norms; no full projection gradient outside refreshes; the compressed gradient equal to the
# selected rows of a separately computed full gradient. Bounds in test/test_reference.c.
source test/lib.sh
need_python_module torch
need_python_module safetensors
run() {  # NAME then llama_ref.py flags
  local name=$1; shift
  "$PYTHON" dev/reference/llama_ref.py --out "$TMP/$name" --optimizer grass --grass-interval 3 --steps 8 "$@"
  test/bin/test_reference compare "$TMP/$name"
}
for sel in topr multinorm multinorm-nr uniform uniform-nr; do
  run "$sel" --grass-select $sel --grass-rank 16
done
# the other side, a rank above some matrices' size (capped), no clipping, and an MHA model
run rows --grass-select multinorm --grass-side rows --grass-rank 48
run cols --grass-select topr --grass-side cols --grass-rank 24 --grad-clip 0
run llama3 --grass-select multinorm --grass-rank 16 --tie-word-embeddings --rope-scaling llama3 --rope-factor 8 \
  --rope-original-max-seq 32 --rope-theta 500000 --norm-eps 1e-5 --seq 48 --max-seq 64
run mha --grass-select multinorm --grass-rank 8 --dim 48 --layers 3 --heads 3 --kv-heads 3 --ffn 100 --vocab 300 --seq 11 --batch 3
