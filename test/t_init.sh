# The initial weights both trainers draw (llama_config.h's llama_init_tensor, in parallel chunks): the same
# bits for any number of OpenMP threads, N(0, 0.02) within statistical bounds, independent chunks and layers, and a
# part of a tensor (a rank of --shard-weights draws its own) the whole tensor's values in its chunks and nothing else.
source test/lib.sh
test/bin/test_reference init
