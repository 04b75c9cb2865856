## tools/gpu-batch-infer (rules added with the tool)
