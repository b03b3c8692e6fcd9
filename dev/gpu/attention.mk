# dev/gpu/attention.mk: the bf16 trainer built with attention version N of kernels/attention.cuh instead of its
# ATTENTION_VERSION, for measuring the versions in the trainer (dev/gpu/run.sh's attention stage). It takes the
# compiler settings of the main Makefile, so it is read after it:
#   make -f Makefile -f dev/gpu/attention.mk out/attention/train_llama_v7
out/attention/train_llama_v%: train_llama.cu $(CUDA_HEADERS) $(HOST_HEADERS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -DATTENTION_VERSION=$* -o $@ $< $(NVCC_LDLIBS)
