## engine/tokenizer (rules added with the module)
