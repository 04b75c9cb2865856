## engine/model (rules added with the module)
