## tools/model-writer (rules added with the tool)
