## tools/prompt-render (rules added with the tool)
