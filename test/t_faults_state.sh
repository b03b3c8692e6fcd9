# Resumed state is trusted nowhere (checkpoint.h checks every field of state.bin before a trainer takes it): an index
# outside its matrix, a negative or misnamed step, an unknown optimizer or selector, a negative second moment, a
# NaN moment, a zero scale, a data position out of range, an edited config.json and a changed optimizer setting are
# each refused with one error line; the same checkpoint unedited resumes. The GPU trainer (emulated, where built;
# test/gpu_faults.sh: on a GPU) goes through the same checks.
source test/lib.sh
T=./train_llama_cpu
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 5000 --vocab 512
base=(--model test --train-data "$TMP/train.bin" --batch 2 --seq 16 --warmup 1 --steps 4)
grass=(--optimizer grass --grass-rank 8 --grass-interval 2)
$T "${base[@]}" "${grass[@]}" --steps 2 --out "$TMP/g" > /dev/null
$T "${base[@]}" --steps 2 --out "$TMP/a" > /dev/null

# plant NAME SRC [SECTION INDEX TYPE VALUE]: a copy of checkpoint SRC as $TMP/NAME/ckpt_00000002 with one element of
# its state.bin set (test/state_tool.py); prints the copy's path
plant() {
  local dir="$TMP/$1/ckpt_00000002"
  mkdir -p "$TMP/$1" && cp -r "$2" "$dir"
  [ $# -lt 3 ] || "$PYTHON" test/state_tool.py set "$dir/state.bin" "${@:3}"
  echo "$dir"
}
g="$TMP/g/ckpt_00000002"; a="$TMP/a/ckpt_00000002"
$T "${base[@]}" "${grass[@]}" --resume "$(plant g_ok "$g")" > /dev/null || die "an unedited Grass checkpoint does not resume"
$T "${base[@]}" --resume "$(plant a_ok "$a")" > /dev/null || die "an unedited AdamW checkpoint does not resume"
echo "ok: unedited checkpoints resume"

# q_proj is 64 x 64 (rows selected, D 64) in the test model; its layer 0 selection holds entries 0..7, ascending
expect_error "index 64 (entry 0 of model.layers.0.self_attn.q_proj.weight's selection) is outside [0, 64)" \
  $T "${base[@]}" "${grass[@]}" --resume "$(plant sigma_hi "$g" grass.sigma 0 i32 64)"
expect_error "index -3 (entry 1 of model.layers.0.self_attn.q_proj.weight's selection) is outside [0, 64)" \
  $T "${base[@]}" "${grass[@]}" --resume "$(plant sigma_neg "$g" grass.sigma 1 i32 -3)"
last=$("$PYTHON" test/state_tool.py get "$g/state.bin" grass.sigma 7 i32)
expect_error "selection is not ascending at entry 1" \
  $T "${base[@]}" "${grass[@]}" --resume "$(plant sigma_order "$g" grass.sigma 0 i32 "$last")"
expect_error "corrupt trainer state (step -5)" $T "${base[@]}" --resume "$(plant step_neg "$a" step 0 i64 -5)"
expect_error "the state is at step 3 but the directory's name says step 2" $T "${base[@]}" --resume "$(plant step_name "$a" step 0 i64 3)"
expect_error "corrupt trainer state (optimizer 1, rank 8, interval 2, selector 9" \
  $T "${base[@]}" "${grass[@]}" --resume "$(plant selector "$g" optimizer 3 i64 9)"
expect_error "corrupt trainer state (optimizer 2" $T "${base[@]}" --resume "$(plant optimizer "$a" optimizer 0 i64 2)"
expect_error "corrupt trainer state (data position 0 0 1000000000000)" \
  $T "${base[@]}" --resume "$(plant position "$a" data_position 2 i64 1000000000000)"
expect_error "section adamw.v: value -1 at element 10 (must be finite and >= 0)" \
  $T "${base[@]}" --resume "$(plant v_neg "$a" adamw.v 10 f32 -1)"
expect_error "section adamw.m: value nan at element 7 (must be finite)" $T "${base[@]}" --resume "$(plant m_nan "$a" adamw.m 7 f32 nan)"
expect_error "section grass.v: value inf at element 5 (must be finite and >= 0)" \
  $T "${base[@]}" "${grass[@]}" --resume "$(plant gv_inf "$g" grass.v 5 f32 inf)"
expect_error "section grass.rho: value 0 at element 2 (must be finite and > 0)" \
  $T "${base[@]}" "${grass[@]}" --resume "$(plant rho "$g" grass.rho 2 f32 0)"

# the settings record: an edited config.json, and an optimizer setting the moments depend on
c=$(plant theta "$a"); sed -i 's/"rope_theta": 10000/"rope_theta": 500000/' "$c/config.json"
expect_error "was written with rope_theta 10000, this run has 500000 (was config.json edited" \
  $T --train-data "$TMP/train.bin" --batch 2 --seq 16 --warmup 1 --steps 4 --resume "$c"
c=$(plant eps "$a"); sed -i 's/"rms_norm_eps": [0-9.e-]*/"rms_norm_eps": 1e-05/' "$c/config.json"
expect_error "was written with rms_norm_eps 1e-06, this run has 1e-05" \
  $T --train-data "$TMP/train.bin" --batch 2 --seq 16 --warmup 1 --steps 4 --resume "$c"
expect_error "was written with --beta2 0.999, this run has 0.99" $T "${base[@]}" --beta2 0.99 --resume "$a"
expect_error "was written with --grass-alpha 0.25, this run has 0.5" $T "${base[@]}" "${grass[@]}" --grass-alpha 0.5 --resume "$g"

echo "== the GPU trainer's resume (fp32: emulated where built, or FAULTS_GPU_FP32): the same checks on the parts it moves to the device"
GPU=${FAULTS_GPU_FP32:-dev/emu/bin/train_llama_fp32}
if emu_part "$GPU"; then
  expect_error "index 64 (entry 0 of model.layers.0.self_attn.q_proj.weight's selection) is outside [0, 64)" \
    $GPU "${base[@]}" "${grass[@]}" --resume "$TMP/sigma_hi/ckpt_00000002"
  expect_error "section grass.v: value inf at element 5" $GPU "${base[@]}" "${grass[@]}" --resume "$TMP/gv_inf/ckpt_00000002"
  expect_error "section adamw.v: value -1 at element 10" $GPU "${base[@]}" --resume "$TMP/v_neg/ckpt_00000002"
fi
echo "every corrupted field refused"
